"""``maintenance-gateway override``: reaching every task through a load balancer, the tasks ECS
lists (a stub at the boto3 boundary, and moto's server), and the way out of an outage end to end:
DynamoDB (moto) stopped with maintenance on, two gateways behind a round-robin forwarder standing
in for the ALB, the site brought back with the CLI, then the store back."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.stub import Stubber

from gateway.cli.ecs_tasks import DESCRIBE_BATCH, running_tasks
from gateway.cli.override import Tally, default_attempts, holds_override, reach
from gateway.errors import AdminError, GatewayUnreachable, TaskListError
from gateway.stores import open_store
from tests.support import AWS_ENV, BIN, SUPPORT_ADMIN_TOKEN, DynamoDBServer, Gateway, base_env
from tests.test_cli_wait import RoundRobin
from tests.test_instance import Metadata

REGION = "us-east-1"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "maintenance-gateway"), *args], env={**base_env(), **AWS_ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


# -- reaching every task: the loop on its own


def answers(processes: list[tuple[str | None, int, int]], override_id: str, order: str = "round-robin") -> Callable[[], dict[str, Any]]:
    """A fleet behind a load balancer: each call reaches the next process (task, pid, workers)."""
    picked = itertools.cycle(processes) if order == "round-robin" else iter(processes)

    def call() -> dict[str, Any]:
        task, pid, workers = next(picked)
        unit = task if task is not None else f"host:{pid}"
        return {"override": {"id": override_id}, "instance": {"id": unit, "task": task, "pid": pid, "workers": workers}, "store": {"status": "stale"}}

    return call


def test_the_loop_stops_once_every_expected_task_answered() -> None:
    tally = reach(answers([("t1", 7, 1), ("t2", 7, 1), ("t3", 7, 1)], "ov"), holds_override("ov"), Tally(frozenset({"t1", "t2", "t3"}), 3), 50, 10)
    assert tally.complete() and tally.attempts == 3 and tally.missing() == []


def test_a_task_with_two_workers_counts_once_both_processes_answered() -> None:
    # GATEWAY_WORKERS=2: each process holds its own override.
    fleet = [("t1", 7, 2), ("t2", 7, 1), ("t1", 7, 2), ("t1", 8, 2)]
    tally = reach(answers(fleet, "ov"), holds_override("ov"), Tally(frozenset({"t1", "t2"}), 2), 50, 10)
    assert tally.complete() and tally.attempts == 4 and tally.reached["t1"].pids == {7, 8}


def test_off_ecs_each_process_is_counted_and_tasks_n_is_enough() -> None:
    tally = reach(answers([(None, 11, 1), (None, 12, 1)], "ov"), holds_override("ov"), Tally(None, 2), 50, 10)
    assert tally.complete() and sorted(tally.reached) == ["host:11", "host:12"]


def test_a_task_never_reached_is_named_and_the_attempts_are_bounded() -> None:
    tally = reach(answers([("t1", 7, 1), ("t2", 7, 1), ("t9", 7, 1)], "ov"), holds_override("ov"), Tally(frozenset({"t1", "t2", "t3"}), 3), 12, 10)
    assert not tally.complete() and tally.attempts == 12
    assert tally.missing() == ["t3"] and tally.unlisted() == ["t9"] and tally.complete_count() == 2


def test_the_time_is_bounded_too() -> None:
    clock = itertools.count(0.0, 1.0)
    tally = reach(answers([("t1", 7, 1)], "ov"), holds_override("ov"), Tally(None, 2), 1000, 5, clock=lambda: float(next(clock)))
    assert not tally.complete() and tally.attempts < 10


def test_a_refused_token_stops_at_once_a_task_that_cannot_answer_is_tried_again() -> None:
    calls = 0

    def refused() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        raise AdminError(401, {"error": "unauthorized", "message": "send Authorization: Bearer <admin token>"})

    with pytest.raises(AdminError):
        reach(refused, holds_override("ov"), Tally(None, 2), 50, 10, pause=lambda seconds: None)
    assert calls == 1  # a wrong token repeated would only use up the failure limit
    flaky = iter([GatewayUnreachable("cannot reach"), AdminError(503, {"error": "overloaded"}), None, None])
    good = answers([("t1", 7, 1), ("t2", 7, 1)], "ov")

    def sometimes() -> dict[str, Any]:
        failure = next(flaky)
        if failure is not None:
            raise failure
        return good()

    tally = reach(sometimes, holds_override("ov"), Tally(None, 2), 50, 10, pause=lambda seconds: None)
    assert tally.complete() and tally.attempts == 4


def test_answers_that_name_no_task_or_hold_another_override_do_not_count() -> None:
    odd = iter([{"instance": "me"}, {"override": {"id": "other"}, "instance": {"id": "t1", "task": "t1", "pid": 1, "workers": 1}}, {}])
    tally = reach(lambda: next(odd), holds_override("ov"), Tally(None, 1), 3, 10)
    assert not tally.complete() and tally.reached == {} and tally.last_error is not None
    assert default_attempts(1) == 20 and default_attempts(30) == 300 and default_attempts(10**6) == 1000


# -- the tasks ECS lists: stubbed at the boto3 boundary


def task_arn(number: int) -> str:
    return f"arn:aws:ecs:{REGION}:123456789012:task/web/{number:032x}"


@pytest.fixture
def ecs() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ecs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_tasks_are_listed_page_by_page_and_described_a_hundred_at_a_time(ecs: tuple[Any, Stubber]) -> None:
    client, stubber = ecs
    arns = [task_arn(number) for number in range(150)]
    listing = {"cluster": "web", "serviceName": "shop", "desiredStatus": "RUNNING"}
    stubber.add_response("list_tasks", {"taskArns": arns[:100], "nextToken": "page-2"}, listing)
    stubber.add_response("list_tasks", {"taskArns": arns[100:]}, {**listing, "nextToken": "page-2"})
    statuses = ["RUNNING"] * 147 + ["PENDING", "DEACTIVATING", "STOPPED"]
    described = [{"taskArn": arn, "lastStatus": status, "desiredStatus": "RUNNING"} for arn, status in zip(arns, statuses)]
    stubber.add_response("describe_tasks", {"tasks": described[:DESCRIBE_BATCH], "failures": []}, {"cluster": "web", "tasks": arns[:DESCRIBE_BATCH]})
    stubber.add_response(
        "describe_tasks",
        {"tasks": described[DESCRIBE_BATCH:-1], "failures": [{"arn": arns[-1], "reason": "MISSING"}]},
        {"cluster": "web", "tasks": arns[DESCRIBE_BATCH:]},
    )
    ids = running_tasks("web", "shop", client=client)
    # Only those the ALB can reach: RUNNING, not still starting, not on their way out.
    assert ids == sorted(f"{number:032x}" for number in range(147))


def test_ecs_refusing_is_a_task_list_error_naming_why(ecs: tuple[Any, Stubber]) -> None:
    client, stubber = ecs
    stubber.add_client_error("list_tasks", service_error_code="ClusterNotFoundException", service_message="Cluster not found.")
    with pytest.raises(TaskListError, match=r"ECS refused \(ClusterNotFoundException\): Cluster not found\."):
        running_tasks("nope", "shop", client=client)


def test_without_credentials_it_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(TaskListError, match="cannot ask ECS: Unable to locate credentials"):
        running_tasks("web", "shop", region=REGION)


# -- against moto's server: real HTTP, the calls as botocore sends them


@pytest.fixture(scope="module")
def moto_ecs(log_dir: Path) -> Iterator[DynamoDBServer]:
    """moto's server (every service on one port) with ECS tasks that stay RUNNING when described."""
    server = DynamoDBServer(log_dir, name="moto-ecs")
    # moto moves a task on from RUNNING each time it is described unless told otherwise.
    httpx.post(
        f"{server.url}/moto-api/state-manager/set-transition",
        json={"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1_000_000}},
    ).raise_for_status()
    yield server
    server.stop()


def ecs_on(server: DynamoDBServer) -> Any:
    return boto3.client("ecs", region_name=REGION, endpoint_url=server.url, aws_access_key_id="testing", aws_secret_access_key="testing")


def start_service_tasks(server: DynamoDBServer, cluster: str, count: int) -> list[str]:
    """``count`` RUNNING tasks in a cluster of their own (moto lists a cluster's tasks whatever the
    service named: it starts none for services), their ARNs."""
    client = ecs_on(server)
    client.create_cluster(clusterName=cluster)
    client.register_task_definition(family="shop", containerDefinitions=[{"name": "gateway", "image": "maintenance-gateway", "memory": 128}])
    tasks = client.run_task(cluster=cluster, taskDefinition="shop", count=count, launchType="FARGATE", startedBy="ecs-svc/shop")["tasks"]
    return [task["taskArn"] for task in tasks]


def test_running_tasks_against_moto(moto_ecs: DynamoDBServer, monkeypatch: pytest.MonkeyPatch) -> None:
    arns = start_service_tasks(moto_ecs, "listing", 3)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", moto_ecs.url)  # botocore's own way to move an endpoint
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    assert running_tasks("listing", "shop", region=REGION) == sorted(arn.rsplit("/", 1)[-1] for arn in arns)
    ecs_on(moto_ecs).stop_task(cluster="listing", task=arns[0], reason="scale-in")
    assert running_tasks("listing", "shop", region=REGION) == sorted(arn.rsplit("/", 1)[-1] for arn in arns[1:])
    with pytest.raises(TaskListError, match="ECS refused"):
        running_tasks("no-such-cluster", "shop", region=REGION)


# -- the command


TOKEN_ARGS = ("--token", SUPPORT_ADMIN_TOKEN)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("off",), "--tasks N, or --ecs-cluster"),
        (("off", "--ecs-cluster", "web"), "--tasks N, or --ecs-cluster"),
        (("off", "--tasks", "2", "--ecs-cluster", "web", "--ecs-service", "shop"), "not both"),
        (("off", "--tasks", "2", "--ttl", "25h"), "at most 1d"),
        (("off", "--tasks", "2", "--ttl", "-5m"), "longer than zero"),
        (("off", "--tasks", "0"), "expected 1..1000"),
        (("off", "--tasks", "2", "--attempts", "1001"), "expected 1..1000"),
        (("off", "--tasks", "2", "--timeout", "11m"), "at most 10m"),
        (("off", "--tasks", "2", "--message", "hi"), "no meaning with off"),
        (("clear", "--tasks", "2", "--ttl", "1h"), "clear takes no"),
        (("sideways", "--tasks", "2"), "invalid choice"),
    ],
)
def test_a_command_line_that_cannot_work_is_refused_before_any_override_is_sent(raw_gateway: Gateway, args: tuple[str, ...], said: str) -> None:
    result = run_cli("override", *args, "--url", raw_gateway.url, *TOKEN_ARGS, timeout=30)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert raw_gateway.health()["override"] is None


