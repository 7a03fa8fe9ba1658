"""The one bounded cache behind the origin, Accept, Host and peer decisions."""

from __future__ import annotations

from gateway.bounded_cache import BoundedCache


def test_a_value_is_worked_out_once_while_cached() -> None:
    calls: list[str] = []

    def compute(key: str) -> int:
        calls.append(key)
        return len(key)

    cache: BoundedCache[str, int] = BoundedCache(compute, limit=4)
    assert cache["abc"] == 3
    assert cache["abc"] == 3
    assert calls == ["abc"]


def test_a_full_cache_starts_over_and_never_passes_its_limit() -> None:
    cache: BoundedCache[int, int] = BoundedCache(lambda key: key * 2, limit=3)
    sizes = []
    for key in range(10):
        assert cache[key] == key * 2
        sizes.append(len(cache))
    assert max(sizes) == 3
    assert sizes == [1, 2, 3, 1, 2, 3, 1, 2, 3, 1]


def test_a_computed_none_is_cached_too() -> None:
    calls = []

    def compute(key: str) -> None:
        calls.append(key)

    cache: BoundedCache[str, None] = BoundedCache(compute)
    assert cache["x"] is None and cache["x"] is None
    assert calls == ["x"]
