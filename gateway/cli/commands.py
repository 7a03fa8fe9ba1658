"""``maintenance-gateway`` (also ``python -m gateway``): run the gateway and operate it."""

from __future__ import annotations

import argparse
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

from gateway.admin.changes import field_problem, next_state
from gateway.admin.state_changes import ChangeOutcome, apply_operator_change, written_at
from gateway.admin.updates import updated_state
from gateway.cli.changed_fields import describe_fields
from gateway.cli.edits import UNKNOWN_CALLER, caller_record, extend_body, update_body, with_by
from gateway.cli.client import AdminClient
from gateway.cli.override import override_everywhere, served_fields, served_lines
from gateway.cli.output import describe_replaced, describe_state, describe_unchanged, history_line, shown
from gateway.cli.parser import (
    EXIT_AUTH,
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    EXIT_WRITTEN_NOT_WAITED,
    FIELD_FLAGS,
    parse_command_line,
    settings_overrides,
)
from gateway.cli.arguments import duration_text, seconds_text
from gateway.cli.targets import (
    Target,
    choose,
    gateway_target,
    item_exists,
    item_name,
    on_the_state,
    refuse_the_default_store,
    say,
    say_store,
    store_target,
)
from gateway.cli import taskdef, verify
from gateway.cli.waiting import confirmation, wait_until_served
from gateway.errors import AdminError, ConfigError, ConflictError, GatewayError, GatewayUnreachable, RequestError, StateError, StoreError
from gateway.settings import FIELDS, Settings, load_settings
from gateway.state import MaintenanceState, format_time, safe_text
from gateway.stores import open_store


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (cli)"


def local_gateway_url(settings: Settings) -> str:
    """The admin endpoints of the gateway this host runs (GATEWAY_HOST, GATEWAY_PORT, GATEWAY_ADMIN_PREFIX)."""
    return local_admin_url(settings.host, settings.port, settings.admin_prefix)


def local_admin_url(host: str, port: int, admin_prefix: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}{admin_prefix}"


# What ``healthcheck`` reads: a container health check must not fail over a setting the
# gateway it asks does not depend on for its health (a store directory absent in the check's view).
_HEALTHCHECK_SETTINGS = ("host", "port", "admin_prefix")


def healthcheck_url(overrides: dict[str, str]) -> str:
    """The local gateway's health URL from its address settings alone, each checked as ``serve`` checks it."""
    values: dict[str, Any] = {}
    for field in FIELDS:
        if field.name not in _HEALTHCHECK_SETTINGS:
            continue
        key, raw = (field.flag, overrides[field.name]) if field.name in overrides else (field.env, os.environ.get(field.env, field.default))
        try:
            values[field.name] = field.parse(raw)
        except ValueError as exc:
            raise ConfigError(key, raw, str(exc)) from None
    return f"{local_admin_url(values['host'], values['port'], values['admin_prefix'])}/health"


def change_through(client: AdminClient, body: dict[str, object], patch: bool = False) -> ChangeOutcome:
    answer = client.update(body) if patch else client.set(body)
    new = MaintenanceState.from_item(answer)
    replaced = answer.get("replaced")
    # The state the change was built on, when the gateway says (``previous``); an older one does not.
    previous = answer.get("previous")
    return ChangeOutcome(
        new if answer.get("changed") is False else MaintenanceState.from_description(previous) if isinstance(previous, dict) else None,
        new,
        MaintenanceState.from_item(replaced) if isinstance(replaced, dict) else None,
    )


def change_in_store(settings: Settings, body: dict[str, object], patch: bool = False) -> ChangeOutcome:
    """The change ``body`` asks for, built by ``next_state`` (``updated_state`` for a patch) as the
    admin API builds it, written to the store; with the AWS caller identity in its history record
    when the store is DynamoDB (asked once; "unknown", and said so, when it cannot be had)."""
    store = open_store(settings.store)
    record, unknown = caller_record(store)
    if unknown is not None:
        print(
            f"maintenance-gateway: warning: the AWS caller identity could not be read ({shown(unknown)}); "
            f"the history records aws_caller \"{UNKNOWN_CALLER}\"",
            file=sys.stderr,
        )
    build = updated_state if patch else next_state
    return apply_operator_change(store, lambda current: build(current, body, now=time.time(), actor=actor()), record=record)


