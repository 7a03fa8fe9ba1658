"""Every command names its target before it acts, refuses the relative default store, and tells a
missing item from one that is off: the installed command against files, a live gateway and moto."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from tests.support import AWS_ENV, BIN, SUPPORT_ADMIN_TOKEN, DynamoDBServer, Gateway, ServerProcess, base_env, free_port

PREFIX = "maintenance-gateway: "


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command with only ``env`` of the GATEWAY_* variables (base_env drops the others)."""
    return subprocess.run(
        [str(BIN / "maintenance-gateway"), *args], env={**base_env(), **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def dynamodb(log_dir: Path) -> Iterator[DynamoDBServer]:
    server = DynamoDBServer(log_dir, name="moto-cli-targets")
    yield server
    server.stop()


def test_every_command_names_its_file_store_by_its_absolute_path_first(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    env = {"GATEWAY_STORE": "file:state.json"}  # chosen, but relative: named as the file it is
    named = f"{PREFIX}store: file {here / 'state.json'} (GATEWAY_STORE)"
    for command in (["on", "--for", "5m"], ["status"], ["history"], ["off"]):
        result = run(*command, env=env, cwd=here)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stderr.splitlines()[0] == named, (command, result.stderr)
    as_json = json.loads(run("status", "--json", env=env, cwd=here).stdout)
    assert as_json["target"] == {"kind": "file", "path": str(here / "state.json"), "chosen_by": "GATEWAY_STORE", "site": None}
    assert as_json["status"] == "off"


@pytest.mark.parametrize("command", [["on", "--for", "30m"], ["off"], ["status"], ["history"]])
def test_an_operator_command_refuses_the_relative_default_store(tmp_path: Path, command: list[str]) -> None:
    # `cd ~ && maintenance-gateway on` used to write ~/maintenance-state.json and say gateways follow.
    result = run(*command, env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 78, (result.stdout, result.stderr)
    said = result.stderr
    assert "GATEWAY_STORE='file:maintenance-state.json'" in said and "--site NAME" in said and "GATEWAY_SITE" in said, said
    assert str(tmp_path / ".config" / "maintenance-gateway" / "sites.toml") in said
    assert result.stdout == "" and not (tmp_path / "maintenance-state.json").exists()


def test_serve_and_check_config_keep_the_embedded_default(tmp_path: Path, log_dir: Path) -> None:
    # GATEWAY_SITE exported for the CLI must not stop the gateway itself (an unknown GATEWAY_* would).
    env = {**base_env(), "GATEWAY_SITE": "prod", "GATEWAY_ADMIN_TOKENS": f"tests:{SUPPORT_ADMIN_TOKEN}"}
    checked = run("check-config", "--json", env={"GATEWAY_SITE": "prod", "GATEWAY_SITES_FILE": str(tmp_path / "none.toml")}, cwd=tmp_path)
    assert checked.returncode == 78 and "no sites file" in checked.stderr, checked.stderr  # the site is used when named
    assert json.loads(run("check-config", "--json", cwd=tmp_path).stdout)["GATEWAY_STORE"] == "file:maintenance-state.json"
    port = free_port()
    server = ServerProcess("gateway-default-store", [str(BIN / "maintenance-gateway"), "serve", "--port", str(port)], env, tmp_path, log_dir)
    try:
        server.wait_for_port(port)
        health = httpx.get(f"http://127.0.0.1:{port}/_gateway/health", headers={"authorization": f"Bearer {SUPPORT_ADMIN_TOKEN}"}, timeout=5)
    finally:
        server.stop()
    assert health.status_code == 200 and health.json()["store"]["kind"] == "file:maintenance-state.json", server.log()


def test_a_dynamodb_target_names_table_key_and_region_and_a_missing_item_says_so(dynamodb: DynamoDBServer) -> None:
    def store(key: str | None) -> dict[str, str]:
        keyed = f"key={key}&" if key is not None else ""
        return {**AWS_ENV, "GATEWAY_STORE": f"dynamodb://cli-targets?{keyed}region=us-east-1&endpoint_url={dynamodb.url}"}

    assert run("init-table", env=store("prod")).returncode == 0
    # No key= in the URL: the item "default", which the command names as such.
    unkeyed = run("on", "--message", "x", env=store(None))
    assert unkeyed.returncode == 0, unkeyed.stderr
    assert unkeyed.stderr.splitlines()[:2] == [
        f"{PREFIX}store: DynamoDB table cli-targets, key default (no key= in the URL: the default item), region us-east-1, "
        f"at {dynamodb.url} (GATEWAY_STORE)",
        f"{PREFIX}no such item yet: this change creates table cli-targets key default (region us-east-1)",
    ], unkeyed.stderr
    assert run("on", "--message", "prod", env=store("prod")).returncode == 0
    # A mistyped key: no "off, version 0", and nothing written under it.
    status = run("status", env=store("prdo"))
    assert status.returncode == 1 and status.stdout == "", status.stdout
    assert f"{PREFIX}no such item: table cli-targets key prdo (region us-east-1)" in status.stderr, status.stderr
    off = run("off", env=store("prdo"))
    assert off.returncode == 1 and "no such item: table cli-targets key prdo" in off.stderr and "nothing written" in off.stderr, off.stderr
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=dynamodb.url)
    assert client.query(TableName="cli-targets", KeyConditionExpression="pk = :k", ExpressionAttributeValues={":k": {"S": "prdo"}})["Items"] == []
    shown = json.loads(run("status", "--json", env=store("prod")).stdout)
    assert shown["message"] == "prod" and shown["target"] == {
        "kind": "dynamodb", "table": "cli-targets", "key": "prod", "region": "us-east-1",
        "endpoint_url": dynamodb.url, "chosen_by": "GATEWAY_STORE", "site": None,
    }


def test_a_dynamodb_store_without_a_region_is_a_configuration_error(dynamodb: DynamoDBServer, tmp_path: Path) -> None:
    no_region = {
        key: value for key, value in {**base_env(), **AWS_ENV}.items() if key not in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")
    }
    no_region["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    store = f"dynamodb://cli-targets?key=prod&endpoint_url={dynamodb.url}"
    for command in (["status"], ["check-config"], ["on"]):
        result = subprocess.run(
            [str(BIN / "maintenance-gateway"), *command], env={**no_region, "GATEWAY_STORE": store}, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 78, (command, result.stderr)
        assert f"GATEWAY_STORE='{store}'" in result.stderr and "region=REGION" in result.stderr and "AWS_REGION" in result.stderr
        assert "Traceback" not in result.stderr
    # AWS_REGION alone (as ECS sets it; botocore reads only AWS_DEFAULT_REGION) is enough.
    assert run("init-table", env={**AWS_ENV, "GATEWAY_STORE": f"{store}&region=us-east-1"}).returncode == 0
    with_region = subprocess.run(
        [str(BIN / "maintenance-gateway"), "on", "--message", "regional"],
        env={**no_region, "AWS_REGION": "us-east-1", "GATEWAY_STORE": store}, capture_output=True, text=True, timeout=60,
    )
    assert with_region.returncode == 0, with_region.stderr
    assert "region us-east-1" in with_region.stderr.splitlines()[0]


def test_through_a_gateway_the_command_names_it_and_the_store_it_reads(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, name="gateway-cli-targets")
    try:
        args = ("--url", gateway.url, "--token", SUPPORT_ADMIN_TOKEN)
        on = run("on", "--message", "via the gateway", *args)
        status = run("status", "--json", *args)
    finally:
        gateway.stop()
    assert on.returncode == 0, on.stderr
    assert on.stderr.splitlines()[0] == f"{PREFIX}gateway: {gateway.url}/_gateway (--url), which reads file:{gateway.state_path}"
    assert json.loads(status.stdout)["target"] == {
        "kind": "gateway", "url": f"{gateway.url}/_gateway", "store": f"file:{gateway.state_path}", "chosen_by": "--url", "site": None,
    }
