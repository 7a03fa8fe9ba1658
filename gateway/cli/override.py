"""``maintenance-gateway override on|off|clear``: the emergency override, on every task.

The override is held in each gateway process's memory (``gateway.override``), and the admin API
is reached through the ALB, which picks a task per connection. So the command repeats its call
(``PUT`` or ``DELETE /_gateway/override``) on a fresh connection each time, until every task it
expects has answered: the task ids ECS lists as RUNNING for the service (``--ecs-cluster``,
``--ecs-service``; ``ecs_tasks``), or any ``--tasks N`` of them. Each answer names its task (or,
off ECS, its host and pid) and how many worker processes it runs; a task counts once that many
of its processes have answered. Attempts and time are bounded; it says which tasks it reached and
exits 1 naming those it did not. Repeating it is harmless: the call carries one id, and a task
that holds that override already keeps it as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import Any

from gateway.cli.arguments import duration_text, seconds_text
from gateway.cli.client import AdminClient
from gateway.cli.ecs_tasks import running_tasks
from gateway.cli.output import shown
from gateway.errors import AdminError, GatewayUnreachable, NotEveryTaskReached
from gateway.override import DEFAULT_TTL_SECONDS
from gateway.state import safe_text

DEFAULT_TIMEOUT_SECONDS = 60.0
MAX_TIMEOUT_SECONDS = 600.0
MAX_ATTEMPTS = 1000
# One call's answer: a gateway answers at once; a task that does not is not waited for long.
CALL_TIMEOUT_SECONDS = 5.0
# After a call that failed (a task draining, the ALB's 502): not a busy loop against the ALB.
RETRY_PAUSE_SECONDS = 0.2
# Refusals that no repetition changes: the token, the body, the URL.
_FATAL = (400, 401, 403, 413, 415, 429)


def default_attempts(expected: int) -> int:
    """Enough calls to reach ``expected`` tasks behind a load balancer that picks one at random
    (about n ln n on average, for a round robin n), with room to spare."""
    return min(MAX_ATTEMPTS, max(20, 10 * expected))


@dataclasses.dataclass
class Task:
    """One task (or, off ECS, one gateway process) as its answers showed it."""

    id: str
    task: str | None
    workers: int
    pids: set[int] = dataclasses.field(default_factory=set)
    last: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.pids) >= self.workers


@dataclasses.dataclass
class Tally:
    """The tasks expected (ECS's ids, or a number of them) and those reached so far."""

    expected_ids: frozenset[str] | None
    expected_count: int
    reached: dict[str, Task] = dataclasses.field(default_factory=dict)
    attempts: int = 0
    last_error: str | None = None

    def complete(self) -> bool:
        if self.expected_ids is not None:
            return all(task_id in self.reached and self.reached[task_id].complete for task_id in self.expected_ids)
        return sum(task.complete for task in self.reached.values()) >= self.expected_count

    def missing(self) -> list[str]:
        if self.expected_ids is None:
            return []
        return sorted(task_id for task_id in self.expected_ids if task_id not in self.reached or not self.reached[task_id].complete)

    def unlisted(self) -> list[str]:
        """Tasks that answered but that ECS did not list as RUNNING (started since, or stopping)."""
        if self.expected_ids is None:
            return []
        return sorted(task_id for task_id in self.reached if task_id not in self.expected_ids)

    def complete_count(self) -> int:
        if self.expected_ids is None:
            return sum(task.complete for task in self.reached.values())
        return sum(1 for task_id in self.expected_ids if task_id in self.reached and self.reached[task_id].complete)


def instance_of(answer: dict[str, Any]) -> tuple[str, str | None, int, int] | None:
    """(id, task, pid, workers) from an answer's ``instance``; None when it has none usable."""
    instance = answer.get("instance")
    if not isinstance(instance, dict):
        return None
    unit, task, pid, workers = instance.get("id"), instance.get("task"), instance.get("pid"), instance.get("workers")
    if not isinstance(unit, str) or not unit or len(unit) > 300 or not (task is None or isinstance(task, str)):
        return None
    if isinstance(pid, bool) or not isinstance(pid, int) or isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        return None
    return unit, task, pid, workers


def reach(
    call: Callable[[], dict[str, Any]],
    holds: Callable[[dict[str, Any]], str | None],
    tally: Tally,
    attempts: int,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> Tally:
    """Call until ``tally`` is complete, ``attempts`` calls were made or ``timeout`` seconds passed.

    ``holds(answer)`` is None when the answering task holds what was asked, else why not. A refusal
    no repetition changes (a token refused, a body refused) is raised at once: repeating a wrong
    token would only use up the failure limit.
    """
    deadline = clock() + timeout
    while not tally.complete() and tally.attempts < attempts and clock() < deadline:
        tally.attempts += 1
        try:
            answer = call()
        except AdminError as exc:
            if exc.status in _FATAL:
                raise
            tally.last_error = str(exc)
            pause(RETRY_PAUSE_SECONDS)
            continue
        except GatewayUnreachable as exc:
            tally.last_error = str(exc)
            pause(RETRY_PAUSE_SECONDS)
            continue
        instance = instance_of(answer)
        problem = holds(answer) if instance is not None else "an answer that names no task"
        if instance is None or problem is not None:
            tally.last_error = problem
            continue
        unit, task, pid, workers = instance
        seen = tally.reached.setdefault(unit, Task(unit, task, workers))
        seen.workers = workers
        seen.pids.add(pid)
        seen.last = answer
    return tally


def holds_override(override_id: str) -> Callable[[dict[str, Any]], str | None]:
    def check(answer: dict[str, Any]) -> str | None:
        held = answer.get("override")
        if not isinstance(held, dict) or held.get("id") != override_id:
            return "a task answered without the override in force"
        return None

    return check


def holds_none(answer: dict[str, Any]) -> str | None:
    return None if answer.get("override") is None else "a task answered with an override still in force"


def expected_tasks(args: argparse.Namespace) -> tuple[frozenset[str] | None, int]:
    """The task ids to reach (from ECS) and how many, or (None, --tasks)."""
    if args.tasks is not None:
        if args.ecs_cluster or args.ecs_service:
            raise argparse.ArgumentError(None, "give --tasks N or --ecs-cluster and --ecs-service, not both")
        return None, int(args.tasks)
    if not (args.ecs_cluster and args.ecs_service):
        raise argparse.ArgumentError(None, "say which tasks to reach: --tasks N, or --ecs-cluster CLUSTER and --ecs-service SERVICE")
    ids = running_tasks(args.ecs_cluster, args.ecs_service, args.ecs_region)
    if not ids:
        raise NotEveryTaskReached(f"ECS lists no RUNNING task of service {shown(args.ecs_service)} in cluster {shown(args.ecs_cluster)}")
    return frozenset(ids), len(ids)


def task_line(task: Task) -> str:
    store, served, override = (value if isinstance(value := task.last.get(key), dict) else {} for key in ("store", "served", "override"))
    pids = ", ".join(str(pid) for pid in sorted(task.pids))
    what = f"task {task.task} (pid {pids})" if task.task is not None else f"gateway {task.id}"
    until = f" until {override.get('expires_at')}" if override else ""
    return shown(f"  {what}: serves {served.get('status', '?')}{until}; store {store.get('status', '?')}")


def override_everywhere(args: argparse.Namespace, client: AdminClient | None) -> None:
    """``override on|off|clear``: the call repeated until every task holds it; NotEveryTaskReached
    (exit 1) naming those it did not reach."""
    if client is None:
        raise argparse.ArgumentError(None, "override goes to the gateways themselves, not the store: give --url URL and --token TOKEN")
    action: str = args.action
    if action == "clear" and (args.message or args.ttl is not None):
        raise argparse.ArgumentError(None, "clear takes no --message or --ttl")
    if action == "off" and args.message:
        raise argparse.ArgumentError(None, "--message is shown to users in maintenance: it has no meaning with off")
    expected_ids, expected_count = expected_tasks(args)
    attempts = args.attempts if args.attempts is not None else default_attempts(expected_count)
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT_SECONDS
    client.timeout = CALL_TIMEOUT_SECONDS
    body: dict[str, Any] | None = None
    holds: Callable[[dict[str, Any]], str | None]
    if action == "clear":
        holds = holds_none
        asked = "override clear"
    else:
        override_id = secrets.token_hex(6)
        body = {"maintenance": action, "reason": safe_text(args.reason), "id": override_id}
        if args.ttl is not None:
            body["ttl_seconds"] = args.ttl
        if args.message:
            body["message"] = safe_text(args.message)
        holds = holds_override(override_id)
        ttl = f"for {duration_text(args.ttl if args.ttl is not None else DEFAULT_TTL_SECONDS)}"
        asked = f"override {action} (id {override_id}, {ttl})"

    def call() -> dict[str, Any]:
        return client.override_clear() if body is None else client.override_set(body)

    started = time.monotonic()
    tally = reach(call, holds, Tally(expected_ids, expected_count), attempts, timeout)
    took = seconds_text(round(time.monotonic() - started, 1))
    print(f"{asked} through {client.base}:")
    for task in sorted(tally.reached.values(), key=lambda seen: seen.id):
        print(task_line(task))
    for unlisted in tally.unlisted():
        if tally.reached[unlisted].task is None:
            # Its task metadata could not be read (its detailed health says why): it cannot be counted.
            print(shown(f"  (gateway {unlisted} answered without naming its ECS task: see instance.metadata_problem in its health)"))
        else:
            print(shown(f"  (task {unlisted} answered too; ECS did not list it as RUNNING: starting or stopping)"))
    reached = f"{tally.complete_count()} of {expected_count} tasks in {tally.attempts} calls ({took} s)"
    if not tally.complete():
        missing = tally.missing()
        which = f": not reached: {', '.join(missing)}" if missing else ""
        partial = [task.id for task in tally.reached.values() if not task.complete]
        workers = f"; only some worker processes of {', '.join(partial)} answered" if partial else ""
        last = f"; last error: {tally.last_error}" if tally.last_error else ""
        raise NotEveryTaskReached(shown(f"{asked} reached {reached}{which}{workers}{last}. Run it again: repeating it is harmless"))
    print(f"reached {reached}")
    if action != "clear":
        print(
            "each task drops it at its TTL, at `override clear`, or once it reads a changed store: when the store is back, "
            "write the state you want (`maintenance-gateway off` or `on`) and every task follows it. "
            "Tasks started from now on do not have it: run this again after a deployment or a scale-out."
        )


# -- what `status --url` adds about what that gateway serves


def served_fields(answer: dict[str, Any]) -> dict[str, Any]:
    """The override, what is served and who answered, from a gateway's GET /maintenance."""
    return {key: answer[key] for key in ("served", "override", "instance") if key in answer}


def served_lines(answer: dict[str, Any]) -> list[str]:
    """Lines for ``status`` when something other than the stored state decides what is served."""
    served = answer.get("served")
    override = answer.get("override")
    instance = answer.get("instance")
    lines: list[str] = []
    if not isinstance(served, dict):
        return lines
    if isinstance(override, dict):
        lines.append(f"served:      {served.get('status')}, decided by an override (not the stored state above)")
        # What the gateway says is shown escaped (a hostile --url must not rewrite the terminal).
        why = f": {shown(str(override.get('reason')))}" if override.get("reason") else ""
        left = override.get("seconds_left")
        finite = isinstance(left, int | float) and not isinstance(left, bool) and 0 <= left < 1e9
        left_text = f" ({duration_text(max(1, round(float(left or 0))))} left)" if finite else ""
        lines.append(
            f"override:    maintenance {shown(str(override.get('maintenance')))} until {shown(str(override.get('expires_at')))}{left_text}, "
            f"set by {shown(str(override.get('set_by')))} from {shown(str(override.get('client')))}{why}"
        )
    elif served.get("capped_by_max_window"):
        lines.append(f"served:      {served.get('status')}, ending at {served.get('ends_at')} (GATEWAY_MAX_WINDOW; the stored window has no end)")
    else:
        return lines
    if isinstance(instance, dict):
        lines.append(f"answered by: {instance.get('id')} (pid {instance.get('pid')}): other tasks may differ")
    return [shown(line) for line in lines]
