"""The benchmark: the gateway side by side with nginx and the Python proxies a user would pick.

Starts every server itself on loopback, drives each with wrk, reads each server's
CPU time from /proc, and prints medians over several alternating runs:

    .venv/bin/python -m bench.run                 # the full run (about 10 minutes)
    .venv/bin/python -m bench.run --smoke         # a few seconds, to see that it works

Needs Debian's nginx and wrk (``make bench`` installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import BIN, ROOT, ServerProcess, free_port

TICKS = os.sysconf("SC_CLK_TCK")
# The gateway as ``python -m gateway``: with PYTHONPATH naming a checkout (--baseline), that
# checkout's package runs whatever its layout (-P keeps the working directory off sys.path).
GATEWAY_COMMAND = [sys.executable, "-P", "-m", "gateway"]

NGINX_CONF = """
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering on;
        }}
    }}
}}
"""


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for text in child.read_text().split():
            pids.extend(process_tree(int(text)))
    return pids


def cpu_seconds(pid: int) -> float:
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


@dataclass
class Server:
    """A server under measurement: the process (its log in the work directory) and its port."""

    process: ServerProcess
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()


class Servers:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Server] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None, port: int | None = None) -> Server:
        """Start ``args`` (``{port}`` in them filled in) and wait for the port. The shell's
        environment is kept: GATEWAY_ACCESS_LOG=true, say, measures the gateway with its access log."""
        port = port or free_port()
        args = [arg.replace("{port}", str(port)) for arg in args]
        process = ServerProcess(name, args, {**os.environ, **(env or {})}, ROOT, self.workdir)
        try:
            process.wait_for_port(port)
        except RuntimeError:
            process.stop()
            raise
        server = Server(process, port)
        self.started.append(server)
        return server

    def uvicorn(self, name: str, app: str, env: dict[str, str] | None = None, factory: bool = False) -> Server:
        args = [str(BIN / "uvicorn"), app, "--port", "{port}", "--loop", "uvloop", "--http", "httptools"]
        args += ["--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "75"]
        if factory:
            args.append("--factory")
        return self.start(name, args, env)

    def nginx(self, conf_template: str, upstream_port: int) -> Server:
        """nginx in the foreground, its configuration ``conf_template`` filled in, proxying to ``upstream_port``."""
        port = free_port()
        prefix = self.workdir / "nginx"
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(conf_template.format(prefix=prefix, upstream_port=upstream_port, port=port))
        return self.start(
            "nginx", ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"], port=port
        )

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _percentile(output: str, which: str) -> float:
    # The latency distribution's own lines ("    50%  1.23ms"), not the "+/- Stdev" column.
    match = re.search(rf"^\s*{which}%\s+([\d.]+(?:us|ms|s))\s*$", output, re.M)
    if match is None:
        raise RuntimeError(f"no {which}th percentile in wrk's output:\n{output}")
    return _ms(match.group(1))


def wrk(
    url: str,
    connections: int,
    seconds: float,
    cpu_pid: int,
    headers: dict[str, str] | None = None,
    expect_503: bool = False,
) -> Result:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    before = cpu_seconds(cpu_pid)
    output = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(cpu_pid) - before
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    # Non-2xx answers are errors except where 503 is the point; socket errors always are.
    errors = 0
    patterns = [r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"]
    if not expect_503:
        patterns.append(r"Non-2xx or 3xx responses: (\d+)")
    for pattern in patterns:
        match = re.search(pattern, output)
        if match:
            errors += sum(int(group) for group in match.groups())
    return Result(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_percentile(output, "50"),
        p99_ms=_percentile(output, "99"),
        cpu_us_per_request=used * 1e6 / max(total, 1),
        errors=errors,
    )


@dataclass
class Cell:
    target: str
    connections: int
    body: str
    runs: list[Result] = field(default_factory=list)

    def median(self, name: str) -> float:
        return float(statistics.median(getattr(run, name) for run in self.runs))


def maintenance_state_file(workdir: Path) -> Path:
    path = workdir / "maintenance-on.json"
    path.write_text(json.dumps({"enabled": True, "mode": "full", "message": "Back soon", "version": 1}))
    return path


def start_all(servers: Servers, baseline: Path | None = None) -> dict[str, Server]:
    upstream = servers.uvicorn("upstream", "bench.apps:upstream")
    upstream_url = f"http://127.0.0.1:{upstream.port}"
    gateway_env = {
        "GATEWAY_UPSTREAM_URL": upstream_url,
        "GATEWAY_STORE": f"file:{servers.workdir / 'maintenance-off.json'}",
        "GATEWAY_CORS_ALLOWED_ORIGINS": "https://app.example",
        "GATEWAY_CORS_ALLOW_CREDENTIALS": "true",
        "GATEWAY_LOG_LEVEL": "warning",
    }
    gateway_args = [*GATEWAY_COMMAND, "serve", "--port", "{port}"]
    started = {
        "direct": upstream,
        "nginx": servers.nginx(NGINX_CONF, upstream.port),
        "gateway": servers.start("gateway", gateway_args, gateway_env),
        "gateway-503": servers.start(
            "gateway-503",
            gateway_args,
            {**gateway_env, "GATEWAY_STORE": f"file:{maintenance_state_file(servers.workdir)}"},
        ),
        "503-replica": servers.uvicorn("503-replica", "bench.apps:maintenance_replica"),
        "asgiproxy": servers.uvicorn("asgiproxy", "bench.apps:asgiproxy_app", {"BENCH_UPSTREAM": upstream_url}, True),
        "fastapi-proxy-lib": servers.uvicorn(
            "fastapi-proxy-lib", "bench.apps:fastapi_proxy_lib_app", {"BENCH_UPSTREAM": upstream_url}, True
        ),
    }
    # The public status feed, polled by every open browser tab, measured on the gateway in maintenance.
    started[STATUS_FEED] = started["gateway-503"]
    if baseline is not None:
        # An earlier checkout of the gateway (its package first on the import path), measured in
        # the same run against the same nginx, so a change is judged by ratios taken side by side.
        old = {**gateway_env, "PYTHONPATH": str(baseline)}
        started[BASELINE] = servers.start(BASELINE, gateway_args, old)
        started[BASELINE_503] = servers.start(
            BASELINE_503, gateway_args, {**old, "GATEWAY_STORE": f"file:{maintenance_state_file(servers.workdir)}"}
        )
    return started


PROXIES = ("nginx", "gateway", "asgiproxy", "fastapi-proxy-lib")
BASELINE, BASELINE_503 = "gateway-baseline", "gateway-503-baseline"
MAINTENANCE_TARGETS = ("gateway-503", "503-replica", BASELINE_503)
STATUS_FEED = "gateway-status-feed"


def plan(
    connections: tuple[int, ...], bodies: tuple[str, ...] = ("small", "64k"), baseline: bool = False
) -> list[Cell]:
    cells = []
    proxies = (*PROXIES, BASELINE) if baseline else PROXIES
    for conns in connections:
        for body in bodies:
            for target in ("direct", *proxies):
                cells.append(Cell(target, conns, body))
        # The 503 path against uvicorn serving hello-world (the "direct" upstream), with CORS,
        # and against a trivial app that sends the very same 503 bytes.
        cells.append(Cell("gateway-503", conns, "small"))
        cells.append(Cell("503-replica", conns, "small"))
        cells.append(Cell(STATUS_FEED, conns, "small"))
        if baseline:
            cells.append(Cell(BASELINE_503, conns, "small"))
    return cells


def measure(cells: list[Cell], servers: dict[str, Server], runs: int, seconds: float) -> None:
    for run in range(runs):
        # Alternate the order each run so that drift on a shared machine spreads evenly.
        order = cells if run % 2 == 0 else list(reversed(cells))
        for cell in order:
            server = servers[cell.target]
            path = "/64k" if cell.body == "64k" else "/"
            maintenance = cell.target in MAINTENANCE_TARGETS
            headers = {"Origin": "https://app.example", "Accept": "application/json"} if maintenance else None
            if cell.target == STATUS_FEED:
                # A browser's poll from the front end's origin: the whole 200 body, CORS headers.
                path, headers = "/_gateway/status", {"Origin": "https://app.example", "Accept": "application/json"}
            url = f"http://127.0.0.1:{server.port}{path}"
            cell.runs.append(wrk(url, cell.connections, seconds, server.pid, headers, maintenance))
            print(f"  run {run + 1}/{runs} {cell.target:18} c={cell.connections:<3} {cell.body:5} "
                  f"{cell.runs[-1].requests_per_second:9.0f} req/s {cell.runs[-1].cpu_us_per_request:7.1f} us/req",
                  file=sys.stderr, flush=True)


def find(cells: list[Cell], target: str, conns: int, body: str) -> Cell:
    return next(c for c in cells if (c.target, c.connections, c.body) == (target, conns, body))


def has(cells: list[Cell], target: str, conns: int, body: str) -> bool:
    return any((c.target, c.connections, c.body) == (target, conns, body) for c in cells)


def table(cells: list[Cell]) -> str:
    lines = [
        "| target | conns | body | req/s | p50 ms | p99 ms | CPU us/req | CPU vs nginx | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        ratio = "n/a"
        if has(cells, "nginx", cell.connections, cell.body):
            nginx = find(cells, "nginx", cell.connections, cell.body)
            ratio = f"{cell.median('cpu_us_per_request') / nginx.median('cpu_us_per_request'):.2f}x"
        lines.append(
            f"| {cell.target} | {cell.connections} | {cell.body} | {cell.median('requests_per_second'):,.0f} "
            f"| {cell.median('p50_ms'):.3f} | {cell.median('p99_ms'):.3f} | {cell.median('cpu_us_per_request'):.1f} "
            f"| {ratio} | {sum(r.errors for r in cell.runs)} |"
        )
    return "\n".join(lines)


def targets(cells: list[Cell], conns: tuple[int, ...]) -> list[str]:
    """The hot-path issue's targets, each with the measured figure and a verdict."""
    out = []
    many, one = max(conns), min(conns)

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for body in sorted({cell.body for cell in cells if cell.target == "nginx"}, reverse=True):
        gateway = find(cells, "gateway", many, body)
        cpu = gateway.median("cpu_us_per_request") / find(cells, "nginx", many, body).median("cpu_us_per_request")
        rps = gateway.median("requests_per_second")
        vs_asgiproxy = rps / find(cells, "asgiproxy", many, body).median("requests_per_second")
        vs_fpl = rps / find(cells, "fastapi-proxy-lib", many, body).median("requests_per_second")
        out.append(f"- proxied, {many} connections, {body} body: CPU {cpu:.2f}x nginx (target <= 4x: {verdict(cpu <= 4)}); "
                   f"throughput {vs_asgiproxy:.2f}x asgiproxy (>= 1.5x: {verdict(vs_asgiproxy >= 1.5)}), "
                   f"{vs_fpl:.1f}x fastapi-proxy-lib (>= 10x: {verdict(vs_fpl >= 10)})")
    if has(cells, "gateway", one, "small"):
        added = find(cells, "gateway", one, "small").median("p50_ms") - find(cells, "direct", one, "small").median("p50_ms")
        out.append(f"- added latency at {one} connection: p50 +{added:.3f} ms over direct (target <= 0.25 ms: {verdict(added <= 0.25)})")
    for count in conns:
        if not has(cells, "direct", count, "small"):
            continue
        maintenance = find(cells, "gateway-503", count, "small").median("cpu_us_per_request")
        hello = find(cells, "direct", count, "small").median("cpu_us_per_request")
        replica = find(cells, "503-replica", count, "small").median("cpu_us_per_request")
        out.append(f"- 503 path with CORS, {count} connections: {maintenance:.1f} us/answer vs uvicorn hello-world "
                   f"{hello:.1f} us = {maintenance / hello:.2f}x (target <= 1.2x: {verdict(maintenance / hello <= 1.2)}); "
                   f"a trivial app sending the same 503 bytes: {replica:.1f} us, so the gateway's own work is "
                   f"{maintenance - replica:+.1f} us and uvicorn's handling of the 7 extra headers {replica - hello:+.1f} us")
        if has(cells, STATUS_FEED, count, "small"):
            feed = find(cells, STATUS_FEED, count, "small").median("cpu_us_per_request")
            out.append(f"- status feed with CORS, {count} connections: {feed:.1f} us/answer beside the 503's "
                       f"{maintenance:.1f} us ({feed / maintenance:.2f}x) and uvicorn hello-world's {hello:.1f} us "
                       f"({feed / hello:.2f}x)")
    out += baseline_comparison(cells)
    return out


