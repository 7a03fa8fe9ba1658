"""The bundled example Django app under gunicorn, through the gateway."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timezone

from tests.support import FRONT_ORIGIN, Gateway


def test_json_endpoint_with_django_cors(django_gateway: Gateway) -> None:
    with django_gateway.client() as client:
        response = client.get("/api/hello", headers={"Origin": FRONT_ORIGIN})
    assert response.status_code == 200
    assert response.json() == {"message": "hello from Django", "method": "GET"}
    # Django's own CORS headers, once: the gateway adds none to proxied answers.
    assert response.headers.get_list("access-control-allow-origin") == [FRONT_ORIGIN]
    assert response.headers["server"] == "gunicorn"


def test_post_and_upload(django_gateway: Gateway) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    with django_gateway.client() as client:
        echoed = client.post("/api/echo", json={"order": 42})
        uploaded = client.post("/api/upload", content=payload)
    assert echoed.json() == {"received": {"order": 42}}
    assert uploaded.json() == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_streaming_view_arrives_in_pieces(django_gateway: Gateway) -> None:
    times = []
    with django_gateway.client() as client:
        with client.stream("GET", "/api/stream", params={"count": "4", "interval": "0.25"}) as response:
            for chunk in response.iter_raw():
                times.append(time.monotonic())
                assert chunk.startswith(b"data: event")
    assert len(times) >= 3
    assert times[-1] - times[0] > 0.5


def test_several_cookies(django_gateway: Gateway) -> None:
    with django_gateway.client() as client:
        response = client.get("/api/cookies")
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 3
    assert {cookie.split("=", 1)[0] for cookie in cookies} == {"session", "csrftoken", "theme"}


def test_what_django_sees(django_gateway: Gateway) -> None:
    with django_gateway.client() as client:
        info = client.get("/api/request-info?x=%2F&y", headers={"Host": "shop.example"}).json()
    assert info["full_path"] == "/api/request-info?x=%2F&y"
    assert info["headers"]["Host"] == "shop.example"
    assert info["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert info["headers"]["X-Forwarded-Proto"] == "http"


def test_maintenance_round_trip_over_django(django_gateway: Gateway) -> None:
    with django_gateway.client() as client:
        assert client.get("/api/hello").status_code == 200
        django_gateway.turn_on(message="Deploying")
        during = client.get("/api/hello", headers={"Origin": FRONT_ORIGIN})
        django_gateway.turn_off()
        after = client.get("/api/hello")
    assert during.status_code == 503 and during.json()["message"] == "Deploying"
    assert during.headers["access-control-allow-origin"] == FRONT_ORIGIN
    assert after.status_code == 200


def test_django_pages_show_the_maintenance_banner_from_the_gateway_notice(django_gateway: Gateway) -> None:
    forged = {"X-Maintenance-Notice": '{"mode":"read-only","upcoming":false}'}
    with django_gateway.client() as client:
        # A client's own notice never reaches Django: no banner without maintenance.
        plain = client.get("/", headers=forged)
        now = time.time()
        django_gateway.turn_on(mode="read-only", starts_at=now + 3600, ends_at=now + 7200, scope=("/api/checkout/",))
        upcoming = client.get("/")
        django_gateway.turn_on(mode="read-only", ends_at=now + 1800)
        read_only = client.get("/")
        django_gateway.turn_on(scope=("/api/checkout/",))
        partial = client.get("/")
        refused = client.post("/api/checkout/", json={})
    assert plain.status_code == 200 and "maintenance-banner" not in plain.text
    assert "Scheduled read-only maintenance of <code>/api/checkout/</code> from <time datetime=" in upcoming.text
    assert "The site is read-only until <time datetime=" in read_only.text
    assert "Part of the site (<code>/api/checkout/</code>) is down for maintenance." in partial.text
    assert refused.status_code == 503 and refused.json()["scope"] == ["/api/checkout/"]


def test_the_banner_carries_the_operators_message_and_dates_in_the_readers_language(django_gateway: Gateway) -> None:
    """django-maintenance-gateway's middleware and tag in the example app, under gunicorn: the
    notice the gateway builds (with the message) read into request.maintenance."""
    ends = datetime(2099, 11, 26, 23, 0, tzinfo=timezone.utc).timestamp()
    django_gateway.turn_on(mode="read-only", message="Nur lesen bis 23 Uhr <b>heute</b>\nDanke", ends_at=ends)
    with django_gateway.client() as client:
        english = client.get("/")
        german = client.get("/", headers={"Accept-Language": "de"})
    for page in (english, german):
        assert page.status_code == 200
        assert '<p class="maintenance-banner__message">Nur lesen bis 23 Uhr &lt;b&gt;heute&lt;/b&gt;<br>Danke</p>' in page.text
    assert '<time datetime="2099-11-26T23:00:00Z">Nov. 26, 2099, 11 p.m. UTC</time>' in english.text
    assert '<time datetime="2099-11-26T23:00:00Z">26. November 2099 23:00 UTC</time>' in german.text
