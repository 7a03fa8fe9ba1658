"""The Angular maintenance kit (the maintenance-gateway-angular package) in headless Chromium,
against the real stack.

Two apps built on the packed library (scripts/build-angular.sh) are served from origins of their
own, and every call they make crosses to nginx -> gateway -> the example Django app:
- the example shop (examples/angular: Angular 21, standalone, zoneless, the functional
  interceptor; credentials and a custom header, so each call is preflighted). Each state a user
  can meet is checked on screen and saved as a screenshot: normal data, the maintenance screen
  with its countdown, a scheduled window (banner, screen, recovery, without a reload), read-only,
  partial maintenance of a labelled checkout, staff let through by the bypass cookie, dates in
  the browser's locale, and Django down;
- the minimal app (examples/angular/kit/projects/minimal: Angular 20.0.0, the oldest the
  package supports, an NgModule with zone.js and the class interceptor, one text replaced), the
  README's "drop it into your app" steps: the overlay in maintenance, the page when not.
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
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.browser import serve_static
from tests.support import CORS_ENV, ROOT, Gateway, ServerProcess, free_port, start_django, start_nginx

pytestmark = pytest.mark.browser

ANGULAR_DIR = ROOT / "examples" / "angular"
BUILT_APP = ANGULAR_DIR / "dist" / "shop" / "browser"
BUILT_MINIMAL = ANGULAR_DIR / "kit" / "dist" / "minimal" / "browser"
README_SCREENSHOT = ROOT / "docs" / "angular-maintenance.png"
BYPASS_SECRET = "angular-bypass-secret-0123456789"

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
    minimal_url: str
    allowed_origins: str

    def restart_django(self) -> None:
        self.django, _ = start_django(self.log_dir, self.allowed_origins, port=self.django_port, name="django-angular-restarted")


@pytest.fixture(scope="module")
def built_app() -> Path:
    """`make test` has built it already; run on its own, the script builds it (or finds it up to date)."""
    subprocess.run([str(ROOT / "scripts" / "build-angular.sh")], check=True, timeout=600)
    assert (BUILT_APP / "index.html").exists() and (BUILT_MINIMAL / "index.html").exists()
    return BUILT_APP


def deploy(built: Path, site: Path, port: int, config: dict[str, Any]) -> Any:
    """A build as a team deploys it, with this environment's config.json beside it, served."""
    shutil.copytree(built, site)
    (site / "config.json").write_text(json.dumps(config))
    return serve_static(site, port)


