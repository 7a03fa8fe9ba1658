"""The HTML maintenance page through a real gateway: the end of the window as people read it,
the ISO value kept for scripts, and the placeholders of a custom page."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import httpx

from gateway.maintenance import readable_time
from gateway.state import MAX_TIME, MIN_TIME
from tests.support import Gateway

HTML_ACCEPT = {"Accept": "text/html"}
# A Thursday, far enough ahead for any run of the suite.
END = datetime(2030, 1, 3, 15, 30, tzinfo=timezone.utc).timestamp()


def visible_text(page: str) -> str:
    """What a reader sees: the body's text, without tags or attribute values."""
    body = page.split("<body>", 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", "", body)).strip()


def test_the_page_shows_the_end_as_people_read_it(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(message="Upgrading the database", ends_at=END)
    response = httpx.get(f"{raw_gateway.url}/", headers=HTML_ACCEPT)
    assert response.status_code == 503
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert '<time datetime="2030-01-03T15:30:00Z">Thursday 3 January 2030, 15:30 UTC</time>' in page
    text = visible_text(page)
    assert "Expected back at Thursday 3 January 2030, 15:30 UTC." in text
    assert "2030-01-03T" not in text  # the ISO value is for scripts, in the attribute only


def test_an_end_between_minutes_is_shown_at_the_next_minute(raw_gateway: Gateway) -> None:
    # "Expected back at 15:30" must not be said of a window that lasts until 15:30:20.
    raw_gateway.turn_on(ends_at=END + 20.25)
    page = httpx.get(f"{raw_gateway.url}/", headers=HTML_ACCEPT).text
    assert '<time datetime="2030-01-03T15:30:20.250Z">Thursday 3 January 2030, 15:31 UTC</time>' in page


def test_json_answers_keep_the_iso_end(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(ends_at=END)
    response = httpx.get(f"{raw_gateway.url}/", headers={"Accept": "application/json"})
    assert response.json()["ends_at"] == "2030-01-03T15:30:00Z"


def test_without_an_end_the_page_names_no_time(raw_gateway: Gateway) -> None:
    raw_gateway.turn_on(message="Back soon")
    page = httpx.get(f"{raw_gateway.url}/", headers=HTML_ACCEPT).text
    assert "<time" not in page
    assert "Expected back" not in page
    assert "Back soon" in visible_text(page)


def test_a_custom_page_gets_the_iso_end_the_readable_end_and_the_sentence(
    log_dir: Path, raw_upstream: str, tmp_path: Path
) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body><p data-end='{{ ends_at }}'>{{ends_at_text}}</p><p>{{ ends_at_sentence }}</p></body></html>"
    )
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_MAINTENANCE_PAGE": str(page)}, name="gateway-page-times")
    try:
        gateway.turn_on(ends_at=END)
        with_end = httpx.get(f"{gateway.url}/", headers=HTML_ACCEPT).text
        gateway.turn_on()
        without_end = httpx.get(f"{gateway.url}/", headers=HTML_ACCEPT).text
    finally:
        gateway.stop()
    assert with_end == (
        "<html><body><p data-end='2030-01-03T15:30:00Z'>Thursday 3 January 2030, 15:30 UTC</p>"
        '<p>Expected back at <time datetime="2030-01-03T15:30:00Z">Thursday 3 January 2030, 15:30 UTC</time>.</p>'
        "</body></html>"
    )
    assert without_end == "<html><body><p data-end=''></p><p></p></body></html>"


def test_the_last_instant_a_state_can_hold_is_shown_without_rounding_past_it() -> None:
    # Rounded up to the minute: a page that says "back at 15:30" is not still up at 15:30:20.
    assert readable_time(END - 40) == "Thursday 3 January 2030, 15:30 UTC"
    assert readable_time(END + 1) == "Thursday 3 January 2030, 15:31 UTC"
    assert readable_time(MAX_TIME) == "Friday 31 December 9999, 23:59 UTC"
    assert readable_time(MIN_TIME) == "Monday 1 January 1, 00:00 UTC"
