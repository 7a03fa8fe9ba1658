"""The maintenance answer: a 503 a browser app on another origin can read, and preflights.

Everything constant is built when the state changes (and, while an end time counts
down, once a second for ``Retry-After``); per request the hot path only picks a
prebuilt variant and adds the CORS headers for the request's Origin.
"""

from __future__ import annotations

import html
import math
import re
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path


from gateway.bounded_cache import ANSWER_CACHE_LIMIT, BoundedCache
from gateway.cors import CorsPolicy
from gateway.http import NO_STORE, VARY_ORIGIN, Answer, Headers, body_headers, json_bytes
from gateway.negotiation import HTML, JSON, TEXT, Negotiator
from gateway.settings import Settings
from gateway.state import MAX_TIME, MaintenanceState, format_time

READ_ONLY_MESSAGE = "The site is read-only during maintenance: changes cannot be saved right now."
_CONTENT_TYPES = {
    JSON: b"application/json",
    HTML: b"text/html; charset=utf-8",
    TEXT: b"text/plain; charset=utf-8",
}
# The body depends on Accept and the CORS headers on Origin; shared caches must know.
_VARY = (b"vary", b"Accept, Origin")
# "{{ name }}" or "{{name}}" (the same spacing on both sides), for the names render_page fills.
_PLACEHOLDER = re.compile(r"\{\{( ?)(message|ends_at_sentence|ends_at_text|ends_at|retry_after)\1\}\}")
# English names whatever the process's locale (strftime's %A and %B follow it).
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)


def load_page_template(settings: Settings) -> str:
    if settings.maintenance_page:
        return Path(settings.maintenance_page).read_text(encoding="utf-8")
    return resources.files("gateway").joinpath("templates/maintenance.html").read_text(encoding="utf-8")


def readable_time(ts: float) -> str:
    """``ts`` as people read it ("Thursday 26 November 2026, 15:30 UTC"), rounded up to the
    minute: a page that says "back at 15:30" must not still be up at 15:30:20."""
    # The last minute datetime can name is not rounded up past it.
    moment = datetime.fromtimestamp(min(math.ceil(ts / 60) * 60, MAX_TIME), tz=timezone.utc)
    return (
        f"{_WEEKDAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}, "
        f"{moment.hour:02d}:{moment.minute:02d} UTC"
    )


def render_page(template: str, message: str, ends_at: float | None, retry_after: int) -> str:
    """The template with ``{{ name }}`` (or ``{{name}}``) placeholders filled, HTML-escaped.

    ``ends_at`` stays the ISO value a script reads; ``ends_at_text`` is for people, and the
    sentence holds both, the ISO value in a ``<time datetime>`` a script can localise.
    One pass over the template: a value that itself holds ``{{ retry_after }}`` (a message
    may say anything) is shown as written, never filled in turn.
    """
    iso = format_time(ends_at) or ""
    text = readable_time(ends_at) if ends_at is not None else ""
    values = {
        "message": html.escape(message),
        "ends_at": iso,
        "ends_at_text": text,
        "ends_at_sentence": (
            f'Expected back at <time datetime="{iso}">{text}</time>.' if ends_at is not None else ""
        ),
        "retry_after": str(retry_after),
    }
    # The ISO and readable times hold no markup characters; the message is escaped above.
    return _PLACEHOLDER.sub(lambda match: values[match.group(2)], template)


class MaintenanceResponder:
    def __init__(self, settings: Settings, cors: CorsPolicy) -> None:
        self.cors = cors
        self.negotiator = Negotiator()
        self.default_message = settings.maintenance_message
        self.default_retry_after = settings.retry_after
        self.template = load_page_template(settings)
        self._built_for: MaintenanceState | None = None
        self._built_second = -1
        self._variants: dict[str, tuple[Headers, bytes]] = {}
        self._preflight_base: Headers = []
        # Ready-to-send answers per (variant, Origin), dropped whenever the answers are rebuilt.
        self._answers: BoundedCache[tuple[str, bytes | None], Answer] = BoundedCache(self._answer, ANSWER_CACHE_LIMIT)

    def message_for(self, state: MaintenanceState) -> str:
        if state.message:
            return state.message
        return READ_ONLY_MESSAGE if state.mode == "read-only" else self.default_message

    def _build(self, state: MaintenanceState, now: float) -> None:
        until_end = state.seconds_until_end(now)
        retry_after = self.default_retry_after if until_end is None else until_end
        ends_at = format_time(state.ends_at)
        message = self.message_for(state)
        payload: dict[str, object] = {
            "error": "maintenance",
            "message": message,
            "mode": state.mode,
            "retry_after": retry_after,
            "ends_at": ends_at,
        }
        if state.scope is not None:
            # Partial maintenance: the front end can tell which parts of the site are down, and
            # what to call them for its users (the paths are for the code, not for people).
            payload["scope"] = list(state.scope)
            if state.label:
                payload["label"] = state.label
        bodies = {
            JSON: json_bytes(payload),
            HTML: render_page(self.template, message, state.ends_at, retry_after).encode("utf-8"),
            TEXT: f"Service unavailable: {message}\n".encode(),
        }
        common = [
            (b"retry-after", str(retry_after).encode()),
            NO_STORE,
            (b"x-maintenance-mode", state.mode.encode()),
            _VARY,
        ]
        self._variants = {
            kind: (body_headers(_CONTENT_TYPES[kind], body) + common, body) for kind, body in bodies.items()
        }
        self._preflight_base = [(b"x-maintenance-mode", state.mode.encode()), VARY_ORIGIN]
        self._answers.clear()
        self._built_for = state
        self._built_second = int(now)

    def _ensure_built(self, state: MaintenanceState, now: float) -> None:
        # Retry-After counts down to ends_at, so a window with an end is rebuilt each second.
        if state is not self._built_for or (state.ends_at is not None and int(now) != self._built_second):
            self._build(state, now)

    def answer(
        self,
        state: MaintenanceState,
        now: float,
        origin: bytes | None,
        accept: bytes | None,
        xhr: bool,
    ) -> Answer:
        """The 503 for this request, built once per (variant, Origin) and reused."""
        # _ensure_built, inlined: this runs for every maintenance answer.
        if state is not self._built_for or (state.ends_at is not None and int(now) != self._built_second):
            self._build(state, now)
        return self._answers[(self.negotiator.variant(accept, xhr), origin)]

    def _answer(self, key: tuple[str, bytes | None]) -> Answer:
        variant, origin = key
        headers, body = self._variants[variant]
        if origin is not None:
            headers = headers + self.cors.simple_headers(origin)
        return Answer(503, headers, body)

    def preflight_answer(self, state: MaintenanceState, now: float, origin: bytes) -> Answer | None:
        """The answer to a preflight from an allowed origin; None when the origin is not allowed."""
        allowed = self.cors.preflight_headers(origin)
        if allowed is None:
            return None
        self._ensure_built(state, now)
        return Answer(204, self._preflight_base + allowed, b"")
