"""Who may use the admin API: bearer tokens, and a limit on failed attempts per client.

Tokens are compared in constant time on bytes, against every configured token
(several at once, so a new one can be rolled out before the old one is removed).
A token never appears in a log line, an error or a traceback: only its name does.
"""

from __future__ import annotations

import collections
import hmac
import math
import time

# Longer than any sane token; a bigger header is refused before any comparison.
MAX_AUTHORIZATION_LENGTH = 1024
_MAX_TRACKED_CLIENTS = 10_000


class TokenAuth:
    def __init__(self, tokens: tuple[tuple[str, str], ...]) -> None:
        self._tokens = [(name, token.encode("ascii")) for name, token in tokens]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def identify(self, authorization: str | None) -> str | None:
        """The name of the token presented as ``Bearer TOKEN``, or None."""
        if not authorization or len(authorization) > MAX_AUTHORIZATION_LENGTH or not authorization.isascii():
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        candidate = presented.strip().encode("ascii")
        matched = None
        for name, token in self._tokens:
            # Every token is compared, so the time taken does not tell which one (if any) matched.
            if hmac.compare_digest(candidate, token):
                matched = name
        return matched


class FailureLimiter:
    """At most ``limit`` failed attempts per client address in any ``window`` seconds."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try again; 0 when it may try now."""
        if self.limit <= 0:
            return 0
        now = time.monotonic() if now is None else now
        failures = self._failures.get(client)
        if failures is None:
            return 0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window - now))

    def record_failure(self, client: str, now: float | None = None) -> None:
        if self.limit <= 0:
            return
        now = time.monotonic() if now is None else now
        failures = self._failures.pop(client, None) or collections.deque(maxlen=self.limit)
        failures.append(now)
        self._failures[client] = failures  # most recent last
        while len(self._failures) > _MAX_TRACKED_CLIENTS:
            self._failures.popitem(last=False)
