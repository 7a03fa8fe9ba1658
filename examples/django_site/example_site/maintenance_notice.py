"""The gateway's X-Maintenance-Notice, read once per request, and the banner pages show.

While a maintenance window is upcoming, or read-only or partial maintenance is on, the
gateway adds this header to every request it forwards (and always removes a client's
own copy), so a server-rendered page can warn its users as the front end does. The
value is compact JSON: ``mode``, ``scope``, ``starts_at``, ``ends_at``, ``upcoming``.
Only trust it when Django is reachable through the gateway alone.
"""

import html
import json

MAX_NOTICE_BYTES = 8192


def parse_notice(value):
    """The notice as a dict, or None when there is none or it is not one the gateway sends."""
    if not value or len(value) > MAX_NOTICE_BYTES:
        return None
    try:
        notice = json.loads(value)
    except ValueError:
        return None
    if not isinstance(notice, dict) or notice.get("mode") not in ("full", "read-only"):
        return None
    scope = notice.get("scope")
    if scope is not None and not (isinstance(scope, list) and all(isinstance(prefix, str) for prefix in scope)):
        return None
    for key in ("starts_at", "ends_at"):
        if notice.get(key) is not None and not isinstance(notice[key], str):
            return None
    return {
        "mode": notice["mode"],
        "scope": scope,
        "starts_at": notice.get("starts_at"),
        "ends_at": notice.get("ends_at"),
        "upcoming": notice.get("upcoming") is True,
    }


class MaintenanceNoticeMiddleware:
    """Sets ``request.maintenance_notice`` (a dict or None) for views and templates."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.maintenance_notice = parse_notice(request.headers.get("X-Maintenance-Notice"))
        return self.get_response(request)


def banner_text(notice):
    """One sentence for users, or "" when there is nothing to say."""
    if notice is None:
        return ""
    where = f" for {', '.join(notice['scope'])}" if notice["scope"] else ""
    until = f" until {notice['ends_at']}" if notice["ends_at"] else ""
    if notice["upcoming"]:
        what = "read-only maintenance" if notice["mode"] == "read-only" else "maintenance"
        ends = f" to {notice['ends_at']}" if notice["ends_at"] else ""
        return f"Scheduled {what}{where} from {notice['starts_at']}{ends}."
    if notice["mode"] == "read-only":
        return f"The site is read-only{where}{until}: changes cannot be saved right now."
    return f"Part of the site is down for maintenance{where}{until}."


def banner_html(notice):
    text = banner_text(notice)
    if not text:
        return ""
    return f'<div class="maintenance-banner" role="status">{html.escape(text)}</div>'
