"""The command line's grammar and help: subcommands, their options, exit codes and time formats."""

from __future__ import annotations

import argparse
import difflib
import re
import signal
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from gateway.admin.changes import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT
from gateway.cli.arguments import (
    MAX_HEALTHCHECK_TIMEOUT,
    duration_text,
    parse_bounded_duration,
    parse_count,
    parse_duration,
    parse_limit,
    parse_moment,
    parse_paths,
    parse_timeout,
    parse_token,
    parse_url,
    seconds_text,
)
from gateway.cli.override import DEFAULT_TIMEOUT_SECONDS, MAX_ATTEMPTS, MAX_TIMEOUT_SECONDS
from gateway.cli.waiting import DEFAULT_WAIT_SECONDS
from gateway.errors import ConfigError
from gateway.override import DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS
from gateway.settings import ADMIN_TOKEN_VARIABLE, ADMIN_URL_VARIABLE, FIELDS, SITE_VARIABLE, SITES_FILE_VARIABLE
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
    (EXIT_FAILURE, "failure: a store error, no such item, an unhealthy gateway, a --wait that timed out"),
    (EXIT_USAGE, "usage: a bad argument, or a value the gateway refused"),
    (EXIT_WRITTEN_NOT_WAITED, "written, but --wait could not ask the gateway (a refused token, no answer): the change stands"),
    (EXIT_CONFLICT, "conflict: someone else changed the state first"),
    (EXIT_AUTH, "auth: the gateway refused the token"),
    (EXIT_UNREACHABLE, "unreachable: no gateway admin API answers at --url (or it is off)"),
    (EXIT_CONFIG, "config: a setting is wrong (the message names it)"),
    (EXIT_BROKEN_PIPE, "the reader of the output went away (| head), as for git"),
)

DEFAULT_SITES_FILE = "~/.config/maintenance-gateway/sites.toml"
SITE_HELP = f"the site of the sites file ({DEFAULT_SITES_FILE}, or {SITES_FILE_VARIABLE}) [{SITE_VARIABLE}]"

