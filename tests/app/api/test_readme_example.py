"""README's API example, run as written."""

from __future__ import annotations

import os
import subprocess
import threading

from sqlalchemy import select
from werkzeug.serving import make_server

from app.services.domains import add_domain
from app.services.tokens import create_token
from mailferry.models import Alias, User

README = os.path.join(os.path.dirname(__file__), "..", "..", "..", "README.md")


def _readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_the_api_example_runs_as_written_and_finds_the_domain_id_by_name(web_app, db, owner):
    """README's curl example, run by bash against the dashboard over HTTP: it looks the id of example.com up
    (another domain is added first, so a hard-coded id would be wrong) and creates hello@example.com."""
    block = _readme().partition("TOKEN=mf_...")[2].partition("```")[0]
    with db.session() as s:
        add_domain(s, "first.test", s.get(User, owner.id))
        domain_id = add_domain(s, "example.com", s.get(User, owner.id)).id
        _token, secret = create_token(s, s.get(User, owner.id), "readme")
    server = make_server("127.0.0.1", 0, web_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        script = f"set -eu\nTOKEN={secret}\n" + block.partition("\n")[2].replace(
            "http://127.0.0.1:8000", f"http://127.0.0.1:{server.server_port}")
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        thread.join(5)
    assert result.returncode == 0, result.stderr
    with db.session() as s:
        alias = s.scalar(select(Alias).where(Alias.local_part == "hello"))
        assert alias is not None and alias.domain_id == domain_id and alias.destinations == ["you@gmail.com"]
