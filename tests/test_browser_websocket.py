"""A browser page's WebSocket through nginx, the gateway and Django (Channels): headless Chromium.

The page is served from the front end's own origin and opens its socket to the site (another
origin), as an Angular app's live feed would. It shows what it reads: the echo, and during
maintenance the close code and reason, with which it knows to retry later rather than report
an outage. It reconnects by itself, as such pages do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import CORS_ENV, FRONT_ORIGIN, Gateway, start_nginx
from tests.websocket_support import start_django_asgi

pytestmark = pytest.mark.browser

# Reconnects 300 ms after a close (a real page would wait for the retry-after the reason
# gives; the test keeps it short), and shows every close it reads.
SOCKET_PAGE_SCRIPT = """
(url) => {
  window.closes = [];
  window.echoes = [];
  const status = document.createElement("p");
  status.id = "status";
  document.body.appendChild(status);
  function connect() {
    const socket = new WebSocket(url, ["chat.v2"]);
    window.socket = socket;
    socket.onopen = () => { status.textContent = "connected"; };
    socket.onmessage = (event) => { window.echoes.push(event.data); };
    socket.onclose = (event) => {
      window.closes.push({code: event.code, reason: event.reason, wasClean: event.wasClean});
      if (event.code === 1013 && event.reason.startsWith("maintenance;")) {
        const message = event.reason.split("; ").slice(2).join("; ");
        status.textContent = "Maintenance: " + message;
      } else {
        status.textContent = "disconnected (" + event.code + ")";
      }
      setTimeout(connect, 300);
    };
  }
  connect();
}
"""


@pytest.fixture(scope="module")
def site(log_dir: Path, django_upstream: str) -> Iterator[tuple[Gateway, str]]:
    """nginx (the shipped template) -> the gateway -> gunicorn for HTTP, uvicorn for WebSockets."""
    django_asgi, asgi_url = start_django_asgi(log_dir, FRONT_ORIGIN, name="django-asgi-browser")
    gateway = Gateway(
        log_dir,
        django_upstream,
        {**CORS_ENV, "GATEWAY_WEBSOCKET_UPSTREAM_URL": asgi_url, "GATEWAY_RETRY_AFTER": "120"},
        name="gateway-browser-ws",
    )
    nginx, nginx_url = start_nginx(log_dir, gateway.port, name="nginx-browser-ws")
    yield gateway, nginx_url
    nginx.stop()
    gateway.stop()
    django_asgi.stop()


@contextmanager
def _socket_page(browser: Any, page_url: str, nginx_url: str) -> Iterator[Any]:
    """A page of ``page_url`` in a fresh browser context, its socket opened to the site through nginx."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(page_url)
        page.evaluate(SOCKET_PAGE_SCRIPT, "ws://" + nginx_url.removeprefix("http://") + "/ws/echo/")
        yield page
    finally:
        context.close()


def _echo(page: Any, text: str) -> None:
    page.wait_for_function("() => window.socket && window.socket.readyState === 1", timeout=10_000)
    page.evaluate("text => window.socket.send(text)", text)
    page.wait_for_function("text => window.echoes.includes(text)", arg=text, timeout=10_000)


def test_a_page_reads_maintenance_on_its_socket_and_reconnects_after(browser: Any, front_pages: Any, site: Any) -> None:
    gateway, nginx_url = site
    allowed_page, _ = front_pages
    with _socket_page(browser, allowed_page, nginx_url) as page:
        page.wait_for_function("() => document.getElementById('status').textContent === 'connected'", timeout=10_000)
        assert page.evaluate("() => window.socket.protocol") == "chat.v2"
        _echo(page, "hello through nginx ✓")

        gateway.turn_on(message="Back at 10:00 UTC")
        page.wait_for_function(
            "() => document.getElementById('status').textContent === 'Maintenance: Back at 10:00 UTC'", timeout=10_000
        )
        # The open socket was closed by the gateway with a close frame the page could read...
        first = page.evaluate("() => window.closes[0]")
        assert first == {"code": 1013, "reason": "maintenance; retry-after=120; Back at 10:00 UTC", "wasClean": True}
        # ...and so is each new one the page opens while maintenance lasts.
        page.wait_for_function("() => window.closes.length >= 3", timeout=10_000)
        for close in page.evaluate("() => window.closes"):
            assert close["code"] == 1013 and close["reason"] == first["reason"]

        gateway.turn_off()
        page.wait_for_function("() => document.getElementById('status').textContent === 'connected'", timeout=10_000)
        _echo(page, "back again")


def test_a_page_on_another_origin_is_refused_by_django(browser: Any, front_pages: Any, site: Any) -> None:
    """Django's origin check still works through the gateway: the Origin header reaches it."""
    gateway, nginx_url = site
    _, other_page = front_pages
    with _socket_page(browser, other_page, nginx_url) as page:
        page.wait_for_function("() => window.closes.length >= 1", timeout=10_000)
        assert page.evaluate("() => window.closes[0].code") == 1006
        assert page.evaluate("() => document.getElementById('status').textContent") == "disconnected (1006)"
