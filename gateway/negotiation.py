"""Which body a 503 gets: JSON, HTML or plain text, from the request's ``Accept``.

Proper media-range matching with q-values: a browser navigating to a page asks for
``text/html`` first and gets the page; Angular's HttpClient (``application/json,
text/plain, */*``), fetch (``*/*``) and clients that send nothing get JSON.
"""

from __future__ import annotations

from gateway.bounded_cache import BoundedCache

JSON, HTML, TEXT = "json", "html", "text"

# Preference order when several are equally acceptable.
_VARIANTS = ((JSON, b"application", b"json"), (HTML, b"text", b"html"), (TEXT, b"text", b"plain"))


def _quality(ranges: list[tuple[bytes, bytes, float]], kind: bytes, sub: bytes) -> float:
    best_specificity, best_q = -1, 0.0
    for range_type, range_sub, q in ranges:
        if range_type == kind and range_sub == sub:
            specificity = 2
        elif range_type == kind and range_sub == b"*":
            specificity = 1
        elif range_type == b"*" and range_sub == b"*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, q
    return best_q


def _parse(accept: bytes) -> list[tuple[bytes, bytes, float]]:
    ranges = []
    for item in accept.split(b",")[:64]:
        media, *params = item.split(b";")
        kind, _, sub = media.strip().lower().partition(b"/")
        if not kind or not sub:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((kind, sub, q))
    return ranges


def choose(accept: bytes) -> str:
    ranges = _parse(accept)
    best, best_q = JSON, 0.0
    for name, kind, sub in _VARIANTS:
        q = _quality(ranges, kind, sub)
        if q > best_q:
            best, best_q = name, q
    return best


class Negotiator:
    """``choose`` with a bounded cache: clients send a handful of distinct Accept values."""

    def __init__(self) -> None:
        self._chosen: BoundedCache[bytes, str] = BoundedCache(choose)

    def variant(self, accept: bytes | None, xhr: bool) -> str:
        if xhr or accept is None:
            return JSON
        return self._chosen[accept]
