"""The command line's rough edges, as the installed command meets them: --version, bare seconds,
a time typed as a duration, the flag to blame, mistyped and abbreviated options, a stray --token."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from gateway.stores.file import FileStore
from tests.support import cli


def test_version_is_the_installed_package_s(tmp_path: Path) -> None:
    result = cli("--version", store=tmp_path / "state.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"maintenance-gateway {version('maintenance-gateway')}\n"


def test_a_bare_number_for_is_seconds_and_the_output_says_so(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    result = cli("on", "--for", "30", store=store)
    assert result.returncode == 0, result.stderr
    assert "for:         30 s" in result.stdout.splitlines(), result.stdout
    state = FileStore(str(store)).read()
    assert state.ends_at is not None and state.updated_at is not None and round(state.ends_at - state.updated_at) == 30
    minutes = cli("on", "--for", "30m", store=tmp_path / "other.json")
    assert "for:         30m (1800 s)" in minutes.stdout.splitlines(), minutes.stdout


@pytest.mark.parametrize("flag", ["--from", "--until"])
def test_a_duration_given_as_a_time_hints_the_plus(tmp_path: Path, flag: str) -> None:
    result = cli("on", flag, "15m", store=tmp_path / "state.json")
    assert result.returncode == 2
    assert f"argument {flag}: '15m' is a duration, not a time; for 15m from now write +15m" in result.stderr, result.stderr


def test_a_start_in_the_past_with_a_duration_blames_from(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    result = cli("on", "--from", "2001-01-01T00:00:00Z", "--for", "1h", store=store)
    assert result.returncode == 2
    assert "maintenance-gateway: --from: 2001-01-01T00:00:00Z is in the past" in result.stderr, result.stderr
    assert "--for:" not in result.stderr and not store.exists()


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (["on", "--mesage", "x"], "--mesage: did you mean --message?"),
        (["on", "--mess", "x"], "--mess: did you mean --message?"),  # never taken as an abbreviation
        (["on", "--reas=x"], "--reas: did you mean --reason?"),
        (["history", "--lim", "3"], "--lim: did you mean --limit?"),
        (["status", "--jsn"], "--jsn: did you mean --json?"),
    ],
)
def test_a_mistyped_or_abbreviated_option_is_refused_with_the_one_meant(tmp_path: Path, args: list[str], meant: str) -> None:
    store = tmp_path / "state.json"
    result = cli(*args, store=store)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "unrecognized arguments" in result.stderr and meant in result.stderr, result.stderr
    assert not store.exists()


@pytest.mark.parametrize("command", [["status"], ["history"], ["on"], ["off"]])
def test_a_token_without_a_url_is_refused_not_ignored(tmp_path: Path, command: list[str]) -> None:
    store = tmp_path / "state.json"
    result = cli(*command, "--token", "t" * 20, store=store)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "--token is used only with --url" in result.stderr and "t" * 20 not in result.stderr, result.stderr
    assert not store.exists()


def test_status_json_stays_one_json_document(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    assert cli("on", "--for", "5m", store=store).returncode == 0
    result = cli("status", "--json", store=store)
    assert json.loads(result.stdout)["target"]["path"] == str(store)