EPILOG = "\n".join(
    [
        "exit codes:",
        *(f"  {code:<4} {meaning}" for code, meaning in EXIT_MEANINGS),
        "",
        "times:",
        "  --for DURATION   90s, 30m, 2h, 1h30m, 1d (a bare number is seconds: --for 30 is 30 s)",
        "  --until, --from  ISO-8601 with a zone (2026-11-26T10:00:00Z), or +DURATION from now (+15m)",
        "",
        "the state:",
        "  on, off, update, extend, status and history read and write the store (--store, GATEWAY_STORE) directly,",
        f"  unless --url ({ADMIN_URL_VARIABLE}) names a running gateway: then they go through its admin",
        f"  API with --token ({ADMIN_TOKEN_VARIABLE}), and that gateway serves a change at once.",
        "  Each names its target (the file, or the table, key and region, or the gateway) on stderr first.",
        "",
        "sites:",
        f"  --site NAME ({SITE_VARIABLE}) takes a site's store, url and token from {DEFAULT_SITES_FILE}",
        f"  ({SITES_FILE_VARIABLE} moves it); a flag or variable overrides the site's value, and says so.",
        "  Without a site, GATEWAY_STORE or --store (or --url), these commands refuse the relative default",
        "  file:maintenance-state.json, which is make run's (exit 78).",
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
    "label": "--label",
    "reason": "--reason",
    "by": "--by",
    # extend's --for and --until (PATCH's extend_seconds, extend_until): they move the end.
    "extend_seconds": "--for",
    "extend_until": "--until",
    "limit": "--limit",
}

# The settings each subcommand reads from flags; the others come from GATEWAY_* variables.
_STORE = ("store",)
_LOCAL_GATEWAY = ("host", "port", "admin_prefix")
_ALL_SETTINGS = tuple(field.name for field in FIELDS)

# Flags whose value may start with "-" (a negative duration or limit): argparse would take the
# value for an option and say only "expected one argument".
_FLAGS_WITH_VALUES = ("--for", "--until", "--from", "--wait", "--limit", "--ttl", "--timeout")
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


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed; an unknown option is refused (exit 2) with the option it was probably meant
    to be, as git and kubectl suggest one (argparse before Python 3.14 suggests nothing)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(joined_negative_values(argv))
    if extras:
        subcommand = _subcommands(parser).get(args.command)
        options = [*_long_options(parser), *(_long_options(subcommand) if subcommand is not None else [])]
        suggestions = []
        for extra in extras:
            typed = extra.split("=", 1)[0]
            close = difflib.get_close_matches(typed, options, n=1, cutoff=0.6) if typed.startswith("--") else []
            if close:
                suggestions.append(f"{typed}: did you mean {close[0]}?")
        hint = f" ({'; '.join(suggestions)})" if suggestions else ""
        _refuse(subcommand or parser, f"unrecognized arguments: {' '.join(extras)}{hint}")
    return args


def _refuse(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings if option.startswith("--")]


class _Parser(argparse.ArgumentParser):
    """A parser that never takes an abbreviation for an option (--mess for --message, --re for
    --reason or --replace): the subcommands' parsers are made of this class too, whoever adds them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


class _Version(argparse.Action):
    """``--version``: the installed package's version, read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("maintenance-gateway")
        except PackageNotFoundError:
            installed = "(not installed: run from a checkout)"
        print(f"{parser.prog} {installed}")  # on stdout, as argparse's own version action prints
        parser.exit()


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


def _add_site_flag(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not overwrite a --site given before the subcommand.
    group = parser.add_argument_group("the site (its values come after flags and variables)")
    group.add_argument("--site", default=argparse.SUPPRESS, metavar="NAME", help=SITE_HELP)


def _add_remote_flags(parser: argparse.ArgumentParser) -> None:
    # The variables are read after parsing (see cli.targets), so that a bad one is named.
    _add_site_flag(parser)
    group = parser.add_argument_group("through a running gateway instead of the store")
    group.add_argument("--url", type=parse_url, metavar="URL", help=f"the gateway, e.g. http://127.0.0.1:8080 [{ADMIN_URL_VARIABLE}]")
    group.add_argument("--token", type=parse_token, help=f"an admin token [{ADMIN_TOKEN_VARIABLE}]")


_FOLLOWING = "Gateways that read the store follow within GATEWAY_REFRESH_INTERVAL; --wait returns once they do."


def _add_field_flag(parser: argparse._ActionsContainer, field: str, **kwargs: Any) -> None:
    parser.add_argument(FIELD_FLAGS[field], dest=field, **kwargs)


def _add_change_flags(parser: argparse.ArgumentParser, reason: str | None = "") -> None:
    """What every change shares, after its own options: why, who, --wait, and where to write.
    ``reason``: the default of --reason (None for update and extend, which keep the stored one)."""
    kept = "" if reason == "" else "; default: the stored one is kept"
    _add_field_flag(parser, "reason", default=reason, metavar="TEXT", help=f"why (kept with the state for the record{kept})")
    _add_field_flag(
        parser,
        "by",
        metavar="NAME",
        help="who asks for the change, recorded beside user@host (or the admin token's name) in updated_by and the history",
    )
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
    # allow_abbrev=False: --mess must not be taken for --message (nor --re for --reason or --replace).
    return commands.add_parser(name, help=summary, description=f"{sentence} {details}".strip(), allow_abbrev=False)


_KEPT = "Only the fields given change; every other one is kept (PATCH). Refused when no window is active or upcoming."


def _add_update_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    update = _command(commands, "update", "change some fields of the active or upcoming window", f"{_KEPT} {_FOLLOWING}")
    _add_field_flag(update, "message", metavar="TEXT", help="shown to users (\"\" for the gateway's message)")
    window = update.add_mutually_exclusive_group()
    _add_field_flag(
        window, "duration_seconds", type=parse_duration, metavar="DURATION",
        help="end this long after the start (--from, else the kept start while it is ahead, else now)",
    )
    _add_field_flag(window, "ends_at", type=parse_moment, metavar="TIME", help="end at this time (earlier or later)")
    _add_field_flag(update, "starts_at", type=parse_moment, metavar="TIME", help="start at this time (ISO-8601 with zone, or +DURATION)")
    _add_field_flag(update, "mode", choices=MODES, help="full or read-only")
    paths = update.add_mutually_exclusive_group()
    _add_field_flag(paths, "scope", type=parse_paths, metavar="PREFIX,...", help="only these path prefixes are in maintenance")
    paths.add_argument("--whole-site", dest="scope", action="store_const", const=(), help="every path is in maintenance (no --paths)")
    _add_change_flags(update, reason=None)


def _add_extend_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    extend = _command(
        commands, "extend", "move the end of the active or upcoming window later",
        f"Every other field is kept (PATCH); refused for a window without an end, or when none is active or upcoming. {_FOLLOWING}",
    )
    end = extend.add_mutually_exclusive_group(required=True)
    _add_field_flag(end, "extend_seconds", type=parse_duration, metavar="DURATION", help="end this much later than now planned (30m, 1h)")
    _add_field_flag(end, "extend_until", type=parse_moment, metavar="TIME", help="end at this later time (ISO-8601 with zone, or +DURATION)")
    _add_change_flags(extend, reason=None)


def _add_override_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    override = _command(
        commands,
        "override",
        "set or clear the emergency override on every task, for when the store cannot be written",
        "Each gateway process holds it in memory and serves maintenance on or off by it instead of the stored "
        "state, until its TTL, `override clear`, or a change of the store. The call is repeated on fresh "
        "connections through --url (the ALB) until every task has answered (--tasks, or the service's RUNNING "
        "tasks from ECS with your AWS credentials); exit 1 names the tasks not reached.",
    )
    override.add_argument("action", choices=("on", "off", "clear"), help="on: maintenance; off: no maintenance; clear: drop the override")
    override.add_argument(
        "--ttl",
        type=parse_bounded_duration(MAX_TTL_SECONDS),
        metavar="DURATION",
        help=f"how long it stays at most (default {duration_text(DEFAULT_TTL_SECONDS)}, at most {duration_text(MAX_TTL_SECONDS)})",
    )
    override.add_argument("--reason", default="", metavar="TEXT", help="why (in the audit log and the detailed health)")
    override.add_argument("--message", default="", metavar="TEXT", help="with on: shown to users (default: the gateway's message)")
    tasks = override.add_argument_group("the tasks to reach (one of)")
    tasks.add_argument("--tasks", type=parse_count(MAX_ATTEMPTS), metavar="N", help="this many tasks (off ECS: gateway processes)")
    tasks.add_argument("--ecs-cluster", metavar="CLUSTER", help="with --ecs-service: the service's RUNNING tasks, listed by ECS")
    tasks.add_argument("--ecs-service", metavar="SERVICE", help="the ECS service whose tasks run the gateway")
    tasks.add_argument("--ecs-region", metavar="REGION", help="the service's region (default: AWS_REGION, the AWS profile)")
    override.add_argument(
        "--attempts", type=parse_count(MAX_ATTEMPTS), metavar="N", help=f"calls at most (default 10 per task, at least 20; up to {MAX_ATTEMPTS})"
    )
    override.add_argument(
        "--timeout",
        type=parse_bounded_duration(MAX_TIMEOUT_SECONDS),
        metavar="DURATION",
        help=f"time at most (default {duration_text(DEFAULT_TIMEOUT_SECONDS)}, at most {duration_text(MAX_TIMEOUT_SECONDS)})",
    )
    _add_remote_flags(override)


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="maintenance-gateway",
        description="A maintenance switch for Django: forward to the app or answer a CORS-readable 503.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action=_Version, help="print the installed version and exit")
    parser.add_argument("--site", metavar="NAME", help=SITE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _command(commands, "serve", "run the gateway")
    _add_settings_flags(serve, _ALL_SETTINGS)

    check = _command(commands, "check-config", "validate the settings and print them, secrets masked")
    check.add_argument("--json", action="store_true", help="print JSON")
    _add_site_flag(check)
    _add_settings_flags(check, _ALL_SETTINGS)

    on = _command(commands, "on", "turn maintenance on", _FOLLOWING)
    _add_field_flag(on, "message", default="", metavar="TEXT", help="shown to users (default: the gateway's message)")
    window = on.add_mutually_exclusive_group()
    _add_field_flag(window, "duration_seconds", type=parse_duration, metavar="DURATION", help="end after this long (90s, 30m, 2h, 1h30m, 1d; a bare number is seconds: 30 is 30 s)")
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
    _add_field_flag(
        on,
        "label",
        metavar="TEXT",
        help="with --paths: what customers are told is down, e.g. \"Checkout\" (front ends show it, never the paths)",
    )
    on.add_argument(
        "--replace",
        action="store_true",
        help="replace an active or upcoming window with other times or paths (refused without it: see update, extend)",
    )
    _add_change_flags(on)

    off = _command(commands, "off", "turn maintenance off", _FOLLOWING)
    _add_change_flags(off)

    _add_update_command(commands)
    _add_extend_command(commands)

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

    _add_override_command(commands)

    init_table = _command(commands, "init-table", "create the DynamoDB table of GATEWAY_STORE (safe to run twice)")
    _add_site_flag(init_table)
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

    # Deploy-time commands, each in its own module (imported here: they use this module's exit codes).
    from gateway.cli.taskdef import add_taskdef_command
    from gateway.cli.verify import add_verify_command

    add_taskdef_command(commands)
    add_verify_command(commands)
    return parser
