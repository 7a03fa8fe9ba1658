"""Letting operators through during maintenance with a secret: a header, or a signed cookie.

The cookie holds its own expiry and an HMAC of it under a key derived from the
secret, so every task of a fleet accepts it without sharing any session state,
and changing the secret revokes every cookie at once.
"""

from __future__ import annotations

import hashlib
import hmac
import time

COOKIE_NAME = "maintenance_bypass"
HEADER_NAME = b"x-maintenance-bypass"
COOKIE_NAME_BYTES = COOKIE_NAME.encode()
# Sent with a maintenance answer to a request whose bypass cookie did not let it through
# (the attributes Starlette's delete_cookie writes, so it replaces the cookie the form set).
EXPIRED_COOKIE_HEADER = (
    b"set-cookie",
    COOKIE_NAME_BYTES + b'=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Max-Age=0; Path=/; SameSite=lax',
)


class BypassSecret:
    def __init__(self, secret: str, cookie_ttl: int) -> None:
        self._secret = secret.encode("utf-8")
        # A separate key for cookies: a cookie never reveals anything about the secret itself.
        self._key = hmac.new(self._secret, b"maintenance-gateway bypass cookie", hashlib.sha256).digest()
        self.cookie_ttl = cookie_ttl
        # An attribute, not a property: every maintenance answer reads it.
        self.enabled = bool(self._secret)

    def matches(self, presented: bytes) -> bool:
        return bool(self._secret) and hmac.compare_digest(presented, self._secret)

    def make_cookie_value(self, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.cookie_ttl)
        return f"{expires}.{self._sign(expires)}"

    def cookie_valid(self, value: bytes, now: float | None = None) -> bool:
        expires_text, _, signature = value.partition(b".")
        if not expires_text.isdigit() or len(expires_text) > 12:
            return False
        expires = int(expires_text)
        if expires < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(signature, self._sign(expires).encode())

    def _sign(self, expires: int) -> str:
        return hmac.new(self._key, str(expires).encode(), hashlib.sha256).hexdigest()

    def presented(self, header: bytes | None, cookie_header: bytes | None) -> bool | None:
        """What a request presents: None when neither the bypass header nor the bypass cookie
        (nothing to judge, nothing to count), else whether one of them is valid."""
        cookies: list[bytes] = []
        # A substring test first: most Cookie headers (sessions, CSRF) hold no bypass cookie.
        if cookie_header is not None and COOKIE_NAME_BYTES in cookie_header:
            for part in cookie_header.split(b";"):
                name, _, value = part.strip().partition(b"=")
                if name == COOKIE_NAME_BYTES:
                    cookies.append(value.strip())
        if header is None and not cookies:
            return None
        # RFC 9110 5.5: white space around a field value is not part of it (llhttp passes
        # trailing white space on, so it is stripped here).
        if header is not None and self.matches(header.strip(b" \t")):
            return True
        return any(self.cookie_valid(value) for value in cookies)