def make_change(
    settings: Settings, args: argparse.Namespace, client: AdminClient | None, body: dict[str, object], patch: bool = False
) -> int:
    """``on``, ``off``, ``update`` and ``extend`` (``patch``: only the fields of ``body`` change):
    one body, sent to a gateway or written to the store; what it kept and changed, field by field;
    then, with --wait, wait until the gateways serve it."""
    # The gateway --wait asks and its token were checked before anything is written (targets.choose).
    target: Target = args.target
    change = change_through(client, body, patch) if client is not None else change_in_store(settings, body, patch)
    state = change.new
    follow = seconds_text(settings.refresh_interval)
    if not change.changed:
        print(describe_unchanged(state))
    else:
        print(describe_state(state, time.time()))
        if vars(args).get("duration_seconds") is not None:
            # Said in seconds too: `--for 30` is 30 s, not 30 minutes.
            print(f"for:         {duration_text(args.duration_seconds)}")
        if change.old is not None:
            print(describe_fields(change.old, state, written_at(state)))
        if change.replaced is not None and not patch:
            # What the window was when the change replaced it: active or upcoming.
            print(describe_replaced(change.replaced, change.replaced.status(written_at(state)), state))
        if client is not None:
            print(f"this gateway serves it now; others within {follow} s (GATEWAY_REFRESH_INTERVAL)")
        else:
            print(f"gateways follow within {follow} s (GATEWAY_REFRESH_INTERVAL)")
    if args.wait is None:
        return EXIT_OK
    # Also when nothing changed: the change asked for before may not be served yet.
    watched = client if client is not None else AdminClient(target.url or local_gateway_url(settings), target.token)
    # A change this command wrote itself is served only by gateways that read the same store.
    wrote_to = None if client is not None else open_store(settings.store).description
    try:
        why = wait_until_served(watched, state, args.wait, wrote_to)
    except GatewayError as exc:
        message, _ = failure(exc, args)
        print(f"maintenance-gateway: written (version {state.version}); could not wait: {message}", file=sys.stderr)
        return EXIT_WRITTEN_NOT_WAITED
    if why is not None:
        print(f"maintenance-gateway: {why}", file=sys.stderr)
        return EXIT_FAILURE
    print(confirmation(state, watched.has_token, time.time(), watched.base))
    return EXIT_OK


