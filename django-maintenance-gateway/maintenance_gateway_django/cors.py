"""django-cors-headers' ``CORS_*`` settings beside the gateway's ``GATEWAY_CORS_*``.

The gateway answers for Django while maintenance is on (the 503, and the preflights before
it), so its CORS settings must say what django-cors-headers' say: a front end whose origin,
credentials or request headers the gateway does not allow cannot read the 503, and shows
an outage ("cannot reach the server") instead of the maintenance screen. The gateway's
settings mean what django-cors-headers' mean, with the same defaults; this module reads both,
says where they differ (the system check) and writes the gateway's from Django's (the
``gateway_cors_env`` command). The gateway's own parsing (gateway/settings.py) is mirrored
here: this distribution never imports the gateway.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

# django-cors-headers' defaults (corsheaders/defaults.py and conf.py), which the gateway shares.
DEFAULT_HEADERS = ("accept", "authorization", "content-type", "user-agent", "x-csrftoken", "x-requested-with")
DEFAULT_METHODS = ("DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT")
DEFAULT_PREFLIGHT_MAX_AGE = 86400
# The gateway takes 0..86400 (a day: Firefox's cap; Chromium caches two hours at most).
MAX_PREFLIGHT_MAX_AGE = 86400
# The gateway exposes these on its answers whatever it is told.
ALWAYS_EXPOSED = ("retry-after", "x-maintenance-mode")

# Each setting: the field, django-cors-headers' name (and the older name it still reads), the gateway's.
SETTINGS = (
    ("allowed_origins", "CORS_ALLOWED_ORIGINS", "CORS_ORIGIN_WHITELIST", "GATEWAY_CORS_ALLOWED_ORIGINS"),
    ("allowed_origin_regexes", "CORS_ALLOWED_ORIGIN_REGEXES", "CORS_ORIGIN_REGEX_WHITELIST", "GATEWAY_CORS_ALLOWED_ORIGIN_REGEXES"),
    ("allow_all_origins", "CORS_ALLOW_ALL_ORIGINS", "CORS_ORIGIN_ALLOW_ALL", "GATEWAY_CORS_ALLOW_ALL_ORIGINS"),
    ("allow_credentials", "CORS_ALLOW_CREDENTIALS", None, "GATEWAY_CORS_ALLOW_CREDENTIALS"),
    ("allow_methods", "CORS_ALLOW_METHODS", None, "GATEWAY_CORS_ALLOW_METHODS"),
    ("allow_headers", "CORS_ALLOW_HEADERS", None, "GATEWAY_CORS_ALLOW_HEADERS"),
    ("expose_headers", "CORS_EXPOSE_HEADERS", None, "GATEWAY_CORS_EXPOSE_HEADERS"),
    ("preflight_max_age", "CORS_PREFLIGHT_MAX_AGE", None, "GATEWAY_CORS_PREFLIGHT_MAX_AGE"),
)
DJANGO_NAME = {field: name for field, name, _, _ in SETTINGS}
GATEWAY_NAME = {field: name for field, _, _, name in SETTINGS}

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_REGEX_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"), (re.ASCII, "a"))


class CorsSettingError(ValueError):
    """A value that cannot be read, or cannot be given to the gateway; names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class CorsConfig:
    allowed_origins: tuple[str, ...] = ()
    allowed_origin_regexes: tuple[str, ...] = ()
    allow_all_origins: bool = False
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = DEFAULT_METHODS
    allow_headers: tuple[str, ...] = DEFAULT_HEADERS
    expose_headers: tuple[str, ...] = ()
    preflight_max_age: int = DEFAULT_PREFLIGHT_MAX_AGE


# -- Django's side, read as django-cors-headers reads it (corsheaders/conf.py)


def from_django(settings: Any) -> CorsConfig:
    """django-cors-headers' settings (with its older names and its defaults). Raises
    CorsSettingError for a value it could not use either (its own checks say more)."""
    values: dict[str, Any] = {}
    for field, name, old_name, _ in SETTINGS:
        if hasattr(settings, name):
            values[field] = (name, getattr(settings, name))
        elif old_name is not None and hasattr(settings, old_name):
            values[field] = (old_name, getattr(settings, old_name))
    config: dict[str, Any] = {}
    for field, (name, value) in values.items():
        if field in ("allow_all_origins", "allow_credentials"):
            config[field] = bool(value)
        elif field == "preflight_max_age":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CorsSettingError(name, f"expected a whole number of seconds, not {value!r}")
            config[field] = value
        elif field == "allowed_origin_regexes":
            config[field] = tuple(_pattern_text(name, item) for item in _sequence(name, value))
        else:
            config[field] = tuple(str(item) for item in _sequence(name, value))
    return CorsConfig(**config)


