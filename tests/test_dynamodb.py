"""The DynamoDB store and a fleet of gateways, against moto's server through the real boto3 client."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.errors import ConflictError, StoreError
from gateway.state import MaintenanceState, switched_off, switched_on
from gateway.stores import change_state, open_store
from gateway.stores.dynamodb import DynamoDBLocation, DynamoDBStore
from tests.support import BIN, DynamoDBServer, Gateway, assert_gateway_survives, base_env, free_port, wait_for_reads

NOW = time.time


@pytest.fixture(scope="module")
def dynamodb(log_dir: Path) -> Iterator[DynamoDBServer]:
    server = DynamoDBServer(log_dir, name="moto")
    yield server
    server.stop()


def cli(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "maintenance-gateway"), *args],
        env={**base_env(), "GATEWAY_STORE": store_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def new_table(dynamodb: DynamoDBServer, name: str, key: str = "prod") -> str:
    url = dynamodb.store_url(name, key=key)
    result = cli(url, "init-table")
    assert result.returncode == 0, result.stderr
    return url


def test_store_url_grammar() -> None:
    location = DynamoDBLocation.parse(
        "dynamodb://maintenance?key=shop-prod&region=eu-west-1&endpoint_url=http://127.0.0.1:1&read_timeout=0.5&max_attempts=2"
    )
    assert (location.table, location.key, location.region) == ("maintenance", "shop-prod", "eu-west-1")
    assert (location.read_timeout, location.max_attempts) == (0.5, 2)
    for bad in ("dynamodb://", "dynamodb://t?colour=red", "dynamodb://tab?read_timeout=-1", "dynamodb://a b?key=x",
                "dynamodb://tab?endpoint_url=ftp://x", "dynamodb://tab?max_attempts=0"):
        with pytest.raises(ValueError):
            DynamoDBLocation.parse(bad)


def test_init_table_is_safe_twice(dynamodb: DynamoDBServer) -> None:
    url = dynamodb.store_url("init-twice")
    first = cli(url, "init-table")
    second = cli(url, "init-table")
    assert first.returncode == 0 and "created table init-twice" in first.stdout
    assert second.returncode == 0 and "already exists" in second.stdout


def test_init_table_needs_a_dynamodb_store(tmp_path: Path) -> None:
    result = cli(f"file:{tmp_path / 's.json'}", "init-table")
    assert result.returncode == 2
    assert "needs a dynamodb:// store" in result.stderr


def test_read_write_conflict_and_history(dynamodb: DynamoDBServer) -> None:
    store = open_store(new_table(dynamodb, "read-write"))
    assert store.read() == MaintenanceState()
    on = change_state(store, lambda s: switched_on(s, now=NOW(), actor="alice", message="Deploy", reason="release 7"))
    assert store.read() == on
    stale_writer = switched_off(MaintenanceState(), now=NOW(), actor="bob")  # built from version 0
    with pytest.raises(ConflictError) as caught:
        store.write(stale_writer, MaintenanceState())
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert store.read() == on  # nothing overwritten
    off = change_state(store, lambda s: switched_off(s, now=NOW(), actor="carol", reason="done"))
    history = store.history()
    assert [record["version"] for record in history] == [2, 1]
    assert history[0]["by"] == "carol" and history[0]["reason"] == "done"
    assert history[0]["old"]["enabled"] is True and history[0]["new"]["enabled"] is False
    assert history[1]["old"]["version"] == 0 and history[1]["new"]["message"] == "Deploy"
    assert off.version == 2


def test_the_cli_works_on_the_table(dynamodb: DynamoDBServer) -> None:
    url = new_table(dynamodb, "cli-table")
    assert cli(url, "on", "--message", "Deploying", "--for", "15m", "--reason", "release 8").returncode == 0
    status = cli(url, "status")
    assert "maintenance: on (full)" in status.stdout and "Deploying" in status.stdout
    assert cli(url, "off", "--reason", "done").returncode == 0
    history = cli(url, "history")
    lines = history.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("v2 ") and "on (full) -> off" in lines[0] and lines[0].endswith(": done")
    assert lines[1].startswith("v1 ") and "off -> on (full)" in lines[1] and "release 8" in lines[1]


def test_a_malformed_item_is_a_store_error(dynamodb: DynamoDBServer) -> None:
    url = new_table(dynamodb, "malformed")
    store = open_store(url)
    assert isinstance(store, DynamoDBStore)
    store._client.put_item(
        TableName="malformed", Item={"pk": {"S": "prod"}, "sk": {"S": "state"}, "enabled": {"S": "yes"}, "version": {"N": "1"}}
    )
    with pytest.raises(StoreError, match="enabled"):
        store.read()
    store._client.put_item(
        TableName="malformed", Item={"pk": {"S": "prod"}, "sk": {"S": "state"}, "schema": {"N": "7"}, "version": {"N": "1"}}
    )
    with pytest.raises(StoreError, match="unknown schema version"):
        store.read()


def test_unreachable_dynamodb_is_a_quick_store_error() -> None:
    url = f"dynamodb://nowhere?key=k&region=us-east-1&endpoint_url=http://127.0.0.1:{free_port()}&connect_timeout=0.5&max_attempts=2"
    store = open_store(url)
    started = time.monotonic()
    with pytest.raises(StoreError, match="GetItem|get_item"):
        store.read()
    assert time.monotonic() - started < 5


def test_a_hung_dynamodb_times_out(dynamodb: DynamoDBServer) -> None:
    url = new_table(dynamodb, "hung") + "&read_timeout=0.5&max_attempts=1"
    store = open_store(url)
    store.read()
    dynamodb.pause()
    try:
        started = time.monotonic()
        with pytest.raises(StoreError):
            store.read()
        elapsed = time.monotonic() - started
    finally:
        dynamodb.resume()
    assert elapsed < 3


def first_503_times(gateways: list[Gateway], deadline: float, interval: float = 0.005) -> list[float]:
    """Poll every gateway in its own thread; each thread notes when it first saw a 503."""
    seen: list[float] = [0.0] * len(gateways)

    def watch(index: int, gateway: Gateway) -> None:
        with httpx.Client(timeout=2) as client:
            while time.time() < deadline:
                if client.get(f"{gateway.url}/").status_code == 503:
                    seen[index] = time.time()
                    return
                time.sleep(interval)

    threads = [threading.Thread(target=watch, args=(i, g)) for i, g in enumerate(gateways)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


@pytest.fixture(scope="module")
def fleet(log_dir: Path, dynamodb: DynamoDBServer, raw_upstream: str) -> Iterator[tuple[str, list[Gateway]]]:
    url = new_table(dynamodb, "fleet")
    env = {"GATEWAY_STORE": url, "GATEWAY_REFRESH_INTERVAL": "1"}
    gateways = [Gateway(log_dir, raw_upstream, env, name=f"fleet-{n}") for n in range(3)]
    yield url, gateways
    for gateway in gateways:
        gateway.stop()


def test_one_write_turns_the_whole_fleet(fleet: tuple[str, list[Gateway]], record_property) -> None:
    url, gateways = fleet
    store = open_store(url)
    for gateway in gateways:
        assert httpx.get(f"{gateway.url}/echo").status_code == 200
    written = time.time()
    change_state(store, lambda s: switched_on(s, now=written, actor="ops"))
    seen = first_503_times(gateways, written + 5)
    delays = [t - written for t in seen]
    record_property("convergence_seconds", [round(d, 3) for d in delays])
    print(f"\nfleet convergence after one write (interval 1 s): {', '.join(f'{d:.3f}' for d in delays)} s")
    assert all(t > 0 for t in seen), "a gateway never answered 503"
    assert max(delays) <= 1.0 * 1.1 + 1.0  # refresh interval (with its 10 % jitter) + 1 s
    change_state(store, lambda s: switched_off(s, now=time.time(), actor="ops"))
    for gateway in gateways:
        gateway.wait_for_version(2)


def test_scheduled_window_starts_together(fleet: tuple[str, list[Gateway]], record_property) -> None:
    url, gateways = fleet
    store = open_store(url)
    start = time.time() + 3
    state = change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops", starts_at=start, ends_at=start + 60))
    for gateway in gateways:
        gateway.wait_for_version(state.version)
        assert gateway.health()["upcoming"] is True
    seen = first_503_times(gateways, start + 3, interval=0.002)
    spread = max(seen) - min(seen)
    record_property("schedule_spread_seconds", round(spread, 4))
    print(f"\nscheduled start seen at {', '.join(f'{t - start:+.3f}' for t in seen)} s; spread {spread * 1000:.1f} ms")
    assert all(t >= start for t in seen)
    assert spread < 0.1
    change_state(store, lambda s: switched_off(s, now=time.time(), actor="ops"))
    for gateway in gateways:
        gateway.wait_for_version(state.version + 1)


# Long runs of the outage: GATEWAY_TEST_OUTAGE_SECONDS=180 .venv/bin/python -m pytest -k outage
OUTAGE_SECONDS = float(os.environ.get("GATEWAY_TEST_OUTAGE_SECONDS", "4"))


def test_an_outage_fails_no_request(log_dir: Path, dynamodb: DynamoDBServer, raw_upstream: str) -> None:
    url = new_table(dynamodb, "outage") + "&read_timeout=0.3&connect_timeout=0.3&max_attempts=1"
    store = open_store(url)
    on = change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops", mode="read-only"))
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_STORE": url, "GATEWAY_REFRESH_INTERVAL": "0.2"}, name="outage")
    results: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    results.append(client.get(f"{gateway.url}/echo").status_code)
                    results.append(client.post(f"{gateway.url}/echo", content=b"x").status_code)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    workers = [threading.Thread(target=load) for _ in range(4)]
    try:
        gateway.wait_for_version(on.version)
        for worker in workers:
            worker.start()
        time.sleep(0.5)
        dynamodb.pause()
        time.sleep(OUTAGE_SECONDS)
        during = gateway.health()
        dynamodb.resume()
        deadline = time.monotonic() + 10
        while gateway.health()["store"]["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        after = gateway.health()
        time.sleep(0.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        dynamodb.resume()
        log = gateway.server.log()
        gateway.stop()
    assert not failures, failures[:3]
    # Read-only all along: GETs reach the upstream, POSTs get the 503; nothing else.
    assert set(results) == {200, 503}, set(results)
    assert results.count(200) == results.count(503)
    assert during["store"]["status"] == "stale"
    assert during["state_age_seconds"] >= OUTAGE_SECONDS - 1
    print(f"\noutage of {OUTAGE_SECONDS:g} s: {len(results)} requests, {len(failures)} failed; "
          f"state age at the end {during['state_age_seconds']} s; store failures {during['store']['failures']}")
    assert during["state"]["version"] == on.version and during["mode"] == "read-only"
    assert after["store"]["status"] == "ok"
    assert log.count("store read failed") == 1
    assert "store readable again" in log


def test_reads_do_not_depend_on_traffic(log_dir: Path, raw_upstream: str) -> None:
    recorded = DynamoDBServer(log_dir, name="moto-recorded", record=True)
    gateway = None
    try:
        url = new_table(recorded, "reads")
        gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_STORE": url, "GATEWAY_REFRESH_INTERVAL": "0.5"}, name="reads")

        def count_over(seconds: float, busy: bool) -> tuple[int, int]:
            before = recorded.operations("GetItem")
            sent = 0
            finish = time.monotonic() + seconds
            if busy:
                with httpx.Client(timeout=5) as client:
                    while time.monotonic() < finish:
                        client.get(f"{gateway.url}/echo")
                        sent += 1
            else:
                time.sleep(seconds)
            return recorded.operations("GetItem") - before, sent

        idle, _ = count_over(5, busy=False)
        loaded, sent = count_over(5, busy=True)
    finally:
        if gateway is not None:
            gateway.stop()
        recorded.stop()
    print(f"\nGetItem calls in 5 s: {idle} idle, {loaded} while serving {sent} requests")
    assert sent > 500
    assert 8 <= idle <= 12 and 8 <= loaded <= 12  # one per 0.5 s interval (+-10 % jitter)
    # Each 5 s window holds 10 reads give or take one from the jitter: load adds none.
    assert abs(idle - loaded) <= 2


def test_worker_processes_each_follow_the_table(log_dir: Path, dynamodb: DynamoDBServer, raw_upstream: str) -> None:
    url = new_table(dynamodb, "workers")
    store = open_store(url)
    gateway = Gateway(
        log_dir, raw_upstream, {"GATEWAY_STORE": url, "GATEWAY_REFRESH_INTERVAL": "0.3", "GATEWAY_WORKERS": "2"}, name="workers"
    )
    try:
        time.sleep(1.5)  # both workers up
        change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops"))
        time.sleep(1.0)
        # New connections land on either worker; every one must see the same state.
        statuses = [httpx.get(f"{gateway.url}/echo", headers={"Connection": "close"}).status_code for _ in range(40)]
        pids = {
            httpx.get(f"{gateway.url}/_gateway/health", headers={"Connection": "close", **gateway.admin_headers}).json()["pid"]
            for _ in range(40)
        }
    finally:
        gateway.stop()
    assert set(statuses) == {503}
    assert len(pids) == 2


# Items written with boto3 directly (a script, a console edit, an older version): never a broken gateway.
HOSTILE_DYNAMODB_ITEMS = {
    # DynamoDB holds only valid UTF-8 (moto refuses a lone surrogate too): noncharacters and marks instead.
    "odd characters": {"enabled": {"BOOL": True}, "message": {"S": "\ufffe\uffff \u202e \U0010ffff"}, "reason": {"S": "\ufeff"}, "version": {"N": "3"}},
    "controls": {"enabled": {"BOOL": True}, "message": {"S": "nul \x00 esc \x1b[2J"}, "version": {"N": "4"}},
    "year 0 start": {"enabled": {"BOOL": True}, "starts_at": {"S": "0001-01-01T00:00:00+01:00"}, "version": {"N": "5"}},
    "year 10000 end": {"enabled": {"BOOL": True}, "ends_at": {"S": "9999-12-31T23:59:59-14:00"}, "version": {"N": "6"}},
    "38-digit version": {"enabled": {"BOOL": True}, "version": {"N": "9" * 38}},
    "fractional version": {"enabled": {"BOOL": True}, "version": {"N": "1.5"}},
    "negative version": {"enabled": {"BOOL": True}, "version": {"N": "-7"}},
    "number as time": {"enabled": {"BOOL": True}, "ends_at": {"N": "1e125"}, "version": {"N": "8"}},
    "binary message": {"enabled": {"BOOL": True}, "message": {"B": b"\xff\xfe"}, "version": {"N": "9"}},
    "set as mode": {"enabled": {"BOOL": True}, "mode": {"SS": ["full", "read-only"]}, "version": {"N": "10"}},
    "enabled as number": {"enabled": {"N": "1"}, "version": {"N": "11"}},
    "map as reason": {"enabled": {"BOOL": True}, "reason": {"M": {"a": {"S": "b"}}}, "version": {"N": "12"}},
    "long message": {"enabled": {"BOOL": True}, "message": {"S": "\u0645" * 100_000}, "version": {"N": "13"}},
}


@pytest.fixture(scope="module")
def hostile_table_gateway(log_dir: Path, dynamodb: DynamoDBServer, raw_upstream: str) -> Iterator[tuple[Gateway, str]]:
    url = new_table(dynamodb, "hostile")
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_STORE": url, "GATEWAY_REFRESH_INTERVAL": "0.05"}, name="gateway-hostile-table")
    yield gateway, url
    gateway.stop()


@pytest.mark.parametrize("name", list(HOSTILE_DYNAMODB_ITEMS))
def test_a_hostile_dynamodb_item_never_breaks_health_the_503_or_status(hostile_table_gateway: tuple[Gateway, str], name: str) -> None:

    gateway, url = hostile_table_gateway
    store = open_store(url)
    assert isinstance(store, DynamoDBStore)
    item = {"pk": {"S": "prod"}, "sk": {"S": "state"}, **HOSTILE_DYNAMODB_ITEMS[name]}
    store._client.put_item(TableName="hostile", Item=item)
    wait_for_reads(gateway)
    assert_gateway_survives(gateway, url, commands=(("status",),))  # one run: each start imports boto3
    log = gateway.server.log()
    assert "Traceback" not in log and "Logging error" not in log, log[-3000:]