@pytest.fixture(scope="module")
def shop(built_app: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    log_dir = tmp_path_factory.mktemp("angular")
    app_port, minimal_port = free_port(), free_port()
    origin, minimal_origin = f"http://localhost:{app_port}", f"http://localhost:{minimal_port}"
    origins = f"{origin},{minimal_origin}"
    django_port = free_port()
    django, django_url = start_django(log_dir, origins, port=django_port, name="django-angular")
    gateway = Gateway(
        log_dir,
        django_url,
        {
            **CORS_ENV,
            "GATEWAY_CORS_ALLOWED_ORIGINS": origins,
            "GATEWAY_CORS_EXPOSE_HEADERS": "ETag,Retry-After,X-Maintenance-Mode",
            "GATEWAY_RETRY_AFTER": "30",
            "GATEWAY_BYPASS_SECRET": BYPASS_SECRET,
        },
        name="gateway-angular",
    )
    nginx, nginx_url = start_nginx(log_dir, gateway.port, name="nginx-angular")
    # The API by the apps' host name: the same site as the apps (ports do not count), as
    # app.example.com and api.example.com are, so the bypass cookie (SameSite=Lax) goes with
    # the apps' credentialed calls.
    api_url = nginx_url.replace("127.0.0.1", "localhost")

    static = deploy(built_app, log_dir / "site", app_port, {"apiBaseUrl": api_url, **APP_TIMING})
    # The minimal app keeps the kit's default timing (60 s between polls while all is well).
    minimal = deploy(BUILT_MINIMAL, log_dir / "site-minimal", minimal_port, {"apiBaseUrl": api_url})
    screenshots = log_dir / "screenshots"
    screenshots.mkdir()
    stack = ShopStack(log_dir, f"{origin}/", origin, api_url, gateway, django, django_port, screenshots, f"{minimal_origin}/", origins)
    try:
        yield stack
    finally:
        static.shutdown()
        minimal.shutdown()
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
    """The countdown in "Back in 1:23, on Monday, December 7 at 4:31 PM UTC." (or "Checking again in 0:29.")."""
    text = page.get_by_test_id("maintenance-countdown").inner_text()
    match = re.search(r"in (\d+(?::\d\d)+)", text)
    assert match, text
    *hours, minutes, seconds = (int(part) for part in match.group(1).split(":"))
    return (hours[0] if hours else 0) * 3600 + minutes * 60 + seconds


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
    for state in ("maintenance-screen", "maintenance-upcoming", "maintenance-read-only", "maintenance-bypassed", "server-problem", "app-error"):
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

    gateway_open.turn_on(scope=["/api/checkout/"], label="Checkout and payment", message="Checkout is being upgraded.", ends_at=time.time() + 120)
    navigations = open_app(page, shop)
    expect_catalogue(page)
    notice = page.get_by_test_id("maintenance-scope")
    expect(notice).to_be_visible(timeout=SHOWN_WITHIN_MS)
    # Named as the operator labelled it (on --label): shoppers never see the API's paths.
    expect(notice).to_contain_text("Checkout and payment is down for maintenance.")
    expect(page.get_by_test_id("maintenance-scope-message")).to_have_text("Checkout is being upgraded.")
    expect(page.get_by_test_id("maintenance-scope-back")).to_contain_text("Back in")
    assert "/api/" not in page.locator("body").inner_text()
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


def test_an_upcoming_read_only_window_of_a_labelled_part_says_writes_will_be_refused(
    page: Any, shop: ShopStack, gateway_open: Gateway
) -> None:
    from playwright.sync_api import expect

    now = time.time()
    gateway_open.turn_on(mode="read-only", scope=["/api/checkout/"], label="Checkout", starts_at=now + 3600, ends_at=now + 5400)
    open_app(page, shop)
    banner = page.get_by_test_id("maintenance-upcoming")
    expect(banner).to_be_visible(timeout=SHOWN_WITHIN_MS)
    expect(banner).to_contain_text("Scheduled maintenance of Checkout starts in")
    # What really happens in read-only mode: writes are refused, nothing is kept for later.
    expect(banner).to_contain_text("changes there will be refused while it lasts: nothing you send then is saved")
    assert "wait" not in banner.inner_text() and "/api/" not in page.locator("body").inner_text()
    screenshot(page, shop, "upcoming-read-only")


@pytest.mark.parametrize(
    ("locale", "zone", "weekdays"),
    [
        ("en-US", "America/New_York", ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")),
        ("de-DE", "Europe/Berlin", ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")),
    ],
)
def test_times_are_shown_with_the_day_in_the_browsers_locale_and_zone(
    browser: Any, shop: ShopStack, gateway_open: Gateway, locale: str, zone: str, weekdays: tuple[str, ...]
) -> None:
    from playwright.sync_api import expect

    # Two days and a bit ahead: "back at 10:00" alone would not say which day.
    ends_at = time.time() + 2 * 86400 + 600
    gateway_open.turn_on(message="Long upgrade.", ends_at=ends_at)
    context = browser.new_context(viewport=VIEWPORT, locale=locale, timezone_id=zone)
    try:
        page = context.new_page()
        open_app(page, shop)
        countdown = page.get_by_test_id("maintenance-countdown")
        expect(countdown).to_be_visible(timeout=SHOWN_WITHIN_MS)
        end = datetime.fromtimestamp(ends_at, ZoneInfo(zone))
        expect(countdown).to_contain_text(weekdays[end.weekday()])
        expect(countdown).to_contain_text(str(end.day))
        # The kit's own words stay English unless the app replaces them.
        expect(page.get_by_test_id("maintenance-screen")).to_contain_text("We'll be back soon")
        screenshot(page, shop, f"dates-{locale}")
    finally:
        context.close()


def staff_login(page: Any, shop: ShopStack) -> None:
    """What a member of the team does: the gateway's bypass form, on the API's origin."""
    page.goto(f"{shop.api_url}/_gateway/bypass?next=/_gateway/status")
    page.locator("input[name=secret]").fill(BYPASS_SECRET)
    page.get_by_role("button", name="Let me in").click()
    page.wait_for_url("**/_gateway/status")
    # The browser now holds the HttpOnly cookie: the feed, fetched with it, says so.
    assert json.loads(page.locator("body").inner_text())["bypassed"] is True


def test_staff_with_the_bypass_cookie_see_the_site_not_the_overlay(browser: Any, shop: ShopStack, gateway_open: Gateway) -> None:
    from playwright.sync_api import expect

    gateway_open.turn_on(message="Upgrading the shop.", ends_at=time.time() + 300)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        navigations = open_app(page, shop)
        screen = page.get_by_test_id("maintenance-screen")
        expect(screen).to_be_visible(timeout=SHOWN_WITHIN_MS)

        # Signed in from another tab: the open app lets the overlay go at its next poll.
        staff_login(context.new_page(), shop)
        expect(screen).to_have_count(0, timeout=SHOWN_WITHIN_MS)
        expect_catalogue(page)
        note = page.get_by_test_id("maintenance-bypassed")
        expect(note).to_contain_text("closed to visitors")
        # Their writes pass too.
        page.get_by_test_id("add-to-cart").first.click()
        expect(page.get_by_test_id("cart-count")).to_have_text("(cart: 1)")
        expect(page.get_by_test_id("app-error")).to_have_count(0)
        assert_not_reloaded(page, navigations)
        screenshot(page, shop, "bypassed")
    finally:
        context.close()
    # Everyone else still gets the overlay.
    other = browser.new_context(viewport=VIEWPORT)
    try:
        visitor = other.new_page()
        open_app(visitor, shop)
        expect(visitor.get_by_test_id("maintenance-screen")).to_be_visible(timeout=SHOWN_WITHIN_MS)
        expect(visitor.get_by_test_id("maintenance-bypassed")).to_have_count(0)
    finally:
        other.close()


# -- the minimal NgModule app (Angular 20.0.0), on the packed library alone


def test_minimal_app_shows_the_page_when_the_gateway_forwards(page: Any, shop: ShopStack, gateway_open: Gateway) -> None:
    from playwright.sync_api import expect

    page.goto(shop.minimal_url)
    expect(page.get_by_test_id("products")).to_have_text("3 products", timeout=SHOWN_WITHIN_MS)
    expect(page.get_by_test_id("maintenance-screen")).to_have_count(0)
    screenshot(page, shop, "minimal-normal")


def test_minimal_app_shows_the_overlay_in_maintenance_with_its_own_title_then_the_page_again(
    page: Any, shop: ShopStack, gateway_open: Gateway
) -> None:
    from playwright.sync_api import expect

    # The feed blocked: the screen comes from the API's 503, read by the class interceptor.
    page.route("**/_gateway/status", lambda route: route.abort())
    gateway_open.turn_on(message="Minimal maintenance.", ends_at=time.time() + 120)
    page.goto(shop.minimal_url)
    screen = page.get_by_test_id("maintenance-screen")
    expect(screen).to_be_visible(timeout=SHOWN_WITHIN_MS)
    # The one text the app replaced, and the English defaults for the rest.
    expect(screen.locator("h1")).to_have_text("Back soon!")
    expect(page.get_by_test_id("maintenance-message")).to_have_text("Minimal maintenance.")
    expect(screen).to_contain_text("This page comes back by itself")
    expect(page.get_by_test_id("app-error")).to_have_count(0)
    screenshot(page, shop, "minimal-maintenance")

    # The feed back, maintenance off: the kit polls it (5 s, backing off) and the page returns.
    page.unroute("**/_gateway/status")
    gateway_open.turn_off()
    expect(screen).to_have_count(0, timeout=SHOWN_WITHIN_MS + 5000)
    expect(page.get_by_test_id("products")).to_have_text("3 products", timeout=SHOWN_WITHIN_MS)
