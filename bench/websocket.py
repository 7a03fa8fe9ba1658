"""WebSockets: the gateway's relay beside nginx proxying the same upstream, in the same run.

    .venv/bin/python -m bench.websocket              # about a minute
    .venv/bin/python -m bench.websocket --smoke      # a few seconds, to see that it works

Measured for each proxy: small messages relayed a second, and the proxy's CPU time per
relayed message (read from /proc; each echo is two relayed messages, one each way); then
the gateway's RSS per open idle socket with 1,000 of them. The load comes from this
process (asyncio + ``websockets``), so its own CPU is not counted against either proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import GATEWAY_COMMAND, Servers, cpu_seconds, process_tree, rss_kib
from tests.support import BIN

NGINX_WEBSOCKET_CONF = """
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
    upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def tree_rss_kib(pid: int) -> int:
    """RSS of a server and its children (nginx's worker is a child of its master)."""
    total = 0
    for member in process_tree(pid):
        try:
            total += rss_kib(member)
        except (FileNotFoundError, KeyError):
            continue
    return total


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The upstream: echoes every WebSocket message (both proxies relay to this one server)."""
    if scope["type"] != "websocket":
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def echo_load(url: str, connections: int, window: int, seconds: float, size: int) -> int:
    """Echoes completed in ``seconds``: each connection keeps ``window`` messages in flight."""
    from websockets.asyncio.client import connect

    payload = "x" * size
    deadline = time.monotonic() + seconds
    counts = [0] * connections

    async def one(index: int) -> None:
        async with connect(url, compression=None, ping_interval=None, max_queue=None) as ws:
            for _ in range(window):
                await ws.send(payload)
            while time.monotonic() < deadline:
                await ws.recv()
                counts[index] += 1
                await ws.send(payload)
            for _ in range(window):
                await ws.recv()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return sum(counts)


async def hold_idle(url: str, count: int, measure: Any) -> Any:
    """Open ``count`` sockets, call ``measure()`` while they are all open and idle, close them."""
    from websockets.asyncio.client import connect

    opened: list[Any] = []
    for start in range(0, count, 100):
        opened += await asyncio.gather(
            *(connect(url, compression=None, ping_interval=None, open_timeout=60) for _ in range(start, min(count, start + 100)))
        )
    await asyncio.sleep(1.0)
    result = measure()
    await asyncio.gather(*(ws.close() for ws in opened))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, to see that it works")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per measured run")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per proxy (medians reported)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--window", type=int, default=8, help="messages in flight per connection")
    parser.add_argument("--size", type=int, default=64, help="bytes per message")
    parser.add_argument("--idle", type=int, default=1000, help="idle sockets for the memory figure")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.runs, args.idle = 1.0, 1, 50
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        workdir = Path(tmp)
        servers = Servers(workdir)
        try:
            upstream = servers.start(
                "ws-upstream",
                [
                    str(BIN / "uvicorn"), "bench.websocket:echo_app", "--port", "{port}", "--loop", "uvloop",
                    "--ws", "websockets-sansio", "--ws-per-message-deflate", "false", "--no-access-log",
                    "--log-level", "warning",
                ],
            )
            gateway = servers.start(
                "gateway",
                [*GATEWAY_COMMAND, "serve", "--port", "{port}"],
                {
                    "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{upstream.port}",
                    "GATEWAY_STORE": "memory:",
                    "GATEWAY_LOG_LEVEL": "warning",
                    "GATEWAY_WEBSOCKET_MAX_CONNECTIONS": str(max(2000, args.idle * 2)),
                    # Every socket comes from this one process, so one address: its share is all of them.
                    "GATEWAY_WEBSOCKET_MAX_PER_CLIENT": str(max(2000, args.idle * 2)),
                },
            )
            nginx = servers.nginx(NGINX_WEBSOCKET_CONF, upstream.port)
            proxies = {"nginx": nginx, "gateway": gateway}
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in proxies}
            for name, server in proxies.items():  # warm up
                asyncio.run(echo_load(f"ws://127.0.0.1:{server.port}/", 4, 4, 0.5, args.size))
            for _ in range(args.runs):
                for name, server in proxies.items():
                    cpu_before = cpu_seconds(server.pid)
                    started = time.monotonic()
                    echoes = asyncio.run(
                        echo_load(f"ws://127.0.0.1:{server.port}/", args.connections, args.window, args.seconds, args.size)
                    )
                    elapsed = time.monotonic() - started
                    cpu = cpu_seconds(server.pid) - cpu_before
                    relayed = 2 * echoes
                    results[name].append((relayed / elapsed, cpu / relayed * 1e6))

            lines = [
                f"WebSocket relay, {args.size}-byte text messages, {args.connections} connections x {args.window} in flight, "
                f"median of {args.runs} runs of {args.seconds:g} s",
                "",
                "| proxy | relayed messages/s | CPU us per relayed message | vs nginx |",
                "| --- | ---: | ---: | ---: |",
            ]
            nginx_cpu = statistics.median(cpu for _, cpu in results["nginx"])
            for name, runs in results.items():
                rate = statistics.median(rate for rate, _ in runs)
                cpu = statistics.median(cpu for _, cpu in runs)
                lines.append(f"| {name} | {rate:,.0f} | {cpu:.1f} | {cpu / nginx_cpu:.2f}x |")

            for name, server in proxies.items():
                before = tree_rss_kib(server.pid)
                after = asyncio.run(
                    hold_idle(f"ws://127.0.0.1:{server.port}/", args.idle, lambda pid=server.pid: tree_rss_kib(pid))
                )
                lines.append("")
                lines.append(
                    f"{name}: RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with {args.idle} idle sockets open: "
                    f"{(after - before) / args.idle:.1f} KiB per idle socket"
                )
            print("\n".join(lines))
        finally:
            servers.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
