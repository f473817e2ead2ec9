import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from tests.app.web_fixtures import *  # noqa: F401,F403  (shared dashboard fixtures)
from tests.app.web_fixtures import make_web_app

ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "artifacts")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail("Debian's chromium is needed: scripts/system_deps.sh chromium (or apt-get install -y chromium)")
    return path


@pytest.fixture
def live_server(web_settings):
    """The dashboard served over real HTTP on loopback, in a thread."""
    app = make_web_app(web_settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    app.extensions["mailferry.db"].dispose()


@pytest.fixture(scope="package")
def chromium():
    """Package-scoped: Playwright's sync API keeps an event loop running in this thread
    until it exits, and later tests call asyncio.run()."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                   permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


@pytest.fixture
def shot(page, request):
    """shot("name") saves tests/artifacts/<test>-<name>.png (full page)."""
    os.makedirs(ARTIFACTS, exist_ok=True)

    def take(name: str) -> str:
        path = os.path.abspath(os.path.join(ARTIFACTS, f"{request.node.name}-{name}.png".replace("/", "_")))
        page.screenshot(path=path, full_page=True)
        return path

    return take
