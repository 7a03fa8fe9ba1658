"""Who this gateway process is: its ECS task (from the task metadata endpoint), host and pid.

The override (``gateway.override``) is taken per process, and the admin API is reached through
the ALB, which picks a task per connection; every answer about the override names the process
that gave it, so the CLI can tell when it has reached every task of the service.

On ECS the agent sets ``ECS_CONTAINER_METADATA_URI_V4`` in each container;
``${ECS_CONTAINER_METADATA_URI_V4}/task`` answers JSON whose ``TaskARN``
(``arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/TASK_ID``, or ``task/TASK_ID`` in the old format) and
``Cluster`` name the task: the task id is the ARN's last segment, as ``ecs list-tasks`` names it.
Anywhere else (or when the endpoint cannot be read) the process is its host and pid.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

METADATA_VARIABLE = "ECS_CONTAINER_METADATA_URI_V4"
# The endpoint answers on a link-local address within milliseconds; a start must not wait longer.
METADATA_TIMEOUT = 2.0
# The task's metadata describes each of its containers: a few KiB. More is not the agent's answer.
MAX_METADATA_BYTES = 1024 * 1024
# ECS task ids are 32 hex digits (or a UUID in the old ARN format); anything printable and short
# is taken, anything else is refused rather than shown to an operator's terminal.
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
MAX_ARN_LENGTH = 1600
MAX_HOST_LENGTH = 255


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    host: str
    pid: int
    # GATEWAY_WORKERS: each worker process holds its own state and override, so a task is
    # reached once this many of its processes have answered.
    workers: int
    task: str | None = None  # the ECS task id
    task_arn: str | None = None
    cluster: str | None = None
    # Why the task metadata could not be read, when ECS_CONTAINER_METADATA_URI_V4 is set.
    problem: str | None = None

    @property
    def id(self) -> str:
        """What the CLI counts as one task: the ECS task id, else this process (host:pid)."""
        return self.task if self.task is not None else f"{self.host}:{self.pid}"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "task_arn": self.task_arn,
            "cluster": self.cluster,
            "host": self.host,
            "pid": self.pid,
            "workers": self.workers,
            "metadata_problem": self.problem,
        }


def _printable(text: str, limit: int) -> str | None:
    return text if text and len(text) <= limit and text.isascii() and text.isprintable() else None


def local_instance(workers: int, problem: str | None = None) -> Instance:
    """This process by its host name and pid (off ECS, or before the metadata was read)."""
    host = _printable(socket.gethostname(), MAX_HOST_LENGTH) or "unknown-host"
    return Instance(host=host, pid=os.getpid(), workers=workers, problem=problem)


def task_from_metadata(document: Any) -> tuple[str, str, str | None]:
    """(task id, task ARN, cluster) from the JSON of ``${ECS_CONTAINER_METADATA_URI_V4}/task``;
    ValueError saying what is wrong (never quoting the document: it is not this code's to show)."""
    if not isinstance(document, dict):
        raise ValueError("the task metadata is not a JSON object")
    arn = document.get("TaskARN")
    if not isinstance(arn, str) or _printable(arn, MAX_ARN_LENGTH) is None or not arn.startswith("arn:") or ":task/" not in arn:
        raise ValueError("the task metadata has no TaskARN of the form arn:...:task/...")
    task = arn.rsplit("/", 1)[-1]
    if not _TASK_ID.fullmatch(task):
        raise ValueError("the TaskARN does not end in a task id")
    cluster = document.get("Cluster")
    cluster = _printable(cluster, MAX_ARN_LENGTH) if isinstance(cluster, str) else None
    return task, arn, cluster


def read_instance(env: Mapping[str, str], workers: int, timeout: float = METADATA_TIMEOUT) -> Instance:
    """This process as ECS names it (blocking: one GET of the task metadata), or by host and pid
    when ``ECS_CONTAINER_METADATA_URI_V4`` is not set or its answer cannot be used (``problem``
    says why)."""
    base = env.get(METADATA_VARIABLE, "").strip()
    if not base:
        return local_instance(workers)
    if not base.startswith("http://"):
        return local_instance(workers, f"{METADATA_VARIABLE} is not an http:// URL")
    # No proxy: HTTP_PROXY in the container's environment must not carry the link-local call away.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(base.rstrip("/") + "/task", timeout=timeout) as response:
            raw = response.read(MAX_METADATA_BYTES + 1)
        if len(raw) > MAX_METADATA_BYTES:
            raise ValueError(f"the task metadata is larger than {MAX_METADATA_BYTES} bytes")
        task, arn, cluster = task_from_metadata(json.loads(raw.decode("utf-8")))
    except urllib.error.HTTPError as exc:
        return local_instance(workers, f"the task metadata endpoint answered HTTP {exc.code}")
    except (OSError, ValueError, RecursionError) as exc:
        # OSError: refused, timed out, reset; ValueError: not UTF-8, not JSON, no task ARN.
        said = str(exc) if isinstance(exc, ValueError) and str(exc).startswith("the ") else type(exc).__name__
        return local_instance(workers, f"the task metadata could not be read: {said}")
    return dataclasses.replace(local_instance(workers), task=task, task_arn=arn, cluster=cluster)
