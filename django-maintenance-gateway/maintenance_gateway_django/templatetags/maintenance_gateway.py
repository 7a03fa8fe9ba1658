"""``{% load maintenance_gateway %}``: the banner, and the gateway's times for readers.

``{% maintenance_banner %}`` renders ``maintenance_gateway/banner.html`` (override it in your
templates) for the request's notice, and nothing outside maintenance.
``{{ moment|maintenance_time }}`` is a ``<time>`` element with ``moment`` in the active
language and time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils.safestring import SafeString

from maintenance_gateway_django.banner import banner_sentence, time_html
from maintenance_gateway_django.notice import MaintenanceNotice

register = template.Library()


@register.inclusion_tag("maintenance_gateway/banner.html", takes_context=True)
def maintenance_banner(context: template.Context, notice: Any = None) -> dict[str, Any]:
    """The banner for ``notice``, by default the request's (``request.maintenance``, or
    ``maintenance`` from the context processor)."""
    if notice is None:
        notice = context.get("maintenance")
        if not isinstance(notice, MaintenanceNotice):
            notice = getattr(context.get("request"), "maintenance", None)
    if not isinstance(notice, MaintenanceNotice):
        return {"notice": None, "sentence": ""}
    return {"notice": notice, "sentence": banner_sentence(notice)}


@register.filter(is_safe=True)
def maintenance_time(moment: Any) -> SafeString | str:
    return time_html(moment) if isinstance(moment, datetime) else ""
