"""Real servers for the tests: each a subprocess on a free loopback port, stopped afterwards."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from gateway.admin.changes import next_state
from gateway.state import MaintenanceState, format_time
from gateway.stores import Store, change_state, open_store

ROOT = Path(__file__).resolve().parent.parent
DJANGO_DIR = ROOT / "examples" / "django_site"
BIN = Path(sys.executable).parent

# Credentials for moto's server; the tests never talk to AWS itself.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# The front end's origin: a page served on its own port, as an Angular app on its own domain.
FRONT_PORT = free_port()
FRONT_ORIGIN = f"http://localhost:{FRONT_PORT}"
OTHER_ORIGIN = "http://evil.example"

# The same CORS settings for Django (django-cors-headers) and the gateway.
CORS_ENV = {
    "GATEWAY_CORS_ALLOWED_ORIGINS": FRONT_ORIGIN,
    "GATEWAY_CORS_ALLOW_CREDENTIALS": "true",
    "GATEWAY_CORS_ALLOW_HEADERS": "accept,authorization,content-type,user-agent,x-csrftoken,x-requested-with,x-client-version",
    "GATEWAY_CORS_EXPOSE_HEADERS": "Retry-After,X-Maintenance-Mode",
}

class ServerProcess:
    """A server started as a subprocess, its output kept in a log file for failures."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], cwd: Path, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args, env=dict(env), cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_port(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            if port_open(port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not open port {port} within {timeout} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode


def base_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEWAY_", "EXAMPLE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_test_app(log_dir: Path, app: str, name: str, extra_args: Sequence[str] = ()) -> tuple[ServerProcess, str]:
    """One of the tests' own ASGI upstreams (``module:app`` in tests/) under uvicorn on a free port."""
    port = free_port()
    server = ServerProcess(
        name,
        # --no-proxy-headers: the upstream must report the gateway's real port (its keep-alive
        # connection), not a client rebuilt from X-Forwarded-For with port 0.
        [
            str(BIN / "uvicorn"), app, "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--no-proxy-headers", *extra_args,
        ],
        {**base_env(), "PYTHONPATH": str(ROOT / "tests")},
        ROOT / "tests",
        log_dir,
    )
    server.wait_for_port(port)
    return server, f"http://127.0.0.1:{port}"


def start_raw_upstream(log_dir: Path) -> tuple[ServerProcess, str]:
    return start_test_app(log_dir, "upstream_app:app", "raw-upstream")


def start_django(log_dir: Path, allowed_origins: str, port: int | None = None, name: str = "django") -> tuple[ServerProcess, str]:
    port = port or free_port()
    server = ServerProcess(
        name,
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "example_site.wsgi"],
        {
            **base_env(),
            "EXAMPLE_BIND": f"127.0.0.1:{port}",
            "EXAMPLE_CORS_ALLOWED_ORIGINS": allowed_origins,
            "EXAMPLE_WORKERS": "2",
        },
        DJANGO_DIR,
        log_dir,
    )
    server.wait_for_port(port)
    return server, f"http://127.0.0.1:{port}"


# The admin token every test gateway gets unless the test sets GATEWAY_ADMIN_TOKENS itself:
# health details and metrics need one.
SUPPORT_ADMIN_TOKEN = "tests-admin-token-0123456789"


