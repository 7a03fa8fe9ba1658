"""The Angular maintenance kit (examples/angular) in headless Chromium, against the real stack.

The built app is served from its own origin, and every call it makes crosses to nginx ->
gateway -> the example Django app (credentials and a custom header, so each one is preflighted).
Each state a user can meet is checked on screen and saved as a screenshot: normal data, the
maintenance screen with its countdown, a scheduled window (banner, screen, recovery, without a
reload), read-only, partial maintenance of the checkout, and Django down.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import serve_static
from tests.support import CORS_ENV, ROOT, Gateway, ServerProcess, free_port, start_django, start_nginx

pytestmark = pytest.mark.browser

ANGULAR_DIR = ROOT / "examples" / "angular"
BUILT_APP = ANGULAR_DIR / "dist" / "maintenance-kit" / "browser"
README_SCREENSHOT = ROOT / "docs" / "angular-maintenance.png"

# Short enough for the states to follow each other within seconds.
APP_TIMING = {"statusPollSeconds": 0.5, "maintenancePollSeconds": 0.5, "maxPollSeconds": 2}
# How long the page may take to show a state: a poll interval, the back-off's cap and the
# kit's grace after a 503, with room for a loaded machine.
SHOWN_WITHIN_MS = 8000
VIEWPORT = {"width": 960, "height": 600}


@dataclass
class ShopStack:
    """The app's origin and the stack behind it; Django can be stopped and started again."""

    log_dir: Path
    app_url: str
    origin: str
    api_url: str
    gateway: Gateway
    django: ServerProcess
    django_port: int
    screenshots: Path

    def restart_django(self) -> None:
        self.django, _ = start_django(self.log_dir, self.origin, port=self.django_port, name="django-angular-restarted")


@pytest.fixture(scope="module")
def built_app() -> Path:
    """`make test` has built it already; run on its own, the script builds it (or finds it up to date)."""
    subprocess.run([str(ROOT / "scripts" / "build-angular.sh")], check=True, timeout=600)
    assert (BUILT_APP / "index.html").exists()
    return BUILT_APP


