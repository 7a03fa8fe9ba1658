"""What the commands say: a closed pipe, mistyped flags, a URL that is not a gateway, a change that changes nothing."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.stores.file import FileStore
from tests.support import BIN, SUPPORT_ADMIN_TOKEN, Gateway, base_env, cli, free_port


@pytest.mark.parametrize("command", [["status"], ["check-config"], ["history"]])
def test_a_reader_that_went_away_is_no_traceback(tmp_path: Path, command: list[str]) -> None:
    """As ``| head -1`` does: the command stops quietly with 141 (128 + SIGPIPE), as git does."""
    store = tmp_path / "state.json"
    assert cli("on", "--message", "x", store=store).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        result = subprocess.run(
            [str(BIN / "maintenance-gateway"), *command],
            env={**base_env(), "GATEWAY_STORE": f"file:{store}"},
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr
    # Nothing but the line naming the store, which goes to stderr before any output.
    named = [f"maintenance-gateway: store: file {store} (GATEWAY_STORE)"] if command[0] != "check-config" else []
    assert result.stderr.splitlines() == named


def test_a_pipe_to_head_prints_the_first_line_only(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{BIN / 'maintenance-gateway'} check-config | head -1"],
        env={**base_env(), "GATEWAY_STORE": f"file:{tmp_path / 'state.json'}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.startswith("GATEWAY_HOST") and len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_a_negative_duration_names_the_flag(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    for args in (["--for", "-5m"], ["--for=-5m"], ["--for", "0s"]):
        result = cli("on", *args, store=store)
        assert result.returncode == 2, args
        assert "--for" in result.stderr and "longer than zero" in result.stderr, (args, result.stderr)
    wait = cli("off", "--wait", "-3", store=store)
    assert wait.returncode == 2 and "--wait" in wait.stderr and "longer than zero" in wait.stderr, wait.stderr
    assert not store.exists()


def test_a_time_in_the_past_names_the_flag_typed(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    until = cli("on", "--until", "2001-01-01T00:00:00Z", store=store)
    assert until.returncode == 2 and "--until: is in the past" in until.stderr, until.stderr
    assert "ends_at" not in until.stderr
    counted = cli("on", "--from", "2001-01-01T00:00:00Z", "--for", "1h", store=store)
    assert counted.returncode == 2 and "--for" in counted.stderr and "ends_at" not in counted.stderr, counted.stderr
    before = cli("on", "--from", "+2h", "--until", "+1h", store=store)
    # The flag is the field's; the problem is said as the state's own check says it.
    assert before.returncode == 2 and "--until: must be after starts_at" in before.stderr, before.stderr
    assert not store.exists()


def test_history_limit_outside_the_range_is_a_usage_error(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    for limit in ("0", "501", "-1", "ten"):
        result = cli("history", f"--limit={limit}", store=store)
        assert result.returncode == 2, (limit, result.stdout)
        assert "--limit: expected 1..500" in result.stderr, result.stderr


def test_a_url_without_scheme_is_a_usage_error(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    flag = cli("status", "--url", "127.0.0.1:8080", "--token", "t" * 20, store=store)
    assert flag.returncode == 2 and "--url" in flag.stderr and "http://" in flag.stderr, flag.stderr
    # The same URL in the variable is a bad setting, as any other GATEWAY_* variable is: 78 naming it.
    variable = cli("status", store=store, env={"GATEWAY_ADMIN_URL": "127.0.0.1:8080", "GATEWAY_ADMIN_TOKEN": "t" * 20})
    assert variable.returncode == 78 and "GATEWAY_ADMIN_URL" in variable.stderr and "http://" in variable.stderr, variable.stderr


def test_a_url_without_a_token_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("status", "--url", "http://127.0.0.1:8080", store=tmp_path / "state.json")
    assert result.returncode == 2
    assert result.stderr == "maintenance-gateway: --url needs --token (or GATEWAY_ADMIN_TOKEN)\n"


def test_commands_through_a_url_leave_the_store_setting_alone(tmp_path: Path) -> None:
    """Through --url the store is the gateway's business: a local GATEWAY_STORE in a missing
    directory stops only the commands that use it."""
    store = tmp_path / "missing" / "state.json"
    nobody = f"http://127.0.0.1:{free_port()}"
    for command in (["status"], ["history"], ["on"], ["off"]):
        result = cli(*command, "--url", nobody, "--token", "t" * 20, store=store)
        assert result.returncode == 6 and "cannot reach the gateway" in result.stderr, (command, result.stderr)
        variables = cli(*command, store=store, env={"GATEWAY_ADMIN_URL": nobody, "GATEWAY_ADMIN_TOKEN": "t" * 20})
        assert variables.returncode == 6, (command, variables.stderr)
    for command in (["status"], ["check-config"], ["serve"]):
        strict = cli(*command, store=store)
        assert strict.returncode == 78 and "GATEWAY_STORE" in strict.stderr, (command, strict.stderr)


class NotTheGateway(http.server.BaseHTTPRequestHandler):
    """What a Django (or anything else) answers at the admin API's path: an HTML 404."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        body = b"<!DOCTYPE html><html><body><h1>Not Found</h1><p>The requested resource was not found.</p></body></html>"
        self.send_response(404)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_the_gateway() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), NotTheGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_that_is_not_the_gateway_says_so_without_the_page(tmp_path: Path, not_the_gateway: str) -> None:
    result = cli("status", "--url", not_the_gateway, "--token", "t" * 20, store=tmp_path / "state.json")
    assert result.returncode == 6, result.stderr
    assert f"no maintenance-gateway admin API at {not_the_gateway}/_gateway (HTTP 404, text/html)" in result.stderr
    assert "<" not in result.stderr and "Not Found" not in result.stderr


