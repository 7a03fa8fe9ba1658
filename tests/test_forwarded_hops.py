"""The client's address through the stack's own chain, on loopback: a stand-in for the ALB
(an nginx that appends its peer to X-Forwarded-For, as the ALB's default "append" mode does,
and connects on from an address of its own), the shipped nginx template, and a gateway with
config/ecs-stack.yaml's GATEWAY_FORWARDED_* values (issue 18, point 7).

Loopback is a whole /8, so each party gets an address of its own: an operator whose address
is in GATEWAY_BYPASS_IPS, a host inside the VPC that reaches the ALB on its private address
and writes its own X-Forwarded-For, and the ALB itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.stack import render
from tests.support import NGINX_MAIN, Gateway, ServerProcess, base_env, free_port, start_nginx

OPERATOR = "127.0.0.5"  # in GATEWAY_BYPASS_IPS
VPC_HOST = "127.0.0.6"  # any other host that can reach the ALB
ALB = "127.0.0.10"  # the address the ALB connects to nginx from
SECRET = "hops-bypass-secret-0123456789"
LIMIT = 3

ALB_CONF = """
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://127.0.0.1:{nginx_port};
        proxy_bind {alb};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
    }}
}}
"""


def start_alb(log_dir: Path, nginx_url: str) -> tuple[ServerProcess, str]:
    port = free_port()
    prefix = log_dir / "hops-alb"
    prefix.mkdir(exist_ok=True)
    nginx_port = int(nginx_url.rsplit(":", 1)[1])
    (prefix / "default.conf").write_text(ALB_CONF.format(port=port, nginx_port=nginx_port, alb=ALB))
    (prefix / "nginx.conf").write_text(NGINX_MAIN.format(prefix=prefix))
    server = ServerProcess("hops-alb", ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], base_env(), log_dir, log_dir)
    server.wait_for_port(port)
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def chain(log_dir: Path, raw_upstream: str) -> Iterator[tuple[Gateway, str]]:
    stack_env = render().environment("gateway")
    forwarded = {name: value for name, value in stack_env.items() if name.startswith("GATEWAY_FORWARDED_")}
    assert forwarded.get("GATEWAY_FORWARDED_HOPS") == "2", forwarded  # what this module proves
    env = {
        **forwarded,
        "GATEWAY_BYPASS_IPS": OPERATOR,
        "GATEWAY_BYPASS_SECRET": SECRET,
        "GATEWAY_ADMIN_FAILURE_LIMIT": str(LIMIT),
    }
    gateway = Gateway(log_dir, raw_upstream, env, name="gateway-hops")
    nginx, nginx_url = start_nginx(log_dir, gateway.port, name="nginx-hops")
    alb, alb_url = start_alb(log_dir, nginx_url)
    gateway.turn_on(message="closed")
    try:
        yield gateway, alb_url
    finally:
        alb.stop()
        nginx.stop()
        gateway.stop()


def from_host(address: str, alb_url: str) -> httpx.Client:
    """A client whose connections to the ALB come from ``address``."""
    return httpx.Client(base_url=alb_url, transport=httpx.HTTPTransport(local_address=address), timeout=10)


def test_the_honest_chain_gives_the_operators_address(chain: tuple[Gateway, str]) -> None:
    _, alb_url = chain
    with from_host(OPERATOR, alb_url) as operator:
        answer = operator.get("/echo")
    assert answer.status_code == 200, answer.text
    seen = [value for name, value in answer.json()["headers"] if name == "x-forwarded-for"]
    assert seen == [f"{OPERATOR}, {ALB}, 127.0.0.1"]  # what Django gets: the chain, then the gateway's peer
    with from_host(VPC_HOST, alb_url) as other:
        assert other.get("/echo").status_code == 503  # not the operator: maintenance


@pytest.mark.parametrize(
    "written",
    [[OPERATOR], [f"{OPERATOR}, {ALB}"], [f"{OPERATOR}, 127.0.0.1, 127.0.0.9"], [OPERATOR, ALB]],
    ids=["operator", "operator-and-alb", "dressed-as-hops", "two-lines"],
)
def test_a_host_that_writes_its_own_x_forwarded_for_cannot_claim_a_bypass_ip(
    chain: tuple[Gateway, str], written: list[str]
) -> None:
    _, alb_url = chain
    with from_host(VPC_HOST, alb_url) as host:
        answer = host.get("/echo", headers=[("X-Forwarded-For", value) for value in written])
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "maintenance"


def test_wrong_secrets_are_charged_to_the_host_that_sent_them(chain: tuple[Gateway, str]) -> None:
    _, alb_url = chain
    with from_host(VPC_HOST, alb_url) as host:
        spoofed = {"X-Forwarded-For": OPERATOR}
        statuses = [host.post("/_gateway/bypass", json={"secret": f"guess-{i}"}, headers=spoofed).status_code for i in range(LIMIT + 1)]
        assert statuses == [403] * LIMIT + [429]
        # Locked out itself, whatever address it writes.
        assert host.post("/_gateway/bypass", json={"secret": SECRET}, headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 429
    with from_host(OPERATOR, alb_url) as operator:
        # The operator it posed as still has its whole budget.
        login = operator.post("/_gateway/bypass", json={"secret": SECRET})
    assert login.status_code == 200, login.text
