"""Counters for Prometheus, kept as plain attributes so the hot path pays an increment.

Rendered in the text exposition format at ``/_gateway/metrics``. Each worker
process counts its own requests (as any multi-process server without shared
memory does); scrape every worker, or run one worker per task as ECS does.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import Protocol

# Upstream time to the response head, in seconds: sub-millisecond on loopback up to timeouts.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OUTCOMES = ("proxied", "maintenance", "bypassed", "preflight", "upstream_error", "overloaded")


class Metrics:
    def __init__(self) -> None:
        self.proxied = 0
        self.maintenance = 0
        self.bypassed = 0
        self.preflight = 0
        self.upstream_error = 0
        self.overloaded = 0
        self.upstream_errors_by_status: dict[int, int] = {502: 0, 504: 0}
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.started = time.time()
        self.websockets = WebSocketMetrics()

    def observe_upstream(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def upstream_failed(self, status: int) -> None:
        self.upstream_error += 1
        self.upstream_errors_by_status[status] = self.upstream_errors_by_status.get(status, 0) + 1


class StoreCounts(Protocol):
    """What the refresher counts of its store (``refresher.StateHolder`` is one)."""

    @property
    def reads(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def confirming_reads(self) -> int: ...
    @property
    def went_back(self) -> int: ...


def render(metrics: Metrics, gauges: Callable[[], dict[str, float | None]], store: StoreCounts) -> str:
    lines = [
        "# HELP gateway_requests_total Requests by what the gateway did with them.",
        "# TYPE gateway_requests_total counter",
    ]
    for outcome in OUTCOMES:
        lines.append(f'gateway_requests_total{{outcome="{outcome}"}} {getattr(metrics, outcome)}')
    lines += [
        "# HELP gateway_upstream_errors_total Answers the gateway gave for the upstream, by status.",
        "# TYPE gateway_upstream_errors_total counter",
    ]
    for status, count in sorted(metrics.upstream_errors_by_status.items()):
        lines.append(f'gateway_upstream_errors_total{{status="{status}"}} {count}')
    lines += [
        "# HELP gateway_upstream_response_seconds Time from sending a request upstream to its response head.",
        "# TYPE gateway_upstream_response_seconds histogram",
    ]
    cumulative = 0
    for bound, count in zip(LATENCY_BUCKETS, metrics.latency_counts):
        cumulative += count
        lines.append(f'gateway_upstream_response_seconds_bucket{{le="{bound:g}"}} {cumulative}')
    cumulative += metrics.latency_counts[-1]
    lines.append(f'gateway_upstream_response_seconds_bucket{{le="+Inf"}} {cumulative}')
    lines.append(f"gateway_upstream_response_seconds_sum {metrics.latency_sum:.6f}")
    lines.append(f"gateway_upstream_response_seconds_count {cumulative}")
    lines += [
        "# HELP gateway_store_reads_total Reads of the store since start (flat under load: one per interval).",
        "# TYPE gateway_store_reads_total counter",
        f"gateway_store_reads_total {store.reads}",
        "# HELP gateway_store_errors_total Failed reads of the store since start.",
        "# TYPE gateway_store_errors_total counter",
        f"gateway_store_errors_total {store.errors}",
        "# HELP gateway_store_confirming_reads_total Strongly consistent reads made to confirm a read that was not newer than the state held.",
        "# TYPE gateway_store_confirming_reads_total counter",
        f"gateway_store_confirming_reads_total {store.confirming_reads}",
        "# HELP gateway_store_went_back_total Times the store was confirmed to hold a lower version than this process (a deleted item or file, a restored backup), which it then followed.",
        "# TYPE gateway_store_went_back_total counter",
        f"gateway_store_went_back_total {store.went_back}",
    ]
    for name, (kind, help_text) in GAUGES.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    values = {**gauges(), "gateway_start_time_seconds": metrics.started}
    for name in GAUGES:
        value = values.get(name)
        lines.append(f"{name} {value:.17g}" if value is not None else f"{name} NaN")
    lines += websocket_lines(metrics.websockets)
    return "\n".join(lines) + "\n"


GAUGES = {
    "gateway_maintenance_active": ("gauge", "1 while maintenance applies to requests, else 0."),
    "gateway_maintenance_read_only": ("gauge", "1 while the active maintenance is read-only."),
    "gateway_maintenance_upcoming": ("gauge", "1 while a scheduled window has not started yet."),
    "gateway_state_version": ("gauge", "Version of the state in force."),
    "gateway_state_age_seconds": ("gauge", "Seconds since the last good read of the store (NaN: never read)."),
    "gateway_store_stale": ("gauge", "1 while the last read of the store failed."),
    "gateway_override_active": ("gauge", "1 while an operator's override decides maintenance instead of the stored state."),
    "gateway_override_seconds_left": ("gauge", "Seconds until the override reaches its TTL (NaN: none in force)."),
    "gateway_maintenance_window_capped": ("gauge", "1 while the served window ends at GATEWAY_MAX_WINDOW (the stored one has no end)."),
    "gateway_in_flight_requests": ("gauge", "Requests being handled now."),
    "gateway_upstream_connections_open": ("gauge", "Open connections to the upstream (idle and busy)."),
    "gateway_upstream_connections_idle": ("gauge", "Idle connections kept for reuse."),
    "gateway_start_time_seconds": ("gauge", "When this process started (Unix time)."),
}


class WebSocketMetrics:
    """WebSockets relayed by this process: open now, traffic each way, how they ended."""

    def __init__(self) -> None:
        self.open = 0
        self.messages = {"client_to_upstream": 0, "upstream_to_client": 0}
        self.bytes = {"client_to_upstream": 0, "upstream_to_client": 0}
        # The close code the client was sent (or, when the client closed first, the one it sent),
        # as a label: the codes RFC 6455 defines by number, any other under "other". A client may
        # close with any of 4,000 application codes, and each label value is a series to keep.
        self.closes_by_code: dict[str, int] = {}
        self.refused = {"maintenance": 0, "overloaded": 0, "client_limit": 0, "upstream": 0, "bad_request": 0}

    def closed(self, code: int) -> None:
        label = _CLOSE_CODE_LABELS.get(code, "other")
        self.closes_by_code[label] = self.closes_by_code.get(label, 0) + 1


# RFC 6455 7.4.1 and the IANA registry: 1000-1015, of which 1004 is reserved.
_CLOSE_CODE_LABELS = {code: str(code) for code in range(1000, 1016) if code != 1004}


def websocket_lines(websockets: WebSocketMetrics) -> list[str]:
    lines = [
        "# HELP gateway_websockets_open WebSockets being relayed now.",
        "# TYPE gateway_websockets_open gauge",
        f"gateway_websockets_open {websockets.open}",
        "# HELP gateway_websocket_messages_total WebSocket messages relayed, by direction.",
        "# TYPE gateway_websocket_messages_total counter",
    ]
    lines += [f'gateway_websocket_messages_total{{direction="{d}"}} {n}' for d, n in websockets.messages.items()]
    lines += [
        "# HELP gateway_websocket_bytes_total WebSocket payload bytes relayed, by direction.",
        "# TYPE gateway_websocket_bytes_total counter",
    ]
    lines += [f'gateway_websocket_bytes_total{{direction="{d}"}} {n}' for d, n in websockets.bytes.items()]
    lines += [
        "# HELP gateway_websocket_closes_total Relayed WebSockets that ended, by close code (other: a code RFC 6455 does not define).",
        "# TYPE gateway_websocket_closes_total counter",
    ]
    lines += [f'gateway_websocket_closes_total{{code="{c}"}} {n}' for c, n in sorted(websockets.closes_by_code.items())]
    lines += [
        "# HELP gateway_websockets_refused_total WebSocket handshakes the gateway answered itself, by why.",
        "# TYPE gateway_websockets_refused_total counter",
    ]
    lines += [f'gateway_websockets_refused_total{{reason="{r}"}} {n}' for r, n in websockets.refused.items()]
    return lines
