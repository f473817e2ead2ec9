"""The metrics port of the SMTP server and the worker: GET /metrics (Prometheus text) and GET /readyz.

A ThreadingHTTPServer in a daemon thread: a scrape never runs on the SMTP server's event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import exposition_registry

Ready = Callable[[], bool]


class MetricsServer:
    """`start()` binds (host, port) and returns the bound port; `ready()` decides what /readyz answers."""

    def __init__(self, host: str, port: int, ready: Ready):
        self.address = (host, port)
        self.ready = ready
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> int:
        self._httpd = ThreadingHTTPServer(self.address, _handler(self.ready))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True).start()
        return self._httpd.server_address[1]

    def stop(self) -> None:
        """Blocks up to half a second (serve_forever's poll): call it off the event loop."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _handler(ready: Ready) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.partition("?")[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(exposition_registry()))
            elif path == "/readyz":
                ok = ready()
                self._send(200 if ok else 503, "text/plain; charset=utf-8", b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: GET /metrics or /readyz\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (a scrape every 15 s is not news)
            return

    return Handler
