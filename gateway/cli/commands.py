"""``maintenance-gateway`` (also ``python -m gateway``): run the gateway and operate it."""

from __future__ import annotations

import argparse
import os
import getpass
import json
import re
import socket
import sys
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from gateway.admin.changes import next_state
from gateway.cli.client import AdminClient
from gateway.errors import AdminError, ConfigError, ConflictError, GatewayUnreachable, RequestError, StateError, StoreError
from gateway.settings import FIELDS, Settings, load_settings
from gateway.state import MAX_TIME, MODES, MaintenanceState, format_time, parse_scope, parse_time, safe_text
from gateway.stores import change_state, open_store

EXIT_OK = 0
EXIT_FAILURE = 1  # health check failed, or a store/gateway error
EXIT_USAGE = 2  # argparse's own
EXIT_CONFLICT = 4  # someone else changed the state first
EXIT_AUTH = 5  # the gateway refused the token (or its admin API is off)
EXIT_UNREACHABLE = 6  # no answer from the gateway
EXIT_CONFIG = ConfigError.exit_code

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d`` as seconds."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(value)
        if not value or match is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90s, 30m, 2h, 1h30m)")
        days, hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = float(days * 86400 + hours * 3600 + minutes * 60 + secs)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a duration must be longer than zero")
    return seconds


def parse_moment(text: str) -> float:
    """An ISO-8601 time with a zone, or ``+DURATION`` from now."""
    if text.startswith("+"):
        later = time.time() + parse_duration(text[1:])
        if not later <= MAX_TIME:  # also infinity; format_time could not write it
            raise argparse.ArgumentTypeError(f"{ascii(text[:64])} ends after 9999-12-31T23:59:59Z")
        return later
    try:
        moment = parse_time("time", text)
    except StateError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None
    assert moment is not None
    return moment


def parse_paths(text: str) -> tuple[str, ...]:
    """``/api/checkout/,/api/payments/``: the path prefixes of a partial maintenance."""
    try:
        scope = parse_scope([part.strip() for part in text.split(",") if part.strip()])
    except StateError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None
    if scope is None:
        raise argparse.ArgumentTypeError("expected path prefixes such as /api/checkout/,/api/payments/")
    return scope


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (cli)"


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each overrides its GATEWAY_* variable)")
    for field in FIELDS:
        group.add_argument(field.flag, dest=f"setting_{field.name}", metavar="VALUE", help=f"{field.help} [{field.env}]")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name.removeprefix("setting_"): value
        for name, value in vars(args).items()
        if name.startswith("setting_") and value is not None
    }
    return load_settings(overrides=overrides)


