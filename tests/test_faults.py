"""Faults under load: Django restarted, and a short soak of mixed traffic with maintenance toggling."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.support import CORS_ENV, FRONT_ORIGIN, ROOT, Gateway, start_django


def test_django_restarted_under_load(log_dir: Path) -> None:
    django, url = start_django(log_dir, FRONT_ORIGIN)
    gateway = Gateway(log_dir, url, CORS_ENV, name="gateway-restart")
    outcomes: list[tuple[int, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10, headers={"Origin": FRONT_ORIGIN}) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(f"{gateway.url}/api/hello")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if time.monotonic() - started > 8:
                    failures.append("a request hung")
                cors = response.headers.get("access-control-allow-origin", "")
                outcomes.append((response.status_code, cors))

    workers = [threading.Thread(target=load) for _ in range(4)]
    try:
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        port = url.rsplit(":", 1)[1]
        django.stop()  # SIGTERM to gunicorn: in-flight requests end, new ones are refused
        time.sleep(1.0)
        django, _ = start_django(log_dir, FRONT_ORIGIN, port=int(port), name="django-again")
        time.sleep(1.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join(20)
        gateway.stop()
        django.stop()
    assert not failures, failures[:3]
    statuses = {status for status, _ in outcomes}
    assert statuses <= {200, 502}, statuses
    assert 502 in statuses  # Django really was down for a while
    assert outcomes[-1][0] == 200  # and it came back without touching the gateway
    assert all(cors == FRONT_ORIGIN for _, cors in outcomes)  # 502s are readable by the front end too


def test_short_soak(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "40", "--toggle", "8", "--clients", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unexpected: 0" in result.stdout
    assert "maintenance switched 4 times" in result.stdout