def baseline_comparison(cells: list[Cell]) -> list[str]:
    """This checkout against the baseline checkout, both as ratios to the same run's reference."""
    out = []
    for cell in cells:
        if cell.target not in (BASELINE, BASELINE_503):
            continue
        current = find(cells, "gateway" if cell.target == BASELINE else "gateway-503", cell.connections, cell.body)
        reference = find(cells, "nginx" if cell.target == BASELINE else "direct", cell.connections, cell.body)
        ref_cpu = reference.median("cpu_us_per_request")
        now, before = current.median("cpu_us_per_request") / ref_cpu, cell.median("cpu_us_per_request") / ref_cpu
        out.append(f"- {current.target}, {cell.connections} connections, {cell.body}: {now:.2f}x {reference.target} "
                   f"now, {before:.2f}x at the baseline ({(now / before - 1) * 100:+.1f} %)")
    return out


def memory_checks(workdir: Path, leak_requests: int, seconds: float) -> list[str]:
    """Peak RSS growth moving 100 MB each way; RSS after many requests; store reads idle vs loaded."""
    servers = Servers(workdir)
    out = []
    try:
        upstream = servers.uvicorn("mem-upstream", "bench.apps:upstream")
        gateway = servers.start(
            "mem-gateway",
            [*GATEWAY_COMMAND, "serve", "--port", "{port}"],
            {
                "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{upstream.port}",
                "GATEWAY_STORE": f"file:{workdir / 'mem-state.json'}",
                "GATEWAY_LOG_LEVEL": "warning",
                "GATEWAY_REFRESH_INTERVAL": "1",
                # Health details (the store's read count) need an admin token.
                "GATEWAY_ADMIN_TOKENS": "bench:bench-admin-token-0123456789",
            },
        )
        base = f"http://127.0.0.1:{gateway.port}"
        size = 100 * 1024 * 1024
        with httpx.Client(base_url=base, timeout=60) as client:
            client.get("/")
            before = rss_kib(gateway.pid)

            def body() -> Iterator[bytes]:
                block = b"u" * (1024 * 1024)
                for _ in range(100):
                    yield block

            sunk = int(client.post("/sink", content=body(), headers={"content-length": str(size)}).text)
            received = 0
            with client.stream("GET", f"/blob?size={size}") as response:
                for chunk in response.iter_raw():
                    received += len(chunk)
            peak = rss_kib(gateway.pid, "VmHWM")
        assert sunk == size and received == size
        out.append(f"- 100 MB upload + 100 MB download: peak RSS {peak / 1024:.1f} MiB, "
                   f"{(peak - before) / 1024:.1f} MiB above the {before / 1024:.1f} MiB before (target < 20 MB)")

        def health() -> dict[str, Any]:
            details: dict[str, Any] = httpx.get(
                f"{base}/_gateway/health", headers={"authorization": "Bearer bench-admin-token-0123456789"}
            ).json()
            return details

        reads_start = health()["store"]["reads"]
        time.sleep(seconds)
        idle_reads = health()["store"]["reads"] - reads_start
        reads_start = health()["store"]["reads"]
        loaded = wrk(f"{base}/", 16, seconds, gateway.pid)
        loaded_reads = health()["store"]["reads"] - reads_start
        out.append(f"- store reads in {seconds:g} s at a 1 s interval: {idle_reads} idle, {loaded_reads} under "
                   f"{loaded.requests_per_second:,.0f} req/s (per minute: {idle_reads * 60 / seconds:.0f} vs "
                   f"{loaded_reads * 60 / seconds:.0f})")

        done = 0
        rss_at_10k = None
        started = time.monotonic()
        while done < leak_requests:
            step = 10_000 if done == 0 else leak_requests - done
            rate = max(loaded.requests_per_second, 1000)
            result = wrk(f"{base}/", 16, max(1.0, min(step / rate, 60.0)), gateway.pid)
            done += int(result.requests_per_second * max(1.0, min(step / rate, 60.0)))
            if rss_at_10k is None:
                rss_at_10k = rss_kib(gateway.pid)
        rss_end = rss_kib(gateway.pid)
        assert rss_at_10k is not None
        out.append(f"- RSS after ~10 k requests {rss_at_10k / 1024:.1f} MiB, after ~{done:,} requests "
                   f"{rss_end / 1024:.1f} MiB ({(rss_end - rss_at_10k) * 100 / rss_at_10k:+.1f} %; target within 10 %) "
                   f"in {time.monotonic() - started:.0f} s")
    finally:
        servers.stop_all()
    return out


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, {nginx}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="alternating runs; medians are reported")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per cell and run")
    parser.add_argument("--connections", default="1,16", help="comma-separated connection counts")
    parser.add_argument("--bodies", default="small,64k", help="comma-separated: small, 64k")
    parser.add_argument("--leak-requests", type=int, default=1_000_000, help="requests for the RSS drift check")
    parser.add_argument("--smoke", action="store_true", help="one short run of everything (CI)")
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier gateway to measure in the same run")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory and store-read checks")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.seconds, args.leak_requests = 1, 1.0, 20_000
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed (make bench installs it)", file=sys.stderr)
            return 2
    conns = tuple(int(c) for c in args.connections.split(","))
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        servers = Servers(workdir)
        try:
            started = start_all(servers, args.baseline)
            cells = plan(conns, tuple(args.bodies.split(",")), args.baseline is not None)
            measure(cells, started, args.runs, args.seconds)
        finally:
            servers.stop_all()
        memory = [] if args.no_memory else memory_checks(workdir, args.leak_requests, max(args.seconds, 5.0))
    print(f"Machine: {machine()}")
    print(f"Command: python -m bench.run {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print(f"Runs: {args.runs} alternating, {args.seconds:g} s each; medians. wrk -t1; CPU of each server's process tree.\n")
    print(table(cells))
    print("\nTargets:")
    print("\n".join(targets(cells, conns)))
    print("\n".join(memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