def cmd_on(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    if client is None and not item_exists(open_store(settings.store)):
        say(f"no such item yet: this change creates {item_name(args.named_target)}")
    # The one shape of "turn on", checked by the same ``next_state`` whether it goes to a
    # gateway or straight to the store.
    return make_change(
        settings,
        args,
        client,
        {
            "enabled": True,
            "mode": args.mode,
            # Undecodable bytes in argv arrive as lone surrogates; they are repaired, not refused.
            "message": safe_text(args.message),
            "starts_at": format_time(args.starts_at),
            "ends_at": format_time(args.ends_at),
            "duration_seconds": args.duration_seconds,
            "reason": safe_text(args.reason),
            "scope": list(args.scope) if args.scope else None,
            # Sent only when given: a gateway older than the field refuses it.
            **({"label": safe_text(args.label)} if args.label else {}),
            # An active or upcoming window with other times or paths is refused without
            # --replace; with it the field is left out, a plain PUT, as older gateways take it.
            **({} if args.replace else {"replace": False}),
            **with_by({}, args),
        },
    )


def cmd_off(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    if client is None and not item_exists(open_store(settings.store)):
        # A mistyped key or path reads as "off" too: saying "already off" would hide it.
        say(f"no such item: {item_name(args.named_target)}; nothing written (gateways reading it serve no maintenance): check the store")
        return EXIT_FAILURE
    return make_change(settings, args, client, with_by({"enabled": False, "reason": safe_text(args.reason)}, args))


def cmd_update(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    return make_change(settings, args, client, update_body(args), patch=True)


def cmd_extend(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    return make_change(settings, args, client, extend_body(args), patch=True)


def cmd_serve(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    from gateway.server.uvicorn_setup import serve

    return serve(settings)


def cmd_check_config(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    described = settings.describe()
    if args.json:
        print(json.dumps(described, indent=2))
    else:
        width = max(len(key) for key in described)
        for key, value in described.items():
            print(f"{key.ljust(width)}  {value}")
    return EXIT_OK


def cmd_status(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    served: dict[str, Any] = {}  # through a gateway: what it serves of the state, and why
    if client is not None:
        answer = client.status()
        state = MaintenanceState.from_description(answer)
        served = served_fields(answer)
        target = args.named_target
    else:
        store = open_store(settings.store)
        state = store.read()
        # A store never written reads as off, version 0, as does a mistyped key: told apart here.
        if state.version == 0 and not item_exists(store):
            say(f"no such item: {item_name(args.named_target)} (never written, or deleted): check the store, or `on` creates it")
            return EXIT_FAILURE
        target = store_target(store, settings.store, args.target)
    now = time.time()
    if args.json:
        print(json.dumps({**state.describe(now), **served, "target": target}, indent=2))
    else:
        print("\n".join([describe_state(state, now), *served_lines(served)]))
    return EXIT_OK


def cmd_override(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    override_everywhere(args, client)
    return EXIT_OK


def cmd_history(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    records = client.history(args.limit) if client is not None else open_store(settings.store).history(args.limit)
    if args.json:
        print(json.dumps(records, indent=2))
    elif not records:
        print("no changes recorded")
    else:
        print("\n".join(history_line(record) for record in records))
    return EXIT_OK


def cmd_init_table(settings: Settings, args: argparse.Namespace, client: AdminClient | None) -> int:
    from gateway.stores.dynamodb import DynamoDBStore

    store = open_store(settings.store)
    if not isinstance(store, DynamoDBStore):
        print(f"maintenance-gateway: init-table needs a dynamodb:// store; GATEWAY_STORE is {settings.store}", file=sys.stderr)
        return EXIT_USAGE
    created = store.create_table()
    table = store.location.table
    print(f"created table {table} (on-demand billing)" if created else f"table {table} already exists; nothing to do")
    return EXIT_OK


def healthcheck(url: str, timeout: float) -> int:
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


# Each command with its settings, its arguments, and the running gateway it goes through (--url), if any.
COMMANDS: dict[str, Callable[[Settings, argparse.Namespace, AdminClient | None], int]] = {
    "serve": cmd_serve,
    "check-config": cmd_check_config,
    "on": cmd_on,
    "off": cmd_off,
    "update": cmd_update,
    "extend": cmd_extend,
    "status": cmd_status,
    "history": cmd_history,
    "init-table": cmd_init_table,
    "override": cmd_override,
}

# Commands for deploying the gateway on ECS, which read no GATEWAY_* settings (cli/taskdef.py, cli/verify.py).
DEPLOY_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"ecs-task-definition": taskdef.run, "verify": verify.run}


def in_flags(field: object, message: str, args: argparse.Namespace) -> str:
    """A refusal naming ``field`` (``field: problem``, as ``invalid`` writes it) as the operator
    typed it: ``flag: problem``."""
    if not isinstance(field, str) or field not in FIELD_FLAGS:
        return message
    flag = FIELD_FLAGS[field]
    duration, starts = vars(args).get("duration_seconds"), vars(args).get("starts_at")
    if field == "ends_at" and vars(args).get("ends_at") is None and duration is not None:
        if starts is not None and starts + duration <= time.time():
            # The end counted from a start in the past: the start is what to change.
            return (
                f"--from: {format_time(starts)} is in the past, and --for {duration_text(duration)} from it ends in the past too; "
                "give a later --from, or leave it out to start now"
            )
        flag = FIELD_FLAGS["duration_seconds"]  # the end counted from --from (or now)
    return f"{flag}: {field_problem(field, message)}"


# Each error the commands expect: its exit code and how it reads after "maintenance-gateway: ".
# The first matching class wins, so subclasses come before their bases.
_FAILURES: tuple[tuple[type[GatewayError], int, str], ...] = (
    (ConfigError, EXIT_CONFIG, "configuration error: {}"),
    (ConflictError, EXIT_CONFLICT, "{}; someone else changed the state. Check `status` and retry."),
    (StateError, EXIT_USAGE, "invalid state: {}"),
    (StoreError, EXIT_FAILURE, "store error: {}"),
    (GatewayUnreachable, EXIT_UNREACHABLE, "{}"),
)
_ADMIN_EXITS = {412: EXIT_CONFLICT, 400: EXIT_USAGE, 409: EXIT_USAGE, 413: EXIT_USAGE, 415: EXIT_USAGE, 401: EXIT_AUTH, 403: EXIT_AUTH, 429: EXIT_AUTH}


def failure(exc: GatewayError, args: argparse.Namespace) -> tuple[str, int]:
    """What to tell the operator about ``exc``, and the exit code."""
    if isinstance(exc, RequestError):
        # The checks of the admin API, applied to a change written straight to the store.
        return in_flags(exc.field, exc.message, args), EXIT_USAGE
    if isinstance(exc, AdminError):
        payload: dict[str, Any] = exc.payload
        message = payload.get("message")
        # Whatever answers at --url wrote it: shown as seen, never obeyed by the terminal.
        said = in_flags(payload.get("field"), shown(message), args) if isinstance(message, str) else shown(str(payload.get("error") or "an error"))
        return f"the gateway refused: {said} (HTTP {exc.status})", _ADMIN_EXITS.get(exc.status, EXIT_FAILURE)
    for kind, code, template in _FAILURES:
        if isinstance(exc, kind):
            return template.format(exc), code
    return str(exc), EXIT_FAILURE


# What GATEWAY_STORE reads as through a gateway (--url): that gateway's store is used, not this
# host's, so this host's setting is neither opened nor checked (a directory it names may not exist here).
_STORE_OF_ANOTHER_GATEWAY = "memory:"


def run(argv: Sequence[str]) -> int:
    args = parse_command_line(argv)
    try:
        overrides = settings_overrides(args)
        if args.command == "healthcheck":
            return healthcheck(healthcheck_url(overrides), args.timeout)
        if args.command in DEPLOY_COMMANDS:
            # No site, store or settings: what they need is on their own command line.
            return DEPLOY_COMMANDS[args.command](args)
        # The site, the store or the gateway, and the token: flags, then variables, then the site.
        target = args.target = choose(args, overrides)
        client = target.client
        if client is not None:
            overrides["store"] = _STORE_OF_ANOTHER_GATEWAY
        refuse_the_default_store(args, target)
        settings = load_settings(env=target.environment, overrides=overrides)
        if on_the_state(args):
            # Named before anything is read or written: a wrong site shows before it is changed.
            args.named_target = gateway_target(client, target) if client is not None else say_store(open_store(settings.store), settings.store, target)
        return COMMANDS[args.command](settings, args, client)
    except argparse.ArgumentError as exc:
        print(f"maintenance-gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
