"""``on``/``off``: when the gateways serve the change, and ``--wait`` for it."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from pathlib import Path

import httpx

from gateway.cli.waiting import CONFIRMATIONS
from tests.support import SUPPORT_ADMIN_TOKEN, Gateway, cli, free_port

# Slow enough that a request sent right after the store is written would still be forwarded.
REFRESH_INTERVAL = "1.5"
# Long enough that a gateway that did not take the change lags well behind the one that did.
LAGGING_REFRESH = "4"


def test_on_and_off_say_when_the_gateways_follow(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    on = cli("on", store=store, env={"GATEWAY_REFRESH_INTERVAL": REFRESH_INTERVAL})
    assert on.returncode == 0, on.stderr
    assert "gateways follow within 1.5 s (GATEWAY_REFRESH_INTERVAL)" in on.stdout
    off = cli("off", store=store)
    assert "gateways follow within 2 s (GATEWAY_REFRESH_INTERVAL)" in off.stdout


def test_wait_returns_once_the_local_gateway_serves_the_change(log_dir: Path, raw_upstream: str) -> None:
    gateway = Gateway(log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": REFRESH_INTERVAL}, name="gateway-cli-wait")
    local = {"GATEWAY_PORT": str(gateway.port), "GATEWAY_REFRESH_INTERVAL": REFRESH_INTERVAL}
    try:
        assert httpx.get(f"{gateway.url}/echo").status_code == 200
        # With a token: the health details name the version served.
        started = time.monotonic()
        on = cli("on", "--wait", store=gateway.state_path, env={**local, "GATEWAY_ADMIN_TOKEN": SUPPORT_ADMIN_TOKEN})
        waited = time.monotonic() - started
        during = httpx.get(f"{gateway.url}/echo")
        # Without one: the public health's maintenance flag.
        off = cli("off", "--wait", "10", store=gateway.state_path, env=local)
        after = httpx.get(f"{gateway.url}/echo")
        upcoming = cli("on", "--from", "+1h", "--wait", store=gateway.state_path, env=local)
        warned = httpx.get(f"{gateway.url}/_gateway/health").json()
    finally:
        gateway.stop()
    assert on.returncode == 0, on.stderr
    assert "gateways serve it now" in on.stdout, on.stdout
    assert during.status_code == 503
    assert waited < 10
    assert off.returncode == 0, off.stderr
    assert after.status_code == 200
    assert upcoming.returncode == 0, upcoming.stderr
    assert warned["upcoming"] is True


class RoundRobin:
    """A load balancer on loopback: each connection goes to the next of ``ports``, as an ALB
    spreads the CLI's calls over the tasks."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = itertools.cycle(ports)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            backend = socket.create_connection(("127.0.0.1", next(self.ports)))
            for source, target in ((client, backend), (backend, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_wait_through_the_url_returns_once_every_gateway_behind_it_serves_the_change(log_dir: Path, raw_upstream: str) -> None:
    # Two gateways on one store behind a load balancer: the one that takes the change serves it
    # at once, the other only after its next read of the store, LAGGING_REFRESH seconds apart.
    first = Gateway(log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": LAGGING_REFRESH}, name="gateway-cli-wait-a")
    second = Gateway(
        log_dir, raw_upstream, {"GATEWAY_REFRESH_INTERVAL": LAGGING_REFRESH, "GATEWAY_STORE": f"file:{first.state_path}"}, name="gateway-cli-wait-b"
    )
    balancer = RoundRobin([first.port, second.port])
    remote = {"GATEWAY_ADMIN_URL": balancer.url, "GATEWAY_ADMIN_TOKEN": SUPPORT_ADMIN_TOKEN}
    try:
        on = cli("on", "--wait", "15", store=first.state_path, env=remote)
        served = [gateway.health()["state"]["version"] for gateway in (first, second)]
    finally:
        balancer.close()
        first.stop()
        second.stop()
    assert on.returncode == 0, on.stderr
    assert f"gateways serve it now ({CONFIRMATIONS} answers in a row from {balancer.url}/_gateway/health)" in on.stdout, on.stdout
    assert served == [1, 1]


def test_wait_that_times_out_is_a_failure(tmp_path: Path) -> None:
    store = tmp_path / "state.json"
    nobody = {"GATEWAY_PORT": str(free_port())}
    started = time.monotonic()
    result = cli("on", "--wait", "1", store=store, env=nobody)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert "did not serve" in result.stderr and "within 1 s" in result.stderr, result.stderr
    assert "maintenance: on" in result.stdout  # the change itself was made