class Gateway:
    """A gateway process under test, with its file store at hand to flip the state."""

    def __init__(
        self,
        log_dir: Path,
        upstream: str,
        env: Mapping[str, str] | None = None,
        name: str = "gateway",
        state_text: str | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_path = log_dir / f"{name}-state.json"
        if state_text is not None:
            self.state_path.write_text(state_text)
        store_url = (env or {}).get("GATEWAY_STORE", f"file:{self.state_path}")
        self.store: Store = open_store(store_url)
        self.env = {
            **base_env(),
            **AWS_ENV,
            "GATEWAY_UPSTREAM_URL": upstream,
            "GATEWAY_STORE": store_url,
            "GATEWAY_REFRESH_INTERVAL": "0.1",
            "GATEWAY_LOG_FORMAT": "text",
            "GATEWAY_ADMIN_TOKENS": f"tests:{SUPPORT_ADMIN_TOKEN}",
            **(env or {}),
        }
        self.server = ServerProcess(
            name, [str(BIN / "maintenance-gateway"), "serve", "--port", str(self.port)], self.env, ROOT, log_dir
        )
        self.server.wait_for_port(self.port)

    @property
    def pid(self) -> int:
        return self.server.pid

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    @property
    def admin_headers(self) -> dict[str, str]:
        """``Authorization`` with one of this gateway's admin tokens (none when its admin API is off)."""
        tokens = self.env.get("GATEWAY_ADMIN_TOKENS", "")
        first = tokens.split(",")[0].strip()
        return {"authorization": f"Bearer {first.split(':', 1)[1].strip()}"} if ":" in first else {}

    def health(self) -> dict[str, Any]:
        """Health with the details (the state, the store, the pid): sent with an admin token."""
        return httpx.get(f"{self.url}/_gateway/health", headers=self.admin_headers, timeout=5).json()

    def metrics(self) -> str:
        """The Prometheus text, read with an admin token."""
        response = httpx.get(f"{self.url}/_gateway/metrics", headers=self.admin_headers, timeout=5)
        response.raise_for_status()
        return response.text

    def wait_for_version(self, version: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.health().get("state")
            if state is not None and state["version"] >= version:
                return
            time.sleep(0.02)
        raise AssertionError(f"the gateway did not load version {version} within {timeout} s")

    def turn_on(self, **fields: Any) -> MaintenanceState:
        """Maintenance on, written to the store as the admin API writes it (``fields`` as its body
        takes them, with times as epoch seconds), once this gateway serves it."""
        body = {"enabled": True, **{name: format_time(value) if name in ("starts_at", "ends_at") else value for name, value in fields.items()}}
        if body.get("scope") is not None:
            body["scope"] = list(body["scope"])
        state = change_state(self.store, lambda current: next_state(current, body, now=time.time(), actor="tests"))
        self.wait_for_version(state.version)
        return state

    def turn_off(self) -> MaintenanceState:
        state = change_state(self.store, lambda current: next_state(current, {"enabled": False}, now=time.time(), actor="tests"))
        self.wait_for_version(state.version)
        return state

    def rss_kib(self, field: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.pid}/status")

    def stop(self) -> int:
        return self.server.stop()


def maintenance_off_after(gateway: Gateway) -> Iterator[Gateway]:
    """The body of a per-test fixture over a shared gateway: maintenance is off when the test ends."""
    yield gateway
    if gateway.store.read().enabled:
        gateway.turn_off()


class DynamoDBServer:
    """moto's server mode: a real DynamoDB-protocol endpoint on loopback."""

    def __init__(self, log_dir: Path, name: str = "moto", record: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.recording = log_dir / f"{name}-recording.jsonl"
        env = {**base_env(), **AWS_ENV}
        if record:
            env.update({"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(self.recording)})
        self.server = ServerProcess(
            name, [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], env, ROOT, log_dir
        )
        self.server.wait_for_port(self.port)

    def store_url(self, table: str, key: str = "default", **options: str) -> str:
        query = "&".join(f"{name}={value}" for name, value in {"key": key, "region": "us-east-1", "endpoint_url": self.url, **options}.items())
        return f"dynamodb://{table}?{query}"

    def operations(self, target: str) -> int:
        """How many requests of one DynamoDB operation (``GetItem``) the server received."""
        if not self.recording.exists():
            return 0
        count = 0
        for line in self.recording.read_text().splitlines():
            headers = {key.lower(): value for key, value in json.loads(line)["headers"].items()}
            if headers.get("x-amz-target") == f"DynamoDB_20120810.{target}":
                count += 1
        return count

    def get_items(self, consistent: bool) -> int:
        """How many GetItems the server received with ``ConsistentRead`` set (or not): the
        refresh's reads are eventually consistent, a confirming read strongly consistent."""
        if not self.recording.exists():
            return 0
        count = 0
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            headers = {key.lower(): value for key, value in entry["headers"].items()}
            if headers.get("x-amz-target") != "DynamoDB_20120810.GetItem":
                continue
            body = base64.b64decode(entry["body"]) if entry.get("body_encoded") else entry.get("body") or "{}"
            if bool(json.loads(body).get("ConsistentRead")) == consistent:
                count += 1
        return count

    def pause(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.server.stop()


NGINX_MAIN = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/default.conf;
}}
"""


def start_nginx(log_dir: Path, gateway_port: int, name: str = "nginx") -> tuple[ServerProcess, str]:
    """Debian's nginx running the shipped config/nginx template, filled from config/ecs-stack.yaml's
    nginx environment as the official image fills it (tests/stack.py)."""
    from tests.stack import nginx_conf_on_loopback

    port = free_port()
    prefix = log_dir / name
    prefix.mkdir(exist_ok=True)
    conf = nginx_conf_on_loopback(port, gateway_port)
    (prefix / "default.conf").write_text(conf)
    (prefix / "nginx.conf").write_text(NGINX_MAIN.format(prefix=prefix))
    server = ServerProcess(name, ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], base_env(), ROOT, log_dir)
    server.wait_for_port(port)
    return server, f"http://127.0.0.1:{port}"


# -- the installed command, and what every store-facing test checks afterwards


def cli(*args: str, store: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command on the file store ``store``; ``env`` adds variables."""
    return subprocess.run(
        [str(BIN / "maintenance-gateway"), *args],
        env={**base_env(), "GATEWAY_STORE": f"file:{store}", **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_gateway_survives(gateway: Gateway, store_url: str, commands: tuple[tuple[str, ...], ...] = (("status",), ("status", "--json"))) -> None:
    """Health (public and detailed), the 503 in all three variants and the ``status`` CLI all answer."""
    public = httpx.get(f"{gateway.url}/_gateway/health", timeout=5)
    assert public.status_code == 200, public.text
    detailed = httpx.get(f"{gateway.url}/_gateway/health", headers=gateway.admin_headers, timeout=5)
    assert detailed.status_code == 200, detailed.text
    for accept in ("application/json", "text/html", "text/plain"):
        answer = httpx.get(f"{gateway.url}/echo", headers={"Accept": accept}, timeout=5)
        assert answer.status_code in (200, 503), (accept, answer.status_code, answer.text)
        answer.content.decode("utf-8")
    for args in commands:
        result = subprocess.run(
            [str(BIN / "maintenance-gateway"), *args],
            env={**base_env(), **AWS_ENV, "GATEWAY_STORE": store_url},
            capture_output=True,
            timeout=30,
        )
        # Either the state (repaired), or a clear refusal naming the field: never a traceback.
        assert b"Traceback" not in result.stderr, result.stderr
        assert result.returncode == 0 or b"store error" in result.stderr, (result.returncode, result.stderr)
        result.stdout.decode("utf-8")


def wait_for_reads(gateway: Gateway, reads: int = 2) -> None:
    """Until the gateway has read the store ``reads`` more times (so at least once since a write)."""
    def count() -> int:
        return int(httpx.get(f"{gateway.url}/_gateway/health", headers=gateway.admin_headers, timeout=5).json()["store"]["reads"])

    target = count() + reads
    deadline = time.monotonic() + 5
    while count() < target:
        if time.monotonic() >= deadline:
            raise AssertionError(f"the gateway did not read its store {reads} more times within 5 s")
        time.sleep(0.05)