def test_repeated_changes_on_the_store_say_nothing_changed(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    history = Path(f"{store}.history")
    assert cli("on", "--message", "Upgrading", store=store).returncode == 0
    again = cli("on", "--message", "Upgrading", store=store)
    assert again.returncode == 0, again.stderr
    assert "maintenance is already on (version 1); nothing changed" in again.stdout
    assert FileStore(str(store)).read().version == 1 and len(history.read_text().splitlines()) == 1
    assert cli("off", store=store).returncode == 0
    off_again = cli("off", store=store)
    assert off_again.returncode == 0, off_again.stderr
    assert "maintenance is already off (version 2); nothing changed" in off_again.stdout and "override clear" in off_again.stdout
    assert "gateways follow" not in off_again.stdout
    assert FileStore(str(store)).read().version == 2 and len(history.read_text().splitlines()) == 2


def test_a_new_window_over_an_upcoming_one_says_it_replaced_it(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    first = cli("on", "--from", "+1h", "--for", "1h", store=store)
    assert first.returncode == 0 and "replaced" not in first.stdout
    old = json.loads(store.read_text())
    second = cli("on", "--from", "+3h", "--for", "1h", "--replace", store=store)
    assert second.returncode == 0, second.stderr
    assert f"replaced the upcoming window {old['starts_at']} .. {old['ends_at']}" in second.stdout, second.stdout


def test_repeated_changes_through_a_gateway_say_what_happened(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, name="gateway-cli-repeat")
    env = {"GATEWAY_ADMIN_URL": gateway.url, "GATEWAY_ADMIN_TOKEN": SUPPORT_ADMIN_TOKEN}
    store = gateway.state_path
    try:
        assert cli("on", "--from", "+1h", "--for", "1h", store=store, env=env).returncode == 0
        old = json.loads(store.read_text())
        replaced = cli("on", "--from", "+3h", "--for", "1h", "--replace", store=store, env=env)
        same = cli("on", "--from", old["starts_at"], "--until", old["ends_at"], "--replace", store=store, env=env)
        twice = cli("on", "--from", old["starts_at"], "--until", old["ends_at"], store=store, env=env)
        off = cli("off", store=store, env=env)
        off_again = cli("off", store=store, env=env)
        past = cli("on", "--until", "2001-01-01T00:00:00Z", store=store, env=env)
    finally:
        gateway.stop()
    assert f"replaced the upcoming window {old['starts_at']} .. {old['ends_at']}" in replaced.stdout, replaced.stdout
    assert "this gateway serves it now; others within 2 s" in replaced.stdout
    assert "replaced the upcoming window" in same.stdout
    assert "maintenance is already on (version 3); nothing changed" in twice.stdout, twice.stdout
    assert off.returncode == 0 and "nothing changed" not in off.stdout
    assert off_again.returncode == 0 and "maintenance is already off (version 4); nothing changed" in off_again.stdout
    assert past.returncode == 2 and "--until: is in the past" in past.stderr, past.stderr
