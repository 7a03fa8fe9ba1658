"""The operator commands, run as the installed command against the file store and a live gateway."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from gateway.stores.file import FileStore
from tests.support import BIN, Gateway, base_env, cli


def test_on_status_off(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    on = cli("on", "--message", "Upgrading", "--for", "30m", "--reason", "release 42", store=store)
    assert on.returncode == 0, on.stderr
    assert "maintenance: on (full)" in on.stdout
    state = FileStore(str(store)).read()
    assert state.enabled and state.message == "Upgrading" and state.reason == "release 42"
    assert 1790 < state.ends_at - time.time() <= 1800
    assert "(cli)" in state.updated_by

    status = cli("status", "--json", store=store)
    shown = json.loads(status.stdout)
    assert shown["status"] == "on" and shown["version"] == 1 and shown["message"] == "Upgrading"

    off = cli("off", store=store)
    assert off.returncode == 0
    assert "maintenance: off" in off.stdout
    assert not FileStore(str(store)).read().enabled


def test_scheduled_and_read_only(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    result = cli("on", "--from", "+1h", "--for", "2h", "--mode", "read-only", store=store)
    assert result.returncode == 0, result.stderr
    assert "maintenance: upcoming (read-only)" in result.stdout
    state = FileStore(str(store)).read()
    assert state.ends_at - state.starts_at == 7200


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    bad_duration = cli("on", "--for", "soon", store=store)
    assert bad_duration.returncode == 2
    assert "not a duration" in bad_duration.stderr
    past = cli("on", "--until", "2001-01-01T00:00:00Z", store=store)
    assert past.returncode == 2
    assert "--until: is in the past" in past.stderr
    store.write_text("{ corrupt")
    broken = cli("status", store=store)
    assert broken.returncode == 1
    assert "store error" in broken.stderr and "not valid JSON" in broken.stderr
    assert store.read_text() == "{ corrupt"  # nothing written over it


def test_cli_switch_reaches_a_running_gateway(log_dir, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, name="gateway-cli")
    try:
        assert httpx.get(f"{gateway.url}/echo").status_code == 200
        assert cli("on", "--message", "From the CLI", store=gateway.state_path).returncode == 0
        gateway.wait_for_version(1)
        during = httpx.get(f"{gateway.url}/echo")
        assert cli("off", store=gateway.state_path).returncode == 0
        gateway.wait_for_version(2)
        after = httpx.get(f"{gateway.url}/echo")
    finally:
        gateway.stop()
    assert during.status_code == 503 and during.json()["message"] == "From the CLI"
    assert after.status_code == 200


def test_python_dash_m_works(tmp_path: Path) -> None:
    import sys

    (tmp_path / "s.json").write_text('{"enabled": false, "version": 3}')
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "status"],
        env={**base_env(), "GATEWAY_STORE": f"file:{tmp_path / 's.json'}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "maintenance: off" in result.stdout


def test_status_shows_stored_text_safely(tmp_path: Path) -> None:
    """Whatever text the store holds: no traceback, and no escape sequence reaches the terminal."""
    store = tmp_path / "state.json"
    store.write_text(
        '{"enabled": true, "message": "\\u001b[2J\\u001b]0;owned\\u0007 lone \\ud800 two\\nlines", '
        '"reason": "\\udc80 nul \\u0000", "updated_by": "\\u009b31m", "updated_at": "2026-01-01T00:00:00Z", "version": 2}'
    )
    status = subprocess.run(
        [str(BIN / "maintenance-gateway"), "status"],
        env={**base_env(), "GATEWAY_STORE": f"file:{store}"},
        capture_output=True,
        timeout=30,
    )
    assert status.returncode == 0 and b"Traceback" not in status.stderr, status.stderr
    text = status.stdout.decode("utf-8")
    assert not any(char in text for char in "\x1b\x07\x00\x9b")
    assert "\\x1b[2J" in text and "lone \ufffd two\\nlines" in text and "\ufffd nul \\x00" in text
    as_json = cli("status", "--json", store=store)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["message"].startswith("\x1b[2J")
    # Undecodable bytes in argv (surrogates to Python) are repaired before they are stored.
    on = subprocess.run(
        [str(BIN / "maintenance-gateway"), "on", "--message", b"argv \xff".decode("utf-8", "surrogateescape")],
        env={**base_env(), "GATEWAY_STORE": f"file:{store}"},
        capture_output=True,
        timeout=30,
    )
    assert on.returncode == 0, on.stderr
    assert json.loads(store.read_text())["message"] == "argv \ufffd"


def test_on_with_paths_takes_only_part_of_the_site_down(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    on = cli("on", "--paths", "/api/checkout/, api/payments", "--mode", "read-only", store=store)
    assert on.returncode == 0, on.stderr
    assert "paths:       /api/checkout/, /api/payments/ (only these)" in on.stdout
    assert FileStore(str(store)).read().scope == ("/api/checkout/", "/api/payments/")
    status = cli("status", store=store)
    assert "paths:       /api/checkout/, /api/payments/" in status.stdout
    assert json.loads(cli("status", "--json", store=store).stdout)["scope"] == ["/api/checkout/", "/api/payments/"]
    assert cli("off", store=store).returncode == 0
    history = cli("history", store=store).stdout.splitlines()
    assert "on (read-only) on /api/checkout/, /api/payments/ -> off" in history[0]
    assert "off -> on (read-only) on /api/checkout/, /api/payments/" in history[1]
    # Turning the whole site back on drops the scope.
    cli("on", store=store)
    assert FileStore(str(store)).read().scope is None


def test_bad_paths_are_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    for paths, said in (("/api/../admin/", "dot-segment"), ("/api/\x1b[2J", "control characters"), (",", "path prefixes")):
        result = cli("on", "--paths", paths, store=store)
        assert result.returncode == 2, paths
        assert "--paths" in result.stderr and said in result.stderr
    assert not store.exists()


def test_paths_through_a_running_gateway(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, name="gateway-cli-paths")
    env = {**base_env(), "GATEWAY_ADMIN_URL": gateway.url, "GATEWAY_ADMIN_TOKEN": gateway.admin_headers["authorization"].split()[1]}
    try:
        on = subprocess.run(
            [str(BIN / "maintenance-gateway"), "on", "--paths", "/echo/checkout"],
            env=env, capture_output=True, text=True, timeout=30,
        )
        assert on.returncode == 0, on.stderr
        assert "paths:       /echo/checkout/" in on.stdout
        refused = httpx.get(f"{gateway.url}/echo/checkout/pay")
        served = httpx.get(f"{gateway.url}/echo/catalogue")
    finally:
        gateway.stop()
    assert refused.status_code == 503 and refused.json()["scope"] == ["/echo/checkout/"]
    assert served.status_code == 200


def test_on_applies_the_checks_of_the_admin_api(tmp_path: Path) -> None:
    """A change written straight to the store is built as the admin API builds it."""
    store = tmp_path / "state.json"
    refused = {
        ("--reason", "release 42\nmaintenance: off"): ("reason", "--reason"),
        ("--message", "Back soon\x1b[2J"): ("message", "--message"),
        ("--for", "367d"): ("--for: must be between",),
        ("--paths", "/api/check%6Fut/,/shop/caf%C3%A9/"): ("decoded", "--paths"),
        ("--paths", "/api/check out/"): ("white space", "--paths"),
        ("--paths", "/api\\checkout/"): ("backslash", "--paths"),
    }
    for args, said in refused.items():
        result = cli("on", *args, store=store)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert all(word in result.stderr for word in said), (args, result.stderr)
    assert not store.exists()
    assert cli("on", "--for", "366d", "--message", "two\nlines\tare fine in a message", store=store).returncode == 0
    off = cli("off", "--reason", "done\nmaintenance: on", store=store)
    assert off.returncode == 2 and "reason" in off.stderr
    assert FileStore(str(store)).read().enabled


def test_status_and_history_print_one_line_per_field_whatever_the_store_holds(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    forged = "release 42\nmaintenance: off\u2028maintenance: off\u202e\u200f\r"
    store.write_text(json.dumps({"enabled": True, "message": forged, "reason": forged, "updated_by": forged, "version": 3}))
    Path(f"{store}.history").write_text(
        json.dumps({"version": 3, "at": "2026-01-01T00:00:00Z\nv9", "by": forged, "reason": forged, "old": None, "new": {"enabled": True}}) + "\n"
    )
    status = cli("status", store=store).stdout
    lines = status.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["maintenance", "message", "reason", "version"], status
    assert sum(line.startswith("maintenance:") for line in lines) == 1
    for char in "\u2028\u202e\u200f\r":
        assert char not in status
    assert "release 42\\nmaintenance: off\\u2028maintenance: off\\u202e\\u200f\\r" in status
    history = cli("history", store=store).stdout
    assert len(history.splitlines()) == 1 and "\u2028" not in history and "\\nv9" in history, history


def test_the_command_line_loads_no_web_framework() -> None:
    """The operator's command starts without the admin app (Starlette) it never serves."""
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import sys, gateway.cli.commands; print(sorted(name for name in sys.modules if name.split('.')[0] == 'starlette'))"],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