@pytest.fixture(scope="module")
def shop(built_app: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    log_dir = tmp_path_factory.mktemp("angular")
    app_port = free_port()
    origin = f"http://localhost:{app_port}"
    django_port = free_port()
    django, django_url = start_django(log_dir, origin, port=django_port, name="django-angular")
    gateway = Gateway(
        log_dir,
        django_url,
        {
            **CORS_ENV,
            "GATEWAY_CORS_ALLOWED_ORIGINS": origin,
            "GATEWAY_CORS_EXPOSE_HEADERS": "ETag,Retry-After,X-Maintenance-Mode",
            "GATEWAY_RETRY_AFTER": "30",
        },
        name="gateway-angular",
    )
    nginx, api_url = start_nginx(log_dir, gateway.port, name="nginx-angular")

    # The build as a team deploys it, with this environment's config.json beside it.
    site = log_dir / "site"
    shutil.copytree(built_app, site)
    (site / "config.json").write_text(json.dumps({"apiBaseUrl": api_url, **APP_TIMING}))
    static = serve_static(site, app_port)
    screenshots = log_dir / "screenshots"
    screenshots.mkdir()
    stack = ShopStack(log_dir, f"{origin}/", origin, api_url, gateway, django, django_port, screenshots)
    try:
        yield stack
    finally:
        static.shutdown()
        nginx.stop()
        gateway.stop()
        stack.django.stop()


@pytest.fixture
def gateway_open(shop: ShopStack) -> Iterator[Gateway]:
    """The stack with maintenance off at the start and at the end of the test."""
    if shop.gateway.store.read().enabled:
        shop.gateway.turn_off()
    yield shop.gateway
    if shop.gateway.store.read().enabled:
        shop.gateway.turn_off()


@pytest.fixture
def page(browser: Any, shop: ShopStack) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


def open_app(page: Any, shop: ShopStack) -> list[str]:
    """Loads the app; the list returned collects every later navigation of the page, so a test
    can tell it was never reloaded."""
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.goto(shop.app_url)
    page.evaluate("window.__loadedOnce = true")
    return navigations


def assert_not_reloaded(page: Any, navigations: list[str]) -> None:
    assert page.evaluate("window.__loadedOnce === true"), "the page was reloaded"
    assert len(navigations) == 1, navigations


def screenshot(page: Any, shop: ShopStack, name: str) -> Path:
    path = shop.screenshots / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def expect_catalogue(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("product")).to_have_count(3, timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_test_id("product").first).to_contain_text("Espresso cups")


def countdown_seconds(page: Any) -> int:
    minutes, seconds = page.get_by_test_id("maintenance-countdown").inner_text().split(":")[-2:]
    return int(minutes) * 60 + int(seconds)


def test_demo_api_answers_through_the_stack(shop: ShopStack, gateway_open: Gateway) -> None:
    headers = {"origin": shop.origin, "x-client-version": "1.0"}
    with httpx.Client(base_url=shop.api_url, headers=headers, timeout=5) as client:
        products = client.get("/api/products")
        assert products.status_code == 200
        assert products.headers["access-control-allow-origin"] == shop.origin
        assert [p["name"] for p in products.json()["products"]] == ["Espresso cups", "Moka pot", "Coffee beans"]
        assert client.post("/api/cart", json={"product_id": 2}).json() == {"added": 2}
        assert client.post("/api/cart", json={"product_id": "x"}).status_code == 400
        assert client.get("/api/checkout/").json() == {"items": 2, "total": "EUR 31.50"}
        assert re.fullmatch(r"A-\d+", client.post("/api/checkout/").json()["order"])
        assert client.put("/api/cart", json={}).status_code == 405


def test_catalogue_shown_while_the_gateway_forwards(page: Any, shop: ShopStack, gateway_open: Gateway) -> None:
    from playwright.sync_api import expect

    open_app(page, shop)
    expect_catalogue(page)
    expect(page.get_by_test_id("checkout-summary")).to_have_text("2 items, EUR 31.50")
    page.get_by_test_id("add-to-cart").first.click()
    expect(page.get_by_test_id("cart-count")).to_have_text("(cart: 1)")
    for state in ("maintenance-screen", "maintenance-upcoming", "maintenance-read-only", "server-problem", "app-error"):
        expect(page.get_by_test_id(state)).to_have_count(0)
    screenshot(page, shop, "normal")


def test_maintenance_screen_with_message_and_countdown_then_recovery(page: Any, shop: ShopStack, gateway_open: Gateway) -> None:
    from playwright.sync_api import expect

    gateway_open.turn_on(message="We are upgrading the shop: thank you for your patience.", ends_at=time.time() + 95)
    navigations = open_app(page, shop)
    screen = page.get_by_test_id("maintenance-screen")
    expect(screen).to_be_visible(timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_test_id("maintenance-message")).to_have_text("We are upgrading the shop: thank you for your patience.")
    first = countdown_seconds(page)
    assert 80 <= first <= 95, first
    page.wait_for_timeout(2100)
    assert countdown_seconds(page) <= first - 2, "the countdown does not count down"
    shot = screenshot(page, shop, "maintenance")
    if os.environ.get("GATEWAY_UPDATE_SCREENSHOTS"):
        # The README's picture is refreshed on demand only: its countdown differs every run.
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, README_SCREENSHOT)

    gateway_open.turn_off()
    expect(screen).to_have_count(0, timeout=SHOWN_WITHIN_MS)
    expect_catalogue(page)
    assert_not_reloaded(page, navigations)
    screenshot(page, shop, "recovered")


def test_maintenance_503_alone_brings_the_screen_when_the_feed_is_unreachable(
    page: Any, shop: ShopStack, gateway_open: Gateway
) -> None:
    """The interceptor on its own: the status feed blocked in the browser, the API's 503 decides."""
    from playwright.sync_api import expect

    page.route("**/_gateway/status", lambda route: route.abort())
    gateway_open.turn_on(message="Short break.", ends_at=time.time() + 45)
    open_app(page, shop)
    expect(page.get_by_test_id("maintenance-screen")).to_be_visible(timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_test_id("maintenance-message")).to_have_text("Short break.")
    assert 30 <= countdown_seconds(page) <= 45
    expect(page.get_by_test_id("server-problem")).to_have_count(0)


def test_scheduled_window_banner_then_screen_then_recovery_without_reload(
    page: Any, shop: ShopStack, gateway_open: Gateway
) -> None:
    from playwright.sync_api import expect

    navigations = open_app(page, shop)
    expect_catalogue(page)
    now = time.time()
    gateway_open.turn_on(message="Database upgrade.", starts_at=now + 4, ends_at=now + 8)

    banner = page.get_by_test_id("maintenance-upcoming")
    expect(banner).to_be_visible(timeout=3000)
    expect(banner).to_contain_text("Database upgrade.")
    expect(page.get_by_test_id("maintenance-screen")).to_have_count(0)
    screenshot(page, shop, "upcoming")

    screen = page.get_by_test_id("maintenance-screen")
    expect(screen).to_be_visible(timeout=SHOWN_WITHIN_MS)
    assert time.time() >= now + 4, "the screen came before the window started"
    expect(page.get_by_test_id("maintenance-message")).to_have_text("Database upgrade.")
    expect(banner).to_have_count(0)
    screenshot(page, shop, "scheduled-started")

    expect(screen).to_have_count(0, timeout=SHOWN_WITHIN_MS)
    assert time.time() >= now + 8, "the screen went before the window ended"
    expect_catalogue(page)
    assert_not_reloaded(page, navigations)
    screenshot(page, shop, "scheduled-ended")


