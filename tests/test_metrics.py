"""/_gateway/metrics, read with Prometheus' own text parser while traffic moves the counters."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import FRONT_ORIGIN
from tests.support import Gateway


def scrape(gateway: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{gateway.url}/_gateway/metrics", headers=gateway.admin_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_total(samples, outcome: str) -> float:
    return samples[("gateway_requests_total", (("outcome", outcome),))]


def test_counters_follow_the_traffic(raw_gateway: Gateway) -> None:
    before = scrape(raw_gateway)
    with raw_gateway.client() as client:
        for _ in range(7):
            assert client.get("/echo").status_code == 200
        raw_gateway.turn_on()
        for _ in range(3):
            assert client.get("/echo").status_code == 503
        preflight = client.options("/echo", headers={"Origin": FRONT_ORIGIN, "Access-Control-Request-Method": "PUT"})
        assert preflight.status_code == 204
        assert client.post("/webhooks/x", content=b"{}").status_code == 200  # a bypass path
        during = scrape(raw_gateway)
        raw_gateway.turn_off()
        assert client.get("/slow", params={"delay": "3"}).status_code == 504
    after = scrape(raw_gateway)

    assert requests_total(after, "proxied") - requests_total(before, "proxied") == 8
    assert requests_total(after, "maintenance") - requests_total(before, "maintenance") == 3
    assert requests_total(after, "preflight") - requests_total(before, "preflight") == 1
    assert requests_total(after, "bypassed") - requests_total(before, "bypassed") == 1
    assert requests_total(after, "upstream_error") - requests_total(before, "upstream_error") == 1
    assert after[("gateway_upstream_errors_total", (("status", "504"),))] - before.get(
        ("gateway_upstream_errors_total", (("status", "504"),)), 0
    ) == 1
    assert during[("gateway_maintenance_active", ())] == 1
    assert after[("gateway_maintenance_active", ())] == 0
    assert after[("gateway_state_version", ())] == during[("gateway_state_version", ())] + 1
    assert after[("gateway_store_stale", ())] == 0
    assert 0 <= after[("gateway_state_age_seconds", ())] < 2
    assert after[("gateway_store_reads_total", ())] > before[("gateway_store_reads_total", ())]
    count = after[("gateway_upstream_response_seconds_count", ())] - before[("gateway_upstream_response_seconds_count", ())]
    assert count == 8  # the 504 never got a response head
    assert after[("gateway_upstream_response_seconds_bucket", (("le", "+Inf"),))] == after[("gateway_upstream_response_seconds_count", ())]
