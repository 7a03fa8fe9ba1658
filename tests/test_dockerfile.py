"""The image, checked without a Docker engine: its Dockerfile read, its command line run for real."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.dockerfile_reader import exec_form, final_stage, instructions
from tests.support import BIN, ROOT, ServerProcess, base_env, free_port


def test_multi_stage_slim_non_root() -> None:
    steps = instructions()
    froms = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(froms) == 2 and " AS build" in froms[0]
    base = dict(re.findall(r"(\w+)=(\S+)", " ".join(rest for k, rest in steps if k == "ARG")))
    assert base["PYTHON_IMAGE"].endswith("-slim-bookworm")
    final = final_stage()
    user = [rest for keyword, rest in final if keyword == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert any(keyword == "RUN" and "useradd" in rest and user[-1] in rest for keyword, rest in final)
    # Nothing is compiled or cached in the final stage: it only copies the built venv.
    assert not any(keyword == "RUN" and re.search(r"pip|apt-get|gcc", rest) for keyword, rest in final)
    assert ("STOPSIGNAL", "SIGTERM") in final


def test_dependencies_are_pinned_and_match_what_the_tests_ran() -> None:
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    pins = dict(line.split("==") for line in lock if line and not line.startswith("#"))
    for required in ("starlette", "uvicorn", "httptools", "uvloop", "httpx", "boto3", "botocore"):
        assert required in pins, f"{required} is not pinned"
    from importlib.metadata import version

    for name, pinned in pins.items():
        assert version(name) == pinned, f"tests ran {name} {version(name)}, the image pins {pinned}"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[[i for i, line in enumerate(ignored) if not line.startswith("#")][0]] == "*"
    copied = {rest.split()[0] for keyword, rest in instructions() if keyword == "COPY" and not rest.startswith("--from")}
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert {path.rstrip("/").removeprefix("./") for path in copied} <= allowed | {"."}


def test_the_image_command_line_runs(log_dir: Path, raw_upstream: str, tmp_path: Path) -> None:
    final = final_stage()
    entrypoint = exec_form(next(rest for keyword, rest in final if keyword == "ENTRYPOINT"))
    command = exec_form(next(rest for keyword, rest in final if keyword == "CMD"))
    health = next(rest for keyword, rest in final if keyword == "HEALTHCHECK")
    health_command = exec_form(health.split(" CMD ", 1)[1])
    env_line = next(rest for keyword, rest in final if keyword == "ENV")
    image_env = dict(item.split("=", 1) for item in shlex.split(env_line))
    assert entrypoint == ["maintenance-gateway"] and command == ["serve"]
    assert health_command == ["maintenance-gateway", "healthcheck"]

    port = free_port()
    env = {
        **base_env(),
        **{key: value for key, value in image_env.items() if key != "PATH"},
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "GATEWAY_PORT": str(port),  # the image's 8080 may be taken on a shared machine
        "GATEWAY_UPSTREAM_URL": raw_upstream,
        "GATEWAY_STORE": f"file:{tmp_path / 'state.json'}",
    }
    assert image_env["GATEWAY_PORT"] == "8080"
    server = ServerProcess("image-command", entrypoint + command, env, tmp_path, log_dir)
    try:
        server.wait_for_port(port)
        assert httpx.get(f"http://127.0.0.1:{port}/echo").status_code == 200
        check = subprocess.run(health_command, env=env, capture_output=True, text=True, timeout=20)
        assert check.returncode == 0, check.stderr
        server.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert server.process.wait(15) == 0
        assert time.monotonic() - started < 10
        after = subprocess.run(health_command, env=env, capture_output=True, text=True, timeout=20)
        assert after.returncode == 1
    finally:
        server.stop()


def test_hadolint_passes_on_every_dockerfile() -> None:
    dockerfiles = [ROOT / "Dockerfile", *sorted((ROOT / "config").rglob("Dockerfile"))]
    assert len(dockerfiles) >= 2
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", *map(str, dockerfiles)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM nginx:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest
