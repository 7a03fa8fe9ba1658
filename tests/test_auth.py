"""Who may use the admin API, in-process: bearer tokens, and the failure limit per client."""

from __future__ import annotations

import hmac
import sys

import pytest

from gateway.admin import auth
from gateway.admin.auth import MAX_AUTHORIZATION_LENGTH, FailureLimiter, TokenAuth, client_group

FIRST = "first-token-0123456789"
SECOND = "second-token-9876543210"


@pytest.fixture
def tokens() -> TokenAuth:
    return TokenAuth((("ci", FIRST), ("deploy", SECOND)))


def test_a_token_is_known_by_its_name(tokens: TokenAuth) -> None:
    assert tokens.enabled and not TokenAuth(()).enabled
    assert tokens.identify(f"Bearer {FIRST}") == "ci"
    assert tokens.identify(f"Bearer {SECOND}") == "deploy"
    # The scheme is case-insensitive and white space around the credentials is not part of them (RFC 9110 11.1, 5.5).
    assert tokens.identify(f"bearer {SECOND}") == "deploy"
    assert tokens.identify(f"BEARER   {FIRST}  ") == "ci"
    assert TokenAuth(()).identify(f"Bearer {FIRST}") is None


def test_every_token_is_compared_in_constant_time(tokens: TokenAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare_digest)
    # The first token matches, and the second is still compared: the time does not tell which one did.
    assert tokens.identify(f"Bearer {FIRST}") == "ci"
    assert compared == [(FIRST.encode(), FIRST.encode()), (FIRST.encode(), SECOND.encode())]
    compared.clear()
    assert tokens.identify("Bearer not-a-token") is None
    assert len(compared) == 2 and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in compared)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        FIRST,
        f"Basic {FIRST}",
        f"Token {FIRST}",
        f"Bearer\t{FIRST}",  # the separator is a space (RFC 9110 11.4)
        f"Bearer{FIRST}",
        f"Bearer {FIRST}x",
        f"Bearer {FIRST[:-1]}",
        f"Bearer {FIRST} {SECOND}",
        f"Bearer {FIRST},{SECOND}",
        f"Bearer {FIRST}\x00",
        f"Bearer \x00{FIRST}",
        "Bearer \x00",
        f"Bearer {FIRST}\ud800",  # a lone surrogate: no bytes to compare
        "Bearer \udcff\udcfe",
        f"Bearer {FIRST}\xff",  # latin-1, as a server decodes header bytes
        "Bearer \u0442\u043e\u043a\u0435\u043d",  # not latin-1 at all
        f"Bearer {FIRST}\u200b",
        "Bearer " + "a" * (MAX_AUTHORIZATION_LENGTH + 1),
        "Bearer " + FIRST + " " * MAX_AUTHORIZATION_LENGTH,
    ],
)
def test_malformed_authorization_values_name_no_token(tokens: TokenAuth, authorization: str | None) -> None:
    assert tokens.identify(authorization) is None


def test_an_oversized_value_is_refused_before_any_comparison(tokens: TokenAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    def compare_digest(a: bytes, b: bytes) -> bool:
        raise AssertionError("compared")

    monkeypatch.setattr(hmac, "compare_digest", compare_digest)
    assert tokens.identify("Bearer " + "a" * 100_000) is None


# -- the failure limit


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
    for n in range(3 * auth._MAX_TRACKED_CLIENTS):
        limiter.record_failure(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", now=1.0)
        # Asking about a client never seen adds nothing.
        limiter.retry_after(f"2001:db8:{n:x}::1", now=1.0)
    assert len(limiter._failures) == auth._MAX_TRACKED_CLIENTS
    # The clients kept are the latest; each keeps at most ``limit`` failures.
    for _ in range(50):
        limiter.record_failure("10.0.0.1", now=2.0)
    assert max(len(failures) for failures in limiter._failures.values()) == 5
    assert len(limiter._failures) == auth._MAX_TRACKED_CLIENTS
