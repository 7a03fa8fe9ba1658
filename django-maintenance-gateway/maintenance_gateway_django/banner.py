"""The banner's sentence, with times in the active language and time zone.

Times go through Django's own localisation: ``django.utils.formats.date_format`` with the
active language's ``DATETIME_FORMAT`` (``Nov. 26, 2026, 10 p.m.`` in English, ``26. November
2026 22:00`` in German) in the current time zone (``TIME_ZONE``, or what the project
activates per user), each in a ``<time datetime="...">`` element holding the exact moment.
"""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

from django.utils import dateformat, formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, gettext_noop

from maintenance_gateway_django.notice import MaintenanceNotice


def local_text(moment: datetime) -> str:
    """``moment`` as readers of the active language write it, in the current time zone, with
    the zone's name: ``Nov. 26, 2026, 10 p.m. CET``."""
    try:
        local = timezone.localtime(moment) if moment.tzinfo is not None else moment
    except (OverflowError, ValueError):  # a moment at the edge of year 1 or 9999
        local = moment.astimezone(dt_timezone.utc)
    text = formats.date_format(local, "DATETIME_FORMAT")
    zone = dateformat.format(local, "T")
    return f"{text} {zone}" if zone else text


def time_html(moment: datetime) -> SafeString:
    """``moment`` for readers, in a ``<time>`` element whose ``datetime`` is the exact moment."""
    try:
        exact = moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z") if moment.tzinfo else moment.isoformat()
    except (OverflowError, ValueError):
        exact = moment.isoformat()
    return format_html('<time datetime="{}">{}</time>', exact, local_text(moment))


# (upcoming, read-only, partial) -> the sentence with an end, and without one. Each sentence
# whole, so that a translation can order it as its language needs.
SENTENCES = {
    (True, False, False): (
        gettext_noop("Scheduled maintenance from {start} to {end}."),
        gettext_noop("Scheduled maintenance from {start}."),
    ),
    (True, False, True): (
        gettext_noop("Scheduled maintenance of {paths} from {start} to {end}."),
        gettext_noop("Scheduled maintenance of {paths} from {start}."),
    ),
    (True, True, False): (
        gettext_noop("Scheduled read-only maintenance from {start} to {end}."),
        gettext_noop("Scheduled read-only maintenance from {start}."),
    ),
    (True, True, True): (
        gettext_noop("Scheduled read-only maintenance of {paths} from {start} to {end}."),
        gettext_noop("Scheduled read-only maintenance of {paths} from {start}."),
    ),
    (False, False, False): (
        gettext_noop("The site is down for maintenance until {end}."),
        gettext_noop("The site is down for maintenance."),
    ),
    (False, False, True): (
        gettext_noop("Part of the site ({paths}) is down for maintenance until {end}."),
        gettext_noop("Part of the site ({paths}) is down for maintenance."),
    ),
    (False, True, False): (
        gettext_noop("The site is read-only until {end}: changes cannot be saved right now."),
        gettext_noop("The site is read-only: changes cannot be saved right now."),
    ),
    (False, True, True): (
        gettext_noop("Part of the site ({paths}) is read-only until {end}: changes there cannot be saved right now."),
        gettext_noop("Part of the site ({paths}) is read-only: changes there cannot be saved right now."),
    ),
}


def banner_sentence(notice: MaintenanceNotice) -> SafeString:
    """One sentence for users saying what is (or will be) in maintenance and when, as HTML."""
    paths = format_html_join(", ", "<code>{}</code>", ((prefix,) for prefix in notice.scope or ()))
    # An upcoming window always has a start; without one it reads as a window on now.
    upcoming = notice.upcoming and notice.starts_at is not None
    with_end, without_end = SENTENCES[(upcoming, notice.read_only, notice.partial)]
    return format_html(
        gettext(with_end if notice.ends_at is not None else without_end),
        paths=paths,
        start=time_html(notice.starts_at) if notice.starts_at is not None else "",
        end=time_html(notice.ends_at) if notice.ends_at is not None else "",
    )
