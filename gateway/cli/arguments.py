"""The command line's values as argparse types (whose errors argparse prints after the flag's
name): durations (``90s``, ``1h30m``), moments (ISO-8601 with a zone, or ``+DURATION`` from
now), path prefixes, history limits and gateway URLs."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import TypeVar

from gateway.admin.changes import MAX_HISTORY_LIMIT, whole_number
from gateway.cli.client import admin_base_url, clean_token
from gateway.errors import StateError
from gateway.state import MAX_TIME, parse_scope, parse_time

Value = TypeVar("Value")

# ASCII digits only: "²" and "١" are digits to str.isdigit and \\d, but not to int() or float().
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.ASCII)
_WHOLE_NUMBER = re.compile(r"[0-9]+")
# The longest wait a container health check may need; an ECS check gives up after its own timeout anyway.
MAX_HEALTHCHECK_TIMEOUT = 60.0


def _seconds(text: str) -> float | None:
    """``90``, ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d`` as seconds; None for anything else."""
    if _WHOLE_NUMBER.fullmatch(text):
        return float(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    days, hours, minutes, secs = (int(part or 0) for part in match.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60 + secs)


def parse_duration(text: str) -> float:
    """A duration longer than zero, in seconds (see ``_seconds``)."""
    value = text.strip().lower()
    seconds = _seconds(value.removeprefix("-"))
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{ascii(text[:64])} is not a duration (e.g. 90s, 30m, 2h, 1h30m, 1d)")
    if value.startswith("-") or seconds <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be longer than zero, not {ascii(text[:64])}")
    return seconds


def parse_moment(text: str) -> float:
    """An ISO-8601 time with a zone, or ``+DURATION`` from now."""
    if text.startswith("+"):
        later = time.time() + parse_duration(text[1:])
        if not later <= MAX_TIME:  # also infinity; format_time could not write it
            raise argparse.ArgumentTypeError(f"{ascii(text[:64])} ends after 9999-12-31T23:59:59Z")
        return later
    try:
        return _checked(lambda: parse_time("time", text), "expected an ISO-8601 time with a zone or +DURATION")
    except argparse.ArgumentTypeError:
        typed = text.strip()
        if _seconds(typed.lower()) is None:
            raise
        # "--from 15m": a duration without its "+", which reads as a time that is not one.
        raise argparse.ArgumentTypeError(f"{ascii(typed[:64])} is a duration, not a time; for {typed[:64]} from now write +{typed[:64]}") from None


def parse_paths(text: str) -> tuple[str, ...]:
    """``/api/checkout/,/api/payments/``: the path prefixes of a partial maintenance."""
    prefixes = [part.strip() for part in text.split(",") if part.strip()]
    return _checked(lambda: parse_scope(prefixes), "expected path prefixes such as /api/checkout/,/api/payments/")


def _checked(parse: Callable[[], Value | None], when_empty: str) -> Value:
    """What ``parse`` (a check the admin API makes too) returns, its StateError and its None as argparse errors."""
    try:
        value = parse()
    except StateError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None
    except ValueError:
        # A check that did not expect such text: what is expected still names the problem.
        raise argparse.ArgumentTypeError(when_empty) from None
    if value is None:
        raise argparse.ArgumentTypeError(when_empty)
    return value


def parse_limit(text: str) -> int:
    """How many history records: as many as the admin API would send."""
    value = whole_number(text.strip(), MAX_HISTORY_LIMIT)
    if not value:  # None (not a whole number, or past the maximum) or 0
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_HISTORY_LIMIT}, not {ascii(text[:64])}")
    return value


def parse_timeout(text: str) -> float:
    """Seconds to wait for an answer: finite, above zero, at most ``MAX_HEALTHCHECK_TIMEOUT``."""
    expected = f"expected seconds above 0 and at most {seconds_text(MAX_HEALTHCHECK_TIMEOUT)}, not {ascii(text[:64])}"
    value = text.strip()
    if not value.isascii():
        raise argparse.ArgumentTypeError(expected)
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    # Also nan (no comparison holds) and inf, which the socket layer cannot take.
    if not 0 < seconds <= MAX_HEALTHCHECK_TIMEOUT:
        raise argparse.ArgumentTypeError(expected)
    return seconds


def parse_token(text: str) -> str:
    """An admin token (--token) as ``clean_token`` leaves it."""
    try:
        return clean_token(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_url(text: str) -> str:
    try:
        return admin_base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_text(seconds: float) -> str:
    """``30 s``, ``30m (1800 s)``, ``1h30m (5400 s)``: a duration as --for reads it, and in seconds."""
    whole = int(seconds)
    if whole < 60 or whole != seconds:
        return f"{seconds_text(seconds)} s"
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    written = "".join(f"{value}{unit}" for value, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if value)
    return f"{written} ({whole} s)"


def seconds_text(seconds: float) -> str:
    """``1.5``, ``2``, ``30``: a number of seconds as an operator would write it."""
    return f"{seconds:g}"


def parse_bounded_duration(high: float) -> Callable[[str], float]:
    """A duration (see ``parse_duration``) of at most ``high`` seconds: override's --ttl and --timeout."""

    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if seconds > high:
            raise argparse.ArgumentTypeError(f"at most {duration_text(high)}, not {ascii(text[:64])}")
        return seconds

    return parse


def parse_count(high: int) -> Callable[[str], int]:
    """A whole number from 1 to ``high``: override's --tasks and --attempts."""

    def parse(text: str) -> int:
        value = whole_number(text.strip(), high)
        if not value:  # None (not a whole number, or past the maximum) or 0
            raise argparse.ArgumentTypeError(f"expected 1..{high}, not {ascii(text[:64])}")
        return value

    return parse
