"""The CLI's way to a running gateway: its admin API over httpx."""

from __future__ import annotations

from typing import Any

from urllib.parse import urlsplit

import httpx

from gateway.errors import AdminError, GatewayUnreachable


DEFAULT_PREFIX = "/_gateway"


class AdminClient:
    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        # http://host:8080 means the default prefix; http://host:8080/ops/_gw names another one.
        self.base = url.rstrip("/")
        if urlsplit(self.base).path in ("", "/"):
            self.base += DEFAULT_PREFIX
        self._headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
        self.timeout = timeout

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = httpx.request(method, self.base + path, headers=self._headers, timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            # The message names the URL, never the token.
            raise GatewayUnreachable(f"cannot reach the gateway at {self.base}: {type(exc).__name__}: {exc}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": "not_json", "message": response.text[:200]}
        if response.status_code >= 400:
            raise AdminError(response.status_code, payload if isinstance(payload, dict) else {})
        return payload if isinstance(payload, dict) else {"value": payload}

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/maintenance")

    def set(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("PUT", "/maintenance", json=body)

    def off(self, reason: str) -> dict[str, Any]:
        return self._request("DELETE", "/maintenance", params={"reason": reason} if reason else None)

    def history(self, limit: int) -> list[dict[str, Any]]:
        changes = self._request("GET", "/maintenance/history", params={"limit": limit}).get("changes", [])
        return changes if isinstance(changes, list) else []
