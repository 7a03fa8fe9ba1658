"""The limit on failed guesses per client, in-process: counting, waiting, grouping, memory."""

from __future__ import annotations

import sys

from gateway import failure_limit
from gateway.failure_limit import FailureLimiter, client_group


def test_the_limit_counts_failures_per_client() -> None:
    limiter = FailureLimiter(3, window=60.0)
    for second in range(3):
        assert limiter.retry_after("192.0.2.1", now=100.0 + second) == 0
        limiter.record_failure("192.0.2.1", now=100.0 + second)
    # The third failure used the budget: the next attempt waits until the first failure leaves the window.
    assert limiter.retry_after("192.0.2.1", now=102.0) == 58
    assert limiter.retry_after("192.0.2.1", now=159.5) == 1
    assert limiter.retry_after("192.0.2.1", now=160.0) == 0  # the failure at 100 s is 60 s old
    assert limiter.retry_after("192.0.2.2", now=102.0) == 0  # another client has its own budget


def test_retry_after_is_at_least_one_second_while_limited() -> None:
    limiter = FailureLimiter(1, window=1.0)
    limiter.record_failure("192.0.2.1", now=10.0)
    assert limiter.retry_after("192.0.2.1", now=10.999) == 1


def test_a_limit_of_zero_never_limits() -> None:
    limiter = FailureLimiter(0)
    for _ in range(100):
        limiter.record_failure("192.0.2.1", now=1.0)
    assert limiter.retry_after("192.0.2.1", now=1.0) == 0
    assert sys.getsizeof(limiter._failures) < 1000


def test_one_ipv6_64_is_one_client_and_a_mapped_ipv4_address_is_its_ipv4_address() -> None:
    assert client_group("2001:db8:1:2:aaaa::1") == client_group("2001:db8:1:2:ffff:ffff:ffff:fffe") == "2001:db8:1:2::/64"
    assert client_group("2001:db8:1:3::1") != client_group("2001:db8:1:2::1")
    assert client_group("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_group("192.0.2.7") == "192.0.2.7"
    assert client_group("not an address") == "not an address"
    limiter = FailureLimiter(2)
    limiter.record_failure("2001:db8:1:2::1", now=5.0)
    limiter.record_failure("2001:db8:1:2::2", now=5.0)
    assert limiter.retry_after("2001:db8:1:2:dead:beef:0:1", now=6.0) > 0
    assert limiter.retry_after("2001:db8:1:3::1", now=6.0) == 0
    limiter.record_failure("::ffff:192.0.2.7", now=5.0)
    limiter.record_failure("192.0.2.7", now=5.0)
    assert limiter.retry_after("192.0.2.7", now=6.0) > 0


def test_memory_stays_bounded_with_many_clients() -> None:
    limiter = FailureLimiter(5)
    assert failure_limit._MAX_TRACKED_CLIENTS == 10_000  # the figure SECURITY.md gives
    for n in range(3 * failure_limit._MAX_TRACKED_CLIENTS):
        limiter.record_failure(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", now=1.0)
        # Asking about a client never seen adds nothing.
        limiter.retry_after(f"2001:db8:{n:x}::1", now=1.0)
    assert len(limiter._failures) == failure_limit._MAX_TRACKED_CLIENTS
    # The clients kept are the latest; each keeps at most ``limit`` failures.
    for _ in range(50):
        limiter.record_failure("10.0.0.1", now=2.0)
    assert max(len(failures) for failures in limiter._failures.values()) == 5
    assert len(limiter._failures) == failure_limit._MAX_TRACKED_CLIENTS
