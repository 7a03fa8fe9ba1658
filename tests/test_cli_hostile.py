"""The command under hostile use: a gateway on another store, tokens with stray characters, a
URL that is not the admin API, odd numbers in every typed flag, a health check that must not
depend on settings it does not use."""

from __future__ import annotations

import argparse
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.arguments import parse_limit
from tests.raw_http import RawUpstream, read_head
from tests.support import SUPPORT_ADMIN_TOKEN, Gateway, cli, free_port


@pytest.fixture(scope="module")
def gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    served = Gateway(log_dir, raw_upstream, name="gateway-cli-hostile")
    yield served
    served.stop()


def test_wait_refuses_a_gateway_that_reads_another_store(gateway: Gateway, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    local = {"GATEWAY_PORT": str(gateway.port), "GATEWAY_ADMIN_TOKEN": SUPPORT_ADMIN_TOKEN}
    result = cli("on", "--message", "x", "--wait", "5", store=elsewhere, env=local)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "gateways serve it now" not in result.stdout
    assert f"reads file:{gateway.state_path}; this command wrote file:{elsewhere}" in result.stderr, result.stderr
    assert not gateway.store.read().enabled  # the change went to the other file only


def test_wait_without_a_token_claims_only_the_public_fields(gateway: Gateway) -> None:
    result = cli("on", "--message", "x", "--wait", "10", store=gateway.state_path, env={"GATEWAY_PORT": str(gateway.port)})
    off = cli("off", "--wait", "10", store=gateway.state_path, env={"GATEWAY_PORT": str(gateway.port)})
    assert result.returncode == 0, result.stderr
    assert "gateways serve it now" not in result.stdout
    assert "the public health shows maintenance on" in result.stdout, result.stdout
    assert off.returncode == 0 and "the public health shows maintenance off" in off.stdout, off.stdout


@pytest.mark.parametrize("token", [SUPPORT_ADMIN_TOKEN + "\n", f"  {SUPPORT_ADMIN_TOKEN}\r\n"])
def test_a_token_with_surrounding_white_space_works(gateway: Gateway, token: str, tmp_path: Path) -> None:
    result = cli("status", "--url", gateway.url, store=tmp_path / "unused.json", env={"GATEWAY_ADMIN_TOKEN": token})
    assert result.returncode == 0, result.stderr
    assert "version:" in result.stdout


@pytest.mark.parametrize("secret", ["Zq9\u00a0Xw7", "Zq9\u00e9Xw7", "Zq9\nXw7", "Zq9\x1bXw7"])
def test_a_token_with_control_or_non_ascii_characters_is_a_usage_error_that_hides_it(gateway: Gateway, secret: str, tmp_path: Path) -> None:
    store = tmp_path / "unused.json"
    from_env = cli("status", "--url", gateway.url, store=store, env={"GATEWAY_ADMIN_TOKEN": secret})
    from_flag = cli("status", "--url", gateway.url, "--token", secret, store=store)
    waited = cli("on", "--wait", "1", store=store, env={"GATEWAY_PORT": str(gateway.port), "GATEWAY_ADMIN_TOKEN": secret})
    for result in (from_env, from_flag, waited):
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert "Zq9" not in result.stderr and "Xw7" not in result.stderr, result.stderr
        assert "token" in result.stderr
    assert not store.exists()  # refused before anything was written


def test_extending_a_partial_window_names_what_it_drops(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    first = cli(
        "on", "--message", "Checkout back at 10", "--paths", "/api/checkout/", "--mode", "read-only",
        "--for", "30m", "--reason", "psp down", store=store,
    )
    assert first.returncode == 0, first.stderr
    started = next(line for line in first.stdout.splitlines() if line.startswith("changed:")).split()[1]
    # Without --replace the window in force is not replaced (see test_cli_updates).
    refused = cli("on", "--for", "1h", store=store)
    assert refused.returncode == 2 and "add --replace" in refused.stderr, refused.stderr
    second = cli("on", "--for", "1h", "--replace", store=store)
    assert second.returncode == 0, second.stderr
    replaced = second.stdout[second.stdout.index("replaced the active window"):]
    assert f"window {started} .." in replaced, replaced
    assert "now .." not in replaced
    assert "/api/checkout/" in replaced and "Checkout back at 10" in replaced and "psp down" in replaced, replaced
    assert "not kept" in replaced


def test_a_json_server_that_is_not_the_admin_api_is_unreachable(raw_upstream: str, tmp_path: Path) -> None:
    store = tmp_path / "unused.json"
    for command in (["on", "--message", "hi"], ["status"], ["history"]):
        result = cli(*command, "--url", f"{raw_upstream}/echo", "--token", "TOK", store=store)
        assert result.returncode == 6, (command, result.stdout, result.stderr)
        assert f"no maintenance-gateway admin API at {raw_upstream}/echo" in result.stderr, result.stderr
        assert "version" not in result.stdout


def test_a_pasted_endpoint_url_is_unreachable_with_a_hint(gateway: Gateway, tmp_path: Path) -> None:
    result = cli("status", "--url", f"{gateway.url}/_gateway/maintenance", "--token", SUPPORT_ADMIN_TOKEN, store=tmp_path / "unused.json")
    assert result.returncode == 6, (result.stdout, result.stderr)
    assert "give the gateway's address, e.g. http://host:8080" in result.stderr, result.stderr


def test_a_written_change_whose_wait_is_refused_says_it_was_written(gateway: Gateway) -> None:
    local = {"GATEWAY_PORT": str(gateway.port), "GATEWAY_ADMIN_TOKEN": "wrong-token"}
    result = cli("on", "--message", "x", "--wait", "5", store=gateway.state_path, env=local)
    version = gateway.store.read().version
    assert cli("off", store=gateway.state_path).returncode == 0
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert f"written (version {version}); could not wait: the gateway refused" in result.stderr, result.stderr
    help_text = cli("--help", store=gateway.state_path).stdout
    assert "  3    written" in help_text, help_text


@pytest.mark.parametrize("timeout", ["inf", "1e400", "nan", "0", "-1", "61", "²"])
def test_healthcheck_bounds_its_timeout(timeout: str, tmp_path: Path) -> None:
    result = cli("healthcheck", "--timeout", timeout, store=tmp_path / "unused.json")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "--timeout" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not re.search(r"invalid \w+ value", result.stderr), result.stderr


def test_healthcheck_reads_only_host_port_and_prefix(gateway: Gateway) -> None:
    result = cli(
        "healthcheck",
        store=Path("/srv/nonexistent/x.json"),
        env={"GATEWAY_PORT": str(gateway.port), "GATEWAY_UPSTREAM_URL": "not a url", "GATEWAY_REFRESH_INTERVAL": "x"},
    )
    assert result.returncode == 0, result.stderr
    bad_port = cli("healthcheck", store=Path("/tmp/x.json"), env={"GATEWAY_PORT": "eighty"})
    assert bad_port.returncode == 78 and "GATEWAY_PORT" in bad_port.stderr, bad_port.stderr
    down = cli("healthcheck", store=Path("/tmp/x.json"), env={"GATEWAY_PORT": str(free_port())})
    assert down.returncode == 1


@pytest.mark.parametrize(
    "args",
    [
        ["on", "--for", "²"],
        ["on", "--for", "١٢"],
        ["on", "--until", "+²"],
        ["on", "--from", "²"],
        ["on", "--wait", "²"],
        ["history", "--limit", "²"],
        ["history", "--limit", "١٢"],
        ["status", "--url", "²"],
        ["healthcheck", "--timeout", "1e400"],
    ],
)
def test_typed_flags_say_what_they_expect(args: list[str], tmp_path: Path) -> None:
    result = cli(*args, store=tmp_path / "unused.json")
    assert result.returncode == 2, (args, result.stderr)
    assert "parse_" not in result.stderr and not re.search(r"invalid \w+ value", result.stderr), result.stderr
    assert any(word in result.stderr for word in ("expected", "e.g.", "ISO-8601")), result.stderr


def test_a_refusal_from_whatever_answers_at_the_url_is_shown_not_obeyed(tmp_path: Path) -> None:
    body = json.dumps({"error": "bad", "message": "\u001b]0;owned\u0007\u001b[2J gone"}).encode()

    def refuse(sock: socket.socket, number: int) -> None:
        read_head(sock)
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    server = RawUpstream(refuse)
    try:
        result = cli("status", "--url", server.url, "--token", "TOK", store=tmp_path / "unused.json")
    finally:
        server.close()
    assert result.returncode == 2, (result.stdout, result.stderr)
    # The escape sequences are written out as text, never sent to the terminal.
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b]0;owned" in result.stderr, result.stderr


def test_a_limit_of_thousands_of_digits_is_refused_as_any_other() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected 1\.\.500"):
        parse_limit("9" * 5000)  # int() itself refuses past 4,300 digits, with its own message
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected 1\.\.500"):
        parse_limit("0")
    assert parse_limit(" 500 ") == 500
