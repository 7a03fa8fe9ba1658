"""The CLI's way to a running gateway: its admin API (and health) over httpx."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.errors import AdminError, GatewayUnreachable

DEFAULT_PREFIX = "/_gateway"


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
    return base + DEFAULT_PREFIX if url.path in ("", "/") else base


class AdminClient:
    """Calls to the gateway at ``base`` (see ``admin_base_url``), with ``token`` when there is one."""

    def __init__(self, base: str, token: str | None, timeout: float = 10.0) -> None:
        self.base = base
        self._headers = {"accept": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        # One connection per call (no pooled client): behind a load balancer each call may reach
        # another task, which is what --wait needs to see every task serve a change.
        try:
            response = httpx.request(method, self.base + path, headers=self._headers, timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            # The message names the URL, never the token.
            raise GatewayUnreachable(f"cannot reach the gateway at {self.base}: {type(exc).__name__}: {exc}") from None
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            payload = response.json() if media == "application/json" else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            # Django's 404 page, a proxy's error page: another server answers there. Its body is
            # not shown: a page of HTML says nothing the status and type do not.
            raise GatewayUnreachable(
                f"no maintenance-gateway admin API at {self.base} (HTTP {response.status_code}, {media or 'no content type'})"
            )
        if response.status_code >= 400:
            raise AdminError(response.status_code, payload)
        return payload

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/maintenance")

    def set(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("PUT", "/maintenance", json=body)

    def off(self, reason: str) -> dict[str, Any]:
        return self._request("DELETE", "/maintenance", params={"reason": reason} if reason else None)

    def history(self, limit: int) -> list[dict[str, Any]]:
        changes = self._request("GET", "/maintenance/history", params={"limit": limit}).get("changes", [])
        return changes if isinstance(changes, list) else []

    def health(self) -> dict[str, Any]:
        """The details (the state served, its version) with a token; the public view without."""
        return self._request("GET", "/health")
