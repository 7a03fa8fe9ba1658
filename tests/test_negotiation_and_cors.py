"""Body negotiation and CORS decisions (unit), and CORS parity with django-cors-headers (real Django)."""

from __future__ import annotations

import httpx
import pytest

from gateway.cors import CorsPolicy
from gateway.negotiation import HTML, JSON, TEXT, Negotiator, choose
from gateway.settings import load_settings
from tests.support import FRONT_ORIGIN, OTHER_ORIGIN, Gateway


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/html", HTML),
        ("text/*", HTML),
        ("text/plain", TEXT),
        ("image/png", JSON),
        ("text/html;q=0, */*;q=0.1", JSON),
        ("TEXT/HTML", HTML),
        ("garbage;;;,,", JSON),
        ("text/html;q=abc, text/plain", TEXT),
    ],
)
def test_choose(accept: str, expected: str) -> None:
    assert choose(accept.encode()) == expected


def test_negotiator_cache_is_bounded() -> None:
    negotiator = Negotiator()
    for number in range(2000):
        negotiator.variant(f"text/x{number}".encode(), False)
    assert len(negotiator._chosen) <= 1024


def policy(**env: str) -> CorsPolicy:
    return CorsPolicy(load_settings({f"GATEWAY_{k.upper()}": v for k, v in env.items()}))


def test_origins_match_on_scheme_and_host_only() -> None:
    cors = policy(cors_allowed_origins="https://app.example,null", cors_allowed_origin_regexes=r"^https://\w+\.shop\.example$")
    assert cors.allow_origin_value(b"https://app.example") == b"https://app.example"
    assert cors.allow_origin_value(b"http://app.example") is None
    assert cors.allow_origin_value(b"https://app.example:8443") is None
    assert cors.allow_origin_value(b"https://app.example.evil") is None
    assert cors.allow_origin_value(b"https://de.shop.example") == b"https://de.shop.example"
    assert cors.allow_origin_value(b"https://de.shop.example.evil") is None
    assert cors.allow_origin_value(b"null") == b"null"
    assert cors.allow_origin_value(b"http://[::1") is None  # unparseable


def test_allow_all_with_credentials_echoes_the_origin() -> None:
    cors = policy(cors_allow_all_origins="true", cors_allow_credentials="true")
    assert cors.allow_origin_value(b"https://x.example") == b"https://x.example"
    assert dict(cors.simple_headers(b"https://x.example"))[b"access-control-allow-credentials"] == b"true"


def test_origin_cache_is_bounded() -> None:
    cors = policy(cors_allow_all_origins="true")
    for number in range(5000):
        cors.allow_origin_value(f"https://{number}.example".encode())
    assert len(cors._decisions) <= 1024


CORS_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in CORS_HEADERS if name in response.headers}


@pytest.mark.parametrize("origin", [FRONT_ORIGIN, OTHER_ORIGIN, FRONT_ORIGIN + ":1", None])
@pytest.mark.parametrize("preflight", [False, True])
def test_the_gateway_answers_cors_as_django_does(django_gateway: Gateway, origin: str | None, preflight: bool) -> None:
    """Same settings on both sides: Django's answer (maintenance off) and the gateway's (on) agree."""
    headers = {"Origin": origin} if origin else {}
    method = "GET"
    if preflight:
        method = "OPTIONS"
        headers["Access-Control-Request-Method"] = "PUT"
        headers["Access-Control-Request-Headers"] = "content-type,x-client-version"
    with django_gateway.client() as client:
        from_django = client.request(method, "/api/hello", headers=headers)
        django_gateway.turn_on()
        from_gateway = client.request(method, "/api/hello", headers=headers)
    assert from_django.status_code == 200
    if preflight and origin == FRONT_ORIGIN:
        assert from_gateway.status_code == 204
    else:
        assert from_gateway.status_code == 503
    assert cors_headers(from_gateway) == cors_headers(from_django)
    assert from_gateway.headers.get_list("access-control-allow-origin") == from_django.headers.get_list(
        "access-control-allow-origin"
    )
    if "access-control-allow-origin" in from_django.headers:
        # Django exposes what its settings list; the gateway exposes at least that.
        django_exposed = {h.strip().lower() for h in from_django.headers["access-control-expose-headers"].split(",")}
        gateway_exposed = {h.strip().lower() for h in from_gateway.headers["access-control-expose-headers"].split(",")}
        assert django_exposed <= gateway_exposed


def test_white_space_after_an_origin_is_not_part_of_it() -> None:
    # White space after a field value is not part of it (RFC 9110 5.5); llhttp passes it on.
    cors = policy(cors_allowed_origins="https://app.example", cors_allow_credentials="true")
    assert cors.allow_origin_value(b"https://app.example \t") == b"https://app.example"
