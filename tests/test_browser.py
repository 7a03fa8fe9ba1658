"""What a browser app on another origin sees: headless Chromium driven by Playwright.

A page served from the front end's origin calls the gateway (another origin) with
``credentials: "include"`` and a custom header, so every call is preceded by a
CORS preflight, exactly as an Angular app's calls would be.
"""

from __future__ import annotations

import pytest

from tests.browser import call_from
from tests.support import Gateway

pytestmark = pytest.mark.browser

def test_front_end_reads_the_maintenance_answer(browser, front_pages, django_gateway: Gateway) -> None:
    allowed_page, other_page = front_pages
    api = f"{django_gateway.url}/api/hello"

    normal = call_from(browser, allowed_page, api)
    assert normal == {
        "ok": True,
        "status": 200,
        "body": {"message": "hello from Django", "method": "GET"},
        "retryAfter": None,
        "mode": None,
    }

    django_gateway.turn_on(message="Back at 10:00 UTC")
    during = call_from(browser, allowed_page, api)
    assert during["ok"] is True, during
    assert during["status"] == 503
    assert during["body"]["error"] == "maintenance"
    assert during["body"]["message"] == "Back at 10:00 UTC"
    assert during["retryAfter"] == "300"
    assert during["mode"] == "full"

    refused = call_from(browser, other_page, api)
    assert refused["ok"] is False
    assert "Failed to fetch" in refused["error"]

    django_gateway.turn_off()
    after = call_from(browser, allowed_page, api)
    assert after["status"] == 200 and after["body"]["message"] == "hello from Django"

    # A disallowed origin cannot read Django's answers either: the gateway adds nothing.
    refused_normal = call_from(browser, other_page, api)
    assert refused_normal["ok"] is False