def _sequence(name: str, value: Any) -> Iterable[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise CorsSettingError(name, f"expected a list or tuple, not {type(value).__name__}")
    return value


def _pattern_text(name: str, item: Any) -> str:
    """A regex as the gateway would compile it: a compiled pattern's flags written inline."""
    if isinstance(item, str):
        return item
    if not isinstance(item, re.Pattern) or not isinstance(item.pattern, str):
        raise CorsSettingError(name, f"expected regex strings or compiled patterns, not {item!r}")
    written = re.compile(item.pattern).flags  # what the text says by itself, inline flags included
    letters = "".join(letter for flag, letter in _REGEX_FLAGS if item.flags & flag and not written & flag)
    return f"(?{letters}){item.pattern}" if letters else item.pattern


# -- the gateway's side: GATEWAY_CORS_* as Django settings, else from the environment


def from_gateway(settings: Any, environ: Mapping[str, str] | None = None) -> CorsConfig | None:
    """The gateway's CORS settings as given to Django (a setting of the gateway's name wins
    over the environment variable), the gateway's defaults for the rest; None when none is
    given. Raises CorsSettingError for a value the gateway would refuse."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for field, _, _, name in SETTINGS:
        if hasattr(settings, name):
            value = getattr(settings, name)
        elif name in environ:
            value = environ[name]
        else:
            continue
        config[field] = _gateway_value(field, name, value)
    if not config:
        return None
    result = CorsConfig(**config)
    if result.allow_all_origins and result.allowed_origins:
        raise CorsSettingError(
            GATEWAY_NAME["allow_all_origins"], "true conflicts with GATEWAY_CORS_ALLOWED_ORIGINS; the gateway would not start"
        )
    return result


def _gateway_value(field: str, name: str, value: Any) -> Any:
    """One value as the gateway parses its variable (comma-separated lists, true/false, a
    whole number), or already a Python value (a list, a bool, an int) in a Django setting."""
    if field in ("allow_all_origins", "allow_credentials"):
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise CorsSettingError(name, f"{value!r}: expected true/false, yes/no, on/off or 1/0")
    if field == "preflight_max_age":
        try:
            number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip())
        except ValueError:
            number = -1
        if not 0 <= number <= MAX_PREFLIGHT_MAX_AGE:
            raise CorsSettingError(name, f"{value!r}: expected a whole number from 0 to {MAX_PREFLIGHT_MAX_AGE}")
        return number
    items = tuple(item.strip() for item in value.split(",") if item.strip()) if isinstance(value, str) else tuple(map(str, value))
    if field == "allowed_origin_regexes":
        for pattern in items:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise CorsSettingError(name, f"pattern {pattern!r} does not compile ({exc})") from None
    elif field in ("allow_methods", "allow_headers", "expose_headers"):
        for item in items:
            if not _TOKEN.fullmatch(item):
                raise CorsSettingError(name, f"{item!r} is not an HTTP token")
    return items


# -- comparing the two


@dataclasses.dataclass(frozen=True)
class Drift:
    """One setting that differs: its field and what to tell the developer."""

    field: str
    message: str


def _origin_key(origin: str) -> tuple[str, str]:
    # Both sides match an Origin by its scheme and host:port, as urlsplit reads them.
    if origin == "null":
        return ("null", "")
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc)


def _only(values: Iterable[str], others: Iterable[str], key: Any = str.lower) -> list[str]:
    other_keys = {key(item) for item in others}
    return sorted({item for item in values if key(item) not in other_keys})


def _listed(items: list[str]) -> str:
    return ", ".join(items)


def _both_ways(field: str, django: Iterable[str], gateway: Iterable[str], key: Any, what: str, harm: str) -> list[Drift]:
    django, gateway = list(django), list(gateway)
    only_django, only_gateway = _only(django, gateway, key), _only(gateway, django, key)
    if not (only_django or only_gateway):
        return []
    said = []
    if only_django:
        said.append(f"Django ({DJANGO_NAME[field]}) {what} that the gateway ({GATEWAY_NAME[field]}) does not: {_listed(only_django)}")
    if only_gateway:
        said.append(f"the gateway {what} that Django does not: {_listed(only_gateway)}")
    return [Drift(field, "; ".join(said) + (f". {harm}" if only_django and harm else "."))]


def differences(django: CorsConfig, gateway: CorsConfig) -> list[Drift]:
    """Where the gateway's CORS settings would answer otherwise than django-cors-headers."""
    drifts: list[Drift] = []
    unreadable = "In maintenance a page there cannot read the gateway's 503 and shows an outage instead of the maintenance screen."
    if django.allow_all_origins != gateway.allow_all_origins:
        drifts.append(
            Drift(
                "allow_all_origins",
                f"CORS_ALLOW_ALL_ORIGINS is {django.allow_all_origins} but GATEWAY_CORS_ALLOW_ALL_ORIGINS is "
                f"{str(gateway.allow_all_origins).lower()}.",
            )
        )
    elif not django.allow_all_origins:
        drifts += _both_ways("allowed_origins", django.allowed_origins, gateway.allowed_origins, _origin_key, "allows origins", unreadable)
        drifts += _both_ways(
            "allowed_origin_regexes", django.allowed_origin_regexes, gateway.allowed_origin_regexes, str, "matches origins by patterns", unreadable
        )
    if django.allow_credentials != gateway.allow_credentials:
        harm = " In maintenance a front end that sends credentials cannot read the gateway's 503." if django.allow_credentials else ""
        drifts.append(
            Drift(
                "allow_credentials",
                f"CORS_ALLOW_CREDENTIALS is {django.allow_credentials} but GATEWAY_CORS_ALLOW_CREDENTIALS is "
                f"{str(gateway.allow_credentials).lower()}.{harm}",
            )
        )
    preflight = (
        "In maintenance the browser's preflight for a request that uses them fails, and the front end shows "
        '"cannot reach the server" instead of the maintenance screen.'
    )
    drifts += _both_ways("allow_methods", django.allow_methods, gateway.allow_methods, str, "allows methods", preflight)
    drifts += _both_ways("allow_headers", django.allow_headers, gateway.allow_headers, str.lower, "allows request headers", preflight)
    drifts += _both_ways(
        "expose_headers",
        [*django.expose_headers, *ALWAYS_EXPOSED],
        [*gateway.expose_headers, *ALWAYS_EXPOSED],
        str.lower,
        "exposes headers",
        "",
    )
    django_age = min(django.preflight_max_age, MAX_PREFLIGHT_MAX_AGE)
    if django_age != gateway.preflight_max_age:
        drifts.append(
            Drift(
                "preflight_max_age",
                f"CORS_PREFLIGHT_MAX_AGE is {django.preflight_max_age} but GATEWAY_CORS_PREFLIGHT_MAX_AGE is "
                f"{gateway.preflight_max_age}.",
            )
        )
    return drifts


# -- the gateway's settings from Django's


def gateway_values(django: CorsConfig) -> list[tuple[str, str]]:
    """Every GATEWAY_CORS_* variable as the gateway reads it, saying what Django's settings say.
    Raises CorsSettingError for a value a variable cannot hold."""
    origins = () if django.allow_all_origins else django.allowed_origins
    regexes = () if django.allow_all_origins else django.allowed_origin_regexes
    values = {
        # With allow-all the lists are moot, and the gateway refuses origins beside it.
        "allowed_origins": _joined("allowed_origins", origins),
        "allowed_origin_regexes": _joined("allowed_origin_regexes", regexes),
        "allow_all_origins": str(django.allow_all_origins).lower(),
        "allow_credentials": str(django.allow_credentials).lower(),
        "allow_methods": _joined("allow_methods", django.allow_methods, token=True),
        "allow_headers": _joined("allow_headers", django.allow_headers, token=True),
        "expose_headers": _joined("expose_headers", django.expose_headers, token=True),
        # Browsers cache a preflight a day at most: a longer age says the same as a day.
        "preflight_max_age": str(min(django.preflight_max_age, MAX_PREFLIGHT_MAX_AGE)),
    }
    return [(GATEWAY_NAME[field], values[field]) for field, _, _, _ in SETTINGS]


def _joined(field: str, items: Iterable[str], token: bool = False) -> str:
    for item in items:
        if token and not _TOKEN.fullmatch(item):
            raise CorsSettingError(DJANGO_NAME[field], f"{item!r} is not an HTTP token")
        if "," in item:
            raise CorsSettingError(
                DJANGO_NAME[field],
                f"{item!r} holds a comma, which {GATEWAY_NAME[field]} (a comma-separated list) cannot hold"
                + ("; write the pattern without one (e.g. [0-9][0-9]? for [0-9]{1,2})" if field == "allowed_origin_regexes" else ""),
            )
        if item != item.strip() or not item.isprintable():
            raise CorsSettingError(DJANGO_NAME[field], f"{item!r} has white space around it or a control character")
    return ",".join(items)