def test_override_goes_to_gateways_only(tmp_path: Path) -> None:
    without_token = run_cli("override", "off", "--url", "http://127.0.0.1:9", "--tasks", "2", timeout=30)
    assert without_token.returncode == 2 and "--url needs --token" in without_token.stderr, without_token.stderr
    without_url = run_cli("override", "off", "--tasks", "2", env={"GATEWAY_STORE": f"file:{tmp_path / 'state.json'}"}, timeout=30)
    assert without_url.returncode == 2 and "give --url URL and --token TOKEN" in without_url.stderr, without_url.stderr


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(0.1)


def status_code(gateway: Gateway) -> int:
    return httpx.get(f"{gateway.url}/echo", timeout=5).status_code


def test_with_dynamodb_down_the_override_brings_every_task_back_and_a_write_to_the_store_ends_it(log_dir: Path, raw_upstream: str) -> None:
    moto = DynamoDBServer(log_dir, name="moto-override")
    gateways: list[Gateway] = []
    balancer = None
    try:
        store_url = moto.store_url("override-outage", key="shop", connect_timeout="0.5", read_timeout="0.5", max_attempts="1")
        open_store(store_url).create_table()  # type: ignore[attr-defined]
        env = {"GATEWAY_STORE": store_url, "GATEWAY_REFRESH_INTERVAL": "0.2"}
        gateways = [Gateway(log_dir, raw_upstream, env, name=f"gateway-override-{name}") for name in ("a", "b")]
        balancer = RoundRobin([gateway.port for gateway in gateways])
        through = ("--url", balancer.url, *TOKEN_ARGS)
        on = run_cli("on", "--message", "Upgrading", "--reason", "release 42", env={"GATEWAY_STORE": store_url})
        assert on.returncode == 0, on.stderr
        wait_until(lambda: all(status_code(gateway) == 503 for gateway in gateways), what="maintenance on both")

        moto.pause()  # DynamoDB unreachable: connections open, nothing answers
        wait_until(lambda: all(gateway.health()["store"]["status"] == "stale" for gateway in gateways), what="both stale")
        # Today's way out fails both ways: the store cannot be written, nor through the admin API.
        direct = run_cli("off", env={"GATEWAY_STORE": store_url})
        assert direct.returncode == 1 and "store error" in direct.stderr, (direct.returncode, direct.stderr)
        refused = run_cli("off", *through)
        assert refused.returncode == 1 and "store cannot be reached" in refused.stderr, (refused.returncode, refused.stderr)
        assert [status_code(gateway) for gateway in gateways] == [503, 503]

        override = run_cli("override", "off", *through, "--tasks", "2", "--ttl", "30m", "--reason", "dynamodb down")
        assert override.returncode == 0, (override.stdout, override.stderr)
        assert "reached 2 of 2 tasks" in override.stdout and "store stale" in override.stdout, override.stdout
        assert [status_code(gateway) for gateway in gateways] == [200, 200]
        for gateway in gateways:
            details = gateway.health()
            assert details["override"]["reason"] == "dynamodb down" and details["state"]["enabled"] is True
            assert details["instance"]["pid"] == gateway.pid
        status = run_cli("status", *through)
        assert status.returncode == 0, status.stderr
        assert "maintenance: on" in status.stdout  # the stored state
        assert "decided by an override" in status.stdout and "dynamodb down" in status.stdout, status.stdout
        as_json = json.loads(run_cli("status", "--json", *through).stdout)
        assert as_json["override"]["maintenance"] == "off" and as_json["served"]["active"] is False
        # Running it again is harmless: each task keeps the override it holds (a new run: a new one).
        again = run_cli("override", "off", *through, "--tasks", "2", "--reason", "dynamodb down")
        assert again.returncode == 0, again.stderr

        moto.resume()  # the store is back, as it was: maintenance on, open-ended
        wait_until(lambda: all(gateway.health()["store"]["status"] == "ok" for gateway in gateways), what="both ok")
        time.sleep(0.5)  # a few more reads of the unchanged store
        assert [status_code(gateway) for gateway in gateways] == [200, 200]
        assert all(gateway.health()["override"] is not None for gateway in gateways)
        assert any("override_outlives_outage" in gateway.server.log() for gateway in gateways)

        # The operator writes what they want; every task follows the store and drops its override.
        off = run_cli("off", "--reason", "dynamodb back", env={"GATEWAY_STORE": store_url})
        assert off.returncode == 0, off.stderr
        wait_until(lambda: all(gateway.health()["override"] is None for gateway in gateways), what="both overrides dropped")
        assert [status_code(gateway) for gateway in gateways] == [200, 200]
        assert all(gateway.health()["served"]["decided_by"] == "store" for gateway in gateways)
        assert all("override_superseded" in gateway.server.log() for gateway in gateways)
    finally:
        if balancer is not None:
            balancer.close()
        for gateway in gateways:
            gateway.stop()
        moto.stop()


