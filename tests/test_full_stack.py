"""The whole task on loopback, started from config/ecs-stack.yaml's own task definition.

nginx, the gateway and Django run with the commands, environment and health checks the
stack gives them, in the order ECS would start them (each container once the one it
depends on is HEALTHY, judged by that container's own health-check command), and stop in
the order ECS stops them. Only what cannot be the same on a shared test machine is
replaced: the ports (loopback, free), the store (moto's DynamoDB), the secrets' values,
and the example Django app for the site's image.

Everything then goes through nginx, as the ALB's traffic would: normal requests, the
admin call that turns maintenance on, the browser on another origin, and the ALB health
path, which must stay 200 the whole time.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import call_from
from tests.dockerfile_reader import exec_form, final_stage
from tests.stack import NGINX_IMAGE_ENV, NGINX_TEMPLATE_PATH, envsubst_like_the_nginx_image, render, task_definition_api
from tests.support import AWS_ENV, BIN, DJANGO_DIR, FRONT_ORIGIN, NGINX_MAIN, DynamoDBServer, ServerProcess, base_env, free_port

TOKEN = "stack-admin-token-0123456789"
SECRET_VALUES = {"GATEWAY_ADMIN_TOKENS": f"ops:{TOKEN}", "GATEWAY_BYPASS_SECRET": "stack-bypass-secret-0123456789"}


def health_check_argv(container: dict[str, Any]) -> list[str]:
    """The container's health-check command as ECS runs it: CMD as it is, CMD-SHELL by /bin/sh."""
    kind, *command = container["healthCheck"]["command"]
    return ["sh", "-c", command[0]] if kind == "CMD-SHELL" else command


def run_health_check(container: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        health_check_argv(container), env=env, capture_output=True, text=True, timeout=container["healthCheck"]["timeout"] + 5
    )


