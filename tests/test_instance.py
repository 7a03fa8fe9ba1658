"""Who a gateway process is (``gateway.instance``): its ECS task read from a small local server
standing in for the task metadata endpoint v4, and what happens when that endpoint misbehaves."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.instance import METADATA_VARIABLE, read_instance, task_from_metadata

TASK_ID = "8f03e41243824aea923aca126495f665"
TASK_ARN = f"arn:aws:ecs:us-west-2:111122223333:task/default/{TASK_ID}"
# The shape of ${ECS_CONTAINER_METADATA_URI_V4}/task (the AWS documentation's example, cut down).
TASK_DOCUMENT = {
    "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
    "TaskARN": TASK_ARN,
    "Family": "curltest",
    "Revision": "26",
    "DesiredStatus": "RUNNING",
    "KnownStatus": "RUNNING",
    "Containers": [{"DockerId": "ea32192c", "Name": "curl", "Labels": {"com.amazonaws.ecs.task-arn": TASK_ARN}}],
    "LaunchType": "FARGATE",
}


class Metadata:
    """A metadata endpoint on loopback: each path prefix answers what ``answers`` says."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes, float]] = {}
        self.requests: list[str] = []
        metadata = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                metadata.requests.append(self.path)
                status, body, delay = metadata.answers.get(self.path, (404, b"{}", 0.0))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the reader gave up (the slow case)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, name: str, document: Any = None, *, status: int = 200, raw: bytes | None = None, delay: float = 0.0) -> str:
        """The URI ECS would put in ECS_CONTAINER_METADATA_URI_V4 for one container."""
        body = raw if raw is not None else json.dumps(document).encode()
        self.answers[f"/v4/{name}/task"] = (status, body, delay)
        return f"{self.base}/v4/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def metadata() -> Iterator[Metadata]:
    server = Metadata()
    yield server
    server.close()


def test_off_ecs_a_process_is_its_host_and_pid() -> None:
    instance = read_instance({}, workers=2)
    assert instance.task is None and instance.problem is None and instance.pid == os.getpid() and instance.workers == 2
    assert instance.id == f"{socket.gethostname()}:{os.getpid()}"


def test_on_ecs_the_task_id_is_the_last_segment_of_the_task_arn(metadata: Metadata) -> None:
    uri = metadata.serve("good", TASK_DOCUMENT)
    instance = read_instance({METADATA_VARIABLE: uri}, workers=1)
    assert (instance.task, instance.task_arn, instance.cluster, instance.problem) == (TASK_ID, TASK_ARN, TASK_DOCUMENT["Cluster"], None)
    assert instance.id == TASK_ID and instance.describe()["id"] == TASK_ID
    assert metadata.requests[-1] == "/v4/good/task"
    # The old ARN format, without the cluster: the id is still its last segment.
    old = task_from_metadata({"TaskARN": "arn:aws:ecs:us-east-1:012345678910:task/a1b2c3d4-5678-90ab-cdef-11111EXAMPLE"})
    assert old[0] == "a1b2c3d4-5678-90ab-cdef-11111EXAMPLE"


def test_no_proxy_carries_the_metadata_call_away(metadata: Metadata, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert read_instance({METADATA_VARIABLE: metadata.serve("proxied", TASK_DOCUMENT)}, workers=1).task == TASK_ID


@pytest.mark.parametrize(
    ("document", "raw", "status", "said"),
    [
        (None, None, 500, "HTTP 500"),
        (None, b"not json", 200, "JSONDecodeError"),
        (None, b"\xff\xfe", 200, "UnicodeDecodeError"),
        ([TASK_ARN], None, 200, "not a JSON object"),
        ({"TaskARN": 42}, None, 200, "no TaskARN"),
        ({"TaskARN": "arn:aws:ecs:us-east-1:1:task/web/\x1b[2J"}, None, 200, "no TaskARN"),  # control characters
        ({"TaskARN": "arn:aws:ecs:us-east-1:1:task/web/caf\u00e9"}, None, 200, "no TaskARN"),
        ({"TaskARN": "arn:aws:ecs:us-east-1:1:task/web/" + "a" * 2000}, None, 200, "no TaskARN"),
        ({"TaskARN": "arn:aws:ecs:us-east-1:1:task/web/"}, None, 200, "does not end in a task id"),
        ({"TaskARN": "arn:aws:ecs:us-east-1:1:task/web/a;b"}, None, 200, "does not end in a task id"),
        ({"TaskARN": "i-am-not-an-arn"}, None, 200, "no TaskARN"),
        (None, b"[" * 100_000, 200, "RecursionError"),
        (None, b'{"TaskARN": "' + b"a" * (1024 * 1024 + 10) + b'"}', 200, "larger than"),
    ],
)
def test_a_metadata_answer_that_cannot_be_used_leaves_the_process_its_host_and_pid(
    metadata: Metadata, document: Any, raw: bytes | None, status: int, said: str
) -> None:
    uri = metadata.serve(f"bad-{len(metadata.answers)}", document, raw=raw, status=status)
    instance = read_instance({METADATA_VARIABLE: uri}, workers=1)
    assert instance.task is None and instance.id.endswith(f":{os.getpid()}")
    assert instance.problem is not None and said in instance.problem, instance.problem
    assert instance.problem.isascii() and instance.problem.isprintable()  # nothing of the answer is quoted


def test_a_metadata_endpoint_that_hangs_or_is_not_there_costs_at_most_the_timeout(metadata: Metadata) -> None:
    slow = metadata.serve("slow", TASK_DOCUMENT, delay=3.0)
    started = time.monotonic()
    instance = read_instance({METADATA_VARIABLE: slow}, workers=1, timeout=0.3)
    assert time.monotonic() - started < 2 and instance.task is None and "TimeoutError" in (instance.problem or "")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    refused = read_instance({METADATA_VARIABLE: f"http://127.0.0.1:{closed_port}/v4/x"}, workers=1)
    assert refused.task is None and refused.problem is not None
    for not_http in ("file:///etc/passwd", "https://169.254.170.2/v4/x", "ftp://x"):
        assert read_instance({METADATA_VARIABLE: not_http}, workers=1).problem == f"{METADATA_VARIABLE} is not an http:// URL"