def test_the_service_s_tasks_from_ecs_each_reached_by_its_task_id(log_dir: Path, raw_upstream: str, moto_ecs: DynamoDBServer) -> None:
    arns = start_service_tasks(moto_ecs, "web", 3)
    ids = [arn.rsplit("/", 1)[-1] for arn in arns]
    metadata = Metadata()
    gateways: list[Gateway] = []
    balancer = None
    try:
        # Two of the three tasks ECS lists run a gateway that answers; the third never does.
        for number, arn in enumerate(arns[:2]):
            uri = metadata.serve(f"task-{number}", {"TaskARN": arn, "Cluster": "web"})
            gateways.append(
                Gateway(log_dir, raw_upstream, {"ECS_CONTAINER_METADATA_URI_V4": uri, "GATEWAY_STORE": "memory:"}, name=f"gateway-ecs-{number}")
            )
        balancer = RoundRobin([gateway.port for gateway in gateways])
        ecs_env = {"AWS_ENDPOINT_URL_ECS": moto_ecs.url, "AWS_REGION": REGION}
        command = ("--url", balancer.url, *TOKEN_ARGS, "--ecs-cluster", "web", "--ecs-service", "shop", "--attempts", "12")
        partial = run_cli("override", "on", *command, "--message", "Back soon", env=ecs_env)
        assert partial.returncode == 1, (partial.stdout, partial.stderr)
        assert f"not reached: {ids[2]}" in partial.stderr and "reached 2 of 3 tasks in 12 calls" in partial.stderr, partial.stderr
        for task in ids[:2]:
            assert f"task {task} (pid " in partial.stdout, partial.stdout
        assert [gateway.health()["instance"]["task"] for gateway in gateways] == ids[:2]

        ecs_on(moto_ecs).stop_task(cluster="web", task=arns[2], reason="replaced")
        whole = run_cli("override", "on", *command, "--message", "Back soon", env=ecs_env)
        assert whole.returncode == 0, (whole.stdout, whole.stderr)
        assert "reached 2 of 2 tasks" in whole.stdout
        assert [status_code(gateway) for gateway in gateways] == [503, 503]
        assert all("Back soon" in httpx.get(f"{gateway.url}/echo", headers={"accept": "text/plain"}).text for gateway in gateways)

        cleared = run_cli("override", "clear", *command, env=ecs_env)
        assert cleared.returncode == 0, (cleared.stdout, cleared.stderr)
        assert [status_code(gateway) for gateway in gateways] == [200, 200]
        assert all(gateway.health()["override"] is None for gateway in gateways)
        wrong = run_cli("override", "clear", "--url", balancer.url, "--token", "wrong-token-0123456789", "--tasks", "2")
        assert wrong.returncode == 5 and "refused" in wrong.stderr, (wrong.returncode, wrong.stderr)
    finally:
        if balancer is not None:
            balancer.close()
        for gateway in gateways:
            gateway.stop()
        metadata.close()
