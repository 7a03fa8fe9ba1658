"""``maintenance-gateway`` (also ``python -m gateway``): run the gateway and operate it."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from gateway.admin.changes import next_state, replaced_window
from gateway.cli.client import AdminClient, admin_base_url
from gateway.cli.output import describe_replaced, describe_state, describe_unchanged, history_line
from gateway.cli.parser import (
    EXIT_AUTH,
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    build_parser,
    joined_negative_values,
    settings_overrides,
)
from gateway.cli.arguments import seconds_text
from gateway.cli.waiting import CONFIRMATIONS, wait_until_served
from gateway.errors import AdminError, ConfigError, ConflictError, GatewayError, GatewayUnreachable, RequestError, StateError, StoreError
from gateway.settings import Settings, load_settings
from gateway.state import MaintenanceState, format_time, safe_text
from gateway.stores import apply_change, open_store


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (cli)"


def local_gateway_url(settings: Settings) -> str:
    """The admin endpoints of the gateway this host runs (GATEWAY_HOST, GATEWAY_PORT, GATEWAY_ADMIN_PREFIX)."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}{settings.admin_prefix}"


def remote(args: argparse.Namespace) -> AdminClient | None:
    """The admin client when --url (or GATEWAY_ADMIN_URL) is given, else None (the store directly)."""
    url = args.url
    if url is None and os.environ.get("GATEWAY_ADMIN_URL"):
        try:
            url = admin_base_url(os.environ["GATEWAY_ADMIN_URL"])
        except ValueError as exc:
            raise ConfigError("GATEWAY_ADMIN_URL", os.environ["GATEWAY_ADMIN_URL"], str(exc)) from None
    if not url:
        return None
    token = args.token or os.environ.get("GATEWAY_ADMIN_TOKEN")
    if not token:
        raise RequestError(400, "usage", "--url needs --token (or GATEWAY_ADMIN_TOKEN)")
    return AdminClient(url, token)


@dataclasses.dataclass(frozen=True)
class Change:
    """What a change did: the state now, whether anything was written, and the window it
    replaced with its status then (``on`` or ``upcoming``), if any."""

    state: MaintenanceState
    changed: bool
    replaced: tuple[MaintenanceState, str] | None


def change_through(client: AdminClient, body: dict[str, object]) -> Change:
    answer = client.set(body)
    replaced = answer.get("replaced")
    return Change(
        MaintenanceState.from_item(answer),
        answer.get("changed") is not False,
        (MaintenanceState.from_item(replaced), str(replaced.get("status"))) if isinstance(replaced, dict) else None,
    )


def change_in_store(settings: Settings, body: dict[str, object]) -> Change:
    """The change ``body`` asks for, built by ``next_state`` as the admin API builds it, written to the store."""
    old, new = apply_change(open_store(settings.store), lambda current: next_state(current, body, now=time.time(), actor=actor()))
    if new is old:
        return Change(new, False, None)
    now = new.updated_at if new.updated_at is not None else time.time()
    window = replaced_window(old, new, now)
    return Change(new, True, None if window is None else (window, window.status(now)))


