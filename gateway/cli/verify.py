"""``verify``: after a deploy, through the load balancer, that every task answering reads the store.

A deploy can succeed and still leave the switch out of reach: a task whose role cannot read the
table, a table in another region, a store URL pointing elsewhere all serve traffic and pass
their health checks (health is 200 whatever the store does, so that a store outage never
replaces the tasks). This asks the detailed health (``GET /_gateway/health`` with an admin
token) over several fresh connections, so that the load balancer spreads them over its
targets; each answer names its task (``instance``) and its store. It writes nothing. Each task
seen must read the store (``store.status`` ``ok``) and have read it recently; all must read the
same store, and with ``--tasks N`` at least N tasks must have answered.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.cli.arguments import parse_token, parse_url
from gateway.cli.client import bounded_request, clean_token
from gateway.cli.output import shown
from gateway.settings import ADMIN_TOKEN_VARIABLE, ADMIN_URL_VARIABLE

DEFAULT_ATTEMPTS = 20
DEFAULT_MAX_AGE = 10.0
REQUEST_TIMEOUT = 5.0


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{ascii(text)} is not a whole number from 1 to 1000")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{ascii(text)} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{ascii(text)} is not a number of seconds above 0")
    return value


def add_verify_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "check, through the load balancer, that every answering task reads the store"
    parser = commands.add_parser(
        "verify",
        help=summary,
        description=(
            "Check, through the load balancer, that every answering task reads the store. "
            "Asks the detailed health over fresh connections (GET only: nothing is written); each task seen must report "
            "store status ok and a recent read, all the same store. Exits 1 naming each problem."
        ),
    )
    parser.add_argument("--url", type=parse_url, metavar="URL", help=f"the site as its users reach it, e.g. https://shop.example.com [{ADMIN_URL_VARIABLE}]")
    parser.add_argument("--token", type=parse_token, help=f"an admin token [{ADMIN_TOKEN_VARIABLE}]")
    parser.add_argument("--tasks", type=_positive_int, default=1, metavar="N", help="fail unless at least N tasks answer (the service's desired count; default 1)")
    parser.add_argument(
        "--attempts", type=_positive_int, default=DEFAULT_ATTEMPTS, metavar="N",
        help=f"requests to make, each on a new connection (default {DEFAULT_ATTEMPTS})",
    )
    parser.add_argument(
        "--max-age", type=_seconds, default=DEFAULT_MAX_AGE, metavar="SECONDS",
        help=f"the oldest last good read of the store that passes (default {DEFAULT_MAX_AGE:g})",
    )
    parser.add_argument(
        "--allow-others", action="store_true",
        help="count, not fail, answers that are no gateway's (during a weighted cut-over, the site's current target group)",
    )


@dataclass
class Reading:
    task: str
    store_kind: str
    status: str
    age: float | None
    version: object
    error: str | None


@dataclass
class Survey:
    readings: dict[str, Reading] = field(default_factory=dict)
    others: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Refused(Exception):
    """The gateway refused the token: no later attempt can do better."""


def reading(payload: Any) -> Reading | None:
    """A gateway's detailed health as one reading, or None when the answer is not one."""
    # The public answer (no token seen) has a store status but no store kind and no age.
    if not isinstance(payload, dict) or not isinstance(payload.get("store"), dict) or "kind" not in payload["store"]:
        return None
    store = payload["store"]
    instance = payload.get("instance")
    task = instance.get("id") if isinstance(instance, dict) else None
    if not isinstance(task, str):
        task = f"pid {payload.get('pid')}"
    age = payload.get("state_age_seconds")
    state = payload.get("state")
    return Reading(
        task=shown(task),
        store_kind=shown(str(store.get("kind"))),
        status=shown(str(store.get("status"))),
        # A number a gateway can have sent (JSON allows NaN, negatives and 400 digits): anything
        # else counts as no good read, so it can neither pass nor crash the check.
        age=float(age) if isinstance(age, (int, float)) and not isinstance(age, bool) and 0 <= age < 1e9 else None,
        version=shown(str(state.get("version"))) if isinstance(state, dict) else None,
        error=shown(store["error"]) if isinstance(store.get("error"), str) else None,
    )