def ordered_by_dependencies(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ordered: list[dict[str, Any]] = []
    remaining = list(containers)
    while remaining:
        ready = [c for c in remaining if all(d["containerName"] in {o["name"] for o in ordered} for d in c.get("dependsOn", []))]
        assert ready, "the containers' dependencies form a cycle"
        ordered.extend(ready)
        remaining = [c for c in remaining if c not in ready]
    return ordered


@dataclass
class Task:
    """One task's containers as the test runs them."""

    definition: dict[str, Any]
    log_dir: Path
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    healthy: list[str] = field(default_factory=list)
    url: str = ""

    def container(self, name: str) -> dict[str, Any]:
        return next(c for c in self.definition["containerDefinitions"] if c["name"] == name)

    def wait_healthy(self, name: str) -> None:
        """What ECS does: run the check until it passes. The test polls faster than the
        check's interval but gives up no later than ECS would mark the container unhealthy."""
        container = self.container(name)
        check = container["healthCheck"]
        deadline = time.monotonic() + check["startPeriod"] + check["interval"] * check["retries"]
        while True:
            result = run_health_check(container, self.env[name])
            if result.returncode == 0:
                self.healthy.append(name)
                return
            if self.servers[name].process.poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.servers[name].log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not healthy: {result.stdout}{result.stderr}\n{self.servers[name].log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()


def start_task(log_dir: Path, dynamodb: DynamoDBServer) -> Task:
    ports = {"Nginx": free_port(), "Gateway": free_port(), "Django": free_port()}
    stack = render(
        {"DjangoWsgiApplication": "example_site.wsgi", "AllowedOrigins": FRONT_ORIGIN, "CorsAllowCredentials": "true",
         "CorsAllowHeaders": "accept,authorization,content-type,user-agent,x-csrftoken,x-requested-with,x-client-version"},
        mapping_overrides={
            **{("Ports", "Container", name): str(port) for name, port in ports.items()},
            ("Ports", "Listen", "NginxAddress"): "127.0.0.1",
        },
    )
    task = Task(task_definition_api(stack), log_dir)
    path = f"{BIN}:{base_env()['PATH']}"
    image = final_stage()
    image_env = dict(item.split("=", 1) for item in shlex.split(next(rest for k, rest in image if k == "ENV")))

    def environment(container: dict[str, Any]) -> dict[str, str]:
        return {item["name"]: item["value"] for item in container.get("environment", [])}

    for container in ordered_by_dependencies(task.definition["containerDefinitions"]):
        name = container["name"]
        for dependency in container.get("dependsOn", []):
            assert dependency["condition"] == "HEALTHY"
            assert dependency["containerName"] in task.healthy
        own = environment(container)
        if name == "django":
            env = {**base_env(), "PATH": path, **own, "EXAMPLE_CORS_ALLOWED_ORIGINS": FRONT_ORIGIN}
            task.env[name] = env
            # Before gunicorn runs, Django's health check fails: HEALTHY has to wait for it.
            assert run_health_check(container, env).returncode != 0
            task.servers[name] = ServerProcess("stack-django", container["command"], env, DJANGO_DIR, log_dir)
        elif name == "gateway":
            secrets = {secret["name"]: SECRET_VALUES[secret["name"]] for secret in container["secrets"]}
            env = {**base_env(), **AWS_ENV, **{k: v for k, v in image_env.items() if k != "PATH"}, "PATH": path, **own, **secrets}
            env["GATEWAY_STORE"] += f"&endpoint_url={dynamodb.url}"
            task.env[name] = env
            entrypoint = exec_form(next(rest for k, rest in image if k == "ENTRYPOINT"))
            task.servers[name] = ServerProcess("stack-gateway", entrypoint + container["command"], env, log_dir, log_dir)
        elif name == "nginx":
            env = {**base_env(), "PATH": path, **NGINX_IMAGE_ENV, **own}
            task.env[name] = env
            prefix = log_dir / "stack-nginx"
            prefix.mkdir(exist_ok=True)
            (prefix / "default.conf").write_text(envsubst_like_the_nginx_image(NGINX_TEMPLATE_PATH.read_text(), {**NGINX_IMAGE_ENV, **own}))
            (prefix / "nginx.conf").write_text(NGINX_MAIN.format(prefix=prefix))
            task.servers[name] = ServerProcess("stack-nginx", ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], env, log_dir, log_dir)
        else:
            raise AssertionError(f"unexpected container {name}")
        task.wait_healthy(name)
    task.url = f"http://127.0.0.1:{ports['Nginx']}"
    return task


@pytest.fixture(scope="module")
def running_task(log_dir: Path) -> Iterator[Task]:
    dynamodb = DynamoDBServer(log_dir, name="moto-stack")
    task = None
    try:
        task = start_task(log_dir, dynamodb)
        from gateway.stores import open_store

        open_store(task.env["gateway"]["GATEWAY_STORE"]).create_table()  # the stack's table, in moto
        yield task
    finally:
        if task is not None:
            task.stop()
        dynamodb.stop()


@pytest.fixture
def stack(running_task: Task) -> str:
    return running_task.url


def test_the_containers_start_in_the_stacks_order_and_pass_their_own_health_checks(running_task: Task) -> None:
    assert running_task.healthy == ["django", "gateway", "nginx"]
    for container in running_task.definition["containerDefinitions"]:
        result = run_health_check(container, running_task.env[container["name"]])
        assert result.returncode == 0, (container["name"], result.stderr)


def test_the_nginx_health_check_fails_when_the_gateway_does_not_answer(running_task: Task) -> None:
    nginx = running_task.container("nginx")
    env = {**running_task.env["nginx"], "NGINX_PORT": str(free_port())}
    assert run_health_check(nginx, env).returncode != 0


def test_maintenance_through_the_whole_stack(stack: str, browser, front_pages) -> None:
    allowed_page, _ = front_pages
    health: list[tuple[str, int]] = []
    phase = ["before"]
    watching = threading.Event()
    watching.set()

    def watch_health() -> None:
        # What the ALB target group does, only faster.
        with httpx.Client(timeout=5) as client:
            while watching.is_set():
                health.append((phase[0], client.get(f"{stack}/_gateway/health").status_code))
                time.sleep(0.02)

    def enter(name: str) -> None:
        """Move to the next phase once the health check has been seen in the current one."""
        deadline = time.monotonic() + 5
        while not any(p == phase[0] for p, _ in health) and time.monotonic() < deadline:
            time.sleep(0.01)
        phase[0] = name

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    admin = httpx.Client(base_url=f"{stack}/_gateway", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:
        normal = httpx.get(f"{stack}/api/request-info", headers={"X-Forwarded-Proto": "https"})
        assert normal.status_code == 200
        seen = normal.json()
        assert seen["headers"]["X-Forwarded-Proto"] == "https"
        assert seen["headers"]["X-Forwarded-For"].endswith("127.0.0.1")

        enter("maintenance")
        turned_on = admin.put("/maintenance", json={"message": "Upgrading, back at 10:00 UTC", "duration_seconds": 900})
        assert turned_on.status_code == 200, turned_on.text
        page_sees = call_from(browser, allowed_page, f"{stack}/api/hello")
        assert page_sees["ok"] is True, page_sees
        assert page_sees["status"] == 503
        assert page_sees["body"]["message"] == "Upgrading, back at 10:00 UTC"
        assert 890 <= int(page_sees["retryAfter"]) <= 900
        html = httpx.get(f"{stack}/", headers={"Accept": "text/html"})
        assert html.status_code == 503 and "Upgrading, back at 10:00 UTC" in html.text
        direct = httpx.get(f"{stack}/api/hello", headers={"Origin": FRONT_ORIGIN})
        assert direct.headers.get_list("access-control-allow-origin") == [FRONT_ORIGIN]
        # Django's health URL is let through, so it can be watched through the ALB in maintenance.
        assert httpx.get(f"{stack}/healthz").status_code == 200

        enter("after")
        assert admin.delete("/maintenance").status_code == 200
        restored = call_from(browser, allowed_page, f"{stack}/api/hello")
        assert restored["status"] == 200 and restored["body"]["message"] == "hello from Django"
        enter("done")
    finally:
        watching.clear()
        watcher.join()
        admin.close()
    assert {p for p, _ in health} >= {"before", "maintenance", "after"}
    assert {code for _, code in health} == {200}, health


def test_verify_confirms_through_nginx_that_the_task_reads_the_store(running_task: Task) -> None:
    """Issue 20.7: after a deploy, `verify` through the load balancer's way in (here nginx) shows
    each answering task reading the store, names what is wrong, and writes nothing."""

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "maintenance-gateway"), "verify", *args], env=base_env(), capture_output=True, text=True, timeout=60,
        )

    def health() -> dict[str, Any]:
        return httpx.get(f"{running_task.url}/_gateway/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()

    # The fixture creates the table once the task is up: the gateway's first read found none,
    # and the next, an interval later, finds it.
    deadline = time.monotonic() + 10
    while health()["store"]["status"] != "ok" and time.monotonic() < deadline:
        time.sleep(0.1)
    before = health()
    passed = verify("--url", running_task.url, "--token", TOKEN, "--attempts", "4")
    assert passed.returncode == 0, passed.stderr
    assert "store ok, dynamodb://" in passed.stdout and "verified: 1 task(s) read the store" in passed.stdout
    # A service of two whose second task never answers.
    short = verify("--url", running_task.url, "--token", TOKEN, "--attempts", "3", "--tasks", "2")
    assert short.returncode == 1 and "1 task(s) answered in 3 requests, not the 2 of --tasks" in short.stderr, short.stderr
    # Django itself answers, not a gateway (a task without one, the old target group).
    django = running_task.env["gateway"]["GATEWAY_UPSTREAM_URL"]
    bare = verify("--url", django, "--token", TOKEN, "--attempts", "2")
    assert bare.returncode == 1 and "2 of 2 requests: HTTP 404, not a gateway's health" in bare.stderr, bare.stderr
    refused = verify("--url", running_task.url, "--token", "not-the-token-0123456789", "--attempts", "3")
    assert refused.returncode == 5 and "refused the token (HTTP 401)" in refused.stderr, refused.stderr
    after = httpx.get(f"{running_task.url}/_gateway/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert after["state"] == before["state"]  # nothing written


def test_the_task_stops_in_reverse_order_each_container_within_its_stop_timeout(running_task: Task) -> None:
    """ECS's stop: SIGTERM to nginx, then the gateway, then Django, each given its
    stopTimeout before SIGKILL. Each must exit by itself, well inside it, with status 0."""
    order = [c["name"] for c in reversed(ordered_by_dependencies(running_task.definition["containerDefinitions"]))]
    assert order == ["nginx", "gateway", "django"]
    for name in order:
        server = running_task.servers[name]
        stop_timeout = running_task.container(name)["stopTimeout"]
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} was still running after its stopTimeout of {stop_timeout} s") from None
        took = time.monotonic() - started
        # nginx's fast stop ends with the signal's own status; the others exit 0.
        assert code in ((0, -signal.SIGTERM) if name == "nginx" else (0,)), (name, code, server.log())
        assert took < stop_timeout / 2, (name, took)
