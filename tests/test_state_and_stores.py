"""The state value and the embedded stores (unit tests, in-process), and hostile stored items (a real gateway)."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import ConflictError, StateError, StoreError
from gateway.state import MAX_TIME, MAX_VERSION, MIN_TIME, MaintenanceState, format_time, parse_time, switched_off, switched_on
from gateway.stores import change_state, open_store, parse_store_url
from gateway.stores.file import FileStore
from gateway.stores.memory import MemoryStore
from tests.support import BIN, Gateway, assert_gateway_survives, base_env, cli, wait_for_reads

NOW = 1_800_000_000.0


def test_active_follows_the_window() -> None:
    state = MaintenanceState(enabled=True, starts_at=NOW + 10, ends_at=NOW + 20)
    assert not state.active(NOW)
    assert state.upcoming(NOW)
    assert state.active(NOW + 10)
    assert state.active(NOW + 19.999)
    assert not state.active(NOW + 20)
    assert state.status(NOW + 25) == "ended"
    assert not MaintenanceState(enabled=False).active(NOW)
    assert MaintenanceState(enabled=True).active(NOW)


def test_retry_after_counts_to_the_end() -> None:
    state = MaintenanceState(enabled=True, ends_at=NOW + 90.2)
    assert state.seconds_until_end(NOW) == 91
    assert state.seconds_until_end(NOW + 100) == 0
    assert MaintenanceState(enabled=True).seconds_until_end(NOW) is None


def test_item_round_trip() -> None:
    state = switched_on(MaintenanceState(), now=NOW, actor="ops", message="m", mode="read-only", ends_at=NOW + 60, reason="r")
    item = state.to_item()
    assert item["ends_at"] == "2027-01-15T08:01:00Z"
    assert MaintenanceState.from_item(json.loads(json.dumps(item))) == state
    assert state.version == 1


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": True, "mode": "partial"}, "mode"),
        ({"version": "3"}, "version"),
        ({"ends_at": "tomorrow"}, "ends_at"),
        ({"ends_at": "2026-01-01T00:00:00"}, "ends_at"),
        ({"starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}, "ends_at"),
        ({"schema": 3}, "schema"),
        ({"message": 5}, "message"),
        ({"version": 2**53}, "version"),
        ({"version": -1}, "version"),
        ({"version": 1.5}, "version"),
        ({"starts_at": "0001-01-01T00:00:00+01:00"}, "starts_at"),  # year 0 in UTC
        ({"ends_at": "9999-12-31T23:59:59-14:00"}, "ends_at"),  # year 10000 in UTC
        ({"ends_at": 5}, "ends_at"),
        ({"ends_at": "\ud800"}, "ends_at"),
        ({"updated_at": "2" * 5000}, "updated_at"),
        ({"mode": ["full"]}, "mode"),
    ],
)
def test_malformed_items_name_the_field(item: dict, field: str) -> None:
    with pytest.raises(StateError) as caught:
        MaintenanceState.from_item(item)
    assert caught.value.field == field


def test_times_parse_and_format() -> None:
    assert parse_time("t", "2026-11-26T10:00:00Z") == parse_time("t", "2026-11-26T11:00:00+01:00")
    assert format_time(parse_time("t", "2026-11-26T10:00:00.250Z")) == "2026-11-26T10:00:00.250Z"


def test_switching_on_with_an_end_in_the_past_is_refused() -> None:
    with pytest.raises(StateError):
        switched_on(MaintenanceState(), now=NOW, actor="ops", ends_at=NOW - 1)


def test_switched_off_keeps_the_record() -> None:
    on = switched_on(MaintenanceState(), now=NOW, actor="ops", message="m")
    off = switched_off(on, now=NOW + 5, actor="ops2")
    assert not off.enabled and off.version == 2 and off.updated_by == "ops2" and off.message == "m"


@pytest.mark.parametrize("make", [MemoryStore, lambda: FileStore("PLACEHOLDER")])
def test_conditional_writes(make, tmp_path: Path) -> None:
    store = make()
    if isinstance(store, FileStore):
        store = FileStore(str(tmp_path / "state.json"))
    assert store.read() == MaintenanceState()
    first = change_state(store, lambda s: switched_on(s, now=NOW, actor="a"))
    assert store.read() == first
    stale = switched_off(MaintenanceState(), now=NOW, actor="b")  # built from version 0
    with pytest.raises(ConflictError) as caught:
        store.write(stale)
    assert caught.value.actual == 1
    assert store.read() == first


def test_file_store_errors(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = FileStore(str(path))
    path.write_text("{ nope")
    with pytest.raises(StoreError, match="not valid JSON"):
        store.read()
    path.write_text(json.dumps({"schema": 9, "enabled": True}))
    with pytest.raises(StoreError, match="unknown schema version"):
        store.read()
    path.write_text("[1, 2]")
    with pytest.raises(StoreError, match="JSON object"):
        store.read()
    path.write_bytes(b"x" * 70_000)
    with pytest.raises(StoreError, match="larger than"):
        store.read()


def test_file_store_never_creates_directories(tmp_path: Path) -> None:
    # A mistyped directory would otherwise split the state between two files without a word.
    missing = tmp_path / "no-such-dir" / "state.json"
    store = FileStore(str(missing))
    with pytest.raises(StoreError, match="does not exist"):
        store.read()
    with pytest.raises(StoreError) as caught:
        change_state(store, lambda s: switched_on(s, now=NOW, actor="a"))
    assert str(missing) in str(caught.value) and "does not exist" in str(caught.value)
    assert not missing.parent.exists()
    # A missing file in a directory that exists is the first start: off, version 0.
    assert FileStore(str(tmp_path / "state.json")).read() == MaintenanceState()


def test_a_history_line_no_json_reader_can_take_back_is_skipped(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path / "state.json"))
    (tmp_path / "state.json.history").write_text(
        '{"version": 1, "at": "x"}\n{"version": 2, "at": NaN}\n{"version": 3, "n": 1e999}\n{"version": 4, "n": -Infinity}\n'
    )
    records = store.history()
    assert [record["version"] for record in records] == [1]
    json.dumps(records, allow_nan=False)  # what the admin API and `history --json` write


def test_a_change_keeps_the_state_file_readable_and_a_symlink_shared(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    first = FileStore(str(shared / "state.json"))
    change_state(first, lambda s: switched_on(s, now=NOW, actor="a"))
    # Readable by gateways running as another user (a temporary file alone would be 0600).
    assert (shared / "state.json").stat().st_mode & 0o777 == 0o644
    (shared / "state.json").chmod(0o640)
    linked_dir = tmp_path / "etc"
    linked_dir.mkdir()
    (linked_dir / "state.json").symlink_to(shared / "state.json")
    through_link = FileStore(str(linked_dir / "state.json"))
    change_state(through_link, lambda s: switched_off(s, now=NOW + 1, actor="b"))
    # The file the link names was changed, with its mode; the link is still a link, and both
    # stores share one history (and one lock: the file beside the state, not beside the link).
    assert (linked_dir / "state.json").is_symlink()
    assert [record["version"] for record in first.history()] == [2, 1] == [record["version"] for record in through_link.history()]
    assert first.read().enabled is False and first.read().version == 2
    assert (shared / "state.json").stat().st_mode & 0o777 == 0o640


def _race(path: str, results) -> None:  # runs in another process
    store = FileStore(path)
    current = store.read()
    time.sleep(0.2)  # both processes read version 0 before either writes
    try:
        store.write(switched_on(current, now=time.time(), actor="racer"))
        results.put("won")
    except ConflictError:
        results.put("conflict")


def test_file_store_lets_one_of_two_racing_processes_win(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    results: multiprocessing.Queue = multiprocessing.Queue()
    racers = [multiprocessing.Process(target=_race, args=(path, results)) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(10)
    assert sorted([results.get(timeout=5), results.get(timeout=5)]) == ["conflict", "won"]
    assert FileStore(path).read().version == 1


def test_a_change_after_the_state_file_is_deleted_is_numbered_past_the_history(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = FileStore(str(path))
    for message in ("one", "two", "three"):
        change_state(store, lambda s: switched_on(s, now=NOW, actor="ops", message=message))
    path.unlink()
    assert store.read() == MaintenanceState()  # what every gateway now reads: off, version 0
    after = change_state(store, lambda s: switched_on(s, now=NOW, actor="ops", message="four"))
    # Not version 1 again: gateways that hold 3 would take it for an old read, and the
    # history would hold two records of version 1.
    assert after.version == 4 and store.read() == after
    records = store.history()
    assert [record["version"] for record in records] == [4, 3, 2, 1]
    assert records[0]["old"]["version"] == 0 and records[-1]["new"]["message"] == "one"
    # A history put back out of order (a restored copy, an edit) is passed as a whole.
    history = (tmp_path / "state.json.history").read_text().splitlines()
    (tmp_path / "state.json.history").write_text("\n".join([history[3], history[0], '{"version": 9, "at": "x"}', history[1]]) + "\n")
    assert change_state(store, lambda s: switched_off(s, now=NOW, actor="ops")).version == 10


def test_a_huge_history_is_read_a_line_at_a_time_and_an_overlong_line_skipped(tmp_path: Path) -> None:
    """Writers read the whole history for its highest version: what the file holds must not
    decide what a write holds in memory (a 64 MiB line, 200,000 records)."""
    import subprocess
    import sys

    history = tmp_path / "state.json.history"
    with history.open("w") as handle:
        handle.write('{"version": 7, "at": "x"}\n')
        handle.write('{"version": 99, "pad": "' + "x" * (64 << 20) + '"}\n')  # no record is this long
        for number in range(200_000):
            handle.write('{"version": %d, "at": "x"}\n' % (number % 50))
        handle.write('{"version": 8, "at": "x"}')  # a torn last line still counts when whole JSON
    # VmHWM, the process's own peak (ru_maxrss would count this test's memory before the exec).
    script = (
        "import re; from gateway.stores.file import FileStore; "
        f"store = FileStore({str(tmp_path / 'state.json')!r}); "
        "print(store.last_recorded_version(), [r['version'] for r in store.history(3)], "
        "re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[0] == "49"  # the 64 MiB line (version 99) is skipped, not read whole
    versions, peak_kib = out[1].rsplit(" ", 1)
    assert versions == "[8, 49, 48]"
    assert int(peak_kib) < 60 * 1024, f"peak RSS {peak_kib} KiB"


def test_store_urls() -> None:
    assert parse_store_url("file:/var/run/state.json") == ("file", "/var/run/state.json")
    assert parse_store_url("file:///var/run/state.json") == ("file", "/var/run/state.json")
    assert parse_store_url("memory:") == ("memory", "")
    assert isinstance(open_store("memory:"), MemoryStore)
    with pytest.raises(ValueError):
        parse_store_url("redis://x")


def test_stored_text_is_repaired_so_it_always_encodes() -> None:
    item = {
        "enabled": True,
        "message": "lone \ud800 and \udfff, a split pair \ud83d\ude00, NUL \x00 and RTL \u202e kept",
        "reason": "\udc80" * 600,
        "updated_by": "\ud800 someone",
        "version": MAX_VERSION,
        "starts_at": "0001-01-01T00:00:00Z",
        "ends_at": "9999-12-31T23:59:59.999Z",
    }
    state = MaintenanceState.from_item(item)
    assert state.message == "lone \ufffd and \ufffd, a split pair \U0001f600, NUL \x00 and RTL \u202e kept"
    assert state.reason == "\ufffd" * 500  # cut to the limit rather than refused
    assert state.updated_by == "\ufffd someone"
    assert (state.starts_at, state.ends_at) == (MIN_TIME, MAX_TIME)
    assert json.dumps(state.describe(NOW), ensure_ascii=False).encode("utf-8")
    # Built directly (the CLI passes argv, which may hold undecodable bytes as surrogates): repaired too.
    direct = switched_on(MaintenanceState(), now=NOW, actor="cli \udcff", message="argv \udcff", reason="\udcfe")
    assert (direct.message, direct.reason, direct.updated_by) == ("argv \ufffd", "\ufffd", "cli \ufffd")
    assert MaintenanceState.from_item({"message": "x" * 5000}).message == "x" * 2000


def test_times_outside_what_iso_8601_utc_can_name_are_refused() -> None:
    assert parse_time("t", "0001-01-01T00:00:00Z") == MIN_TIME
    assert format_time(parse_time("t", "9999-12-31T23:59:59.999Z")) == "9999-12-31T23:59:59.999Z"
    for text in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "\x00", "2026-11-26T10:00:00\ud800"):
        with pytest.raises(StateError):
            parse_time("t", text)
    with pytest.raises(StateError, match="ends_at"):
        switched_on(MaintenanceState(), now=NOW, actor="ops", starts_at=MAX_TIME - 10, ends_at=MAX_TIME + 10)
    with pytest.raises(StateError, match="starts_at"):
        MaintenanceState(enabled=True, starts_at=float("nan"))


# What a store may hold, written by an older version, by hand or by a script: the gateway keeps answering.
HOSTILE_ITEMS = {
    "lone surrogates": '{"enabled": true, "message": "\\ud800 down \\udfff", "reason": "\\udc80", "updated_by": "\\ud800", "version": 3}',
    "controls": '{"enabled": true, "message": "nul \\u0000 esc \\u001b[2J bell \\u0007 \\u202e", "version": 4}',
    "year 0 start": '{"enabled": true, "starts_at": "0001-01-01T00:00:00+01:00", "version": 5}',
    "year 10000 end": '{"enabled": true, "ends_at": "9999-12-31T23:59:59-14:00", "version": 6}',
    "the last instant": '{"enabled": true, "starts_at": "0001-01-01T00:00:00Z", "ends_at": "9999-12-31T23:59:59.999Z", "version": 7}',
    "huge version": '{"enabled": true, "version": 1' + "0" * 40 + "}",
    "biggest version": '{"enabled": true, "version": 9007199254740991}',
    "wrong types": '{"enabled": "yes", "message": 5, "mode": ["full"], "version": "3", "ends_at": 17}',
    "mode": '{"enabled": true, "mode": "\\ud800", "version": 8}',
    "nulls": '{"enabled": null, "message": null, "mode": null, "version": null, "ends_at": null}',
    "long message": '{"enabled": true, "message": "' + "\\u0645" * 10_000 + '", "version": 9}',
    "not an object": "[1, 2, 3]",
    "deep": "[" * 30_000 + "]" * 30_000,
}


@pytest.fixture(scope="module")
def hostile_store_gateway(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    # A short interval: refused items make the refresher back off (up to 8 intervals).
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": "0.02"}, name="gateway-hostile-items")
    yield gateway
    gateway.stop()


@pytest.mark.parametrize("name", list(HOSTILE_ITEMS))
def test_a_hostile_file_store_item_never_breaks_health_the_503_or_status(hostile_store_gateway: Gateway, name: str) -> None:
    gateway = hostile_store_gateway
    gateway.state_path.write_text(HOSTILE_ITEMS[name])
    wait_for_reads(gateway)
    assert_gateway_survives(gateway, gateway.env["GATEWAY_STORE"])
    # It also survives a restart with such an item (the container health check after a deploy).
    if name in ("lone surrogates", "year 0 start", "huge version"):
        fresh = Gateway(gateway.state_path.parent, gateway.env["GATEWAY_UPSTREAM_URL"],
                        {"GATEWAY_STORE": gateway.env["GATEWAY_STORE"]}, name=f"gateway-hostile-restart-{name.replace(' ', '-')}")
        try:
            healthcheck = subprocess.run(
                [str(BIN / "maintenance-gateway"), "healthcheck", "--port", str(fresh.port)],
                env=base_env(), capture_output=True, timeout=20,
            )
            assert healthcheck.returncode == 0, healthcheck.stderr
            assert_gateway_survives(fresh, gateway.env["GATEWAY_STORE"])
        finally:
            fresh.stop()
    log = gateway.server.log()
    assert "Traceback" not in log and "Logging error" not in log, log[-3000:]


def test_only_a_scoped_state_is_written_in_the_newer_schema() -> None:
    # Gateways of the previous release refuse schema 2 and keep their last good state; a
    # scoped state read by them as schema 1 would put the whole site in maintenance.
    whole_site = switched_on(MaintenanceState(), now=time.time(), actor="t")
    scoped = switched_on(MaintenanceState(), now=time.time(), actor="t", scope=("/api/checkout/",))
    assert whole_site.to_item()["schema"] == 1
    assert scoped.to_item()["schema"] == 2
    assert MaintenanceState.from_item(scoped.to_item()) == scoped
    assert MaintenanceState.from_item(whole_site.to_item()) == whole_site


def _finishes(call, timeout: float = 3.0) -> BaseException | None:
    """Run ``call`` in a daemon thread; the exception it raised (None if none), or fail if it hangs."""
    import threading

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert outcome, f"{call} did not return within {timeout} s"
    return outcome[0]


def test_a_fifo_or_device_where_a_store_file_belongs_is_refused_at_once(tmp_path: Path) -> None:
    import os

    path = tmp_path / "state.json"
    store = FileStore(str(path))
    os.mkfifo(path)
    error = _finishes(store.read)
    assert isinstance(error, StoreError) and str(path) in str(error) and "not a regular file" in str(error)
    path.unlink()
    change_state(store, lambda s: switched_on(s, now=time.time(), actor="a"))
    history = Path(f"{path}.history")
    history.unlink()
    os.mkfifo(history)
    assert isinstance(_finishes(lambda: store.history(5)), StoreError)
    write = _finishes(lambda: change_state(store, lambda s: switched_off(s, now=time.time(), actor="a")))
    assert isinstance(write, StoreError) and str(history) in str(write)
    assert store.read().enabled  # a change whose history cannot be written is not made
    symlinked = FileStore(str(tmp_path / "device.json"))
    (tmp_path / "device.json").symlink_to("/dev/zero")
    assert isinstance(_finishes(symlinked.read), StoreError)


def _wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _stopped_within(gateway: Gateway, seconds: float) -> bool:
    import os
    import signal
    import subprocess as sp

    os.killpg(gateway.pid, signal.SIGTERM)
    try:
        gateway.server.process.wait(seconds)
        return True
    except sp.TimeoutExpired:
        return False
    finally:
        gateway.server.stop(signal.SIGKILL)


def test_a_state_file_replaced_by_a_fifo_keeps_the_gateway_alive_and_stoppable(log_dir: Path, raw_upstream: str) -> None:
    import httpx
    import os

    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_DRAIN_TIMEOUT": "1"}, name="gateway-fifo")
    try:
        gateway.turn_on(message="frozen")
        stored = gateway.state_path.read_text()
        gateway.state_path.unlink()
        os.mkfifo(gateway.state_path)
        assert _wait_until(lambda: gateway.health()["store"]["status"] == "stale")
        assert str(gateway.state_path) in gateway.health()["store"]["error"]
        gateway.state_path.unlink()
        gateway.state_path.write_text(stored)
        gateway.turn_off()  # read by the gateway again: it is not stuck
        assert httpx.get(f"{gateway.url}/echo").status_code == 200
        os.unlink(gateway.state_path)
        os.mkfifo(gateway.state_path)
        time.sleep(0.5)
    finally:
        stopped = _stopped_within(gateway, 8)
    assert stopped, gateway.server.log()


def test_store_calls_that_never_end_do_not_keep_the_gateway_from_stopping(log_dir: Path, raw_upstream: str) -> None:
    """DynamoDB that accepts the connection and never answers (its server stopped) with a long
    read timeout: the refresher's read and an admin write hang, and SIGTERM still ends the
    process, after a drain shorter than a second."""
    import threading

    import httpx

    from tests.support import DynamoDBServer

    dynamodb = DynamoDBServer(log_dir, name="moto-hang")
    try:
        url = dynamodb.store_url("hang", read_timeout="120", connect_timeout="120", max_attempts="1")
        open_store(url).create_table()  # type: ignore[attr-defined]
        gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_STORE": url, "GATEWAY_DRAIN_TIMEOUT": "0.5"}, name="gateway-hang")
        try:
            assert gateway.health()["store"]["status"] == "ok"
            dynamodb.pause()
            put = threading.Thread(
                target=lambda: httpx.put(f"{gateway.url}/_gateway/maintenance", json={}, headers=gateway.admin_headers, timeout=30),
                daemon=True,
            )
            put.start()
            time.sleep(0.5)  # the refresher (every 0.1 s) and the write are now waiting on DynamoDB
        finally:
            stopped = _stopped_within(gateway, 8)
    finally:
        dynamodb.stop()
    assert stopped, gateway.server.log()


def test_a_deleted_state_file_is_followed_shown_and_written_past(log_dir: Path, raw_upstream: str) -> None:
    import httpx

    gateway = Gateway(log_dir, raw_upstream, name="gateway-went-back")
    try:
        gateway.turn_on(message="one")
        held = gateway.turn_on(message="two")
        assert httpx.get(f"{gateway.url}/echo").status_code == 503
        gateway.state_path.unlink()
        deleted = time.monotonic()
        # Followed within the refresh interval (0.1 s here, plus its jitter and this polling).
        assert _wait_until(lambda: httpx.get(f"{gateway.url}/echo").status_code == 200, timeout=2)
        followed_after = time.monotonic() - deleted
        detailed = gateway.health()
        public = httpx.get(f"{gateway.url}/_gateway/health").json()
        metrics = gateway.metrics()
        # The CLI says the file is not there rather than "off, version 0", which a mistyped path reads as too.
        status = cli("status", store=gateway.state_path)
        assert status.returncode == 1 and f"no such item: file {gateway.state_path}" in status.stderr, status.stderr
        # The operator's next change is numbered past the history (3, not 1), and served.
        on = cli("on", "--message", "after the deletion", store=gateway.state_path)
        assert on.returncode == 0 and "version:     3" in on.stdout, on.stderr
        gateway.wait_for_version(3)
        assert httpx.get(f"{gateway.url}/echo").status_code == 503
        # With the history gone too, the admin API still numbers past what its gateway held.
        gateway.state_path.unlink()
        Path(f"{gateway.state_path}.history").unlink()
        assert _wait_until(lambda: gateway.health()["state"]["version"] == 0)
        put = httpx.put(f"{gateway.url}/_gateway/maintenance", json={"message": "again"}, headers=gateway.admin_headers)
        assert put.status_code == 200 and put.json()["version"] == 4, put.text
        again = gateway.health()
    finally:
        log = gateway.server.log()
        gateway.stop()
    assert followed_after < 1.0
    assert detailed["state"]["version"] == 0 and detailed["maintenance"] is False
    assert detailed["store"]["status"] == "ok"
    went_back = detailed["store"]["went_back"]
    assert (went_back["from"], went_back["to"], went_back["times"]) == (held.version, 0, 1)
    assert abs(parse_time("at", went_back["at"]) - time.time()) < 30
    # A stranger reads what it read before: no version, no event.
    assert public == {"status": "ok", "maintenance": False, "mode": "full", "upcoming": False, "store": {"status": "ok"}}
    assert "gateway_store_went_back_total 1\n" in metrics and "gateway_store_confirming_reads_total 1\n" in metrics
    assert log.count('"event": "state_went_back"') == 2, log
    assert again["store"]["went_back"]["times"] == 2 and again["state"]["version"] == 4
