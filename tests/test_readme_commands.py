"""The README's shell examples, run as a reader copies them: the quick start against ``make run``
(scripts/run-example.sh in a tree of its own) and the admin API's curl calls against a gateway."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from tests.support import ROOT, SUPPORT_ADMIN_TOKEN, Gateway, base_env, free_port, port_open
from tests.test_make_run import SCRIPT, START_TIMEOUT, Example

README = (ROOT / "README.md").read_text()


def shell_block(after: str) -> list[str]:
    """The lines of the first ```sh block after the text ``after``, continuation lines joined."""
    start = README.index(after)
    match = re.search(r"```sh\n(.*?)```", README[start:], re.DOTALL)
    assert match is not None, after
    return match.group(1).replace("\\\n", " ").splitlines()


def command_and_comment(line: str) -> tuple[str, str]:
    """``curl -i URL   # 200, from Django`` as its command and its comment."""
    parts = re.split(r"\s+#\s", line, maxsplit=1)
    return parts[0], parts[1] if len(parts) == 2 else ""


def test_the_admin_api_examples_work_as_written(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, name="gateway-readme-admin")
    lines = [
        f"TOKEN={SUPPORT_ADMIN_TOKEN}" if line.startswith("TOKEN=") else line.replace("http://127.0.0.1:8080", gateway.url)
        for line in shell_block("### The admin API")
    ]
    try:
        result = subprocess.run(["bash", "-c", "\n".join(lines)], env=base_env(), capture_output=True, text=True, timeout=60)
        history = gateway.store.history(20)
    finally:
        gateway.stop()
    assert result.returncode == 0, result.stderr
    # The PUT turned it on, the DELETE with the ETag just read turned it off (a stale If-Match is a 412).
    changes = [((record["old"] or {}).get("enabled", False), record["new"]["enabled"]) for record in reversed(history)]
    assert changes[:2] == [(False, True), (True, False)], (history, result.stdout)
    assert "precondition" not in result.stdout.lower(), result.stdout


def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    # make run in a tree of its own (the script, links to the environment and the example app):
    # the quick start's $PWD is that tree, and its store is not the checkout's.
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, tree / "scripts" / SCRIPT.name)
    for name in (".venv", "examples"):
        (tree / name).symlink_to(ROOT / name)
    port = free_port()
    env = {"EXAMPLE_DJANGO_PORT": str(free_port()), "EXAMPLE_ASGI_PORT": str(free_port()), "GATEWAY_PORT": str(port)}
    example = Example(tmp_path, env, [], script=tree / "scripts" / SCRIPT.name, store=False)
    steps = [command_and_comment(line) for line in shell_block("With `make run` going, in another terminal:")]
    script = ["set -u"]
    for number, (command, _) in enumerate(steps):
        command = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        script.append(f"{command} > {tmp_path}/out.{number} 2> {tmp_path}/err.{number}; echo $? > {tmp_path}/rc.{number}")
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(port):
            assert example.process.poll() is None and time.monotonic() < deadline, example.output()
            time.sleep(0.1)
        # In another terminal: the reader's shell, in the checkout, on the gateway's port (8080 as written).
        subprocess.run(["bash", "-c", "\n".join(script)], cwd=tree, env={**base_env(), "GATEWAY_PORT": str(port)}, timeout=120)
    finally:
        example.stop()
    for number, (command, comment) in enumerate(steps):
        output = (tmp_path / f"out.{number}").read_text()
        assert (tmp_path / f"rc.{number}").read_text().strip() == "0", (command, output, (tmp_path / f"err.{number}").read_text())
        expected = re.match(r"(\d{3})\b", comment)
        if expected:
            status = output.splitlines()[0] if output else ""
            assert status.startswith(f"HTTP/1.1 {expected.group(1)} "), (command, comment, output[:500])
    assert (tree / "maintenance-state.json").exists()
