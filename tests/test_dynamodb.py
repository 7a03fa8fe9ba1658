"""The DynamoDB store and a fleet of gateways, against moto's server through the real boto3 client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import ConflictError, StoreError
from gateway.refresher import Refresher, StateHolder
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


def test_max_attempts_counts_every_attempt_and_a_write_is_tried_once() -> None:
    """``max_attempts=2`` is two requests for a read (botocore's own "max_attempts" would make
    it three), and a conditional write is sent once per try, never retried blindly by botocore."""
    import http.server

    requests: list[str] = []

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            requests.append(self.headers["X-Amz-Target"])
            body = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"down"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"dynamodb://failing?key=k&region=us-east-1&endpoint_url=http://127.0.0.1:{server.server_port}&max_attempts=2"
        store = open_store(url)
        with pytest.raises(StoreError):
            store.read()
        assert requests == ["DynamoDB_20120810.GetItem"] * 2
        requests.clear()
        with pytest.raises(StoreError):
            store.write(switched_on(MaintenanceState(), now=NOW(), actor="ops"), MaintenanceState())
        # One request for the write, then the read that tells whether it landed (which fails too).
        assert requests == ["DynamoDB_20120810.TransactWriteItems"] + ["DynamoDB_20120810.GetItem"] * 2
    finally:
        server.shutdown()


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


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_deleted_item_is_followed_after_one_consistent_read_and_written_past(log_dir: Path, raw_upstream: str) -> None:
    recorded = DynamoDBServer(log_dir, name="moto-went-back", record=True)
    gateway = None
    try:
        url = new_table(recorded, "went-back")
        store = open_store(url)
        assert isinstance(store, DynamoDBStore)
        for message in ("one", "two"):
            change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops", message=message))
        first_record = store.history()[-1]
        gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_STORE": url, "GATEWAY_REFRESH_INTERVAL": "0.2"}, name="went-back")
        gateway.wait_for_version(2)
        eventual, consistent = recorded.get_items(False), recorded.get_items(True)
        time.sleep(1.0)
        steady = (recorded.get_items(False) - eventual, recorded.get_items(True) - consistent)
        store._client.delete_item(TableName="went-back", Key={"pk": {"S": "prod"}, "sk": {"S": "state"}})
        deleted = time.monotonic()
        assert wait_until(lambda: httpx.get(f"{gateway.url}/echo").status_code == 200)
        followed_after = time.monotonic() - deleted
        time.sleep(1.0)
        confirming = recorded.get_items(True) - consistent
        detailed = gateway.health()
        metrics = gateway.metrics()
        status = cli(url, "status")
        on = cli(url, "on", "--message", "after the deletion")
        gateway.wait_for_version(3)
        serving = httpx.get(f"{gateway.url}/echo").status_code
        history = store.history()
    finally:
        log = gateway.server.log() if gateway is not None else ""
        if gateway is not None:
            gateway.stop()
        recorded.stop()
    # The refresh stays one eventually consistent GetItem per interval (0.2 s here)...
    assert steady[1] == 0 and 3 <= steady[0] <= 7, steady
    # ...and the deletion costs one strongly consistent one, which it is then followed on.
    assert confirming == 1, confirming
    assert followed_after < 0.2 * 1.1 + 0.5, followed_after
    assert detailed["state"]["version"] == 0 and detailed["store"]["status"] == "ok"
    assert (detailed["store"]["went_back"]["from"], detailed["store"]["went_back"]["to"]) == (2, 0)
    assert "gateway_store_went_back_total 1\n" in metrics
    assert log.count('"event": "state_went_back"') == 1, log
    # The operator is told the item is gone, not "off, version 0", which a mistyped key reads as too.
    assert status.returncode == 1 and "no such item: table went-back key prod" in status.stderr, status.stderr
    # The CLI numbers its change past the history, so the gateway takes it as new, and the
    # records of versions 1 and 2 are kept as they were.
    assert on.returncode == 0 and "version:     3" in on.stdout, on.stderr
    assert serving == 503
    assert [record["version"] for record in history] == [3, 2, 1] and history[-1] == first_record


def test_an_older_item_restored_from_a_backup_is_followed_by_the_fleet(log_dir: Path, dynamodb: DynamoDBServer, raw_upstream: str) -> None:
    url = new_table(dynamodb, "restored")
    store = open_store(url)
    assert isinstance(store, DynamoDBStore)
    key = {"pk": {"S": "prod"}, "sk": {"S": "state"}}
    change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops", message="the backup"))
    backup = store._client.get_item(TableName="restored", Key=key, ConsistentRead=True)["Item"]
    change_state(store, lambda s: switched_off(s, now=time.time(), actor="ops"))
    change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops", message="three"))
    records_before = store.history()
    env = {"GATEWAY_STORE": url, "GATEWAY_REFRESH_INTERVAL": "0.3"}
    gateways = [Gateway(log_dir, raw_upstream, env, name=f"restored-{n}") for n in range(2)]
    try:
        for gateway in gateways:
            gateway.wait_for_version(3)
        store._client.put_item(TableName="restored", Item=backup)
        for gateway in gateways:
            assert wait_until(lambda: gateway.health()["state"]["version"] == 1), gateway.health()
        restored = [gateway.health() for gateway in gateways]
        messages = [httpx.get(f"{gateway.url}/echo", headers={"Accept": "application/json"}).json()["message"] for gateway in gateways]
        off = cli(url, "off", "--reason", "after the restore")
        for gateway in gateways:
            gateway.wait_for_version(4)
        after = [httpx.get(f"{gateway.url}/echo").status_code for gateway in gateways]
        records = store.history()
    finally:
        for gateway in gateways:
            gateway.stop()
    assert all((h["store"]["went_back"]["from"], h["store"]["went_back"]["to"]) == (3, 1) for h in restored), restored
    assert messages == ["the backup", "the backup"]
    assert off.returncode == 0 and "version:     4" in off.stdout, off.stderr
    assert after == [200, 200]
    assert [record["version"] for record in records] == [4, 3, 2, 1] and records[1:] == records_before


class LaggingReplica:
    """A boto3 client whose eventually consistent GetItems are answered from a second table: a
    replica that has not caught up. Strongly consistent reads, and everything else, go to the table."""

    def __init__(self, client: Any, replica_table: str) -> None:
        self.client = client
        self.replica_table = replica_table
        self.consistent_reads = 0

    def get_item(self, **kwargs: Any) -> Any:
        if kwargs.get("ConsistentRead"):
            self.consistent_reads += 1
            return self.client.get_item(**kwargs)
        return self.client.get_item(**{**kwargs, "TableName": self.replica_table})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_lagging_replica_never_flaps_the_state_and_a_deletion_is_still_followed(dynamodb: DynamoDBServer) -> None:
    primary = open_store(new_table(dynamodb, "primary"))
    replica = open_store(new_table(dynamodb, "primary-replica"))
    assert isinstance(primary, DynamoDBStore) and isinstance(replica, DynamoDBStore)
    key = {"pk": {"S": "prod"}, "sk": {"S": "state"}}

    def copy_to_replica() -> None:
        item = primary._client.get_item(TableName="primary", Key=key, ConsistentRead=True).get("Item")
        if item is None:
            replica._client.delete_item(TableName="primary-replica", Key=key)
        else:
            replica._client.put_item(TableName="primary-replica", Item=item)

    router = LaggingReplica(primary._client, "primary-replica")
    store = DynamoDBStore(primary.location, client=router, write_client=primary._write_client)
    holder = StateHolder(MaintenanceState())
    refresher = Refresher(store, holder, interval=0.01)
    on = change_state(primary, lambda s: switched_on(s, now=time.time(), actor="ops"))
    copy_to_replica()
    seen: list[int] = []

    async def refresh(times: int) -> None:
        for _ in range(times):
            assert await refresher.refresh_once()
            seen.append(holder.state.version)

    asyncio.run(refresh(2))
    assert holder.state == on and router.consistent_reads == 0  # nothing to confirm: no extra cost
    # This process writes version 2 (as the admin API does); the replica still answers 1.
    off = change_state(store, lambda s: switched_off(s, now=time.time(), actor="ops"))
    holder.apply_written(off, source="admin API (test)")
    router.consistent_reads = 0  # the write's own reads are not the refresher's
    asyncio.run(refresh(3))
    assert holder.state == off and router.consistent_reads == 3
    # The item is deleted; the replica still answers version 1, the table has nothing.
    primary._client.delete_item(TableName="primary", Key=key)
    asyncio.run(refresh(3))
    copy_to_replica()  # the replica catches up
    asyncio.run(refresh(3))
    assert seen == [1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0]  # never back to 1 or 2
    assert holder.went_back == 1 and router.consistent_reads == 6


def test_a_hand_edited_item_with_a_scope_the_api_would_refuse_covers_the_whole_site(hostile_table_gateway: tuple[Gateway, str]) -> None:
    gateway, url = hostile_table_gateway
    store = open_store(url)
    assert isinstance(store, DynamoDBStore)
    version = store.read(consistent=True).version + 1
    scope = {"L": [{"S": "/echo/checkout/"}, {"S": "/echo/check%6Fout/"}]}  # the second one is a 400 through the API
    item = {"pk": {"S": "prod"}, "sk": {"S": "state"}, "enabled": {"BOOL": True}, "message": {"S": "Checkout paused"}, "scope": scope, "version": {"N": str(version)}}
    store._client.put_item(TableName="hostile", Item=item)
    assert wait_until(lambda: gateway.health()["state"]["version"] == version), gateway.health()
    elsewhere = httpx.get(f"{gateway.url}/echo/catalogue")
    detailed = gateway.health()
    status = cli(url, "status")
    assert elsewhere.status_code == 503
    assert detailed["state"]["scope"] is None and "holds a %" in detailed["state"]["scope_refused"]
    assert "paths:       every path: the stored scope is refused (" in status.stdout, status.stdout


def test_a_history_record_is_never_overwritten_by_a_reused_version(dynamodb: DynamoDBServer) -> None:
    store = open_store(new_table(dynamodb, "history-kept"))
    assert isinstance(store, DynamoDBStore)
    on = change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops"))
    # A record of version 2 already there (put by hand, or left by a writer that could not see it).
    kept = {"pk": {"S": "prod"}, "sk": {"S": "history#000000000002"}, "version": {"N": "2"}, "by": {"S": "someone else"}}
    store._client.put_item(TableName="history-kept", Item=kept)
    with pytest.raises(StoreError, match="already holds the history record of version 2"):
        store.write(switched_off(on, now=time.time(), actor="ops"), on)  # built as version 2, past the check of apply_change
    assert store.read(consistent=True) == on  # nothing changed
    assert store._client.get_item(TableName="history-kept", Key={"pk": kept["pk"], "sk": kept["sk"]})["Item"] == kept
    # apply_change numbers the change past that record instead.
    assert change_state(store, lambda s: switched_off(s, now=time.time(), actor="ops")).version == 3


def test_hand_made_history_keys_are_passed_over_when_numbering_a_change(dynamodb: DynamoDBServer) -> None:
    """A key such as ``history#9-restored-from-backup`` sorts above every record: the newest
    record is still found below it, and a change after an older state was restored goes through."""
    store = open_store(new_table(dynamodb, "junk-keys"))
    assert isinstance(store, DynamoDBStore)
    first = change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops"))
    for _ in range(2):
        change_state(store, lambda s: switched_off(s, now=time.time(), actor="ops") if s.enabled else switched_on(s, now=time.time(), actor="ops"))
    for junk in ("history#9-restored-from-backup", "history#99", "history#9x", "history#99999999999999999"):
        store._client.put_item(TableName="junk-keys", Item={"pk": {"S": "prod"}, "sk": {"S": junk}})
    # The state restored from a backup taken at version 1.
    store._client.put_item(TableName="junk-keys", Item={"pk": {"S": "prod"}, "sk": {"S": "state"}, **store._encode(first.to_item())})
    assert store.read(consistent=True).version == 1
    assert store.last_recorded_version() == 3
    assert change_state(store, lambda s: switched_off(s, now=time.time(), actor="ops")).version == 4


def test_a_version_at_its_maximum_blocks_changes_with_a_sentence_not_a_blamed_request(dynamodb: DynamoDBServer, log_dir: Path) -> None:
    from gateway.errors import StoreBlocksChange
    from gateway.state import MAX_VERSION

    url = new_table(dynamodb, "version-max")
    store = open_store(url)
    assert isinstance(store, DynamoDBStore)
    store._client.put_item(
        TableName="version-max", Item={"pk": {"S": "prod"}, "sk": {"S": f"history#{MAX_VERSION:012d}"}, "version": {"N": str(MAX_VERSION)}}
    )
    with pytest.raises(StoreBlocksChange, match="the history holds version 9007199254740991"):
        change_state(store, lambda s: switched_on(s, now=time.time(), actor="ops"))
    refused = cli(url, "on", "--message", "x")
    assert refused.returncode == 1 and "highest a version can be" in refused.stderr and "Traceback" not in refused.stderr
    gateway = Gateway(log_dir, "http://127.0.0.1:9", {"GATEWAY_STORE": url}, name="gateway-version-max")
    try:
        answer = httpx.put(f"{gateway.url}/_gateway/maintenance", json={"message": "x"}, headers=gateway.admin_headers, timeout=10)
        assert answer.status_code == 409 and answer.json()["error"] == "store_blocks_change"
        assert "highest a version can be" in answer.json()["message"]
    finally:
        gateway.stop()

