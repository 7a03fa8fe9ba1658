"""Generated requests against the admin API: thousands of bodies and headers, never a 500.

In-process (the gateway's ASGI app with a memory store, driven by Starlette's
test client), so hypothesis can try many cases quickly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.admin_changes import FIELDS
from gateway.app import Gateway
from gateway.settings import load_settings
from gateway.stores.memory import MemoryStore

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
}
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
