"""The CLI's way to a running gateway: its admin API (and health) over httpx."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import httpx

from gateway.cli.output import shown
from gateway.errors import AdminError, GatewayUnreachable
from gateway.settings import DEFAULT_ADMIN_PREFIX


def admin_base_url(text: str) -> str:
    """``http://host:8080`` as the admin API's base (the default prefix added), or ValueError.

    ``http://host:8080/ops/_gw`` names another prefix. Without a scheme httpx could not send the
    request at all, and the operator would be told the gateway is unreachable rather than why.
    """
    value = text.strip()
    expected = f"{ascii(value[:200])} is not a gateway URL; expected http://HOST[:PORT][/PREFIX], e.g. http://127.0.0.1:8080"
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        raise ValueError(expected) from None
    if url.scheme not in ("http", "https") or not url.host or not 0 < (url.port or 80) < 65536 or url.query or url.fragment:
        raise ValueError(expected)
    base = value.rstrip("/")
    return base + DEFAULT_ADMIN_PREFIX if url.path in ("", "/") else base


def clean_token(text: str) -> str:
    """An admin token without the white space around it (a secret made with ``echo`` ends in a
    newline), or ValueError for one that cannot go in a header: the message never holds the token."""
    token = text.strip()
    if not token.isascii() or not token.isprintable():
        raise ValueError("the admin token may hold printable ASCII only (it has a control or non-ASCII character)")
    return token


# What every state the admin API sends holds.
_STATE_KEYS = ("version", "enabled", "mode")
# What every answer of /override holds: the override (or null) and the process that answered.
_OVERRIDE_KEYS = ("override", "instance")
_ADDRESS_HINT = "give the gateway's address, e.g. http://host:8080"
# What the socket layer says of a connection is safe to show; a protocol error may quote a header.
_SAFE_TO_SHOW = (httpx.TimeoutException, httpx.NetworkError)


# A gateway's answers are a few KiB; more is not a gateway's, and is not read.
MAX_ANSWER_BYTES = 1 << 20


@dataclasses.dataclass
class Answer:
    status_code: int
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError for anything else (nesting too deep included)."""
        try:
            return json.loads(self.content)
        except RecursionError:
            raise ValueError("JSON nested too deep") from None


def bounded_request(method: str, url: str, *, timeout: float, **kwargs: Any) -> Answer:
    """One request on its own connection, whole within ``timeout`` seconds and its body within
    MAX_ANSWER_BYTES. httpx's own timeouts are per read: a server trickling a byte a second (in
    its head or its body) would hold the command for ever. Raises httpx errors, and
    httpx.ReadTimeout past the deadline (the request, abandoned in a daemon thread, ends with
    the process or when the server lets go)."""
    outcome: list[Answer | BaseException] = []

    def fetch() -> None:
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                with client.stream(method, url, **kwargs) as response:
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > MAX_ANSWER_BYTES:
                            raise httpx.ReadError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
                    outcome.append(Answer(response.status_code, response.headers, bytes(body)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
            outcome.append(exc)

    worker = threading.Thread(target=fetch, name="gateway-cli-request", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise httpx.ReadTimeout(f"no whole answer within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


class AdminClient:
    """Calls to the gateway at ``base`` (see ``admin_base_url``), with ``token`` when there is one."""

    def __init__(self, base: str, token: str | None, timeout: float = 10.0) -> None:
        self.base = base
        self._headers = {"accept": "application/json"}
        self._token = token
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _request(self, method: str, path: str, expected: tuple[str, ...], **kwargs: Any) -> dict[str, Any]:
        """The answer's JSON object; GatewayUnreachable unless it holds the ``expected`` keys (or is a refusal)."""
        # One connection per call (no pooled client): behind a load balancer each call may reach
        # another task, which is what --wait needs to see every task serve a change.
        try:
            response = bounded_request(method, self.base + path, headers=self._headers, timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            # The message names the URL, never the token: only the socket layer's own words are shown.
            said = f": {self._without_token(str(exc))}" if isinstance(exc, _SAFE_TO_SHOW) and str(exc) else ""
            raise GatewayUnreachable(f"cannot reach the gateway at {self.base}: {type(exc).__name__}{said}") from None
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            payload = response.json() if media == "application/json" else None
        except ValueError:
            payload = None
        if response.status_code == 404:
            # The admin API answers each of its paths; a 404 (the gateway's own, Django's, a
            # pasted endpoint URL taken for a prefix, a gateway whose admin API is off) says
            # there is no admin API at this base.
            message = payload.get("message") if isinstance(payload, dict) else None
            said = f": {shown(message[:200])}" if isinstance(message, str) else ""
            raise GatewayUnreachable(f"no maintenance-gateway admin API at {self.base} (HTTP 404, {media or 'no content type'}{said}); {_ADDRESS_HINT}")
        if not isinstance(payload, dict):
            # Django's 404 page, a proxy's error page: another server answers there. Its body is
            # not shown: a page of HTML says nothing the status and type do not.
            raise GatewayUnreachable(
                f"no maintenance-gateway admin API at {self.base} (HTTP {response.status_code}, {media or 'no content type'})"
            )
        if response.status_code >= 400:
            raise AdminError(response.status_code, payload)
        if not all(key in payload for key in expected):
            # Another JSON server (an app's echo endpoint) answers 200 too.
            raise GatewayUnreachable(
                f"no maintenance-gateway admin API at {self.base} (its answer has no {', '.join(expected)}); {_ADDRESS_HINT}"
            )
        return payload

    @property
    def has_token(self) -> bool:
        """Whether health answers with the details (the state served, the store read)."""
        return bool(self._token)

    def _without_token(self, text: str) -> str:
        return text.replace(self._token, "****") if self._token else text

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/maintenance", _STATE_KEYS)

    def set(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("PUT", "/maintenance", _STATE_KEYS, json=body)

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Only the fields of ``body`` change; the gateway keeps the others (``update``, ``extend``)."""
        return self._request("PATCH", "/maintenance", _STATE_KEYS, json=body)

    def override_set(self, body: dict[str, Any]) -> dict[str, Any]:
        """One PUT of the override, on a connection of its own: the task that answers holds it."""
        return self._request("PUT", "/override", _OVERRIDE_KEYS, json=body)

    def override_clear(self) -> dict[str, Any]:
        return self._request("DELETE", "/override", _OVERRIDE_KEYS)

    def history(self, limit: int) -> list[dict[str, Any]]:
        changes = self._request("GET", "/maintenance/history", ("changes",), params={"limit": limit}).get("changes", [])
        return changes if isinstance(changes, list) else []

    def health(self) -> dict[str, Any]:
        """The details (the state served, its version) with a token; the public view without."""
        return self._request("GET", "/health", ("status", "maintenance"))
