"""Generated requests against the admin API: thousands of bodies and headers, never a 500.

In-process first (the gateway's ASGI app with a memory store, driven by Starlette's
test client), so hypothesis can try many cases quickly; then over real HTTP against
a real gateway process, where every accepted write must leave health and the 503
rendering.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_from_bytes

import httpx

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.admin.changes import CHANGE_FIELDS
from gateway.admin.updates import UPDATE_FIELDS
from gateway.app import Gateway
from gateway.settings import load_settings
from gateway.stores.memory import MemoryStore
from tests.support import Gateway as SupportGateway

TOKEN = "property-token-0123456789"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
times = st.one_of(
    st.just("2099-01-01T00:00:00Z"),
    st.just("2001-01-01T00:00:00Z"),
    st.datetimes().map(lambda d: d.isoformat()),
    st.text(max_size=30),
)
field_values = {
    "enabled": st.booleans() | json_values,
    "mode": st.sampled_from(["full", "read-only"]) | json_values,
    "message": st.text(max_size=2100) | json_values,
    "starts_at": times | json_values,
    "ends_at": times | json_values,
    "duration_seconds": st.floats(allow_nan=True, allow_infinity=True) | st.integers() | json_values,
    "reason": st.text(max_size=600) | json_values,
    "scope": st.lists(st.sampled_from(["/api/checkout/", "api/payments", "/a/../b", "/x\x00", "/", ""]) | st.text(max_size=20), max_size=3) | json_values,
    "label": st.text(max_size=120) | json_values,
    "replace": st.booleans() | json_values,
    "by": st.text(max_size=120) | json_values,
    # PATCH's ways to move the end.
    "extend_seconds": st.floats(allow_nan=True, allow_infinity=True) | st.integers() | json_values,
    "extend_until": times | json_values,
}
# Every field PUT or PATCH takes (PATCH refuses enabled and replace, PUT the extend fields).
FIELDS = tuple(dict.fromkeys((*CHANGE_FIELDS, *UPDATE_FIELDS)))
bodies = st.one_of(
    st.fixed_dictionaries({}, optional={name: field_values[name] for name in FIELDS}),
    st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    json_values,
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = load_settings({"GATEWAY_ADMIN_TOKENS": f"prop:{TOKEN}", "GATEWAY_ADMIN_FAILURE_LIMIT": "0"})
    with TestClient(Gateway(settings, store=MemoryStore()), raise_server_exceptions=True) as test_client:
        yield test_client


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH"]),
    body=bodies,
    raw=st.booleans(),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]) | header_text,
    authorization=st.sampled_from([f"Bearer {TOKEN}", f"bearer {TOKEN}", "Bearer", ""]) | header_text,
    if_match=st.none() | st.sampled_from(['"0"', "*", 'W/"1"']) | header_text,
    path=st.sampled_from(["/maintenance", "/maintenance/history", "/bypass", "/health", "/ready", "/nope"]),
)
def test_no_request_makes_a_500(client: TestClient, method, body, raw, content_type, authorization, if_match, path) -> None:
    headers = {"authorization": authorization, "content-type": content_type}
    if if_match is not None:
        headers["if-match"] = if_match
    content = json.dumps(body).encode() if not raw else repr(body).encode()
    response = client.request(method, f"/_gateway{path}", content=content, headers=headers)
    assert response.status_code < 500 or (path == "/ready" and response.status_code == 503), response.text
    if path in ("/maintenance", "/maintenance/history") and response.status_code >= 400:
        payload = response.json()
        assert isinstance(payload["error"], str) and isinstance(payload["message"], str)


# Over real HTTP against a real gateway process: any Unicode, any JSON number, any date.
any_text = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=()) | st.characters(categories=["Cs", "Cc", "Cf"]), max_size=60),
    st.sampled_from(["\ud800", "\udfff", "\x00", "\u202e\u200f", "a\nb", "\ufeff", "\U0010ffff", "x" * 100_000, "\ud83d\ude00" * 3]),
)
offsets = st.one_of(
    st.just("Z"),
    st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59)),
)
any_date = st.one_of(
    st.builds(
        lambda year, month, day, h, m, s, offset: f"{year:04d}-{month:02d}-{day:02d}T{h:02d}:{m:02d}:{s:02d}{offset}",
        st.sampled_from([1, 2, 1970, 2026, 2099, 9998, 9999]),
        st.integers(1, 12),
        st.integers(1, 31),
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 59),
        offsets,
    ),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z"]),
    any_text,
)
# Raw JSON number text: json.dumps cannot write 1e4000 or a 4000-digit integer the way a client can.
any_number = st.one_of(
    st.integers().map(str),
    st.integers(min_value=10**300, max_value=10**320).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e308", "1e4000", "-1e4000", "-0", "0", "1" + "0" * 4000, "-5", "31622400", "31622401", "0.0001"]),
)


def raw_json(value: object) -> str:
    """JSON text for a value; lone surrogates become \\udXXX escapes, as a client could send them."""
    return json.dumps(value, ensure_ascii=True)


def text_or_other(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(values.map(raw_json), any_number, st.sampled_from(["null", "true", "[]", "{}"]))


# Each field mixes values a write accepts (so the write lands and the answers must render it)
# with anything at all.
showable_text = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), max_size=200)
future = st.sampled_from(["2099-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999+00:00", "9999-12-31T23:59:59+14:00"])
past = st.sampled_from(["0001-01-01T00:00:00Z", "0001-01-01T23:59:59-14:00", "1970-01-01T00:00:00+00:00", "2001-02-03T04:05:06.789-07:30"])
put_fields = {
    "enabled": st.sampled_from(["true", "true", "false"]) | text_or_other(any_text),
    "mode": st.sampled_from(['"full"', '"read-only"']) | text_or_other(any_text),
    "message": showable_text.map(raw_json) | text_or_other(any_text),
    "reason": showable_text.map(raw_json) | text_or_other(any_text),
    "starts_at": (past | future).map(raw_json) | text_or_other(any_date),
    "ends_at": future.map(raw_json) | text_or_other(any_date),
    "duration_seconds": st.integers(1, 366 * 86400).map(str) | any_number | text_or_other(any_text),
    "by": showable_text.map(raw_json) | text_or_other(any_text),
    "label": showable_text.map(lambda text: raw_json(text[:100])) | text_or_other(any_text),
}
# Bodies a write accepts, any showable Unicode included: the answers must then render them.
valid_fields = {
    "enabled": st.just("true"),
    "mode": st.sampled_from(['"full"', '"read-only"']),
    "message": (showable_text | st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=1900, max_size=2000)).map(raw_json),
    "reason": showable_text.map(raw_json),
    "starts_at": past.map(raw_json),
    "ends_at": future.map(raw_json),
}
BYPASS_SECRET = "property-bypass-secret-0123456789"


@pytest.fixture(scope="module")
def live_gateway(log_dir: Path, raw_upstream: str) -> Iterator[SupportGateway]:
    gateway = SupportGateway(
        log_dir,
        raw_upstream,
        {
            "GATEWAY_ADMIN_TOKENS": f"prop:{TOKEN}",
            "GATEWAY_ADMIN_FAILURE_LIMIT": "0",
            "GATEWAY_BYPASS_SECRET": BYPASS_SECRET,
            "GATEWAY_REFRESH_INTERVAL": "30",
        },
        name="gateway-properties",
    )
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def live(live_gateway: SupportGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_gateway.url, timeout=10) as http:
        yield http


def assert_renders(http: httpx.Client) -> None:
    health = http.get("/_gateway/health")
    assert health.status_code == 200, health.text
    detailed = http.get("/_gateway/health", headers={"authorization": f"Bearer {TOKEN}"})
    assert detailed.status_code == 200, detailed.text
    active = detailed.json()["maintenance"]
    for accept in ("application/json", "text/html", "text/plain"):
        answer = http.post("/echo", headers={"accept": accept})  # not a safe method: read-only answers it too
        assert answer.status_code == (503 if active else 200), (accept, answer.text)
        answer.content.decode("utf-8")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.fixed_dictionaries({}, optional=put_fields) | st.fixed_dictionaries({}, optional=valid_fields), if_match=st.one_of(st.none(), st.none(), st.none(), st.sampled_from(["*", '"0"', "W/\"1\"", "\u00b2"])))
def test_any_put_over_http_is_never_a_500_and_leaves_everything_rendering(
    live: httpx.Client, live_gateway: SupportGateway, fields: dict[str, str], if_match: str | None
) -> None:
    body = "{" + ",".join(f"{raw_json(name)}:{value}" for name, value in fields.items()) + "}"
    headers: dict[str, str | bytes] = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    if if_match is not None:
        headers["if-match"] = if_match.encode("latin-1")
    response = live.put("/_gateway/maintenance", content=body.encode("utf-8"), headers=headers)
    event(f"PUT answered {response.status_code}")
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 400, 412, 413), response.text
    if response.status_code == 200:
        assert_renders(live)
    elif response.status_code == 400:
        assert response.json()["field"] in (*FIELDS, None) or response.json()["error"] == "invalid_json"


any_bytes = st.binary(max_size=80) | st.sampled_from([b"\xe2\x82\xac", b"\xed\xa0\x80", b"\xff\xfe", b"\x00", b"%"])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["form", "json", "header"]),
    secret=any_bytes,
    text=text_or_other(any_text),
    next_path=any_bytes,
)
def test_any_bypass_attempt_over_http_is_never_a_500(
    live: httpx.Client, kind: str, secret: bytes, text: str, next_path: bytes
) -> None:
    if kind == "form":
        content = b"secret=" + quote_from_bytes(secret).encode() + b"&next=" + quote_from_bytes(next_path).encode()
        response = live.post("/_gateway/bypass", content=content, headers={"content-type": "application/x-www-form-urlencoded"})
    elif kind == "json":
        response = live.post("/_gateway/bypass", content=f'{{"secret":{text}}}'.encode(), headers={"content-type": "application/json"})
    else:
        # Any byte the HTTP servers accept in a header value (RFC 9110 5.5: no controls but tab).
        value = bytes(b for b in secret if b == 0x09 or 0x20 <= b != 0x7F).strip() or b"x"
        response = live.post("/_gateway/bypass", headers={"x-maintenance-bypass": value})
    assert response.status_code in (400, 403, 413, 415), (response.status_code, response.text)
    assert response.json()["error"]
