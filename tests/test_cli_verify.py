"""``maintenance-gateway verify``: what it makes of the answers it gets through the load balancer.

Against a real task (nginx, the gateway, Django and the store) in tests/test_full_stack.py;
here the judgement of each kind of answer, from payloads shaped as the gateway's detailed health.
"""

from __future__ import annotations

from typing import Any

from gateway.cli.verify import Survey, problems, reading


def health(task: str, status: str = "ok", age: float | None = 0.4, kind: str = "dynamodb://shop?key=shop-prod", error: str | None = None) -> dict[str, Any]:
    return {
        "status": "ok", "maintenance": False, "mode": "full", "upcoming": False,
        "instance": {"id": task, "task": task, "host": "ip-10-0-1-23", "pid": 7, "workers": 1},
        "state": {"version": 7},
        "store": {"kind": kind, "status": status, "failures": 0 if status == "ok" else 4, "reads": 90, "error": error, "went_back": None},
        "state_age_seconds": age,
        "pid": 7,
    }


def judged(*payloads: dict[str, Any], others: tuple[str, ...] = (), tasks: int = 1, allow_others: bool = False) -> list[str]:
    survey = Survey(others=list(others))
    for payload in payloads:
        seen = reading(payload)
        assert seen is not None
        survey.readings[seen.task] = seen
    return problems(survey, tasks=tasks, max_age=10, allow_others=allow_others, attempts=20)


def test_tasks_that_read_the_store_pass() -> None:
    assert judged(health("a1"), health("b2"), tasks=2) == []


def test_each_failure_is_named_with_its_task() -> None:
    [stale] = judged(health("a1"), health("b2", status="stale", error="AccessDeniedException: not authorized"))
    assert stale.startswith("task b2: store stale (AccessDeniedException: not authorized)")
    [old] = judged(health("a1", age=45.0))
    assert "task a1: last good read of the store 45.0 s ago (over --max-age 10)" == old
    [unread] = judged(health("a1", status="unread", age=None))
    assert unread.startswith("task a1: store unread")
    assert any("reads memory:" in p for p in judged(health("a1", kind="memory:")))
    [different] = judged(health("a1"), health("b2", kind="dynamodb://other?key=shop-prod"), tasks=2)
    assert different.startswith("the tasks read different stores")
    [missing] = judged(health("a1"), tasks=2)
    assert missing.startswith("1 task(s) answered in 20 requests, not the 2 of --tasks")


def test_answers_that_are_no_gateways_fail_unless_allowed() -> None:
    other = "HTTP 404, not a gateway's health (a task without the gateway, or its admin API off)"
    assert judged(health("a1"), others=(other, other)) == [f"2 of 20 requests: {other}"]
    # During a weighted cut-over the site's current target group answers some requests.
    assert judged(health("a1"), others=(other,), allow_others=True) == []


def test_a_public_health_answer_is_not_taken_for_a_detailed_one() -> None:
    """Health without a token says only what a load balancer needs: no store kind, no task."""
    assert reading({"status": "ok", "maintenance": False, "mode": "full", "upcoming": False, "store": {"status": "ok"}}) is None
    assert reading({"status": "ok"}) is None and reading(["not", "a", "dict"]) is None
    # An older gateway without `instance` is counted by its pid.
    payload = health("a1")
    del payload["instance"]
    seen = reading(payload)
    assert seen is not None and seen.task == "pid 7"


def test_an_age_no_gateway_sends_counts_as_no_good_read_and_never_passes() -> None:
    """JSON allows NaN, negative and 400-digit numbers: none of them may pass the check
    (NaN > max_age is False) or crash it (float() of 10**400)."""
    for age in (float("nan"), -5, 10**400, float("inf")):
        [problem] = judged(health("a1", age=age))  # type: ignore[arg-type]
        assert problem.startswith("task a1:"), problem
    assert reading({**health("a1"), "state": {"version": "\x1b[2J7"}}).version == "\\x1b[2J7"  # type: ignore[union-attr]


def test_status_shows_a_hostile_gateways_override_escaped_and_never_crashes() -> None:
    from gateway.cli.override import served_lines

    for left in (float("inf"), float("nan"), 10**400, -1):
        answer = {
            "served": {"status": "on"},
            "override": {"maintenance": "on", "seconds_left": left, "reason": "\x1b]0;owned\x07", "set_by": "t", "client": "c", "expires_at": "x"},
        }
        lines = "\n".join(served_lines(answer))
        assert "left)" not in lines and "\x1b" not in lines and "\\x1b" in lines, lines
