"""What the admin app is given: the few things it reads and the few operations it calls,
never the whole gateway (the gateway builds one ``AdminContext``; tests build fakes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.admin.state_changes import ChangeOutcome
from gateway.bypass import BypassSecret
from gateway.errors import UpstreamError
from gateway.failure_limit import FailureLimiter
from gateway.forwarding import TrustedPeers
from gateway.metrics import Metrics
from gateway.override import Serving
from gateway.state import MaintenanceState
from gateway.upstream import UpstreamPool


class StateReadings(Protocol):
    """What the admin endpoints read of this process's state (``refresher.StateHolder`` is one):
    read only, so a change goes through ``change_state`` (the store, the audit line) or not at all."""

    @property
    def state(self) -> MaintenanceState: ...  # what requests are served
    @property
    def stored(self) -> MaintenanceState: ...  # what the store holds (see refresher.StateHolder)
    @property
    def loaded(self) -> bool: ...
    @property
    def failures(self) -> int: ...
    @property
    def reads(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def confirming_reads(self) -> int: ...
    @property
    def went_back(self) -> int: ...
    @property
    def last_went_back(self) -> dict[str, object] | None: ...
    def store_status(self) -> str: ...
    def age(self) -> float | None: ...


class ChangeState(Protocol):
    async def __call__(
        self,
        build: Callable[[MaintenanceState], MaintenanceState],
        *,
        expected: int | None,
        token_name: str,
        client: str,
    ) -> ChangeOutcome: ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AdminContext:
    prefix: str
    admin_tokens: tuple[tuple[str, str], ...]
    # Seconds a whole admin request body may take (GATEWAY_CLIENT_BODY_TIMEOUT).
    body_timeout: float
    # GATEWAY_FAIL_MODE=closed: not ready until the state was read.
    fail_closed: bool
    store_description: str
    holder: StateReadings
    metrics: Metrics
    # The process's own gauges (requests in flight, upstream connections); the state's are read from the holder.
    gauges: Callable[[], dict[str, float | None]]
    trusted: TrustedPeers
    failure_limiter: FailureLimiter
    bypass: BypassSecret
    change_state: ChangeState
    # None when a connection to the upstream opens, else why not.
    probe_upstream: Callable[[], Awaitable[str | None]]
    read_history: Callable[[int], Awaitable[list[dict[str, Any]]]]
    # The override and GATEWAY_MAX_WINDOW (``override``); None: no /override routes (a test's context).
    serving: Serving | None = None


def upstream_probe(pool: UpstreamPool) -> Callable[[], Awaitable[str | None]]:
    """A probe that opens (and closes) one connection from ``pool``."""

    async def probe() -> str | None:
        try:
            connection = await pool.connect()
        except UpstreamError as exc:
            return str(exc)
        connection.close()
        return None

    return probe