def test_read_only_reads_work_and_a_write_shows_the_notice(page: Any, shop: ShopStack, gateway_open: Gateway) -> None:
    from playwright.sync_api import expect

    gateway_open.turn_on(mode="read-only", message="Stock count in progress.", ends_at=time.time() + 120)
    open_app(page, shop)
    expect_catalogue(page)
    expect(page.get_by_test_id("maintenance-read-only")).to_contain_text("Stock count in progress.")
    expect(page.get_by_test_id("maintenance-refused-write")).to_have_count(0)

    page.get_by_test_id("add-to-cart").first.click()
    expect(page.get_by_test_id("maintenance-refused-write")).to_be_visible(timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_test_id("cart-count")).to_have_text("(cart: 0)")
    expect(page.get_by_test_id("maintenance-screen")).to_have_count(0)
    expect(page.get_by_test_id("app-error")).to_have_count(0)
    screenshot(page, shop, "read-only")


def test_partial_maintenance_of_checkout_leaves_the_catalogue_working(
    page: Any, shop: ShopStack, gateway_open: Gateway
) -> None:
    from playwright.sync_api import expect

    gateway_open.turn_on(scope=["/api/checkout/"], message="Checkout is being upgraded.", ends_at=time.time() + 120)
    navigations = open_app(page, shop)
    expect_catalogue(page)
    notice = page.get_by_test_id("maintenance-scope")
    expect(notice).to_be_visible(timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_test_id("maintenance-scope-message")).to_have_text("Checkout is being upgraded.")
    expect(page.get_by_test_id("place-order")).to_have_count(0)
    expect(page.get_by_test_id("maintenance-screen")).to_have_count(0)
    page.get_by_test_id("add-to-cart").first.click()
    expect(page.get_by_test_id("cart-count")).to_have_text("(cart: 1)")
    screenshot(page, shop, "partial")

    gateway_open.turn_off()
    expect(notice).to_have_count(0, timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_test_id("checkout-summary")).to_be_visible()
    assert_not_reloaded(page, navigations)


def test_preflight_refused_in_maintenance_still_shows_maintenance_not_a_server_problem(
    page: Any, shop: ShopStack, built_app: Path
) -> None:
    """A gateway whose allowed headers miss the app's X-Client-Version refuses its preflights in
    maintenance: the browser reports no status at all, and the status feed tells the kit why."""
    from playwright.sync_api import expect

    app_port = free_port()
    origin = f"http://localhost:{app_port}"
    narrow_headers = "accept,authorization,content-type,user-agent,x-csrftoken,x-requested-with"
    gateway = Gateway(
        shop.log_dir,
        shop.gateway.env["GATEWAY_UPSTREAM_URL"],
        {**CORS_ENV, "GATEWAY_CORS_ALLOWED_ORIGINS": origin, "GATEWAY_CORS_ALLOW_HEADERS": narrow_headers},
        name="gateway-angular-narrow-cors",
    )
    site = shop.log_dir / "site-narrow-cors"
    shutil.copytree(built_app, site)
    (site / "config.json").write_text(json.dumps({"apiBaseUrl": gateway.url, **APP_TIMING}))
    static = serve_static(site, app_port)
    try:
        gateway.turn_on(message="Upgrading.")
        page.goto(f"{origin}/")
        expect(page.get_by_test_id("maintenance-screen")).to_be_visible(timeout=SHOWN_WITHIN_MS)
        expect(page.get_by_test_id("maintenance-message")).to_have_text("Upgrading.")
        page.wait_for_timeout(1000)
        expect(page.get_by_test_id("server-problem")).to_have_count(0)
    finally:
        static.shutdown()
        gateway.stop()


def test_django_down_shows_a_problem_on_our_side_not_maintenance(page: Any, shop: ShopStack, gateway_open: Gateway) -> None:
    from playwright.sync_api import expect

    shop.django.stop()
    try:
        answer = httpx.get(f"{shop.api_url}/api/products", headers={"origin": shop.origin}, timeout=5)
        assert answer.status_code == 502 and answer.json()["error"] == "upstream_unavailable"

        navigations = open_app(page, shop)
        problem = page.get_by_test_id("server-problem")
        expect(problem).to_be_visible(timeout=SHOWN_WITHIN_MS)
        expect(problem).to_contain_text("something went wrong on our side")
        expect(problem).to_contain_text("not planned maintenance")
        expect(page.get_by_test_id("maintenance-screen")).to_have_count(0)
        expect(page.get_by_test_id("app-error")).to_have_count(0)
        screenshot(page, shop, "django-down")
    finally:
        shop.restart_django()

    page.get_by_role("button", name="Try again").click()
    expect_catalogue(page)
    expect(page.get_by_test_id("server-problem")).to_have_count(0)
    assert_not_reloaded(page, navigations)