def make_change(settings: Settings, args: argparse.Namespace, body: dict[str, object]) -> int:
    """``on`` and ``off``: one body, sent to a gateway or written to the store; then, with --wait,
    wait until the gateways serve it."""
    client = remote(args)
    change = change_through(client, body) if client is not None else change_in_store(settings, body)
    state = change.state
    follow = seconds_text(settings.refresh_interval)
    if not change.changed:
        print(describe_unchanged(state))
    else:
        print(describe_state(state, time.time()))
        if change.replaced is not None:
            print(describe_replaced(*change.replaced))
        if client is not None:
            print(f"this gateway serves it now; others within {follow} s (GATEWAY_REFRESH_INTERVAL)")
        else:
            print(f"gateways follow within {follow} s (GATEWAY_REFRESH_INTERVAL)")
    if args.wait is None:
        return EXIT_OK
    # Also when nothing changed: the change asked for before may not be served yet.
    watched = client if client is not None else AdminClient(local_gateway_url(settings), args.token or os.environ.get("GATEWAY_ADMIN_TOKEN"))
    why = wait_until_served(watched, state, args.wait)
    if why is not None:
        print(
            f"maintenance-gateway: the gateway at {watched.base} did not serve version {state.version} "
            f"within {seconds_text(args.wait)} s: {why}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"gateways serve it now ({CONFIRMATIONS} answers in a row from {watched.base}/health)")
    return EXIT_OK


def cmd_on(settings: Settings, args: argparse.Namespace) -> int:
    # The one shape of "turn on", checked by the same ``next_state`` whether it goes to a
    # gateway or straight to the store.
    return make_change(
        settings,
        args,
        {
            "enabled": True,
            "mode": args.mode,
            # Undecodable bytes in argv arrive as lone surrogates; they are repaired, not refused.
            "message": safe_text(args.message),
            "starts_at": format_time(args.start),
            "ends_at": format_time(args.until),
            "duration_seconds": args.duration,
            "reason": safe_text(args.reason),
            "scope": list(args.paths) if args.paths else None,
        },
    )


def cmd_off(settings: Settings, args: argparse.Namespace) -> int:
    return make_change(settings, args, {"enabled": False, "reason": safe_text(args.reason)})


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


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    client = remote(args)
    state = MaintenanceState.from_item(client.status()) if client is not None else open_store(settings.store).read()
    now = time.time()
    print(json.dumps(state.describe(now), indent=2) if args.json else describe_state(state, now))
    return EXIT_OK


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    client = remote(args)
    records = client.history(args.limit) if client is not None else open_store(settings.store).history(args.limit)
    if args.json:
        print(json.dumps(records, indent=2))
    elif not records:
        print("no changes recorded")
    else:
        print("\n".join(history_line(record) for record in records))
    return EXIT_OK


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
    url = f"{local_gateway_url(settings)}/health"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310 - a fixed http URL
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

# The flag that sets each field of a change, for error messages.
_FLAGS = {
    "message": "--message",
    "reason": "--reason",
    "mode": "--mode",
    "starts_at": "--from",
    "ends_at": "--until",
    "duration_seconds": "--for",
    "scope": "--paths",
    "limit": "--limit",
}


def in_flags(field: object, message: str, args: argparse.Namespace) -> str:
    """A check's ``field: problem`` with the flag the operator typed in place of the field."""
    if not isinstance(field, str) or field not in _FLAGS:
        return message
    flag = _FLAGS[field]
    if field == "ends_at" and getattr(args, "until", None) is None and getattr(args, "duration", None) is not None:
        flag = "--for"  # the end counted from --from (or now)
    problem = message.removeprefix(f"{field}: ").replace("starts_at", "--from")
    return f"{flag}: {problem}"


# Each error the commands expect: its exit code and how it reads after "maintenance-gateway: ".
# The first matching class wins, so subclasses come before their bases.
_FAILURES: tuple[tuple[type[GatewayError], int, str], ...] = (
    (ConfigError, EXIT_CONFIG, "configuration error: {}"),
    (ConflictError, EXIT_CONFLICT, "{}; someone else changed the state. Check `status` and retry."),
    (StateError, EXIT_USAGE, "invalid state: {}"),
    (StoreError, EXIT_FAILURE, "store error: {}"),
    (GatewayUnreachable, EXIT_UNREACHABLE, "{}"),
)
_ADMIN_EXITS = {412: EXIT_CONFLICT, 400: EXIT_USAGE, 413: EXIT_USAGE, 415: EXIT_USAGE, 401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_AUTH, 429: EXIT_AUTH}


def failure(exc: GatewayError, args: argparse.Namespace) -> tuple[str, int]:
    """What to tell the operator about ``exc``, and the exit code."""
    if isinstance(exc, RequestError):
        # The checks of the admin API, applied to a change written straight to the store.
        return in_flags(exc.field, exc.message, args), EXIT_USAGE
    if isinstance(exc, AdminError):
        payload: dict[str, Any] = exc.payload
        message = payload.get("message")
        said = in_flags(payload.get("field"), message, args) if isinstance(message, str) else str(payload.get("error") or "an error")
        return f"the gateway refused: {said} (HTTP {exc.status})", _ADMIN_EXITS.get(exc.status, EXIT_FAILURE)
    for kind, code, template in _FAILURES:
        if isinstance(exc, kind):
            return template.format(exc), code
    return str(exc), EXIT_FAILURE


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(joined_negative_values(argv))
    try:
        return COMMANDS[args.command](load_settings(overrides=settings_overrides(args)), args)
    except GatewayError as exc:
        message, code = failure(exc, args)
        print(f"maintenance-gateway: {message}", file=sys.stderr)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        # The reader went away (`| head -1`): what it wanted it has; nothing more is written,
        # and the interpreter's own last flush goes to /dev/null instead of raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code
