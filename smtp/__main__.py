"""`python -m smtp`: the inbound SMTP server, SMTP_SERVER_PROCESSES processes sharing SMTP_LISTEN (SO_REUSEPORT).

With several processes and METRICS_LISTEN set, the parent serves the metrics of all of them in prometheus_client's
multiprocess mode (each server writes its values to files in a fresh PROMETHEUS_MULTIPROC_DIR, the parent sums
them at scrape time): one port to scrape whatever SMTP_SERVER_PROCESSES is, where a port per process would
have to be configured and scraped one by one and its numbers added up in PromQL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile

from mailferry.logs import get_logger, log, setup_logging
from mailferry.metrics_server import MetricsServer
from mailferry.settings import Settings, settings_or_exit

from .check import check
from .server import InboundServer, bind_socket

logger = get_logger("smtp")
GIL_SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005


async def serve(settings: Settings, reuse_port: bool, serve_metrics: bool = True) -> None:
    """Run one server until SIGTERM or SIGINT, then shut it down cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = InboundServer(settings, serve_metrics=serve_metrics)
    await server.start(reuse_port=reuse_port)
    gc.freeze()  # what start-up built lives as long as the process: full GC passes need not walk it again
    try:
        await stop.wait()
    finally:
        await server.close()


def run_one(settings: Settings, reuse_port: bool = False, serve_metrics: bool = True) -> None:
    setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    # The spool's writer and dispatcher threads need the GIL back after every database or Redis round trip,
    # several per commit, and the commit is on the way to each 250: with CPython's default 5 ms switch
    # interval a busy event loop made them wait up to 5 ms each time (PostgreSQL accept p99 ~200 ms).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    asyncio.run(serve(settings, reuse_port, serve_metrics))


def run_many(settings: Settings) -> int:
    """Fork the servers (and serve their metrics); on SIGTERM/SIGINT pass it on and wait."""
    bind_socket(*settings.SMTP_LISTEN, reuse_port=True).close()  # fail here, once, if the address is taken
    if not settings.METRICS_LISTEN:
        return _fork_and_wait(settings, lambda _children: None)
    directory = tempfile.mkdtemp(prefix="mailferry-smtp-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # before the fork: the servers write their values there
    try:
        return _fork_and_wait(settings, lambda children: _serve_metrics(settings, children))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _serve_metrics(settings: Settings, children: list) -> MetricsServer:
    """The parent's metrics port: every server's values summed; ready while all servers live and greet."""
    def ready() -> bool:
        return all(c.is_alive() for c in children) and check(settings, timeout=2.0)[0]

    server = MetricsServer(*settings.METRICS_LISTEN, ready=ready)
    server.start()
    return server


def _fork_and_wait(settings: Settings, serve_metrics) -> int:
    """A server that dies takes the group down."""
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=run_one, args=(settings, True, False), name=f"smtp-{i}")
                for i in range(settings.SMTP_SERVER_PROCESSES)]
    for child in children:
        child.start()
    metrics = serve_metrics(children)

    def forward(signum, _frame) -> None:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    sentinels = {child.sentinel: child for child in children}
    multiprocessing.connection.wait(list(sentinels))
    forward(signal.SIGTERM, None)
    for child in children:
        child.join()
    if metrics is not None:
        metrics.stop()
    failed = [c for c in children if c.exitcode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smtp", description="Mailferry inbound SMTP server")
    parser.add_argument("--check", action="store_true",
                        help="exit 0 when the server on SMTP_LISTEN greets with 220, else 1 (healthchecks)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if args.check:
        ok, line = check(settings)
        print(line, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    if settings.SMTP_SERVER_PROCESSES == 1:
        run_one(settings)
        return 0
    log(logger, logging.INFO, "starting servers", processes=settings.SMTP_SERVER_PROCESSES)
    return run_many(settings)


if __name__ == "__main__":
    raise SystemExit(main())