def ask(url: str, token: str) -> tuple[Reading | None, str | None]:
    """One request on its own connection: the reading, or what answered instead."""
    headers = {"Authorization": f"Bearer {token}", "Connection": "close", "Accept": "application/json"}
    try:
        response = bounded_request("GET", f"{url}/health", headers=headers, timeout=REQUEST_TIMEOUT)
    except httpx.HTTPError as exc:
        return None, f"no answer ({type(exc).__name__}: {shown(str(exc))})"
    if response.status_code in (401, 403):
        raise Refused(f"the gateway refused the token (HTTP {response.status_code})")
    if response.status_code == 429:
        return None, "HTTP 429: too many failed tokens from this address; wait and retry"
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}, not a gateway's health (a task without the gateway, or its admin API off)"
    try:
        found = reading(response.json())
    except ValueError:
        found = None
    if found is None:
        return None, "HTTP 200 without a gateway's detailed health: not a gateway, or the token did not reach it (a CDN or proxy dropping Authorization?)"
    return found, None


def survey(url: str, token: str, attempts: int) -> Survey:
    result = Survey()
    for _ in range(attempts):
        found, other = ask(url, token)
        if found is not None:
            result.readings[found.task] = found  # the latest answer of each task
        elif other is not None:
            result.others.append(other)
    return result


def problems(result: Survey, tasks: int, max_age: float, allow_others: bool, attempts: int) -> list[str]:
    found: list[str] = []
    for task, seen in sorted(result.readings.items()):
        if seen.status != "ok":
            why = f" ({seen.error})" if seen.error else ""
            found.append(f"task {task}: store {seen.status}{why}: it serves the last state it read, and changes do not reach it")
        elif seen.age is None or seen.age > max_age:
            found.append(f"task {task}: last good read of the store {seen.age if seen.age is not None else 'never'} s ago (over --max-age {max_age:g})")
        if seen.store_kind.startswith("memory"):
            found.append(f"task {task}: reads {seen.store_kind}, a state of its own that no other task shares")
    kinds = sorted({seen.store_kind for seen in result.readings.values()})
    if len(kinds) > 1:
        found.append(f"the tasks read different stores: {', '.join(kinds)}")
    if len(result.readings) < tasks:
        found.append(
            f"{len(result.readings)} task(s) answered in {attempts} requests, not the {tasks} of --tasks: a task that never answers "
            "may not be registered or healthy yet (or raise --attempts)"
        )
    if result.others and not allow_others:
        counted: dict[str, int] = {}
        for other in result.others:
            counted[other] = counted.get(other, 0) + 1
        found.extend(f"{count} of {attempts} requests: {other}" for other, count in counted.items())
    return found


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return str(args.token)
    try:
        return clean_token(os.environ.get(ADMIN_TOKEN_VARIABLE, "")) or None
    except ValueError as exc:
        raise argparse.ArgumentError(None, f"{ADMIN_TOKEN_VARIABLE}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from gateway.cli.parser import EXIT_AUTH, EXIT_FAILURE, EXIT_OK, EXIT_USAGE

    url = args.url
    if url is None and os.environ.get(ADMIN_URL_VARIABLE, "").strip():
        try:
            url = parse_url(os.environ[ADMIN_URL_VARIABLE])
        except argparse.ArgumentTypeError as exc:
            print(f"maintenance-gateway: {ADMIN_URL_VARIABLE}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        token = _token(args)
    except argparse.ArgumentError as exc:
        print(f"maintenance-gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not url or not token:
        print(f"maintenance-gateway: verify needs --url ({ADMIN_URL_VARIABLE}) and --token ({ADMIN_TOKEN_VARIABLE})", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = survey(url, token, args.attempts)
    except Refused as exc:
        print(f"maintenance-gateway: {exc}", file=sys.stderr)
        return EXIT_AUTH
    for task, seen in sorted(result.readings.items()):
        age = "never" if seen.age is None else f"{seen.age:g} s ago"
        print(f"task {task}: store {seen.status}, {seen.store_kind}, last good read {age}, version {seen.version}")
    if result.others:
        print(f"{len(result.others)} of {args.attempts} requests were answered by something other than a gateway")
    found = problems(result, args.tasks, args.max_age, args.allow_others, args.attempts)
    if found:
        for problem in found:
            print(f"maintenance-gateway: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"verified: {len(result.readings)} task(s) read the store")
    return EXIT_OK
