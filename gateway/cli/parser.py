"""The command line's grammar and help: subcommands, their options, exit codes and time formats."""

from __future__ import annotations

import argparse
import re
import signal
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.admin.changes import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT
from gateway.cli.arguments import (
    MAX_HEALTHCHECK_TIMEOUT,
    parse_duration,
    parse_limit,
    parse_moment,
    parse_paths,
    parse_timeout,
    parse_token,
    parse_url,
    seconds_text,
)
from gateway.cli.waiting import DEFAULT_WAIT_SECONDS
from gateway.errors import ConfigError
from gateway.settings import ADMIN_TOKEN_VARIABLE, ADMIN_URL_VARIABLE, FIELDS
from gateway.state import MODES

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # argparse's own
EXIT_WRITTEN_NOT_WAITED = 3
EXIT_CONFLICT = 4
EXIT_AUTH = 5
EXIT_UNREACHABLE = 6
EXIT_CONFIG = ConfigError.exit_code
# What a shell reports for a command killed by SIGPIPE, as git and coreutils are when their
# reader goes away (`| head`): a pipeline under `set -o pipefail` sees the output was cut short.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

EXIT_MEANINGS = (
    (EXIT_OK, "ok"),
    (EXIT_FAILURE, "failure: a store error, an unhealthy gateway, a --wait that timed out"),
    (EXIT_USAGE, "usage: a bad argument, or a value the gateway refused"),
    (EXIT_WRITTEN_NOT_WAITED, "written, but --wait could not ask the gateway (a refused token, no answer): the change stands"),
    (EXIT_CONFLICT, "conflict: someone else changed the state first"),
    (EXIT_AUTH, "auth: the gateway refused the token"),
    (EXIT_UNREACHABLE, "unreachable: no gateway admin API answers at --url (or it is off)"),
    (EXIT_CONFIG, "config: a setting is wrong (the message names it)"),
    (EXIT_BROKEN_PIPE, "the reader of the output went away (| head), as for git"),
)

EPILOG = "\n".join(
    [
        "exit codes:",
        *(f"  {code:<4} {meaning}" for code, meaning in EXIT_MEANINGS),
        "",
        "times:",
        "  --for DURATION   90s, 30m, 2h, 1h30m, 1d (a bare number is seconds)",
        "  --until, --from  ISO-8601 with a zone (2026-11-26T10:00:00Z), or +DURATION from now (+15m)",
        "",
        "the state:",
        "  on, off, status and history read and write the store (--store, GATEWAY_STORE) directly,",
        f"  unless --url ({ADMIN_URL_VARIABLE}) names a running gateway: then they go through its admin",
        f"  API with --token ({ADMIN_TOKEN_VARIABLE}), and that gateway serves a change at once.",
        "",
        "run `maintenance-gateway COMMAND --help` for a command's options.",
    ]
)

# The flag that sets each field of a request to the admin API (a field of CHANGE_FIELDS, or
# history's limit). Each flag stores its value under the field's name (its ``dest``), and a
# refusal that names a field is shown with the flag the operator typed.
FIELD_FLAGS = {
    "mode": "--mode",
    "message": "--message",
    "starts_at": "--from",
    "ends_at": "--until",
    "duration_seconds": "--for",
    "scope": "--paths",
    "reason": "--reason",
    "limit": "--limit",
}

# The settings each subcommand reads from flags; the others come from GATEWAY_* variables.
_STORE = ("store",)
_LOCAL_GATEWAY = ("host", "port", "admin_prefix")
_ALL_SETTINGS = tuple(field.name for field in FIELDS)

# Flags whose value may start with "-" (a negative duration or limit): argparse would take the
# value for an option and say only "expected one argument".
_FLAGS_WITH_VALUES = ("--for", "--until", "--from", "--wait", "--limit")
_NEGATIVE_NUMBER = re.compile(r"-\d")


def joined_negative_values(argv: Sequence[str]) -> list[str]:
    """``--for -5m`` as ``--for=-5m``, so that argparse hands the value to its type, which says
    what is wrong with it (before ``--``, which ends the options)."""
    joined: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return joined + list(argv[index:])
        following = argv[index + 1] if index + 1 < len(argv) else ""
        if arg in _FLAGS_WITH_VALUES and _NEGATIVE_NUMBER.match(following):
            joined.append(f"{arg}={following}")
            index += 2
        else:
            joined.append(arg)
            index += 1
    return joined


