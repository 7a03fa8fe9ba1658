"""The CLI against a server that is not a well-behaved gateway: one that trickles its answer a
byte at a time, or answers JSON nested past any parser. Each command ends in bounded time with
a sentence and its exit code, never a hang or a traceback."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support import BIN, base_env


def _serve(answer: bytes, per_byte: float) -> Iterator[int]:
    """A loopback server sending ``answer`` to every connection, ``per_byte`` seconds a byte
    (0: at once), for at most 30 s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(1)
            try:
                conn.recv(65536)
                if not per_byte:
                    conn.sendall(answer)
                    return
                deadline = time.monotonic() + 30
                for byte in answer:
                    if stop.is_set() or time.monotonic() > deadline:
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(per_byte)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed: the test is over
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def _cli(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run([str(BIN / "maintenance-gateway"), *args], env=base_env(), capture_output=True, text=True, timeout=timeout)
    return result, time.monotonic() - started


TOKEN = "0123456789abcdef0123"
DEEP = b"[" * 100_000
TRICKLED = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n" + b" " * 100_000


@pytest.fixture
def deep_json() -> Iterator[int]:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(DEEP)
    yield from _serve(head + DEEP, 0)


@pytest.fixture
def trickle() -> Iterator[int]:
    yield from _serve(TRICKLED, 0.05)


def test_json_nested_past_any_parser_is_not_a_gateway(deep_json: int) -> None:
    url = f"http://127.0.0.1:{deep_json}"
    status, _ = _cli("status", "--url", url, "--token", TOKEN)
    assert status.returncode == 6 and "Traceback" not in status.stderr, status.stderr
    verify, _ = _cli("verify", "--url", url, "--token", TOKEN, "--attempts", "1")
    assert verify.returncode == 1 and "Traceback" not in verify.stderr, verify.stderr


def test_an_answer_trickled_a_byte_at_a_time_ends_the_command_at_its_timeout(trickle: int) -> None:
    # The answer would take 5,000 s at this pace; verify gives each request 5 s in all.
    verify, took = _cli("verify", "--url", f"http://127.0.0.1:{trickle}", "--token", TOKEN, "--attempts", "1")
    assert verify.returncode == 1 and "Traceback" not in verify.stderr, verify.stderr
    assert took < 15, f"verify took {took:.1f} s"


@pytest.fixture
def not_a_state() -> Iterator[int]:
    body = b'{"version": "x", "enabled": "yes", "mode": 5}'
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    yield from _serve(head + body, 0)


@pytest.fixture
def not_http() -> Iterator[int]:
    yield from _serve(b"SSH-2.0-OpenSSH_9.2\r\n", 0)


def test_manage_py_maintenance_ends_in_time_with_a_sentence_whatever_answers(trickle: int, not_a_state: int, not_http: int, deep_json: int) -> None:
    """Django's side (django-maintenance-gateway's admin client): the same bounds."""
    from maintenance_gateway_django.admin_client import EXIT_UNREACHABLE, AdminClient, AdminError

    for port, timeout in ((trickle, 2.0), (not_a_state, 5.0), (not_http, 5.0), (deep_json, 5.0)):
        started = time.monotonic()
        with pytest.raises(AdminError) as refused:
            AdminClient(f"http://127.0.0.1:{port}", TOKEN, timeout=timeout).status()
        assert refused.value.exit_code == EXIT_UNREACHABLE, (port, refused.value)
        assert time.monotonic() - started < timeout + 2
