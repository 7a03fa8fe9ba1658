"""The tasks of an ECS service that the ALB can send a request to: ``override --ecs-cluster C
--ecs-service S`` reaches each of them (with the operator's own AWS credentials).

``ListTasks`` (``cluster``, ``serviceName``, ``desiredStatus=RUNNING``; paginated by
``nextToken``) names the tasks the service keeps; ``DescribeTasks`` (at most 100 a call) says
where each is: only those whose ``lastStatus`` is ``RUNNING`` are counted, since a task still
``PENDING`` or ``ACTIVATING`` is not registered with the target group yet, and one
``DEACTIVATING`` or beyond has been taken out of it. botocore's exceptions are translated here.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import TaskListError

# DescribeTasks takes at most this many tasks a call (its API reference).
DESCRIBE_BATCH = 100
# Far more tasks than one service runs; a listing that keeps going is not one.
MAX_TASKS = 5000


def task_id(arn: str) -> str:
    """The task id of a task ARN (``arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID``, or ``task/ID``)."""
    return arn.rsplit("/", 1)[-1]


def ecs_client(region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    # The endpoint may be moved with AWS_ENDPOINT_URL_ECS (botocore's own variable), as for tests.
    config = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
    return boto3.session.Session(region_name=region).client("ecs", config=config)


def running_tasks(cluster: str, service: str, region: str | None = None, client: Any = None) -> list[str]:
    """The ids of ``service``'s tasks that are RUNNING, sorted; TaskListError saying why not."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ecs = client if client is not None else ecs_client(region)
        arns: list[str] = []
        for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, serviceName=service, desiredStatus="RUNNING"):
            arns.extend(arn for arn in page.get("taskArns", []) if isinstance(arn, str))
            if len(arns) > MAX_TASKS:
                raise TaskListError(f"ECS lists more than {MAX_TASKS} tasks for service {service}")
        running = []
        for start in range(0, len(arns), DESCRIBE_BATCH):
            described = ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + DESCRIBE_BATCH])
            # A task in "failures" (MISSING) stopped between the two calls: it is not to be reached.
            for task in described.get("tasks", []):
                if task.get("lastStatus") == "RUNNING" and task.get("desiredStatus", "RUNNING") == "RUNNING" and isinstance(task.get("taskArn"), str):
                    running.append(task_id(task["taskArn"]))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise TaskListError(f"ECS refused ({error.get('Code', 'error')}): {error.get('Message', '')}".rstrip(": ")) from None
    except BotoCoreError as exc:
        # No credentials, no region, no connection: botocore's message says which.
        raise TaskListError(f"cannot ask ECS: {exc}") from None
    return sorted(set(running))