def _add_settings_flags(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    group = parser.add_argument_group("settings (each overrides its GATEWAY_* variable)")
    chosen = set(names)
    for field in FIELDS:
        if field.name in chosen:
            group.add_argument(field.flag, dest=f"setting_{field.name}", metavar="VALUE", help=f"{field.help} [{field.env}]")


def settings_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as flags, keyed by field name."""
    return {
        name.removeprefix("setting_"): value
        for name, value in vars(args).items()
        if name.startswith("setting_") and value is not None
    }


def _add_remote_flags(parser: argparse.ArgumentParser) -> None:
    # The variables are read after parsing (see commands.remote), so that a bad one is named.
    group = parser.add_argument_group("through a running gateway instead of the store")
    group.add_argument("--url", type=parse_url, metavar="URL", help=f"the gateway, e.g. http://127.0.0.1:8080 [{ADMIN_URL_VARIABLE}]")
    group.add_argument("--token", type=parse_token, help=f"an admin token [{ADMIN_TOKEN_VARIABLE}]")


_FOLLOWING = "Gateways that read the store follow within GATEWAY_REFRESH_INTERVAL; --wait returns once they do."


def _add_field_flag(parser: argparse._ActionsContainer, field: str, **kwargs: Any) -> None:
    parser.add_argument(FIELD_FLAGS[field], dest=field, **kwargs)


def _add_change_flags(parser: argparse.ArgumentParser) -> None:
    """What ``on`` and ``off`` share, after their own options: why, --wait, and where to write."""
    _add_field_flag(parser, "reason", default="", metavar="TEXT", help="why (kept with the state for the record)")
    parser.add_argument(
        "--wait",
        nargs="?",
        const=DEFAULT_WAIT_SECONDS,
        type=parse_duration,
        metavar="SECONDS",
        help=(
            "return once the gateways serve the change, or exit 1 after SECONDS "
            f"(default {seconds_text(DEFAULT_WAIT_SECONDS)}); asks --url's health, "
            "else the local gateway's (GATEWAY_PORT; with --token it checks the version, the fields and the store read)"
        ),
    )
    _add_remote_flags(parser)
    _add_settings_flags(parser, _STORE)


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, details: str = ""
) -> argparse.ArgumentParser:
    sentence = summary[0].upper() + summary[1:] + "."
    return commands.add_parser(name, help=summary, description=f"{sentence} {details}".strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maintenance-gateway",
        description="A maintenance switch for Django: forward to the app or answer a CORS-readable 503.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _command(commands, "serve", "run the gateway")
    _add_settings_flags(serve, _ALL_SETTINGS)

    check = _command(commands, "check-config", "validate the settings and print them, secrets masked")
    check.add_argument("--json", action="store_true", help="print JSON")
    _add_settings_flags(check, _ALL_SETTINGS)

    on = _command(commands, "on", "turn maintenance on", _FOLLOWING)
    _add_field_flag(on, "message", default="", metavar="TEXT", help="shown to users (default: the gateway's message)")
    window = on.add_mutually_exclusive_group()
    _add_field_flag(window, "duration_seconds", type=parse_duration, metavar="DURATION", help="end after this long (90s, 30m, 2h, 1h30m, 1d)")
    _add_field_flag(window, "ends_at", type=parse_moment, metavar="TIME", help="end at this time (ISO-8601 with zone, or +DURATION)")
    _add_field_flag(on, "starts_at", type=parse_moment, metavar="TIME", help="start at this time instead of now (ISO-8601 with zone, or +DURATION)")
    _add_field_flag(on, "mode", choices=MODES, default="full", help="full: every request gets the 503; read-only: GET, HEAD and OPTIONS still reach Django (default full)")
    _add_field_flag(
        on,
        "scope",
        type=parse_paths,
        metavar="PREFIX,...",
        help="only these path prefixes (whole segments) are in maintenance, e.g. /api/checkout/,/api/payments/",
    )
    _add_change_flags(on)

    off = _command(commands, "off", "turn maintenance off", _FOLLOWING)
    _add_change_flags(off)

    status = _command(commands, "status", "show the state")
    status.add_argument("--json", action="store_true", help="print JSON")
    _add_remote_flags(status)
    _add_settings_flags(status, _STORE)

    history = _command(commands, "history", "show the latest changes, newest first")
    _add_field_flag(
        history,
        "limit",
        type=parse_limit,
        default=DEFAULT_HISTORY_LIMIT,
        help=f"how many changes, 1..{MAX_HISTORY_LIMIT} (default {DEFAULT_HISTORY_LIMIT})",
    )
    history.add_argument("--json", action="store_true", help="print JSON")
    _add_remote_flags(history)
    _add_settings_flags(history, _STORE)

    init_table = _command(commands, "init-table", "create the DynamoDB table of GATEWAY_STORE (safe to run twice)")
    _add_settings_flags(init_table, _STORE)

    health = _command(commands, "healthcheck", "exit 0 when the local gateway's health answers 200 (container health check)")
    health.add_argument(
        "--timeout",
        type=parse_timeout,
        default=3.0,
        metavar="SECONDS",
        help=f"seconds to wait for the answer, at most {seconds_text(MAX_HEALTHCHECK_TIMEOUT)} (default 3)",
    )
    _add_settings_flags(health, _LOCAL_GATEWAY)
    return parser
