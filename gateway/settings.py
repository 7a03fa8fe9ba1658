"""The one settings object: read from ``GATEWAY_*`` variables and CLI flags, validated once.

Every setting is declared once, as an attribute of ``Settings`` whose ``setting(...)``
carries its parser, default text, help and whether it is a secret. ``FIELDS`` is read from
those declarations; the CLI derives its ``--flags`` from it, so a new setting needs one
attribute here and nothing else.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.state import has_dot_segment

ENV_PREFIX = "GATEWAY_"
# Where the gateway's own endpoints live unless GATEWAY_ADMIN_PREFIX says otherwise (the CLI
# adds it to a --url that names no path).
DEFAULT_ADMIN_PREFIX = "/_gateway"
# The CLI's way to a running gateway: read by the command, not settings of the gateway.
ADMIN_URL_VARIABLE = "GATEWAY_ADMIN_URL"
ADMIN_TOKEN_VARIABLE = "GATEWAY_ADMIN_TOKEN"
# The CLI's named sites (gateway/cli/sites.py): which one, and the file that holds them.
SITE_VARIABLE = "GATEWAY_SITE"
SITES_FILE_VARIABLE = "GATEWAY_SITES_FILE"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# -- value parsers: each takes the raw string and returns the typed value or raises ValueError


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


@dataclasses.dataclass(frozen=True)
class Number:
    """A number setting's parser and its range: from ``low`` to ``high``, both included.

    Every number has both ends: a value past what a socket, a clock or memory can hold is
    refused at start, not wrapped around or left to fail on the first request.
    """

    whole: bool
    low: float
    high: float

    def __call__(self, raw: str) -> int | float:
        try:
            value: int | float = int(raw.strip()) if self.whole else float(raw.strip())
        except ValueError:
            raise ValueError(self.expected) from None
        # Written so that NaN, which compares false with everything, is refused too.
        if not self.low <= value <= self.high:
            raise ValueError(self.expected)
        return value

    @property
    def expected(self) -> str:
        if self.whole:
            return f"expected a whole number from {_shown(self.low)} to {_shown(self.high)}"
        return f"expected a number from {_shown(self.low)} to {_shown(self.high)}"


def _shown(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def whole(low: int, high: int) -> Number:
    return Number(whole=True, low=low, high=high)


# The shortest timeout or interval: below it a timer fires faster than a request can be
# answered, and an interval of 1e-300 s would read the store in a busy loop.
MIN_SECONDS = 0.01


def seconds(high: float, *, zero_allowed: bool = False) -> Number:
    """A duration: from MIN_SECONDS (or from zero, when ``zero_allowed``) to ``high``."""
    return Number(whole=False, low=0 if zero_allowed else MIN_SECONDS, high=high)


HOUR = 3600
DAY = 86400
MIB = 1024 * 1024
# Numbers of things held at once in one process (requests, sockets, connections): above this a
# process runs out of descriptors or memory long before the limit could matter.
MANY = 100_000


def parse_http_url(raw: str) -> str:
    value = raw.strip()
    try:
        parts = urlsplit(value)
        parts.port  # raises on a bad port
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme != "http":
        raise ValueError("only http:// upstreams are supported (the upstream is a sidecar on localhost)")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("the URL must not have a path, query or fragment")
    return f"http://{parts.netloc}"


def parse_optional_http_url(raw: str) -> str:
    """Empty (use another setting's URL) or an ``http://host:port`` URL."""
    return parse_http_url(raw) if raw.strip() else ""


def parse_store(raw: str) -> str:
    # The store module owns the grammar; importing it lazily keeps this module free of cycles.
    from gateway.stores import parse_store_url

    kind, argument = parse_store_url(raw)
    if kind == "file":
        from gateway.stores.file import require_directory

        require_directory(argument)
    elif kind == "dynamodb":
        from gateway.stores.dynamodb import DynamoDBLocation, require_region

        require_region(DynamoDBLocation.parse(argument))
    return raw.strip()


def parse_prefix(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith("/") or len(value) < 2 or not re.fullmatch(r"/[A-Za-z0-9._~/-]+", value):
        raise ValueError("expected a path such as /_gateway")
    if "//" in value or has_dot_segment(value):
        # Browsers, curl and nginx resolve these away: the admin API would be out of reach.
        raise ValueError("expected a path without empty, '.' or '..' segments, such as /_gateway")
    return value


def parse_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in _split_list(raw):
        name, sep, token = item.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token:
            raise ValueError("expected comma-separated name:token pairs")
        if len(token) < 16:
            raise ValueError(f"the token named {name!r} is shorter than 16 characters")
        if not token.isascii() or not token.isprintable():
            raise ValueError(f"the token named {name!r} must be printable ASCII")
        if name in seen:
            raise ValueError(f"the name {name!r} appears twice")
        seen.add(name)
        pairs.append((name, token))
    return tuple(pairs)


def parse_origins(raw: str) -> tuple[str, ...]:
    origins = _split_list(raw)
    for origin in origins:
        if origin == "null":
            continue
        # The same two checks django-cors-headers makes on CORS_ALLOWED_ORIGINS.
        parts = urlsplit(origin)
        if not parts.scheme or not parts.netloc:
            raise ValueError(f"origin {origin!r} is missing scheme or host")
        if parts.path or parts.query or parts.fragment:
            raise ValueError(f"origin {origin!r} must not have a path (no trailing slash either)")
    return origins


def parse_regexes(raw: str) -> tuple[str, ...]:
    patterns = _split_list(raw)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} does not compile ({exc})") from None
    return patterns


def parse_tokens_list(raw: str) -> tuple[str, ...]:
    items = _split_list(raw)
    for item in items:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", item):
            raise ValueError(f"{item!r} is not an HTTP token")
    return items


def parse_networks(raw: str) -> tuple[Network, ...]:
    networks: list[Network] = []
    for item in _split_list(raw):
        if item == "*":
            networks.extend((ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR") from None
    return tuple(networks)


def parse_paths(raw: str) -> tuple[str, ...]:
    paths = _split_list(raw)
    for path in paths:
        if not path.startswith("/"):
            raise ValueError(f"{path!r} does not start with /")
        if not path.strip("/"):
            # "/" covers every path: maintenance would be off for the whole site, unseen.
            raise ValueError(f"{path!r} names the whole site; list the paths that may pass")
        if has_dot_segment(path):
            raise ValueError(f"{path!r} has a '.' or '..' segment, which no request path matches")
    return paths


def parse_secret(raw: str) -> str:
    value = raw.strip()
    if value and len(value) < 16:
        raise ValueError("shorter than 16 characters")
    if value and (not value.isascii() or not value.isprintable()):
        raise ValueError("must be printable ASCII")
    return value


def parse_readable_file(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    path = Path(value)
    if not path.is_file():
        raise ValueError("no such file")
    try:
        path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read as UTF-8 text ({exc})") from None
    return value


def parse_host(raw: str) -> str:
    value = raw.strip()
    if not value or any(ch.isspace() for ch in value):
        raise ValueError("expected a host name or IP address")
    return value


def _choice(*options: str, removed: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """One of ``options``; a value in ``removed`` (a choice there was once) is refused with its reason."""
    gone = dict(removed or {})

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value in gone:
            raise ValueError(gone[value])
        if value not in options:
            raise ValueError(f"expected one of: {', '.join(options)}")
        return value

    return parse


def parse_text(raw: str) -> str:
    value = raw.strip()
    # Bytes that are not UTF-8 reach os.environ as lone surrogates, which no answer can encode.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid UTF-8 text") from None
    return value


@dataclasses.dataclass(frozen=True)
class Field:
    """One setting as the CLI and ``load_settings`` see it: its name, parser, default text and help."""

    name: str
    parse: Callable[[str], Any]
    default: str
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def bounds(self) -> tuple[float, float] | None:
        """A number setting's lowest and highest value; None for the others."""
        return (self.parse.low, self.parse.high) if isinstance(self.parse, Number) else None


_DECLARATION = "setting"


def setting(parse: Callable[[str], Any], default: str, help: str, *, secret: bool = False) -> Any:
    """The declaration of one ``Settings`` attribute (typed ``Any`` so that mypy keeps the annotation)."""
    if isinstance(parse, Number):
        help = f"{help} ({parse.expected.removeprefix('expected ')})"
    return dataclasses.field(metadata={_DECLARATION: Field("", parse, default, help, secret)})


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = setting(parse_host, "127.0.0.1", "address to listen on")
    port: int = setting(whole(1, 65535), "8080", "port to listen on")
    workers: int = setting(whole(1, 64), "1", "worker processes (each refreshes the state on its own)")
    # Kept so that task definitions setting GATEWAY_HTTP_PARSER=httptools still start. h11 was
    # removed: a task that asks for it is stopped, not run on a parser other than the one it names.
    http_parser: str = setting(
        _choice("httptools", removed={"h11": "the h11 parser was removed; httptools is the only parser"}),
        "httptools",
        "HTTP/1.1 parser for clients: httptools, the only one (h11 was removed and is refused)",
    )
    client_header_timeout: float = setting(seconds(HOUR), "30", "seconds a request's head may take to arrive")
    client_body_timeout: float = setting(seconds(HOUR), "30", "seconds between two pieces of a request body (then 408)")
    client_send_timeout: float = setting(
        seconds(HOUR), "60", "seconds a client may leave the gateway's answer unread before the connection is dropped"
    )
    max_header_bytes: int = setting(
        whole(1024, MIB), "32768", "largest request head: the request line and headers together (then 400)"
    )
    max_in_flight: int = setting(whole(1, MANY), "1000", "requests handled at once; more get a quick 503 with CORS")
    request_buffer_bytes: int = setting(
        whole(0, 64 * MIB),
        "1048576",
        "request bodies up to this size are read whole before Django is called, so slow clients do not hold Django",
    )
    max_buffering_bodies: int = setting(
        whole(1, MANY), "128", "requests receiving their body at once (not counted in max_in_flight); more get a quick 503"
    )
    client_body_min_rate: float = setting(
        # Above 10 MB/s an ordinary mobile upload would be cut off.
        Number(whole=False, low=0, high=10_000_000),
        "500",
        "bytes a second a request body must average once client_body_timeout of waiting is spent (then 408); 0: off",
    )
    upstream_url: str = setting(parse_http_url, "http://127.0.0.1:8000", "where Django listens")
    upstream_connect_timeout: float = setting(seconds(HOUR), "5", "seconds to open an upstream connection (then 504)")
    upstream_read_timeout: float = setting(seconds(DAY), "60", "seconds to wait for upstream data (then 504)")
    upstream_idle_timeout: float = setting(
        seconds(HOUR),
        "1.5",
        "seconds an idle upstream connection is kept; keep below the upstream's keep-alive (gunicorn: 2)",
    )
    upstream_max_idle: int = setting(whole(0, 10_000), "64", "idle upstream connections kept for reuse")
    websocket_upstream_url: str = setting(
        parse_optional_http_url, "", "where Django serves WebSockets (an ASGI server); empty: GATEWAY_UPSTREAM_URL"
    )
    websocket_max_connections: int = setting(
        whole(1, MANY), "1000", "open WebSockets per process; more are refused (1013)"
    )
    websocket_max_per_client: int = setting(
        # A browser holds one socket per open tab of a page that uses one; an office behind one
        # NAT address is many browsers. One client alone must not take every slot of the process.
        whole(1, MANY),
        "50",
        "open WebSockets per client (an IPv4 address or IPv6 /64, as the failure limit counts); more are refused (1013)",
    )
    websocket_max_message_bytes: int = setting(
        whole(1024, 64 * MIB),
        "1048576",
        "largest WebSocket message either way; a bigger one closes the socket with 1009",
    )
    websocket_ping_interval: float = setting(
        seconds(HOUR),
        "20",
        "seconds between the gateway's pings to each WebSocket client (a client that stops answering is closed)",
    )
    websocket_per_message_deflate: bool = setting(
        parse_bool, "false", "offer permessage-deflate compression to WebSocket clients"
    )
    store: str = setting(parse_store, "file:maintenance-state.json", "file:PATH, memory: or dynamodb://TABLE?key=KEY&...")
    # Above an hour a switch would take longer to reach the gateways than most maintenance windows last.
    refresh_interval: float = setting(seconds(HOUR), "2", "seconds between background store reads")
    fail_mode: str = setting(
        _choice("open", "closed"), "open", "open: serve, closed: answer 503, while the store was never read"
    )
    admin_prefix: str = setting(parse_prefix, DEFAULT_ADMIN_PREFIX, "path prefix of the gateway's own endpoints")
    admin_tokens: tuple[tuple[str, str], ...] = setting(
        parse_tokens, "", "comma-separated name:token pairs; empty turns the admin API off", secret=True
    )
    admin_failure_limit: int = setting(
        whole(0, MANY), "10", "failed admin/bypass attempts per client IP a minute; 0: no limit"
    )
    cors_allowed_origins: tuple[str, ...] = setting(
        parse_origins, "", "origins allowed to read answers (scheme://host[:port])"
    )
    cors_allowed_origin_regexes: tuple[str, ...] = setting(
        parse_regexes, "", "regexes matched against the Origin header"
    )
    cors_allow_all_origins: bool = setting(parse_bool, "false", "allow every origin")
    cors_allow_credentials: bool = setting(parse_bool, "false", "send Access-Control-Allow-Credentials: true")
    # The method and header defaults are django-cors-headers', so that the gateway answers as Django would.
    cors_allow_methods: tuple[str, ...] = setting(
        parse_tokens_list, "DELETE,GET,OPTIONS,PATCH,POST,PUT", "methods allowed in preflights"
    )
    cors_allow_headers: tuple[str, ...] = setting(
        parse_tokens_list,
        "accept,authorization,content-type,user-agent,x-csrftoken,x-requested-with",
        "headers allowed in preflights",
    )
    cors_expose_headers: tuple[str, ...] = setting(
        parse_tokens_list, "", "headers exposed to scripts (Retry-After and X-Maintenance-Mode always are)"
    )
    # Firefox caches a preflight for at most a day, Chromium for two hours: more is never used.
    cors_preflight_max_age: int = setting(
        whole(0, DAY), "86400", "seconds a browser may cache a preflight; 0 omits the header"
    )
    bypass_paths: tuple[str, ...] = setting(parse_paths, "", "path prefixes always forwarded to Django")
    bypass_ips: tuple[Network, ...] = setting(parse_networks, "", "client IPs or CIDRs always forwarded to Django")
    bypass_secret: str = setting(
        parse_secret, "", "secret that lets operators through (header or cookie)", secret=True
    )
    bypass_cookie_ttl: int = setting(whole(60, 30 * DAY), "28800", "seconds a bypass cookie stays valid")
    forwarded_allow_ips: tuple[Network, ...] = setting(
        parse_networks, "127.0.0.1", "peers trusted to set X-Forwarded-For (IPs, CIDRs or *)"
    )
    # How many proxies append to X-Forwarded-For in front of the gateway (ALB and nginx: 2), as
    # Django REST framework's NUM_PROXIES and Werkzeug's ProxyFix x_for count them. Above 16 a
    # chain is a misconfiguration, not a deployment.
    forwarded_hops: int = setting(
        whole(0, 16),
        "0",
        "proxies in front of the gateway that append to X-Forwarded-For: the client is the address that many "
        "from the right; 0: walk from the right past GATEWAY_FORWARDED_ALLOW_IPS",
    )
    maintenance_page: str = setting(parse_readable_file, "", "HTML file served as the maintenance page")
    maintenance_message: str = setting(
        parse_text, "The site is down for maintenance. Please try again later.", "default message"
    )
    retry_after: int = setting(whole(0, DAY), "300", "Retry-After seconds when no end time is set")
    # Off by default: a window ending by itself in the middle of a long migration puts users back
    # on a half-migrated site, while one left on too long is seen at once (README "Configuration").
    max_window: int = setting(
        whole(0, 366 * DAY),
        "0",
        "seconds a window without an end stays in force, counted from its start (starts_at, else when it was "
        "turned on); in memory only, the store is never rewritten; 0: no ceiling",
    )
    drain_timeout: float = setting(
        seconds(HOUR, zero_allowed=True), "25", "seconds in-flight requests get after SIGTERM"
    )
    access_log: bool = setting(parse_bool, "false", "log every request")
    log_level: str = setting(_choice("critical", "error", "warning", "info", "debug"), "info", "log level")
    log_format: str = setting(_choice("json", "text"), "json", "json (one object a line, for CloudWatch) or text")

    @property
    def upstream_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.upstream_url)
        assert parts.hostname is not None
        return parts.hostname, parts.port or 80

    def as_environment(self, *, masked: bool) -> dict[str, str]:
        """Every setting as ``GATEWAY_*`` text that ``load_settings`` reads back to the same value."""
        shown: dict[str, str] = {}
        for field in FIELDS:
            value = getattr(self, field.name)
            if field.name == "admin_tokens":
                text = ",".join(f"{name}:{'****' if masked else token}" for name, token in value)
            elif isinstance(value, tuple):
                text = ",".join(str(item) for item in value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            if masked and field.secret and text and field.name != "admin_tokens":
                text = "****"
            shown[field.env] = text
        return shown

    def describe(self) -> dict[str, str]:
        """For people: every setting, secrets masked."""
        return self.as_environment(masked=True)


FIELDS: tuple[Field, ...] = tuple(
    dataclasses.replace(attribute.metadata[_DECLARATION], name=attribute.name) for attribute in dataclasses.fields(Settings)
)


def load_settings(env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None) -> Settings:
    """Parse every setting; the first bad one raises ConfigError naming its key and value.

    ``overrides`` (from CLI flags, keyed by field name) win over the environment.
    """
    source = os.environ if env is None else env
    overrides = overrides or {}
    for key in source:
        # A typo in a variable name would otherwise be ignored silently.
        if key.startswith(ENV_PREFIX) and key not in _KNOWN:
            raise _unknown_setting(key, source[key])
    values: dict[str, Any] = {}
    for field in FIELDS:
        if field.name in overrides:
            key, raw = field.flag, overrides[field.name]
        else:
            key, raw = field.env, source.get(field.env, field.default)
        try:
            values[field.name] = field.parse(raw)
        except ValueError as exc:
            raise ConfigError(key, "****" if field.secret else raw, str(exc)) from None
    settings = Settings(**values)
    if settings.cors_allow_all_origins and settings.cors_allowed_origins:
        raise ConfigError(
            "GATEWAY_CORS_ALLOW_ALL_ORIGINS", "true", "conflicts with GATEWAY_CORS_ALLOWED_ORIGINS; set one of them"
        )
    return settings


# Variables with the prefix that belong to the CLI client, not to the server's settings.
_CLIENT_VARIABLES = {ADMIN_URL_VARIABLE: False, ADMIN_TOKEN_VARIABLE: True, SITE_VARIABLE: False, SITES_FILE_VARIABLE: False}
# Every variable the prefix may start, and whether its value is a secret.
_KNOWN = {**{field.env: field.secret for field in FIELDS}, **_CLIENT_VARIABLES}


def _unknown_setting(key: str, value: str) -> ConfigError:
    """The error for an unknown ``GATEWAY_*`` variable, naming the one it was most likely meant to be.

    Its value is shown only when that is a setting that holds no secret: an unknown variable
    may well be a misspelt token.
    """
    # Compared without the prefix, which every name shares and which would make any two names look alike.
    names = {name.removeprefix(ENV_PREFIX): name for name in _KNOWN}
    close = difflib.get_close_matches(key.removeprefix(ENV_PREFIX), names, n=1, cutoff=0.8)
    if not close:
        return ConfigError(key, "****", "unknown setting")
    meant = names[close[0]]
    return ConfigError(key, "****" if _KNOWN[meant] else value, f"unknown setting; did you mean {meant}?")
