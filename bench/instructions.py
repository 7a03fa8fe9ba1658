"""Instructions per request, counted by callgrind: a measure that does not move with the machine.

CPU time per request on a shared machine moves by tens of percent between runs of the
same server, more than most changes to the hot path. callgrind counts the instructions
the gateway process executes while wrk drives it, which repeats to within a fraction of
a percent, so a change can be judged against a baseline checkout:

    .venv/bin/python -m bench.instructions --baseline ../baseline-checkout

Each gateway runs under ``valgrind --tool=callgrind`` with instrumentation off until it has
started and served a warm-up; then it is counted over ``--seconds`` of wrk load. Needs
Debian's valgrind and wrk. About a minute per gateway and path.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import GATEWAY_COMMAND, Servers, maintenance_state_file
from tests.support import ROOT, ServerProcess, free_port

MAINTENANCE_HEADERS = ["-H", "Origin: https://app.example", "-H", "Accept: application/json"]


def instructions_per_request(workdir: Path, upstream_port: int, checkout: Path | None, maintenance: bool, seconds: float) -> tuple[int, int]:
    """(instructions per request, requests counted) for one gateway under callgrind."""
    port = free_port()
    state = f"file:{maintenance_state_file(workdir)}" if maintenance else f"file:{workdir / 'off.json'}"
    env = {
        **os.environ,
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}",
        "GATEWAY_STORE": state,
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_CORS_ALLOWED_ORIGINS": "https://app.example",
        "GATEWAY_CORS_ALLOW_CREDENTIALS": "true",
    }
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    output = workdir / f"callgrind-{port}.out"
    process = ServerProcess(
        f"callgrind-{port}",
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={output}",
         *GATEWAY_COMMAND, "serve", "--port", str(port)],
        env, ROOT, workdir,
    )
    try:
        process.wait_for_port(port, timeout=180)  # valgrind starts the gateway slowly
        headers = MAINTENANCE_HEADERS if maintenance else []
        url = f"http://127.0.0.1:{port}/"
        subprocess.run(["wrk", "-t1", "-c16", "-d3s", *headers, url], capture_output=True, check=True)  # warm-up
        subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], capture_output=True, check=True)
        load = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds:g}s", *headers, url], capture_output=True, text=True, check=True)
        subprocess.run(["callgrind_control", "-i", "off", str(process.pid)], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "-d", str(process.pid)], capture_output=True, check=True)
        time.sleep(2)
    finally:
        process.stop(timeout=60)  # callgrind writes its last dump on the way out
    match = re.search(r"(\d+) requests in", load.stdout)
    requests = int(match.group(1)) if match else 0
    total = 0
    for dump in workdir.glob(output.name + "*"):
        # A dump states its total as "summary:" and again as "totals:": counted once.
        counts = re.findall(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
        total += max((int(count) for count in counts), default=0)
    return total // max(requests, 1), requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier gateway to count beside this one")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of counted load per gateway and path")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            print(f"bench.instructions: {tool} is not installed (Debian: valgrind, wrk)", file=sys.stderr)
            return 2
    gateways: list[tuple[str, Path | None]] = [("now", None)]
    if args.baseline is not None:
        gateways.append(("baseline", args.baseline))
    print("| path | gateway | instructions per request | requests counted |\n|---|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="gateway-instructions-") as tmp:
        workdir = Path(tmp)
        servers = Servers(workdir)
        try:
            upstream = servers.uvicorn("upstream", "bench.apps:upstream")
            for path, maintenance in (("proxied, small body", False), ("the 503 with CORS", True)):
                for name, checkout in gateways:
                    per_request, requests = instructions_per_request(workdir, upstream.port, checkout, maintenance, args.seconds)
                    print(f"| {path} | {name} | {per_request:,} | {requests:,} |", flush=True)
        finally:
            servers.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
