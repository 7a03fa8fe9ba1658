"""``--site NAME``: a site's store, gateway and token from the sites file, the installed command
against moto's DynamoDB server and live gateways (two behind a round-robin balancer for --wait)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.stores import open_store
from gateway.stores.file import FileStore
from tests.support import AWS_ENV, BIN, SUPPORT_ADMIN_TOKEN, DynamoDBServer, Gateway, base_env
from tests.test_cli_wait import LAGGING_REFRESH, RoundRobin

PREFIX = "maintenance-gateway: "


@pytest.fixture(scope="module")
def dynamodb(log_dir: Path) -> Iterator[DynamoDBServer]:
    server = DynamoDBServer(log_dir, name="moto-cli-sites")
    yield server
    server.stop()


def write_sites(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def run(sites: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "maintenance-gateway"), *args],
        env={**base_env(), **AWS_ENV, "GATEWAY_SITES_FILE": str(sites), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_site_by_name_reaches_its_own_item(dynamodb: DynamoDBServer, tmp_path: Path) -> None:
    prod, staging = dynamodb.store_url("sites", key="shop-prod"), dynamodb.store_url("sites", key="shop-staging")
    sites = write_sites(tmp_path, f'[prod]\nstore = "{prod}"\n\n[staging]\nstore = "{staging}"\n')
    assert run(sites, "init-table", "--site", "prod").returncode == 0
    on = run(sites, "--site", "prod", "on", "--message", "prod only")
    assert on.returncode == 0, on.stderr
    assert on.stderr.splitlines()[0] == (
        f"{PREFIX}store: DynamoDB table sites, key shop-prod, region us-east-1, at {dynamodb.url} (site prod ({sites}))"
    )
    assert open_store(prod).read().message == "prod only"
    # GATEWAY_SITE, and --site after the command, choose as --site before it does.
    staged = run(sites, "status", env={"GATEWAY_SITE": "staging"})
    assert staged.returncode == 1 and "no such item: table sites key shop-staging" in staged.stderr, staged.stderr
    shown = json.loads(run(sites, "status", "--json", "--site", "prod", env={"GATEWAY_SITE": "staging"}).stdout)
    assert shown["message"] == "prod only" and shown["target"]["site"] == "prod" and shown["target"]["key"] == "shop-prod"
    assert shown["target"]["chosen_by"] == f"site prod ({sites})"
    assert json.loads(run(sites, "check-config", "--json", "--site", "staging").stdout)["GATEWAY_STORE"] == staging


def test_flags_and_variables_override_the_site_and_say_so(dynamodb: DynamoDBServer, tmp_path: Path) -> None:
    prod = dynamodb.store_url("sites-override", key="prod")
    sites = write_sites(tmp_path, f'[prod]\nstore = "{prod}"\n')
    elsewhere = tmp_path / "elsewhere.json"
    by_variable = run(sites, "--site", "prod", "on", env={"GATEWAY_STORE": f"file:{elsewhere}"})
    assert by_variable.returncode == 0, by_variable.stderr
    assert f"{PREFIX}GATEWAY_STORE overrides the store of site prod ({sites})" in by_variable.stderr.splitlines()
    assert f"{PREFIX}store: file {elsewhere} (GATEWAY_STORE)" in by_variable.stderr.splitlines()
    by_flag = run(sites, "--site", "prod", "off", "--store", f"file:{elsewhere}")
    assert by_flag.returncode == 0 and "--store overrides the store of site prod" in by_flag.stderr, by_flag.stderr
    assert not FileStore(str(elsewhere)).read().enabled and FileStore(str(elsewhere)).read().version == 2


def test_a_site_with_a_url_and_no_store_goes_through_its_gateway(log_dir: Path, raw_upstream: str, tmp_path: Path) -> None:
    token_file = tmp_path / "prod.token"
    token_file.write_text(SUPPORT_ADMIN_TOKEN + "\n")
    token_file.chmod(0o600)
    gateway = Gateway(log_dir, raw_upstream, name="gateway-cli-sites")
    try:
        sites = write_sites(
            tmp_path,
            f'[prod]\nurl = "{gateway.url}"\ntoken_env = "SHOP_TOKEN"\n\n[filed]\nurl = "{gateway.url}"\ntoken_file = "{token_file}"\n',
        )
        on = run(sites, "--site", "prod", "on", "--message", "through the site", env={"SHOP_TOKEN": SUPPORT_ADMIN_TOKEN})
        status = run(sites, "--site", "filed", "status", "--json")
        unset = run(sites, "--site", "prod", "status")
        token_file.chmod(0o644)
        readable = run(sites, "--site", "filed", "status")
        served = gateway.store.read()
    finally:
        gateway.stop()
    assert on.returncode == 0, on.stderr
    assert on.stderr.splitlines()[0] == f"{PREFIX}gateway: {gateway.url}/_gateway (site prod ({sites})), which reads file:{gateway.state_path}"
    assert served.message == "through the site" and "tests via admin API" in served.updated_by
    assert status.returncode == 0 and json.loads(status.stdout)["target"]["kind"] == "gateway", status.stderr
    assert unset.returncode == 78 and "SHOP_TOKEN is not set" in unset.stderr, unset.stderr
    assert readable.returncode == 78 and "chmod 600" in readable.stderr and SUPPORT_ADMIN_TOKEN not in readable.stderr, readable.stderr


def test_an_inline_token_is_taken_only_from_a_file_others_cannot_read(log_dir: Path, raw_upstream: str, tmp_path: Path) -> None:
    gateway = Gateway(log_dir, raw_upstream, name="gateway-cli-sites-inline")
    try:
        text = f'[prod]\nurl = "{gateway.url}"\ntoken = "{SUPPORT_ADMIN_TOKEN}"\n'
        readable = run(write_sites(tmp_path, text, 0o644), "--site", "prod", "status")
        private = run(write_sites(tmp_path, text, 0o600), "--site", "prod", "status")
    finally:
        gateway.stop()
    assert readable.returncode == 78, readable.stderr
    assert "mode 0644" in readable.stderr and "chmod 600" in readable.stderr and "token_env" in readable.stderr
    assert SUPPORT_ADMIN_TOKEN not in readable.stderr
    assert private.returncode == 0 and "maintenance: off" in private.stdout, private.stderr


@pytest.mark.parametrize(
    ("text", "args", "said"),
    [
        ('[prod]\nstore = "memory:"\n', ["--site", "prd", "status"], "no such site in {sites} (it has prod); did you mean prod?"),
        ('[prod]\nstore = "memory:"\ntokn_env = "X"\n', ["--site", "prod", "status"], "[prod] tokn_env='X': unknown key; did you mean token_env?"),
        ('[prod]\nstore = "file:state.json"\n', ["--site", "prod", "status"], "needs an absolute path"),
        ('[prod]\nstore = "dynamodb://shop?key=prod"\n', ["--site", "prod", "status"], "no AWS region"),
        ('[prod]\nmessage = "x"\n', ["--site", "prod", "status"], "unknown key"),
        ("[prod\n", ["--site", "prod", "status"], "is not valid TOML"),
    ],
)
def test_a_wrong_site_stops_the_command_naming_the_file_and_the_key(tmp_path: Path, text: str, args: list[str], said: str) -> None:
    sites = write_sites(tmp_path, text)
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none")} | ({"AWS_DEFAULT_REGION": ""} if "dynamodb" in text else {})
    result = run(sites, *args, env=env)
    assert result.returncode == 78, (result.stdout, result.stderr)
    assert said.format(sites=sites) in result.stderr, result.stderr
    missing = run(tmp_path / "absent.toml", "--site", "prod", "on")
    assert missing.returncode == 78 and f"no sites file at {tmp_path / 'absent.toml'}" in missing.stderr
    assert "GATEWAY_SITES_FILE" in missing.stderr


def test_wait_through_the_site_s_load_balancer_until_every_gateway_serves_the_change(log_dir: Path, raw_upstream: str, tmp_path: Path) -> None:
    # A laptop writes the store itself and asks the site's URL, which an ALB spreads over the tasks:
    # the change counts as served only once several answers in a row show it.
    first = Gateway(log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": LAGGING_REFRESH}, name="gateway-cli-sites-a")
    second = Gateway(
        log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": LAGGING_REFRESH, "GATEWAY_STORE": f"file:{first.state_path}"}, name="gateway-cli-sites-b"
    )
    balancer = RoundRobin([first.port, second.port])
    sites = write_sites(tmp_path, f'[shop]\nstore = "file:{first.state_path}"\nurl = "{balancer.url}"\ntoken_env = "SHOP_TOKEN"\n')
    try:
        on = run(sites, "--site", "shop", "on", "--message", "both", "--wait", "20", env={"SHOP_TOKEN": SUPPORT_ADMIN_TOKEN})
        served = [gateway.health()["state"]["version"] for gateway in (first, second)]
    finally:
        balancer.close()
        first.stop()
        second.stop()
    assert on.returncode == 0, (on.stdout, on.stderr)
    assert on.stderr.splitlines()[0] == f"{PREFIX}store: file {first.state_path} (site shop ({sites}))"
    assert f"gateways serve it now (5 answers in a row from {balancer.url}/_gateway/health)" in on.stdout, on.stdout
    assert served == [1, 1]


def test_a_sites_file_that_is_a_fifo_too_deep_or_too_big_is_refused_at_once(tmp_path: Path) -> None:
    import os
    import time

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # opened the plain way, it would wait for a writer for ever
    deep = write_sites(tmp_path, "a = " + "[" * 30_000)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 70_000 + '\n[prod]\nstore = "memory:"\n')  # cut at 64 KiB, prod would be lost
    for sites, said in ((fifo, "not a regular file"), (deep, "nested too deep"), (big, "larger than")):
        started = time.monotonic()
        result = run(sites, "--site", "prod", "status")
        assert result.returncode == 78 and said in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert time.monotonic() - started < 10
    token_fifo = tmp_path / "token"
    os.mkfifo(token_fifo, 0o600)
    sites = write_sites(tmp_path, f'[prod]\nurl = "http://127.0.0.1:9"\ntoken_file = "{token_fifo}"\n')
    result = run(sites, "--site", "prod", "status")
    assert result.returncode == 78 and "not a regular file" in result.stderr, result.stderr
