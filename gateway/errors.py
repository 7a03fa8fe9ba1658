"""The gateway's exceptions, all of them ``GatewayError``s. Library errors are translated into
these at one boundary each.

Two stay where they are raised, as they must be other libraries' types: the HTTP protocol's
``HeadersTooLarge`` (an httptools parser error, so uvicorn answers it with a 400) and the
DynamoDB store's private signal for a failed condition inside one retry loop.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A setting is wrong; the process must not start."""

    exit_code = 78  # EX_CONFIG from sysexits.h: distinct from crashes (1) and usage errors (2)

    def __init__(self, key: str, value: str, reason: str) -> None:
        super().__init__(f"{key}={value!r}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


class StoreError(GatewayError):
    """The store could not be read or written (outage, corrupt data, unknown format)."""


class StoreBlocksChange(StoreError):
    """The store holds something no change can be written past (a version at its maximum, a
    history record in the way), put there by hand or by a script; nothing was written."""


class ConflictError(StoreError):
    """A conditional write lost: the stored version is not the one the writer expected."""

    def __init__(self, expected: int | None, actual: int) -> None:
        super().__init__(f"version conflict: expected version {expected}, the store has version {actual}")
        self.expected = expected
        self.actual = actual


class StateError(GatewayError):
    """A maintenance state (from an operator or the store) is invalid."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RequestError(GatewayError):
    """A request the gateway refuses: its status, a stable error code, a message, maybe the field."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.headers: dict[str, str] = {}

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequest(RequestError):
    """A proxied request the gateway will not pass on (Django would misread it): a 400."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "bad_request", message)


# -- the proxied exchange


class UpstreamError(GatewayError):
    """The upstream failed an exchange; ``status`` is what the client is answered."""

    status = 502


class UpstreamConnectError(UpstreamError):
    """The connection could not be opened (refused, unreachable)."""


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamClosed(UpstreamError):
    """The upstream closed the connection before the response was complete."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


class UpstreamProtocolError(UpstreamError):
    """The upstream sent something that is not HTTP/1.1."""


class ClientGone(GatewayError):
    """The client disconnected during an exchange; nothing is left to answer. Not an upstream
    failure: it is neither counted nor logged as one."""


class BodyTimeout(GatewayError):
    """The client stopped sending its request body (GATEWAY_CLIENT_BODY_TIMEOUT, or below
    GATEWAY_CLIENT_BODY_MIN_RATE)."""


class Overloaded(GatewayError):
    """No place for this request now (GATEWAY_MAX_BUFFERING_BODIES or GATEWAY_MAX_IN_FLIGHT)."""


# -- the CLI's client for a running gateway


class AdminError(GatewayError):
    """A gateway's admin API refused: ``status`` and its JSON error."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload.get('message') or payload.get('error') or 'error'} (HTTP {status})")
        self.status = status
        self.payload = payload


class GatewayUnreachable(GatewayError):
    """No gateway answered at the URL given (refused, timed out, or not the gateway's API)."""


class TaskListError(GatewayError):
    """The tasks of an ECS service could not be listed (credentials, region, ECS refused)."""


class NotEveryTaskReached(GatewayError):
    """``override`` did not reach every task it expected within its attempts and time."""
