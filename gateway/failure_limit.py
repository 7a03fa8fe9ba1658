"""A limit on failed guesses per client, for every secret the gateway checks: admin tokens, the
bypass form, and the bypass header and cookie on requests and WebSocket handshakes.

It is on the request path (a request presenting a bypass secret is checked against it), so it
lives beside the hot path, not in the admin package.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import time

# Enough for a busy site's guessers; beyond it the client seen least recently is forgotten.
_MAX_TRACKED_CLIENTS = 10_000


def client_group(address: str) -> str:
    """Whom the failure limit counts as one client: an IPv4 address, or an IPv6 /64.

    One IPv6 host usually holds a whole /64 (SLAAC, privacy addresses, what a cloud gives an
    instance), so counting each address apart would give it 2^64 budgets. An IPv4-mapped
    address is its IPv4 address; anything that is not an address is counted as it is.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 4:
        return address
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    return f"{ipaddress.IPv6Address(int(ip) >> 64 << 64)}/64"


class FailureLimiter:
    """At most ``limit`` failed attempts per client (see ``client_group``) in any ``window`` seconds.

    One limiter serves every way of presenting a secret (admin tokens, the bypass form, the
    bypass header and cookie on requests and WebSocket handshakes): a client that runs out
    of guesses in one runs out in all.
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try again; 0 when it may try now."""
        if self.limit <= 0:
            return 0
        failures = self._failures.get(client_group(client))
        if failures is None:
            return 0
        now = time.monotonic() if now is None else now
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window - now))

    def record_failure(self, client: str, now: float | None = None) -> None:
        if self.limit <= 0:
            return
        now = time.monotonic() if now is None else now
        group = client_group(client)
        failures = self._failures.pop(group, None) or collections.deque(maxlen=self.limit)
        failures.append(now)
        self._failures[group] = failures  # most recent last
        while len(self._failures) > _MAX_TRACKED_CLIENTS:
            self._failures.popitem(last=False)