def _add_remote_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("through a running gateway instead of the store")
    group.add_argument("--url", default=os.environ.get("GATEWAY_ADMIN_URL"), help="the gateway, e.g. http://127.0.0.1:8080 [GATEWAY_ADMIN_URL]")
    group.add_argument("--token", default=os.environ.get("GATEWAY_ADMIN_TOKEN"), help="an admin token [GATEWAY_ADMIN_TOKEN]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maintenance-gateway",
        description="A maintenance switch for Django: forward to the app or answer a CORS-readable 503.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    _add_settings_flags(serve)

    check = commands.add_parser("check-config", help="validate the settings and print them, secrets masked")
    check.add_argument("--json", action="store_true", help="print JSON")
    _add_settings_flags(check)

    on = commands.add_parser("on", help="turn maintenance on")
    on.add_argument("--message", default="", help="shown to users (default: the gateway's message)")
    window = on.add_mutually_exclusive_group()
    window.add_argument("--for", dest="duration", type=parse_duration, help="end after this long (30m, 2h, ...)")
    window.add_argument("--until", type=parse_moment, help="end at this time (ISO-8601 with zone, or +DURATION)")
    on.add_argument("--from", dest="start", type=parse_moment, help="start at this time instead of now")
    on.add_argument("--mode", choices=MODES, default="full")
    on.add_argument(
        "--paths",
        type=parse_paths,
        metavar="PREFIX,...",
        help="only these path prefixes (whole segments) are in maintenance, e.g. /api/checkout/,/api/payments/",
    )
    on.add_argument("--reason", default="", help="why (kept with the state for the record)")
    _add_remote_flags(on)
    _add_settings_flags(on)

    off = commands.add_parser("off", help="turn maintenance off")
    off.add_argument("--reason", default="")
    _add_remote_flags(off)
    _add_settings_flags(off)

    status = commands.add_parser("status", help="show the state")
    status.add_argument("--json", action="store_true", help="print JSON")
    _add_remote_flags(status)
    _add_settings_flags(status)

    history = commands.add_parser("history", help="show the latest changes, newest first")
    history.add_argument("--limit", type=int, default=20, help="how many changes (default 20)")
    history.add_argument("--json", action="store_true", help="print JSON")
    _add_remote_flags(history)
    _add_settings_flags(history)

    init_table = commands.add_parser("init-table", help="create the DynamoDB table of GATEWAY_STORE (safe to run twice)")
    _add_settings_flags(init_table)

    health = commands.add_parser("healthcheck", help="exit 0 when /_gateway/health answers 200 (container health check)")
    health.add_argument("--timeout", type=float, default=3.0)
    _add_settings_flags(health)
    return parser


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.server.uvicorn_setup import serve

    return serve(settings)


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    shown = settings.describe()
    if args.json:
        print(json.dumps(shown, indent=2))
    else:
        width = max(len(key) for key in shown)
        for key, value in shown.items():
            print(f"{key.ljust(width)}  {value}")
    return EXIT_OK


# Control characters (an escape sequence could rewrite the operator's screen; a line break
# could print a forged "maintenance: off" line), format characters (U+202E turns the rest of a
# line around) and the Unicode line and paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def shown(text: str) -> str:
    """Stored text as one line a terminal may print: every character of ``_ESCAPED_CATEGORIES``
    is written as its Python escape (``\\n``, ``\\x1b``, ``\\u202e``), so it is seen, not obeyed."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in safe_text(text)
    )


def describe_state(state: MaintenanceState, now: float) -> str:
    status = state.status(now)
    lines = [f"maintenance: {status}" + (f" ({state.mode})" if status in ("on", "upcoming") else "")]
    if state.enabled:
        if state.scope is not None:
            lines.append(f"paths:       {shown(', '.join(state.scope))} (only these)")
        if state.starts_at is not None:
            lines.append(f"starts at:   {format_time(state.starts_at)}")
        if state.ends_at is not None:
            lines.append(f"ends at:     {format_time(state.ends_at)}")
        if state.message:
            lines.append(f"message:     {shown(state.message)}")
    if state.reason:
        lines.append(f"reason:      {shown(state.reason)}")
    if state.updated_at is not None:
        lines.append(f"changed:     {format_time(state.updated_at)} by {shown(state.updated_by) or 'unknown'}")
    lines.append(f"version:     {state.version}")
    return "\n".join(lines)


def remote(args: argparse.Namespace) -> AdminClient | None:
    """The admin client when --url (or GATEWAY_ADMIN_URL) is given, else None (the store directly)."""
    if not args.url:
        return None
    if not args.token:
        raise AdminError(401, {"message": "--url needs --token (or GATEWAY_ADMIN_TOKEN)"})
    return AdminClient(args.url, args.token)


def on_body(args: argparse.Namespace) -> dict[str, object]:
    """``on``'s flags as the admin API's PUT body: the one shape of "turn on", checked by the
    same ``next_state`` whether it goes to a gateway or straight to the store."""
    return {
        "enabled": True,
        "mode": args.mode,
        # Undecodable bytes in argv arrive as lone surrogates; they are repaired, not refused.
        "message": safe_text(args.message),
        "starts_at": format_time(args.start),
        "ends_at": format_time(args.until),
        "duration_seconds": args.duration,
        "reason": safe_text(args.reason),
        "scope": list(args.paths) if args.paths else None,
    }


def write_directly(settings: Settings, body: dict[str, object]) -> MaintenanceState:
    """The change ``body`` asks for, built by ``next_state`` as the admin API builds it, written to the store."""
    return change_state(open_store(settings.store), lambda current: next_state(current, body, now=time.time(), actor=actor()))


def cmd_on(settings: Settings, args: argparse.Namespace) -> int:
    body = on_body(args)
    client = remote(args)
    state = MaintenanceState.from_item(client.set(body)) if client is not None else write_directly(settings, body)
    print(describe_state(state, time.time()))
    return EXIT_OK


def cmd_off(settings: Settings, args: argparse.Namespace) -> int:
    client = remote(args)
    if client is not None:
        print(describe_state(MaintenanceState.from_item(client.off(args.reason)), time.time()))
        return EXIT_OK
    state = write_directly(settings, {"enabled": False, "reason": safe_text(args.reason)})
    print(describe_state(state, time.time()))
    return EXIT_OK


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    as_json = args.json
    client = remote(args)
    state = MaintenanceState.from_item(client.status()) if client is not None else open_store(settings.store).read()
    now = time.time()
    print(json.dumps(state.describe(now), indent=2) if as_json else describe_state(state, now))
    return EXIT_OK


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    limit, as_json = args.limit, args.json
    client = remote(args)
    records = client.history(limit) if client is not None else open_store(settings.store).history(limit)
    if as_json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    if not records:
        print("no changes recorded")
    for record in records:
        # A hand-edited history may hold anything there: what is not an object shows as "(none)".
        new, old = (value if isinstance(value := record.get(key), dict) else {} for key in ("new", "old"))
        change = f"{_onoff(old)} -> {_onoff(new)}"
        window = ""
        if new.get("enabled") and (new.get("starts_at") or new.get("ends_at")):
            window = f" [{new.get('starts_at') or 'now'} .. {new.get('ends_at') or 'open-ended'}]"
        reason = f": {record['reason']}" if record.get("reason") else ""
        # History lines hold whatever was written, then: each record is shown as one line.
        print(shown(f"v{record.get('version')}  {record.get('at')}  {record.get('by') or 'unknown'}  {change}{window}{reason}"))
    return EXIT_OK


def _onoff(item: dict[str, object]) -> str:
    if not item:
        return "(none)"
    if not item.get("enabled"):
        return "off"
    scope = item.get("scope")
    paths = f" on {shown(', '.join(map(str, scope)))}" if isinstance(scope, list) and scope else ""
    return f"on ({item.get('mode', 'full')}){paths}"


def cmd_init_table(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.stores.dynamodb import DynamoDBStore

    store = open_store(settings.store)
    if not isinstance(store, DynamoDBStore):
        print(f"maintenance-gateway: init-table needs a dynamodb:// store; GATEWAY_STORE is {settings.store}", file=sys.stderr)
        return EXIT_USAGE
    created = store.create_table()
    table = store.location.table
    print(f"created table {table} (on-demand billing)" if created else f"table {table} already exists; nothing to do")
    return EXIT_OK


def cmd_healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    timeout = args.timeout
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    url = f"http://{host}:{settings.port}{settings.admin_prefix}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a fixed http URL
            code: int = response.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if code != 200:
        print(f"unhealthy: {url} answered {code}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


# The flag that sets each field of a change, for error messages.
_FLAGS = {
    "message": "--message",
    "reason": "--reason",
    "mode": "--mode",
    "starts_at": "--from",
    "ends_at": "--until",
    "duration_seconds": "--for",
    "scope": "--paths",
}

COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "check-config": cmd_check_config,
    "on": cmd_on,
    "off": cmd_off,
    "status": cmd_status,
    "history": cmd_history,
    "init-table": cmd_init_table,
    "healthcheck": cmd_healthcheck,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        return COMMANDS[args.command](settings, args)
    except ConfigError as exc:
        print(f"maintenance-gateway: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConflictError as exc:
        print(f"maintenance-gateway: {exc}; someone else changed the state. Check `status` and retry.", file=sys.stderr)
        return EXIT_CONFLICT
    except StateError as exc:
        print(f"maintenance-gateway: invalid state: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RequestError as exc:
        # The checks of the admin API, applied to a change written straight to the store.
        flag = f" ({_FLAGS.get(exc.field, exc.field)})" if exc.field else ""
        print(f"maintenance-gateway: {exc.message}{flag}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"maintenance-gateway: store error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except GatewayUnreachable as exc:
        print(f"maintenance-gateway: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except AdminError as exc:
        print(f"maintenance-gateway: the gateway refused: {exc}", file=sys.stderr)
        if exc.status == 412:
            return EXIT_CONFLICT
        if exc.status in (400, 413, 415):
            return EXIT_USAGE
        if exc.status in (401, 403, 404, 429):
            return EXIT_AUTH
        return EXIT_FAILURE
