"""The command line's values as argparse types (whose errors argparse prints after the flag's
name): durations (``90s``, ``1h30m``), moments (ISO-8601 with a zone, or ``+DURATION`` from
now), path prefixes, history limits and gateway URLs."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import TypeVar

from gateway.admin.routes import MAX_HISTORY_LIMIT
from gateway.cli.client import admin_base_url
from gateway.errors import StateError
from gateway.state import MAX_TIME, parse_scope, parse_time

Value = TypeVar("Value")

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def _seconds(text: str) -> float | None:
    """``90``, ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d`` as seconds; None for anything else."""
    if text.isdigit():
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
    return _checked(lambda: parse_time("time", text), "expected an ISO-8601 time with a zone or +DURATION")


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
    if value is None:
        raise argparse.ArgumentTypeError(when_empty)
    return value


def parse_limit(text: str) -> int:
    """How many history records: as many as the admin API would send."""
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_HISTORY_LIMIT:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_HISTORY_LIMIT}")
    return int(text)


def parse_url(text: str) -> str:
    try:
        return admin_base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seconds_text(seconds: float) -> str:
    """``1.5``, ``2``, ``30``: a number of seconds as an operator would write it."""
    return f"{seconds:g}"
