"""Headless Chromium and the front end's pages, for the tests that check what a browser sees."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import FRONT_PORT, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGE = """<!doctype html>
<title>front end</title>
<script>
async function callApi(url) {
  try {
    const response = await fetch(url, {
      method: "GET",
      credentials: "include",
      headers: {"X-Client-Version": "1.0", "Accept": "application/json"},
    });
    const text = await response.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) { body = text; }
    return {ok: true, status: response.status, body,
            retryAfter: response.headers.get("Retry-After"),
            mode: response.headers.get("X-Maintenance-Mode")};
  } catch (error) {
    return {ok: false, error: String(error)};
  }
}
</script>
"""


@pytest.fixture(scope="session")
def page_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("front")
    (root / "index.html").write_text(PAGE)
    return root


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_static(root: Path, port: int) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="session")
def front_pages(page_dirs: Path) -> Iterator[tuple[str, str]]:
    """The allowed front end's origin, and a page on an origin nobody allowed."""
    allowed = serve_static(page_dirs, FRONT_PORT)
    other_port = free_port()
    other = serve_static(page_dirs, other_port)
    yield f"http://localhost:{FRONT_PORT}/index.html", f"http://localhost:{other_port}/index.html"
    allowed.shutdown()
    other.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module: Playwright's sync API keeps an event loop running in the main thread
    while it is open, and other tests need to run their own."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make test`, which installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


def call_from(browser, page_url: str, api_url: str) -> dict:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(page_url)
        return page.evaluate("url => callApi(url)", api_url)
    finally:
        context.close()


