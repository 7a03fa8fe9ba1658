"""SIGTERM while requests are in flight: they all finish, then the process exits 0 in time."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import httpx

from tests.support import Gateway, port_open


def test_sigterm_lets_in_flight_requests_finish(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_DRAIN_TIMEOUT": "10"}, name="gateway-drain")
    results: dict[str, object] = {}
    load_failures: list[str] = []
    load_done: list[int] = []
    stop_load = threading.Event()

    def slow() -> None:
        results["slow"] = httpx.get(f"{gateway.url}/slow", params={"delay": "2"}, timeout=10).status_code

    def stream() -> None:
        with httpx.stream("GET", f"{gateway.url}/sse", params={"count": "20", "interval": "0.1", "name": "drain"}, timeout=10) as r:
            results["stream"] = b"".join(r.iter_raw())

    def upload() -> None:
        def body():
            for _ in range(20):
                yield b"u" * 10_000
                time.sleep(0.1)

        results["upload"] = httpx.post(f"{gateway.url}/upload", content=body(), timeout=10).json()["bytes"]

    def steady_load() -> None:
        # Each request on a new connection: those accepted before the signal must all succeed.
        while not stop_load.is_set():
            try:
                response = httpx.get(f"{gateway.url}/echo", headers={"Connection": "close"}, timeout=10)
                load_done.append(response.status_code)
            except httpx.ConnectError:
                return  # the listener is closed: later requests go to another task
            except httpx.HTTPError as exc:
                load_failures.append(repr(exc))

    threads = [threading.Thread(target=f) for f in (slow, stream, upload, steady_load, steady_load)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    signalled = time.monotonic()
    gateway.server.process.send_signal(signal.SIGTERM)
    code = gateway.server.process.wait(20)
    exited_after = time.monotonic() - signalled
    stop_load.set()
    for thread in threads:
        thread.join(15)
    gateway.stop()
    assert code == 0
    assert exited_after < 10
    assert results["slow"] == 200
    assert results["stream"] == b"".join(b"data: %d\n\n" % n for n in range(20))
    assert results["upload"] == 200_000
    assert not load_failures, load_failures[:3]
    assert load_done and set(load_done) == {200}
    log = gateway.server.log()
    assert "Waiting for application shutdown" in log or "Shutting down" in log


def test_a_connection_accepted_before_sigterm_still_gets_its_answer(log_dir: Path, raw_upstream: str) -> None:
    """A client that connected just before the stop has its request on the way; uvicorn alone
    closes such a connection at once (the request is then lost or reset)."""
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_DRAIN_TIMEOUT": "10"}, name="gateway-drain-fresh")
    try:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            time.sleep(0.3)  # accepted by the gateway, no request yet
            gateway.server.process.send_signal(signal.SIGTERM)
            # The stop has begun once the listener is closed (uvicorn closes it in the same step
            # as it shuts the idle connections: the case this test is about).
            deadline = time.monotonic() + 5
            while port_open(gateway.port):
                assert time.monotonic() < deadline, "the gateway did not begin to stop within 5 s"
                time.sleep(0.02)
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        # Answered, then closed (recv returned b"" rather than timing out).
        assert received.startswith(b"HTTP/1.1 200 "), received[:200]
        assert gateway.server.process.wait(10) == 0
    finally:
        gateway.stop()
