"""Changes that add, not replace (``update``, ``extend``, ``on`` refused over a window in force
without ``--replace``) and who did it (``--by``): the installed command, on the file store and
through a running gateway."""

from __future__ import annotations

import getpass
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.state import MaintenanceState, format_time, parse_time
from gateway.stores.file import FileStore
from tests.support import SUPPORT_ADMIN_TOKEN, Gateway, cli


def stored(store: Path) -> MaintenanceState:
    return FileStore(str(store)).read()


def history(store: Path) -> list[dict]:
    return FileStore(str(store)).history(100)


def field_line(output: str, name: str) -> str:
    """The ``kept``/``changed`` line of ``name`` in a command's field-by-field account."""
    [line] = [line.strip() for line in output.splitlines() if line.strip().split("  ", 1)[-1].strip().startswith(f"{name}:")]
    return " ".join(line.split())


def test_update_changes_only_the_fields_given_and_says_field_by_field(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    on = cli("on", "--for", "30m", "--message", "Back at 10", "--reason", "release 42", "--mode", "read-only", store=store)
    assert on.returncode == 0, on.stderr
    before = stored(store)
    update = cli("update", "--reason", "release 42, step 2", store=store)
    assert update.returncode == 0, update.stderr
    after = stored(store)
    # The end time (the issue: `on --reason x` after `on --for 5m` dropped it), message and mode stay.
    assert after.ends_at == before.ends_at and after.message == "Back at 10" and after.mode == "read-only"
    assert after.reason == "release 42, step 2" and after.version == before.version + 1
    assert field_line(update.stdout, "reason") == "changed reason: release 42 -> release 42, step 2"
    assert field_line(update.stdout, "ends at") == f"kept ends at: {format_time(before.ends_at)}"
    assert field_line(update.stdout, "message") == "kept message: Back at 10"
    assert field_line(update.stdout, "mode") == "kept mode: read-only"
    assert f"field by field (version {before.version} -> {after.version}):" in update.stdout
    # --paths on an active window keeps its times (it used to cancel a scheduled one, see below).
    paths = cli("update", "--paths", "/api/checkout/", store=store)
    assert paths.returncode == 0, paths.stderr
    assert stored(store).scope == ("/api/checkout/",) and stored(store).ends_at == before.ends_at
    assert field_line(paths.stdout, "paths") == "changed paths: every path -> /api/checkout/"
    whole = cli("update", "--whole-site", store=store)
    assert whole.returncode == 0 and stored(store).scope is None, whole.stderr
    # --for on an active window is from now, not from when it began.
    lasting = cli("update", "--for", "2h", store=store)
    assert lasting.returncode == 0, lasting.stderr
    assert 7190 < stored(store).ends_at - time.time() <= 7200
    # The same value again changes nothing and writes nothing.
    records = len(history(store))
    again = cli("update", "--message", "Back at 10", store=store)
    assert again.returncode == 0 and "nothing changed" in again.stdout, again.stdout
    assert len(history(store)) == records


def test_update_keeps_a_scheduled_window_scheduled(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    assert cli("on", "--from", "+1h", "--for", "1h", "--message", "Tonight", store=store).returncode == 0
    before = stored(store)
    update = cli("update", "--paths", "/api/", "--for", "30m", store=store)
    assert update.returncode == 0, update.stderr
    after = stored(store)
    assert after.starts_at == before.starts_at and after.upcoming(time.time())
    # A duration counts from the kept start while it is ahead.
    assert after.ends_at == before.starts_at + 1800  # type: ignore[operator]
    assert after.scope == ("/api/",) and after.message == "Tonight"
    assert "maintenance: upcoming" in update.stdout
    assert field_line(update.stdout, "starts at") == f"kept starts at: {format_time(before.starts_at)}"
    # A start moved past the kept end names the start, and writes nothing.
    late = cli("update", "--from", "+3h", store=store)
    assert late.returncode == 2 and "--from: is not before the window's end (kept)" in late.stderr, late.stderr
    assert stored(store) == after


def test_on_over_a_window_in_force_is_refused_without_replace(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    assert cli("on", "--for", "5m", "--message", "Deploying", store=store).returncode == 0
    active = stored(store)
    refused = cli("on", "--reason", "x", store=store)
    assert refused.returncode == 2, refused.stderr
    # One sentence: which window is in force, what the change would make of it, and what to do.
    said = refused.stderr
    assert f"maintenance is on: the active window {format_time(active.updated_at)} .. {format_time(active.ends_at)}" in said, said
    assert f"version {active.version}) is in force" in said and "would replace it with now .. open-ended" in said
    assert "maintenance-gateway update" in said and "maintenance-gateway extend" in said and "add --replace" in said
    assert stored(store) == active and len(history(store)) == 1
    # The same window (times and paths) with another message is no second window: taken.
    same = cli("on", "--until", format_time(active.ends_at) or "", "--message", "Still deploying", store=store)
    assert same.returncode == 0, same.stderr
    assert stored(store).message == "Still deploying"
    replaced = cli("on", "--reason", "x", "--replace", store=store)
    assert replaced.returncode == 0, replaced.stderr
    assert stored(store).ends_at is None and "replaced the active window" in replaced.stdout
    # `on --paths` over a scheduled window: refused, the window stays scheduled.
    assert cli("off", store=store).returncode == 0
    assert cli("on", "--from", "+1h", "--for", "1h", store=store).returncode == 0
    upcoming = stored(store)
    partial = cli("on", "--paths", "/api/", store=store)
    assert partial.returncode == 2 and "maintenance is scheduled: the upcoming window" in partial.stderr, partial.stderr
    assert f"{format_time(upcoming.starts_at)} .. {format_time(upcoming.ends_at)} (every path, full" in partial.stderr
    assert stored(store) == upcoming


def test_extend_moves_the_end_and_keeps_the_rest(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    assert cli("on", "--from", "+1h", "--for", "1h", "--paths", "/api/", "--reason", "db", store=store).returncode == 0
    before = stored(store)
    extend = cli("extend", "--for", "30m", "--reason", "db, slower", store=store)
    assert extend.returncode == 0, extend.stderr
    after = stored(store)
    assert after.ends_at == before.ends_at + 1800  # type: ignore[operator]
    assert (after.starts_at, after.scope, after.message) == (before.starts_at, before.scope, before.message)
    assert field_line(extend.stdout, "ends at") == f"changed ends at: {format_time(before.ends_at)} -> {format_time(after.ends_at)}"
    assert field_line(extend.stdout, "paths") == "kept paths: /api/"
    later = time.time() + 5 * 3600
    until = cli("extend", "--until", format_time(later) or "", store=store)
    assert until.returncode == 0, until.stderr
    assert stored(store).ends_at == parse_time("t", format_time(later)) and stored(store).reason == "db, slower"
    # Earlier is no extension; an open-ended window has no end to move.
    earlier = cli("extend", "--until", "+90m", store=store)
    assert earlier.returncode == 2 and "--until: must be later than the window's end" in earlier.stderr, earlier.stderr
    assert cli("on", "--replace", store=store).returncode == 0
    open_ended = cli("extend", "--for", "1h", store=store)
    assert open_ended.returncode == 2 and "--for: the window has no end to move" in open_ended.stderr, open_ended.stderr
    assert stored(store).ends_at is None
    missing = cli("extend", store=store)
    assert missing.returncode == 2 and "--for" in missing.stderr and "--until" in missing.stderr


def test_update_and_extend_refuse_when_nothing_is_on_or_upcoming(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    assert cli("on", store=store).returncode == 0 and cli("off", store=store).returncode == 0
    off = stored(store)
    for command in (["update", "--message", "x"], ["extend", "--for", "1h"]):
        result = cli(*command, store=store)
        assert result.returncode == 2, (command, result.stderr)
        assert f"maintenance is off and no window is upcoming (version {off.version}), so there is no window to {command[0]}" in result.stderr
        assert "maintenance-gateway on" in result.stderr
    assert cli("on", "--until", "+1s", store=store).returncode == 0
    time.sleep(1.2)
    ended = cli("extend", "--for", "1h", store=store)
    assert ended.returncode == 2 and "maintenance is off: the window ended at" in ended.stderr, ended.stderr
    assert stored(store).version == off.version + 1


def test_by_is_recorded_beside_user_at_host_and_checked(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    me = f"{getpass.getuser()}@{socket.gethostname()} (cli)"
    for command in (["on", "--for", "1h"], ["update", "--message", "m"], ["extend", "--for", "5m"], ["off"]):
        result = cli(*command, "--by", "Alice Ops", store=store)
        assert result.returncode == 0, (command, result.stderr)
        assert stored(store).updated_by == f"Alice Ops / {me}", command
        assert history(store)[0]["by"] == f"Alice Ops / {me}"
    assert f"by Alice Ops / {me}" in cli("status", store=store).stdout
    version = stored(store).version
    for bad, problem in (("evil\x1b[2J", "--by: holds the control character U+001B"), ("x" * 101, "--by: longer than 100 characters")):
        result = cli("on", "--by", bad, store=store)
        assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert stored(store).version == version


@pytest.fixture(scope="module")
def gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    server = Gateway(log_dir, raw_upstream, name="gateway-cli-updates")
    yield server
    server.stop()


def test_update_extend_and_by_through_a_gateway(gateway: Gateway, tmp_path: Path) -> None:
    env = {"GATEWAY_ADMIN_URL": gateway.url, "GATEWAY_ADMIN_TOKEN": SUPPORT_ADMIN_TOKEN}
    unused = tmp_path / "unused.json"
    on = cli("on", "--for", "30m", "--message", "Deploying", "--by", "alice", store=unused, env=env)
    assert on.returncode == 0, on.stderr
    before = gateway.store.read()
    assert before.updated_by == "alice / tests via admin API"  # the token's name stays
    refused = cli("on", "--reason", "x", store=unused, env=env)
    assert refused.returncode == 2, refused.stderr
    assert "the gateway refused: maintenance is on: the active window" in refused.stderr and "(HTTP 409)" in refused.stderr
    update = cli("update", "--reason", "step 2", "--by", "bob", store=unused, env=env)
    assert update.returncode == 0, update.stderr
    assert field_line(update.stdout, "reason") == "changed reason: (none) -> step 2"
    assert field_line(update.stdout, "ends at") == f"kept ends at: {format_time(before.ends_at)}"
    assert "this gateway serves it now" in update.stdout
    extend = cli("extend", "--for", "15m", store=unused, env=env)
    assert extend.returncode == 0, extend.stderr
    after = gateway.store.read()
    assert after.ends_at == before.ends_at + 900 and after.reason == "step 2" and after.message == "Deploying"  # type: ignore[operator]
    assert after.updated_by == "tests via admin API"
    served = httpx.get(f"{gateway.url}/echo")
    assert served.status_code == 503 and served.json()["ends_at"] == format_time(after.ends_at)
    records = json.loads(cli("history", "--json", "--limit", "3", store=unused, env=env).stdout)
    assert [record["by"] for record in records] == ["tests via admin API", "bob / tests via admin API", "alice / tests via admin API"]
    assert not unused.exists()
    off = cli("off", "--by", "carol", store=unused, env=env)
    assert off.returncode == 0 and gateway.store.read().updated_by == "carol / tests via admin API", off.stderr
    nothing = cli("update", "--message", "x", store=unused, env=env)
    assert nothing.returncode == 2 and "no window to update" in nothing.stderr and "(HTTP 409)" in nothing.stderr
