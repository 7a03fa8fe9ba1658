"""What ``--help`` tells an operator: each subcommand's own options, the exit codes, the time formats."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gateway.admin.changes import CHANGE_FIELDS
from gateway.admin.updates import UPDATE_FIELDS
from gateway.cli.parser import FIELD_FLAGS, build_parser
from gateway.settings import FIELDS
from tests.support import cli

# The options each subcommand shows, its own first; only serve and check-config take every setting.
SETTINGS_FLAGS = [field.flag for field in FIELDS]
EXPECTED_OPTIONS = {
    "serve": SETTINGS_FLAGS,
    "check-config": ["--json", "--site", *SETTINGS_FLAGS],
    "on": ["--message", "--for", "--until", "--from", "--mode", "--paths", "--label", "--replace", "--reason", "--by", "--wait", "--site", "--url", "--token", "--store"],
    "off": ["--reason", "--by", "--wait", "--site", "--url", "--token", "--store"],
    "update": ["--message", "--for", "--until", "--from", "--mode", "--paths", "--whole-site", "--reason", "--by", "--wait", "--site", "--url", "--token", "--store"],
    "extend": ["--for", "--until", "--reason", "--by", "--wait", "--site", "--url", "--token", "--store"],
    "status": ["--json", "--site", "--url", "--token", "--store"],
    "history": ["--limit", "--json", "--site", "--url", "--token", "--store"],
    "override": [
        "--ttl", "--reason", "--message", "--attempts", "--timeout", "--tasks", "--ecs-cluster", "--ecs-service", "--ecs-region",
        "--site", "--url", "--token",
    ],
    "init-table": ["--site", "--store"],
    "healthcheck": ["--timeout", "--host", "--port", "--admin-prefix"],
    "ecs-task-definition": [
        "--from", "--nginx-image", "--gateway-image", "--store", "--admin-tokens-secret", "--bypass-secret",
        "--django-container", "--django-port", "--django-health-path", "--allowed-origins", "--cors-allow-credentials", "--cors-allow-headers",
    ],
    "verify": ["--url", "--token", "--tasks", "--attempts", "--max-age", "--allow-others"],
}


def shown_options(help_text: str) -> list[str]:
    """The long options a help text lists, in order (``-h, --help`` left out)."""
    return [match for match in re.findall(r"(?m)^\s{2}(?:-\w, )?(--[a-z][a-z-]*)", help_text) if match != "--help"]


def test_each_subcommand_lists_only_the_options_it_uses_its_own_first(tmp_path: Path) -> None:
    for command, expected in EXPECTED_OPTIONS.items():
        result = cli(command, "--help", store=tmp_path / "state.json")
        assert result.returncode == 0, result.stderr
        assert shown_options(result.stdout) == expected, (command, result.stdout)


def test_every_option_has_help_and_every_subcommand_a_description() -> None:
    parser = build_parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    summaries = {choice.dest: choice.help for choice in subparsers._choices_actions}
    assert set(summaries) == set(EXPECTED_OPTIONS)
    for name, subparser in subparsers.choices.items():
        summary = summaries[name]
        assert summary and "\n" not in summary, name
        assert subparser.description, name
        for action in subparser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.option_strings)


def test_top_level_help_explains_exit_codes_times_and_the_way_to_the_state(tmp_path: Path) -> None:
    result = cli("--help", store=tmp_path / "state.json")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for code, meaning in (("0", "ok"), ("1", "failure"), ("2", "usage"), ("4", "conflict"), ("5", "auth"), ("6", "unreachable"), ("78", "config")):
        assert re.search(rf"\b{code}\b[^0-9]*{meaning}", text, re.IGNORECASE), (code, meaning, text)
    for example in ("90s", "30m", "2h", "1h30m", "1d", "ISO-8601", "+DURATION", "GATEWAY_ADMIN_URL", "GATEWAY_ADMIN_TOKEN", "--url", "--token"):
        assert example in text, example
    for command in EXPECTED_OPTIONS:
        assert command in text


def test_the_flags_of_a_change_store_their_values_as_the_fields_of_the_request() -> None:
    """What lets a refusal that names a field (``starts_at``) name the flag typed (``--from``)."""
    assert set(FIELD_FLAGS) <= {*CHANGE_FIELDS, *UPDATE_FIELDS, "limit"}
    typed = ["--message", "m", "--for", "1h", "--from", "+1h", "--mode", "read-only", "--paths", "/a/", "--label", "A", "--reason", "r"]
    on = vars(build_parser().parse_args(["on", *typed]))
    flag_of = {field: flag for field, flag in FIELD_FLAGS.items() if on.get(field) is not None}
    assert sorted(flag_of.values()) == sorted(typed[::2])
    history = vars(build_parser().parse_args(["history", "--limit", "7"]))
    assert history["limit"] == 7 and FIELD_FLAGS["limit"] == "--limit"
