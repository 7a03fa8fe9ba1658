"""Who may use the admin API: bearer tokens (the limit on failed attempts is
``gateway.failure_limit``, shared with the bypass secret).

Tokens are compared in constant time on bytes, against every configured token
(several at once, so a new one can be rolled out before the old one is removed).
A token never appears in a log line, an error or a traceback: only its name does.
"""

from __future__ import annotations

import hmac

# Longer than any sane token; a bigger header is refused before any comparison.
MAX_AUTHORIZATION_LENGTH = 1024


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
