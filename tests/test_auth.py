"""Who may use the admin API, in-process: bearer tokens."""

from __future__ import annotations

import hmac

import pytest

from gateway.admin.auth import MAX_AUTHORIZATION_LENGTH, TokenAuth

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
