"""The soak: mixed traffic through the gateway to the example Django app, maintenance toggled as it runs.

    .venv/bin/python -m bench.soak                    # 10 minutes, toggling every 30 s
    .venv/bin/python -m bench.soak --seconds 60 --toggle 10

GETs, JSON POSTs, uploads, server-sent events and CORS preflights from several
clients at once. Every answer must be Django's or a well-formed maintenance
503; anything else is counted as unexpected. The gateway's RSS and open file
descriptors are sampled throughout. Exits 1 on any unexpected answer.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.support import CORS_ENV, FRONT_ORIGIN, Gateway, start_django

TOKEN = "soak-admin-token-0123456789"


def expected(kind: str, response: httpx.Response) -> str | None:
    """None when the answer is one the site may give, else what is wrong with it."""
    status = response.status_code
    if status == 503:
        if response.headers.get("x-maintenance-mode") not in ("full", "read-only"):
            return f"{kind}: 503 without X-Maintenance-Mode"
        if kind != "preflight":
            body = response.json()
            if body.get("error") != "maintenance" or not response.headers.get("retry-after", "").isdigit():
                return f"{kind}: malformed maintenance answer {body}"
        if response.headers.get("access-control-allow-origin") != FRONT_ORIGIN:
            return f"{kind}: maintenance answer without CORS"
        return None
    if kind == "preflight":
        return None if status in (200, 204) and response.headers.get("access-control-allow-origin") == FRONT_ORIGIN else (
            f"preflight: {status} {dict(response.headers)}"
        )
    if status != 200:
        return f"{kind}: {status} {response.text[:200]}"
    if kind == "stream" and not response.text.startswith("data: event 0"):
        return f"stream: {response.text[:100]!r}"
    return None


def client_loop(url: str, stop: threading.Event, counts: collections.Counter[str], problems: list[str], lock: threading.Lock) -> None:
    rng = random.Random()
    with httpx.Client(base_url=url, timeout=30, headers={"Origin": FRONT_ORIGIN}) as client:
        while not stop.is_set():
            kind = rng.choices(["get", "post", "upload", "stream", "preflight"], [50, 20, 10, 5, 15])[0]
            try:
                if kind == "get":
                    response = client.get("/api/hello")
                elif kind == "post":
                    response = client.post("/api/echo", json={"n": rng.randrange(1000)})
                elif kind == "upload":
                    response = client.post("/api/upload", content=os.urandom(rng.randrange(1, 300_000)))
                elif kind == "stream":
                    response = client.get("/api/stream", params={"count": "3", "interval": "0.05"})
                else:
                    response = client.options(
                        "/api/echo",
                        headers={"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
                    )
                problem = expected(kind, response)
            except httpx.HTTPError as exc:
                problem = f"{kind}: {type(exc).__name__}: {exc}"
            with lock:
                counts[f"{kind} {response.status_code}" if problem is None else "unexpected"] += 1
                if problem is not None and len(problems) < 50:
                    problems.append(problem)


def sample(pid: int) -> tuple[int, int]:
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--toggle", type=float, default=30, help="seconds between maintenance switches")
    parser.add_argument("--clients", type=int, default=6)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
        log_dir = Path(tmp)
        django, django_url = start_django(log_dir, FRONT_ORIGIN)
        gateway = Gateway(log_dir, django_url, {**CORS_ENV, "GATEWAY_ADMIN_TOKENS": f"soak:{TOKEN}"}, name="gateway-soak")
        stop = threading.Event()
        counts: collections.Counter[str] = collections.Counter()
        problems: list[str] = []
        lock = threading.Lock()
        samples: list[tuple[float, int, int]] = []
        try:
            httpx.get(f"{gateway.url}/api/hello")
            started = time.monotonic()
            samples.append((0.0, *sample(gateway.pid)))
            clients = [
                threading.Thread(target=client_loop, args=(gateway.url, stop, counts, problems, lock))
                for _ in range(args.clients)
            ]
            for client in clients:
                client.start()
            admin = httpx.Client(base_url=f"{gateway.url}/_gateway", headers={"Authorization": f"Bearer {TOKEN}"})
            maintenance = False
            next_toggle = started + args.toggle
            toggles = 0
            while (now := time.monotonic()) < started + args.seconds:
                if now >= next_toggle:
                    maintenance = not maintenance
                    # Alternate the two modes, so every run sees both.
                    mode = "full" if toggles % 4 == 0 else "read-only"
                    answer = admin.put("/maintenance", json={"mode": mode}) if maintenance else admin.delete("/maintenance")
                    if answer.status_code != 200:
                        problems.append(f"admin: {answer.status_code} {answer.text}")
                    toggles += 1
                    next_toggle += args.toggle
                time.sleep(min(1.0, max(0.0, next_toggle - time.monotonic())))
                if not samples or now - started - samples[-1][0] >= 10:
                    samples.append((now - started, *sample(gateway.pid)))
            stop.set()
            for client in clients:
                client.join(60)
            samples.append((time.monotonic() - started, *sample(gateway.pid)))
            admin.close()
        finally:
            stop.set()
            gateway.stop()
            django.stop()

    total = sum(counts.values())
    print(f"soak: {args.seconds:g} s, {args.clients} clients, maintenance switched {toggles} times")
    print(f"requests: {total:,} ({total / args.seconds:,.0f}/s); unexpected: {counts['unexpected']}")
    for key, value in sorted(counts.items()):
        print(f"  {key:18} {value:>9,}")
    first, last = samples[1] if len(samples) > 2 else samples[0], samples[-1]
    peak_rss = max(s[1] for s in samples)
    print(f"gateway RSS: {first[1] / 1024:.1f} MiB after warm-up, {last[1] / 1024:.1f} MiB at the end, peak {peak_rss / 1024:.1f} MiB")
    print(f"gateway open files: {first[2]} after warm-up, {last[2]} at the end, max {max(s[2] for s in samples)}")
    for problem in problems[:20]:
        print(f"  problem: {problem}")
    return 1 if counts["unexpected"] or problems else 0


if __name__ == "__main__":
    sys.exit(main())
