"""``request.maintenance``: the gateway's notice, read once per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from maintenance_gateway_django.notice import HEADER, MaintenanceNotice, parse_notice


class MaintenanceNoticeMiddleware:
    """Sets ``request.maintenance`` to a ``MaintenanceNotice`` while the gateway sends one (a
    window upcoming, read-only or partial maintenance on), else None. Sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        # The gateway sends the same value to every request until the state changes: the last
        # one read is kept (one pair, replaced whole, so threads can share it).
        self._last: tuple[str | None, MaintenanceNotice | None] = (None, None)

    def notice_for(self, request: Any) -> MaintenanceNotice | None:
        value = request.headers.get(HEADER)
        if not value:
            return None
        last_value, last_notice = self._last
        if value == last_value:
            return last_notice
        notice = parse_notice(value)
        self._last = (value, notice)
        return notice

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        request.maintenance = self.notice_for(request)
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        request.maintenance = self.notice_for(request)
        return await self.get_response(request)
