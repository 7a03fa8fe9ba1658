"""CORS for the gateway's own answers, decided exactly as django-cors-headers decides.

Only the gateway's answers (503, 502/504, preflights in maintenance) use this;
proxied answers carry Django's own CORS headers untouched, so there is never a
second ``Access-Control-Allow-Origin`` line.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from gateway.bounded_cache import BoundedCache
from gateway.http import Headers
from gateway.settings import Settings

# The gateway's answers carry these; a script can read them only if they are exposed.
GATEWAY_EXPOSED_HEADERS = ("Retry-After", "X-Maintenance-Mode")


class CorsPolicy:
    def __init__(self, settings: Settings) -> None:
        self.allow_all = settings.cors_allow_all_origins
        self.credentials = settings.cors_allow_credentials
        self.allowed = settings.cors_allowed_origins
        self._allowed_parts = {(parts.scheme, parts.netloc) for parts in map(urlsplit, self.allowed)}
        self._regexes = [re.compile(pattern) for pattern in settings.cors_allowed_origin_regexes]
        self._configured_expose = settings.cors_expose_headers
        self._simple_extra = self.simple_extra(GATEWAY_EXPOSED_HEADERS)
        # django-cors-headers sends the simple headers on preflights too.
        preflight: Headers = list(self._simple_extra)
        preflight.append((b"access-control-allow-headers", ", ".join(settings.cors_allow_headers).encode("latin-1")))
        preflight.append((b"access-control-allow-methods", ", ".join(settings.cors_allow_methods).encode("latin-1")))
        if settings.cors_preflight_max_age:
            preflight.append((b"access-control-max-age", str(settings.cors_preflight_max_age).encode()))
        self._preflight_extra = preflight
        self._decisions: BoundedCache[bytes, bytes | None] = BoundedCache(self._decide)

    def simple_extra(self, exposed_by_gateway: tuple[str, ...]) -> Headers:
        """The headers that follow Access-Control-Allow-Origin on an answer of the gateway's own:
        credentials (when allowed) and the configured exposed headers plus ``exposed_by_gateway``."""
        exposed = list(self._configured_expose)
        for name in exposed_by_gateway:
            if name.lower() not in {item.lower() for item in exposed}:
                exposed.append(name)
        extra: Headers = [(b"access-control-expose-headers", ", ".join(exposed).encode("latin-1"))]
        if self.credentials:
            extra.insert(0, (b"access-control-allow-credentials", b"true"))
        return extra

    def allow_origin_value(self, origin: bytes) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for this Origin, or None if not allowed."""
        return self._decisions[origin]

    def _decide(self, origin_bytes: bytes) -> bytes | None:
        # White space after a field value is not part of it (RFC 9110 5.5); httptools keeps it.
        origin_bytes = origin_bytes.strip(b" \t")
        try:
            origin = origin_bytes.decode("latin-1")
            parts = urlsplit(origin)
        except ValueError:
            return None
        if not self.allow_all and not self._origin_listed(origin, parts.scheme, parts.netloc):
            return None
        if self.allow_all and not self.credentials:
            return b"*"
        # With credentials a browser refuses "*": the origin is echoed.
        return origin_bytes

    def _origin_listed(self, origin: str, scheme: str, netloc: str) -> bool:
        if origin == "null":
            return "null" in self.allowed
        if (scheme, netloc) in self._allowed_parts:
            return True
        return any(regex.match(origin) for regex in self._regexes)

    def simple_headers(self, origin: bytes | None, extra: Headers | None = None) -> Headers:
        """Headers that let a script on ``origin`` read a gateway answer (empty if not allowed);
        ``extra`` is another ``simple_extra`` (an answer that exposes more headers)."""
        if origin is None:
            return []
        value = self.allow_origin_value(origin)
        if value is None:
            return []
        return [(b"access-control-allow-origin", value), *(self._simple_extra if extra is None else extra)]

    def preflight_headers(self, origin: bytes) -> Headers | None:
        """Headers of a preflight answer, or None when the origin is not allowed."""
        value = self.allow_origin_value(origin)
        if value is None:
            return None
        return [(b"access-control-allow-origin", value), *self._preflight_extra]
