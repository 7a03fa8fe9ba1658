"""``manage.py maintenance on|off|status``: the gateway's state, through its admin API.

The gateway is found from ``--url``, else the setting ``MAINTENANCE_GATEWAY_URL``, else the
variable ``GATEWAY_ADMIN_URL``; the token from ``MAINTENANCE_GATEWAY_TOKEN``, else
``GATEWAY_ADMIN_TOKEN`` (never from the command line, where other users of the host could read
it). Exit codes are the gateway's own CLI's: 0 done, 1 a failure (the gateway's store cannot be
reached), 2 a value the gateway refused, 4 a conflict (``--if-match`` no longer current),
5 the token refused, 6 no gateway admin API at the URL, 78 no URL or token configured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from maintenance_gateway_django.admin_client import (
    DEFAULT_TIMEOUT,
    EXIT_CONFIG,
    AdminClient,
    AdminError,
    admin_base_url,
    clean_token,
    shown,
)

URL_SETTING, TOKEN_SETTING = "MAINTENANCE_GATEWAY_URL", "MAINTENANCE_GATEWAY_TOKEN"
URL_VARIABLE, TOKEN_VARIABLE = "GATEWAY_ADMIN_URL", "GATEWAY_ADMIN_TOKEN"
# ASCII digits only, as the gateway's CLI reads durations: 90s, 30m, 2h, 1h30m, 1d, or bare seconds.
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.ASCII)
# The admin API's own limit (gateway/admin/changes.py MAX_DURATION_SECONDS).
MAX_DURATION_SECONDS = 366 * 86400


def duration(text: str) -> int:
    value = text.strip().lower()
    match = _DURATION.fullmatch(value)
    if value.isascii() and value.isdigit():
        seconds = int(value)
    elif value and match is not None:
        days, hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    else:
        raise argparse.ArgumentTypeError(f"{text[:64]!r} is not a duration (e.g. 90s, 30m, 2h, 1h30m, 1d)")
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(f"a duration must be longer than zero and at most 366 days, not {text[:64]!r}")
    return seconds


def moment(text: str) -> str:
    """An ISO-8601 time with a zone, or ``+DURATION`` from now, as the admin API takes it (UTC)."""
    value = text.strip()
    try:
        if value.startswith("+"):
            when = datetime.now(timezone.utc) + timedelta(seconds=duration(value[1:]))
        else:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            if when.tzinfo is None:
                raise argparse.ArgumentTypeError(f"{value[:64]!r} has no time zone; add Z for UTC")
        return when.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{value[:64]!r} is not an ISO-8601 time with a zone (2026-11-26T10:00:00Z) or +DURATION") from None


def paths(text: str) -> list[str]:
    prefixes = [part.strip() for part in text.split(",") if part.strip()]
    if not prefixes:
        raise argparse.ArgumentTypeError("expected path prefixes such as /api/checkout/,/api/payments/")
    return prefixes


def timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 300:  # also nan and inf
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and at most 300, not {text[:64]!r}")
    return seconds


def version_tag(text: str) -> str:
    """``7`` or ``"7"`` (an ETag) as the If-Match the admin API takes."""
    value = text.strip().strip('"')
    if not (value.isascii() and value.isdigit()) or len(value) > 16:
        raise argparse.ArgumentTypeError(f"expected a version number (the ETag status shows), not {text[:64]!r}")
    return f'"{int(value)}"'


def describe(state: dict[str, Any]) -> list[str]:
    """The state as lines for an operator, every text escaped."""
    status = state.get("status") or ("on" if state.get("enabled") else "off")
    mode = f" ({shown(str(state.get('mode')))})" if status in ("on", "upcoming") else ""
    lines = [f"maintenance: {shown(str(status))}{mode}"]
    if state.get("enabled"):
        scope = state.get("scope")
        if isinstance(scope, list) and scope:
            lines.append(f"paths:       {shown(', '.join(map(str, scope)))} (only these)")
        for key, label in (("starts_at", "starts at:  "), ("ends_at", "ends at:    "), ("message", "message:    ")):
            if state.get(key):
                lines.append(f"{label} {shown(str(state[key]))}")
    if state.get("reason"):
        lines.append(f"reason:      {shown(str(state['reason']))}")
    if state.get("updated_at"):
        lines.append(f"changed:     {shown(str(state['updated_at']))} by {shown(str(state.get('updated_by') or 'unknown'))}")
    lines.append(f"version:     {shown(str(state.get('version')))}")
    return lines


class Command(BaseCommand):
    # A system check (a CORS drift, a value the gateway would refuse) must not stand between an
    # operator and the switch.
    requires_system_checks: list[str] = []
    help = "Turn the maintenance gateway's maintenance on or off, or show it, through its admin API."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="on|off|status", required=True)
        on = actions.add_parser("on", help="turn maintenance on")
        on.add_argument("--message", default="", help="shown to users (default: the gateway's message)")
        end = on.add_mutually_exclusive_group()
        end.add_argument("--for", dest="duration_seconds", type=duration, metavar="DURATION", help="end after this long (90s, 30m, 2h, 1h30m, 1d)")
        end.add_argument("--until", dest="ends_at", type=moment, metavar="TIME", help="end at this time (ISO-8601 with a zone, or +DURATION)")
        on.add_argument("--from", dest="starts_at", type=moment, metavar="TIME", help="start at this time instead of now")
        on.add_argument("--mode", choices=("full", "read-only"), default="full", help="read-only: GET, HEAD and OPTIONS still reach Django")
        on.add_argument("--paths", dest="scope", type=paths, metavar="PREFIX,...", help="only these path prefixes, e.g. /api/checkout/")
        on.add_argument("--reason", default="", help="why (kept with the state for the record)")
        on.add_argument("--if-match", type=version_tag, metavar="VERSION", help="change only while the state is this version (exit 4 otherwise)")
        off = actions.add_parser("off", help="turn maintenance off")
        off.add_argument("--reason", default="", help="why (kept with the state for the record)")
        off.add_argument("--if-match", type=version_tag, metavar="VERSION", help="change only while the state is this version (exit 4 otherwise)")
        status = actions.add_parser("status", help="show the state")
        status.add_argument("--json", action="store_true", help="the state as the admin API sends it")
        for action in (on, off, status):
            action.add_argument("--url", help=f"the gateway, e.g. http://127.0.0.1:8080 (default: {URL_SETTING}, else ${URL_VARIABLE})")
            action.add_argument("--timeout", type=timeout, default=DEFAULT_TIMEOUT, help="seconds to wait for the gateway (default 10)")

    def handle(self, *args: Any, **options: Any) -> None:
        client = AdminClient(self._base_url(options.get("url")), self._token(), timeout=options["timeout"])
        try:
            if options["action"] == "status":
                state, _etag = client.status()
                if options["json"]:
                    self.stdout.write(json.dumps(state, indent=2))
                    return
            elif options["action"] == "on":
                body: dict[str, Any] = {"enabled": True, "mode": options["mode"], "message": options["message"], "reason": options["reason"]}
                for key in ("starts_at", "ends_at", "duration_seconds", "scope"):
                    if options.get(key) is not None:
                        body[key] = options[key]
                state, _etag = client.set(body, options.get("if_match"))
            else:
                state, _etag = client.clear(options["reason"], options.get("if_match"))
        except AdminError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from None
        if state.get("changed") is False:
            self.stdout.write(f"maintenance is already {'on' if state.get('enabled') else 'off'} (version {shown(str(state.get('version')))}); nothing changed")
            return
        self.stdout.write("\n".join(describe(state)))
        if options["action"] != "status":
            self.stdout.write("this gateway serves it now; the others follow within their GATEWAY_REFRESH_INTERVAL")

    def _base_url(self, given: str | None) -> str:
        for source, value in (("--url", given), (URL_SETTING, getattr(settings, URL_SETTING, None)), (URL_VARIABLE, os.environ.get(URL_VARIABLE))):
            if value:
                try:
                    return admin_base_url(str(value))
                except ValueError as exc:
                    raise CommandError(f"{source}: {exc}", returncode=EXIT_CONFIG) from None
        raise CommandError(
            f"no gateway to ask: set {URL_SETTING} (or ${URL_VARIABLE}), or pass --url", returncode=EXIT_CONFIG
        )

    def _token(self) -> str:
        for source, value in ((TOKEN_SETTING, getattr(settings, TOKEN_SETTING, None)), (TOKEN_VARIABLE, os.environ.get(TOKEN_VARIABLE))):
            if value:
                try:
                    return clean_token(str(value))
                except ValueError as exc:
                    raise CommandError(f"{source}: {exc}", returncode=EXIT_CONFIG) from None
        raise CommandError(
            f"no admin token: set {TOKEN_SETTING} (or ${TOKEN_VARIABLE}) to one of the gateway's GATEWAY_ADMIN_TOKENS",
            returncode=EXIT_CONFIG,
        )
