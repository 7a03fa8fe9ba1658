"""``make run`` (scripts/run-example.sh) as a newcomer runs it: the example Django app under
gunicorn and uvicorn, the gateway in front, on the ports asked for, and a clear stop when a
port is taken."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.admin.changes import next_state
from gateway.stores import change_state, open_store
from tests.support import ROOT, base_env, free_port, port_open

SCRIPT = ROOT / "scripts" / "run-example.sh"
# gunicorn with Django, uvicorn with Channels and the gateway start one after the other on 2 shared cores.
START_TIMEOUT = 60.0


class Example:
    """scripts/run-example.sh in its own process group, its output in a file; ``script`` may be
    a copy of it in another tree."""

    def __init__(self, tmp_path: Path, env: dict[str, str], args: list[str], script: Path = SCRIPT, store: bool = True) -> None:
        self.output_path = tmp_path / "run-example.out"
        store_env = {"GATEWAY_STORE": f"file:{tmp_path / 'state.json'}"} if store else {}
        with self.output_path.open("wb") as output:
            self.process = subprocess.Popen(
                [str(script), *args],
                env={**base_env(), **store_env, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_for_line(self, pattern: str) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match.group(0)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}; exit {self.process.poll()}:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group is left
        except ProcessLookupError:
            pass
        self.process.wait()


@pytest.fixture
def ports() -> dict[str, int]:
    return {"django": free_port(), "asgi": free_port(), "gateway": free_port()}


@pytest.mark.parametrize("how", ["GATEWAY_PORT", "--port"])
def test_make_run_serves_the_example_on_the_port_asked_for(tmp_path: Path, ports: dict[str, int], how: str) -> None:
    env = {"EXAMPLE_DJANGO_PORT": str(ports["django"]), "EXAMPLE_ASGI_PORT": str(ports["asgi"])}
    args: list[str] = []
    if how == "GATEWAY_PORT":
        env["GATEWAY_PORT"] = str(ports["gateway"])
    else:
        args = ["--port", str(ports["gateway"])]
    example = Example(tmp_path, env, args)
    try:
        banner = example.wait_for_line(r"Django on .*")
        assert f"the gateway on http://127.0.0.1:{ports['gateway']} " in banner, banner
        assert f"http://127.0.0.1:{ports['django']} " in banner and f":{ports['asgi']}" in banner, banner
        hint = example.wait_for_line(r"Try: .*")
        assert f"curl -i http://127.0.0.1:{ports['gateway']}/api/hello" in hint and ":8080" not in hint, hint
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(ports["gateway"]) and time.monotonic() < deadline:
            assert example.process.poll() is None, example.output()
            time.sleep(0.1)
        answer = httpx.get(f"http://127.0.0.1:{ports['gateway']}/api/hello", timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == "hello from Django"
    finally:
        example.stop()
    assert not any(port_open(port) for port in ports.values()), example.output()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize(
    ("which", "variable"),
    [("django", "EXAMPLE_DJANGO_PORT"), ("asgi", "EXAMPLE_ASGI_PORT"), ("gateway", "GATEWAY_PORT")],
)
def test_make_run_stops_at_once_when_a_port_is_taken(
    tmp_path: Path, ports: dict[str, int], taken_port: int, which: str, variable: str
) -> None:
    ports[which] = taken_port
    env = {
        "EXAMPLE_DJANGO_PORT": str(ports["django"]),
        "EXAMPLE_ASGI_PORT": str(ports["asgi"]),
        "GATEWAY_PORT": str(ports["gateway"]),
    }
    started = time.monotonic()
    example = Example(tmp_path, env, [])
    try:
        assert example.process.wait(START_TIMEOUT) == 1, example.output()
    finally:
        example.stop()
    assert time.monotonic() - started < 5, example.output()
    output = example.output()
    assert str(taken_port) in output and variable in output and "in use" in output, output
    assert "Django on" not in output  # no banner for a stack that did not start
    assert not any(port_open(port) for name, port in ports.items() if name != which), output


def test_make_run_stops_when_django_does_not_start(tmp_path: Path, ports: dict[str, int]) -> None:
    env = {
        "EXAMPLE_DJANGO_PORT": str(ports["django"]),
        "EXAMPLE_ASGI_PORT": str(ports["asgi"]),
        "GATEWAY_PORT": str(ports["gateway"]),
        "EXAMPLE_WORKERS": "not-a-number",  # gunicorn's config file cannot load: it exits at once
    }
    example = Example(tmp_path, env, [])
    try:
        assert example.process.wait(START_TIMEOUT) == 1, example.output()
    finally:
        example.stop()
    output = example.output()
    assert "Django" in output and "did not start" in output, output
    assert "Django on" not in output
    assert not port_open(ports["gateway"])


def test_make_run_names_its_store_so_the_suggested_command_works_from_anywhere(tmp_path: Path, ports: dict[str, int]) -> None:
    # A tree of its own (the script, and links to the environment and the example app), so the
    # store the script chooses is not the checkout's.
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, tree / "scripts" / SCRIPT.name)
    for name in (".venv", "examples"):
        (tree / name).symlink_to(ROOT / name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "EXAMPLE_DJANGO_PORT": str(ports["django"]),
        "EXAMPLE_ASGI_PORT": str(ports["asgi"]),
        "GATEWAY_PORT": str(ports["gateway"]),
    }
    assert "GATEWAY_STORE" not in base_env()
    example = Example(tmp_path, env, [], script=tree / "scripts" / SCRIPT.name, store=False)
    try:
        hint = example.wait_for_line(r"Try: .*")
        store = f"GATEWAY_STORE=file:{tree}/maintenance-state.json"
        assert store in hint, hint
        command = hint.split("   then   ", 1)[1]
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(ports["gateway"]) and time.monotonic() < deadline:
            assert example.process.poll() is None, example.output()
            time.sleep(0.1)
        # As the newcomer pastes it, in another directory and another shell.
        switched = subprocess.run(["bash", "-c", command], cwd=elsewhere, env=base_env(), capture_output=True, text=True, timeout=30)
        assert switched.returncode == 0, switched.stderr
        deadline = time.monotonic() + 10
        while (answer := httpx.get(f"http://127.0.0.1:{ports['gateway']}/api/hello", timeout=10)).status_code != 503:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
    finally:
        example.stop()
    assert (tree / "maintenance-state.json").exists() and not (elsewhere / "maintenance-state.json").exists()


@pytest.mark.parametrize(
    ("same", "variables"),
    [
        (("django", "asgi"), ("EXAMPLE_DJANGO_PORT", "EXAMPLE_ASGI_PORT")),
        (("django", "gateway"), ("EXAMPLE_DJANGO_PORT", "GATEWAY_PORT")),
        (("asgi", "gateway"), ("EXAMPLE_ASGI_PORT", "GATEWAY_PORT")),
    ],
)
def test_make_run_refuses_one_port_for_two_of_its_servers(
    tmp_path: Path, ports: dict[str, int], same: tuple[str, str], variables: tuple[str, str]
) -> None:
    ports[same[1]] = ports[same[0]]
    env = {
        "EXAMPLE_DJANGO_PORT": str(ports["django"]),
        "EXAMPLE_ASGI_PORT": str(ports["asgi"]),
        "GATEWAY_PORT": str(ports["gateway"]),
    }
    example = Example(tmp_path, env, [])
    try:
        assert example.process.wait(START_TIMEOUT) == 2, example.output()
    finally:
        example.stop()
    output = example.output()
    assert all(variable in output for variable in variables) and "same port" in output, output
    assert "Django on" not in output


@pytest.mark.parametrize("port", [" 18101", "8_080", "+80", "0", "65536", "80x"])
@pytest.mark.parametrize("how", ["--port=", "GATEWAY_PORT", "EXAMPLE_ASGI_PORT"])
def test_make_run_refuses_a_port_that_is_not_a_number(tmp_path: Path, ports: dict[str, int], port: str, how: str) -> None:
    env = {
        "EXAMPLE_DJANGO_PORT": str(ports["django"]),
        "EXAMPLE_ASGI_PORT": str(ports["asgi"]),
        "GATEWAY_PORT": str(ports["gateway"]),
    }
    args: list[str] = []
    if how == "--port=":
        args = [f"--port={port}"]
    else:
        env[how] = port
    example = Example(tmp_path, env, args)
    try:
        assert example.process.wait(START_TIMEOUT) == 2, example.output()
    finally:
        example.stop()
    output = example.output()
    assert how.rstrip("=") in output and "1..65535" in output, output
    assert "Django on" not in output


def test_make_run_gives_the_gateway_djangos_cors_settings_and_the_app_its_banner(tmp_path: Path, ports: dict[str, int]) -> None:
    """scripts/run-example.sh derives GATEWAY_CORS_* from Django's settings (manage.py
    gateway_cors_env), and the example app runs django-maintenance-gateway from the venv."""
    env = {
        "EXAMPLE_DJANGO_PORT": str(ports["django"]),
        "EXAMPLE_ASGI_PORT": str(ports["asgi"]),
        "GATEWAY_PORT": str(ports["gateway"]),
        "GATEWAY_REFRESH_INTERVAL": "0.1",
    }
    example = Example(tmp_path, env, [])
    store = open_store(f"file:{tmp_path / 'state.json'}")
    url = f"http://127.0.0.1:{ports['gateway']}"

    def served(body: dict[str, object], check: Callable[[], bool]) -> None:
        change_state(store, lambda current: next_state(current, body, now=time.time(), actor="tests"))
        deadline = time.monotonic() + 10
        while not check():
            assert time.monotonic() < deadline and example.process.poll() is None, example.output()
            time.sleep(0.1)

    try:
        example.wait_for_line(r"Try: .*")
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(ports["gateway"]) and time.monotonic() < deadline:
            assert example.process.poll() is None, example.output()
            time.sleep(0.1)
        served({"mode": "read-only", "message": "Read-only for a while"}, lambda: "maintenance-banner" in httpx.get(url, timeout=10).text)
        home = httpx.get(url, timeout=10).text
        assert "The site is read-only" in home and "Read-only for a while" in home
        served({"mode": "full"}, lambda: httpx.get(f"{url}/api/hello", timeout=10).status_code == 503)
        preflight = httpx.options(
            f"{url}/api/cart",
            headers={
                "Origin": "http://localhost:4200",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-client-version",
            },
            timeout=10,
        )
    finally:
        example.stop()
    # The gateway answers it in maintenance, allowing what Django's CORS_ALLOW_HEADERS allows.
    assert preflight.status_code == 204, preflight.text
    assert "x-client-version" in preflight.headers["access-control-allow-headers"]
    assert preflight.headers["access-control-allow-credentials"] == "true"
