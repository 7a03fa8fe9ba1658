"""The one cache the gateway keeps of what clients send (origins, Accept and Host values,
peer addresses): a dict that works out a missing value itself and never grows past a limit.

Real traffic has a handful of distinct values, and a client can send as many as it likes,
so a full cache simply starts over: no eviction order to keep on the hot path, and a hit
stays one dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Enough for every origin, Accept header and peer a site sees; at most a few hundred KiB.
DEFAULT_LIMIT = 1024
# Ready-to-send answers per Origin (the 503, the status feed): each holds a whole body.
ANSWER_CACHE_LIMIT = 256


class BoundedCache(dict[K, V]):
    """``cache[key]`` is ``compute(key)``, worked out once while it stays cached."""

    __slots__ = ("compute", "limit")

    def __init__(self, compute: Callable[[K], V], limit: int = DEFAULT_LIMIT) -> None:
        super().__init__()
        self.compute = compute
        self.limit = limit

    def __missing__(self, key: K) -> V:
        value = self.compute(key)
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
