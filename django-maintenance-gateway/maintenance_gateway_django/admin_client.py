"""The gateway's admin API over the standard library (urllib): what ``manage.py maintenance`` calls.

Routes (see the gateway's README, "The admin API"): ``GET``, ``PUT`` and ``DELETE
{prefix}/maintenance`` with ``Authorization: Bearer TOKEN``; answers carry ``ETag:
"<version>"``, and a change sent with ``If-Match`` is made only while the state is still that
version (412 otherwise). Failures are ``AdminError`` with the exit code the gateway's own CLI
uses for the same failure, so scripts can treat both alike.
"""

from __future__ import annotations

import http.client
import json
import threading
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_ADMIN_PREFIX = "/_gateway"
DEFAULT_TIMEOUT = 10.0
# The gateway's answers are a few KiB; a server that sends more is not the gateway.
MAX_ANSWER_BYTES = 1024 * 1024

# The exit codes of `maintenance-gateway` (gateway/cli/parser.py), for the same failures.
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 4
EXIT_AUTH = 5
EXIT_UNREACHABLE = 6
EXIT_CONFIG = 78
_STATUS_EXITS = {400: EXIT_USAGE, 401: EXIT_AUTH, 403: EXIT_AUTH, 409: EXIT_CONFLICT, 412: EXIT_CONFLICT, 413: EXIT_USAGE, 415: EXIT_USAGE, 429: EXIT_AUTH}
# What every state the admin API sends holds.
_STATE_KEYS = ("version", "enabled", "mode")
# Control and format characters, escaped when shown: an answer may hold anything.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


class AdminError(Exception):
    """A call that failed: ``message`` for the operator, ``exit_code`` for scripts."""

    def __init__(self, message: str, exit_code: int, status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status


def shown(text: str) -> str:
    """Text from the gateway as one line a terminal prints, not obeys (``\\n``, ``\\x1b`` escaped)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in text
    )


def admin_base_url(text: str) -> str:
    """``http://host:8080`` as the admin API's base (``/_gateway`` added when it names no path),
    or ValueError saying what is expected."""
    value = text.strip()
    expected = f"{shown(value[:200])!r} is not a gateway URL; expected http://HOST[:PORT][/PREFIX], e.g. http://127.0.0.1:8080"
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or port == 0:
        raise ValueError(expected)
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError(expected)
    base = value.rstrip("/")
    return base + DEFAULT_ADMIN_PREFIX if parts.path in ("", "/") else base


def clean_token(text: str) -> str:
    """The token without white space around it; ValueError (never quoting it) if it cannot be sent."""
    token = text.strip()
    if not token.isascii() or not token.isprintable():
        raise ValueError("the admin token may hold printable ASCII only (it has a control or non-ASCII character)")
    return token


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The admin API never redirects; following one would send the token elsewhere.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class AdminClient:
    def __init__(self, base: str, token: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base = base
        self._token = token
        self.timeout = timeout

    def status(self) -> tuple[dict[str, Any], str | None]:
        """The state and its ETag."""
        return self._call("GET", "/maintenance")

    def set(self, body: dict[str, Any], if_match: str | None = None) -> tuple[dict[str, Any], str | None]:
        return self._call("PUT", "/maintenance", body, if_match)

    def clear(self, reason: str = "", if_match: str | None = None) -> tuple[dict[str, Any], str | None]:
        query = "?" + urllib.parse.urlencode({"reason": reason}) if reason else ""
        return self._call("DELETE", "/maintenance" + query, None, if_match)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, if_match: str | None = None
    ) -> tuple[dict[str, Any], str | None]:
        headers = {"Accept": "application/json", "Authorization": f"Bearer {self._token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if if_match is not None:
            headers["If-Match"] = if_match
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            status, answer_headers, raw = self._exchange(request)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            # The socket layer's words name the address, never the token.
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            said = str(reason).replace(self._token, "****") if self._token else str(reason)
            raise AdminError(f"cannot reach the gateway at {self.base}: {shown(said)}", EXIT_UNREACHABLE) from None

        return self._answer(status, answer_headers, raw)

    def _exchange(self, request: urllib.request.Request) -> tuple[int, Any, bytes]:
        """Status, headers and body, whole within the timeout: urllib's own is per socket read, so
        a server trickling a byte at a time would hold the command for ever. The exchange runs in
        a daemon thread, left behind (it ends with the command) when the time is up."""
        outcome: list[Any] = []

        def exchange() -> None:
            try:
                try:
                    with _OPENER.open(request, timeout=self.timeout) as response:
                        outcome.append((response.status, response.headers, response.read(MAX_ANSWER_BYTES + 1)))
                except urllib.error.HTTPError as exc:
                    with exc:
                        outcome.append((exc.code, exc.headers, exc.read(MAX_ANSWER_BYTES + 1)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
                outcome.append(exc)

        worker = threading.Thread(target=exchange, name="maintenance-gateway-admin", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not outcome:
            raise TimeoutError(f"no whole answer within {self.timeout:g} s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        status, headers, raw = outcome[0]
        return status, headers, raw

    def _answer(self, status: int, headers: Any, raw: bytes) -> tuple[dict[str, Any], str | None]:
        media = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        payload: Any = None
        if media == "application/json" and len(raw) <= MAX_ANSWER_BYTES:
            try:
                payload = json.loads(raw)
            except (ValueError, RecursionError):
                payload = None
        where = f"no maintenance-gateway admin API at {self.base} (HTTP {status}, {media or 'no content type'})"
        if status == 404:
            message = payload.get("message") if isinstance(payload, dict) else None
            said = f": {shown(message[:200])}" if isinstance(message, str) else ""
            raise AdminError(f"{where}{said}; its admin API is off, or the URL is not the gateway's", EXIT_UNREACHABLE, status)
        if not isinstance(payload, dict):
            raise AdminError(where, EXIT_UNREACHABLE, status)
        if status >= 400:
            message = payload.get("message")
            said = shown(message[:500]) if isinstance(message, str) else shown(str(payload.get("error") or "an error")[:100])
            field = payload.get("field")
            where_field = f" ({shown(field[:50])})" if isinstance(field, str) and field else ""
            raise AdminError(f"the gateway refused{where_field}: {said} (HTTP {status})", _STATUS_EXITS.get(status, EXIT_FAILURE), status)
        if (
            not 200 <= status < 300
            or not all(key in payload for key in _STATE_KEYS)
            or type(payload["version"]) is not int
            or type(payload["enabled"]) is not bool
            or not isinstance(payload["mode"], str)
        ):
            raise AdminError(f"{where}: its answer is not a maintenance state", EXIT_UNREACHABLE, status)
        return payload, headers.get("ETag")
