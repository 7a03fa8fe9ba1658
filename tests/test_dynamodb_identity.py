"""Who wrote a change to a DynamoDB store: the AWS caller identity (STS GetCallerIdentity) in the
history record, asked once per CLI write; an identity that cannot be had never stops the write.
Against moto's server (which answers DynamoDB and STS on one endpoint), through a small proxy that
counts the STS calls and can make them hang or fail."""

from __future__ import annotations

import getpass
import http.server
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.stores import open_store
from tests.support import AWS_ENV, BIN, DynamoDBServer, base_env

# What moto's STS says of the tests' credentials.
MOTO_ARN = "arn:aws:sts::123456789012:user/moto"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class IdentityProxy:
    """A loopback proxy in front of moto: every call forwarded, except STS GetCallerIdentity in the
    ``hang`` (no answer until released) or ``deny`` (403 AccessDenied) mode; STS calls counted."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "forward"
        self.identity_calls = 0
        self.released = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if b"Action=GetCallerIdentity" in body:
                    proxy.identity_calls += 1
                    if proxy.mode == "hang":
                        proxy.released.wait(30)
                        return
                    if proxy.mode == "deny":
                        error = (
                            b'<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>'
                            b"<Message>not allowed</Message></Error></ErrorResponse>"
                        )
                        self.send_response(403)
                        self.send_header("content-type", "text/xml")
                        self.send_header("content-length", str(len(error)))
                        self.end_headers()
                        self.wfile.write(error)
                        return
                headers = {key: value for key, value in self.headers.items() if key.lower() not in _HOP_BY_HOP}
                answer = httpx.post(proxy.upstream + self.path, content=body, headers=headers, timeout=10)
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-encoding":
                        self.send_header(key, value)
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="identity-proxy", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def dynamodb(log_dir: Path) -> Iterator[DynamoDBServer]:
    server = DynamoDBServer(log_dir, name="moto-identity")
    yield server
    server.stop()


@pytest.fixture
def proxy(dynamodb: DynamoDBServer) -> Iterator[IdentityProxy]:
    server = IdentityProxy(dynamodb.url)
    yield server
    server.stop()


def cli(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "maintenance-gateway"), *args],
        env={**base_env(), **AWS_ENV, "GATEWAY_STORE": store_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def table_through(proxy: IdentityProxy, name: str) -> str:
    url = f"dynamodb://{name}?key=prod&region=us-east-1&endpoint_url={proxy.url}"
    created = cli(url, "init-table")
    assert created.returncode == 0, created.stderr
    return url


def test_each_cli_write_records_the_aws_caller_beside_by(proxy: IdentityProxy) -> None:
    url = table_through(proxy, "identity-known")
    me = f"{getpass.getuser()}@{socket.gethostname()} (cli)"
    calls = proxy.identity_calls
    for command in (["on", "--for", "1h", "--by", "alice"], ["extend", "--for", "10m"], ["off", "--by", "bob"]):
        result = cli(url, *command)
        assert result.returncode == 0, (command, result.stderr)
        assert "warning" not in result.stderr, result.stderr
        calls += 1
        assert proxy.identity_calls == calls, command  # once per write
    records = open_store(url).history(10)
    assert [(record["by"], record["aws_caller"]) for record in records] == [
        (f"bob / {me}", MOTO_ARN),
        (me, MOTO_ARN),
        (f"alice / {me}", MOTO_ARN),
    ]
    assert records[2]["new"]["updated_by"] == f"alice / {me}"
    # The state item holds who, not the ARN: that is the history's.
    assert "aws_caller" not in records[0]["new"]
    lines = cli(url, "history").stdout.splitlines()
    assert f"bob / {me} [aws: {MOTO_ARN}]" in lines[0], lines
    # Reads ask nothing of STS.
    assert cli(url, "status").returncode == 0 and proxy.identity_calls == calls


@pytest.mark.parametrize("mode", ["hang", "deny"])
def test_an_identity_that_cannot_be_had_is_unknown_and_never_stops_the_write(proxy: IdentityProxy, mode: str) -> None:
    url = table_through(proxy, f"identity-{mode}")
    proxy.mode = mode
    started = time.monotonic()
    result = cli(url, "on", "--message", "still written")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "warning: the AWS caller identity could not be read" in result.stderr, result.stderr
    assert 'the history records aws_caller "unknown"' in result.stderr
    if mode == "deny":
        assert "AccessDenied" in result.stderr
    # A hung STS costs the store's read timeout (1 s), asked once: not the 30 s the proxy holds it.
    assert proxy.identity_calls == 1 and elapsed < 10, elapsed
    store = open_store(url)
    assert store.read().message == "still written"
    [record] = store.history(5)
    assert record["aws_caller"] == "unknown"


def test_the_history_record_keeps_what_every_store_writes(proxy: IdentityProxy) -> None:
    """The record's own fields cannot be overwritten by what a writer adds."""
    from gateway.state import MaintenanceState, switched_on
    from gateway.stores.base import apply_change

    store = open_store(table_through(proxy, "identity-extras"))
    apply_change(store, lambda s: switched_on(s, now=time.time(), actor="ops"), record={"aws_caller": "arn:x", "by": "forged", "version": "9"})
    [record] = store.history(5)
    assert (record["by"], record["version"], record["aws_caller"]) == ("ops", 1, "arn:x")
    assert isinstance(json.dumps(record), str)
    assert store.read() == MaintenanceState.from_item(record["new"])
