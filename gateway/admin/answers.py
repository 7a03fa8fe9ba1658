"""The admin endpoints' answers and request bodies: JSON that always encodes, a refusal as JSON,
a body read within its limit and its time, and the failure limit's 429."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from gateway.admin.changes import MAX_BODY_BYTES, whole_number
from gateway.errors import RequestError
from gateway.failure_limit import FailureLimiter
from gateway.http import NO_STORE_FIELDS, json_bytes

logger = logging.getLogger("gateway.admin")


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes (``json_bytes``), and never holds NaN, which is no JSON."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content, allow_nan=False)


def error_response(error: RequestError) -> JSONResponse:
    headers = {**NO_STORE_FIELDS, **error.headers}
    return SafeJSONResponse(error.payload(), status_code=error.status, headers=headers)


async def read_body(request: Request, timeout: float, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) as soon as it passes ``limit`` instead of reading it all,
    and (408) when it has not all arrived within ``timeout`` seconds (GATEWAY_CLIENT_BODY_TIMEOUT:
    these bodies are small, so the whole of one gets the time a proxied body gets per piece)."""
    declared = request.headers.get("content-length")
    # The server has framed the body by then; only a length it accepted, and a sane one, is looked at.
    declared_length = whole_number(declared.strip(), 2**63) if declared is not None else None
    too_large = RequestError(413, "body_too_large", f"the body is larger than {limit} bytes")
    if declared_length is not None and declared_length > limit:
        raise too_large
    received = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                received += chunk
                if len(received) > limit:
                    raise too_large
    except ClientDisconnect:
        # The client left before its body was whole: nobody reads an answer, and nothing is wrong
        # with the gateway (a client can do this at will, so it is no error line either).
        logger.debug("client left before sending the whole body", extra={"event": "body_cut_short", "path": request.url.path})
        raise RequestError(400, "incomplete_body", "the connection closed before the whole body arrived") from None
    except TimeoutError:
        error = RequestError(408, "request_timeout", f"the body did not arrive within {timeout:g} s")
        error.headers["connection"] = "close"  # the rest of it is not read: nothing else can follow
        raise error from None
    return bytes(received)


def check_failure_limit(limiter: FailureLimiter, client: str) -> None:
    """A 429 with Retry-After when ``client`` has used up its failed attempts."""
    wait = limiter.retry_after(client)
    if wait:
        error = RequestError(429, "too_many_attempts", f"too many failed attempts; retry in {wait} s")
        error.headers["retry-after"] = str(wait)
        raise error
