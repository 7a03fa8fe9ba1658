"""The one settings object: read from ``GATEWAY_*`` variables and CLI flags, validated once.

Every setting is declared once in ``FIELDS`` (environment name, parser, default,
whether it is a secret). The CLI derives its ``--flags`` from the same table, so a
new setting needs one line here and nothing else.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY_"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# django-cors-headers' defaults, so that the gateway answers as Django would.
DEFAULT_CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "user-agent",
    "x-csrftoken",
    "x-requested-with",
)
DEFAULT_CORS_ALLOW_METHODS = ("DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT")


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


def _number(kind: Callable[[str], float], minimum: float, strictly: bool) -> Callable[[str], Any]:
    def parse(raw: str) -> float:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(f"expected a {kind.__name__} number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        if value < minimum or (strictly and value == minimum):
            raise ValueError(f"must be {'>' if strictly else '>='} {minimum:g}")
        return value

    return parse


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

    parse_store_url(raw)
    return raw.strip()


def parse_prefix(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith("/") or len(value) < 2 or not re.fullmatch(r"/[A-Za-z0-9._~/-]+", value):
        raise ValueError("expected a path such as /_gateway")
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


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of: {', '.join(options)}")
        return value

    return parse


def parse_text(raw: str) -> str:
    return raw.strip()


@dataclasses.dataclass(frozen=True)
class Field:
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


FIELDS: tuple[Field, ...] = (
    Field("host", parse_host, "127.0.0.1", "address to listen on"),
    Field("port", _number(int, 1, False), "8080", "port to listen on"),
    Field("workers", _number(int, 1, False), "1", "worker processes (each refreshes the state on its own)"),
    Field("http_parser", _choice("httptools", "h11"), "httptools", "HTTP/1.1 parser for clients: httptools (fast) or h11 (pure Python)"),
    Field("client_header_timeout", _number(float, 0, True), "30", "seconds a request's head may take to arrive"),
    Field("client_body_timeout", _number(float, 0, True), "30", "seconds between two pieces of a request body (then 408)"),
    Field(
        "client_send_timeout",
        _number(float, 0, True),
        "60",
        "seconds a client may leave the gateway's answer unread before the connection is dropped",
    ),
    Field("max_header_bytes", _number(int, 1024, False), "32768", "largest request head: the request line and headers together (then 400)"),
    Field("max_in_flight", _number(int, 1, False), "1000", "requests handled at once; more get a quick 503 with CORS"),
    Field(
        "request_buffer_bytes",
        _number(int, 0, False),
        "1048576",
        "request bodies up to this size are read whole before Django is called, so slow clients do not hold Django",
    ),
    Field(
        "max_buffering_bodies",
        _number(int, 1, False),
        "128",
        "requests receiving their body at once (not counted in max_in_flight); more get a quick 503",
    ),
    Field(
        "client_body_min_rate",
        _number(float, 0, False),
        "500",
        "bytes a second a request body must average once client_body_timeout of waiting is spent (then 408); 0: off",
    ),
    Field("upstream_url", parse_http_url, "http://127.0.0.1:8000", "where Django listens"),
    Field("upstream_connect_timeout", _number(float, 0, True), "5", "seconds to open an upstream connection (then 504)"),
    Field("upstream_read_timeout", _number(float, 0, True), "60", "seconds to wait for upstream data (then 504)"),
    Field(
        "upstream_idle_timeout",
        _number(float, 0, True),
        "1.5",
        "seconds an idle upstream connection is kept; keep below the upstream's keep-alive (gunicorn: 2)",
    ),
    Field("upstream_max_idle", _number(int, 0, False), "64", "idle upstream connections kept for reuse"),
    Field(
        "websocket_upstream_url",
        parse_optional_http_url,
        "",
        "where Django serves WebSockets (an ASGI server); empty: GATEWAY_UPSTREAM_URL",
    ),
    Field("websocket_max_connections", _number(int, 1, False), "1000", "open WebSockets per process; more are refused (1013)"),
    Field(
        "websocket_max_message_bytes",
        _number(int, 1024, False),
        "1048576",
        "largest WebSocket message either way; a bigger one closes the socket with 1009",
    ),
    Field(
        "websocket_ping_interval",
        _number(float, 0, True),
        "20",
        "seconds between the gateway's pings to each WebSocket client (a client that stops answering is closed)",
    ),
    Field(
        "websocket_per_message_deflate",
        parse_bool,
        "false",
        "offer permessage-deflate compression to WebSocket clients",
    ),
    Field("store", parse_store, "file:maintenance-state.json", "file:PATH, memory: or dynamodb://TABLE?key=KEY&..."),
    Field("refresh_interval", _number(float, 0, True), "2", "seconds between background store reads"),
    Field("fail_mode", _choice("open", "closed"), "open", "open: serve, closed: answer 503, while the store was never read"),
    Field("admin_prefix", parse_prefix, "/_gateway", "path prefix of the gateway's own endpoints"),
    Field("admin_tokens", parse_tokens, "", "comma-separated name:token pairs; empty turns the admin API off", True),
    Field("admin_failure_limit", _number(int, 0, False), "10", "failed admin/bypass attempts per client IP a minute; 0: no limit"),
    Field("cors_allowed_origins", parse_origins, "", "origins allowed to read answers (scheme://host[:port])"),
    Field("cors_allowed_origin_regexes", parse_regexes, "", "regexes matched against the Origin header"),
    Field("cors_allow_all_origins", parse_bool, "false", "allow every origin"),
    Field("cors_allow_credentials", parse_bool, "false", "send Access-Control-Allow-Credentials: true"),
    Field("cors_allow_methods", parse_tokens_list, ",".join(DEFAULT_CORS_ALLOW_METHODS), "methods allowed in preflights"),
    Field("cors_allow_headers", parse_tokens_list, ",".join(DEFAULT_CORS_ALLOW_HEADERS), "headers allowed in preflights"),
    Field("cors_expose_headers", parse_tokens_list, "", "headers exposed to scripts (Retry-After and X-Maintenance-Mode always are)"),
    Field("cors_preflight_max_age", _number(int, 0, False), "86400", "seconds a browser may cache a preflight; 0 omits the header"),
    Field("bypass_paths", parse_paths, "", "path prefixes always forwarded to Django"),
    Field("bypass_ips", parse_networks, "", "client IPs or CIDRs always forwarded to Django"),
    Field("bypass_secret", parse_secret, "", "secret that lets operators through (header or cookie)", True),
    Field("bypass_cookie_ttl", _number(int, 60, False), "28800", "seconds a bypass cookie stays valid"),
    Field("forwarded_allow_ips", parse_networks, "127.0.0.1", "peers trusted to set X-Forwarded-For (IPs, CIDRs or *)"),
    Field("maintenance_page", parse_readable_file, "", "HTML file served as the maintenance page"),
    Field("maintenance_message", parse_text, "The site is down for maintenance. Please try again later.", "default message"),
    Field("retry_after", _number(int, 0, False), "300", "Retry-After seconds when no end time is set"),
    Field("drain_timeout", _number(float, 0, False), "25", "seconds in-flight requests get after SIGTERM"),
    Field("access_log", parse_bool, "false", "log every request"),
    Field("log_level", _choice("critical", "error", "warning", "info", "debug"), "info", "log level"),
    Field("log_format", _choice("json", "text"), "json", "json (one object a line, for CloudWatch) or text"),
)

FIELDS_BY_NAME = {field.name: field for field in FIELDS}


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    workers: int
    http_parser: str
    client_header_timeout: float
    client_body_timeout: float
    client_send_timeout: float
    max_header_bytes: int
    max_in_flight: int
    request_buffer_bytes: int
    max_buffering_bodies: int
    client_body_min_rate: float
    upstream_url: str
    upstream_connect_timeout: float
    upstream_read_timeout: float
    upstream_idle_timeout: float
    upstream_max_idle: int
    websocket_upstream_url: str
    websocket_max_connections: int
    websocket_max_message_bytes: int
    websocket_ping_interval: float
    websocket_per_message_deflate: bool
    store: str
    refresh_interval: float
    fail_mode: str
    admin_prefix: str
    admin_tokens: tuple[tuple[str, str], ...]
    admin_failure_limit: int
    cors_allowed_origins: tuple[str, ...]
    cors_allowed_origin_regexes: tuple[str, ...]
    cors_allow_all_origins: bool
    cors_allow_credentials: bool
    cors_allow_methods: tuple[str, ...]
    cors_allow_headers: tuple[str, ...]
    cors_expose_headers: tuple[str, ...]
    cors_preflight_max_age: int
    bypass_paths: tuple[str, ...]
    bypass_ips: tuple[Network, ...]
    bypass_secret: str
    bypass_cookie_ttl: int
    forwarded_allow_ips: tuple[Network, ...]
    maintenance_page: str
    maintenance_message: str
    retry_after: int
    drain_timeout: float
    access_log: bool
    log_level: str
    log_format: str

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


def load_settings(env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None) -> Settings:
    """Parse every setting; the first bad one raises ConfigError naming its key and value.

    ``overrides`` (from CLI flags, keyed by field name) win over the environment.
    """
    source = os.environ if env is None else env
    overrides = overrides or {}
    known = {field.env for field in FIELDS}
    for key in source:
        # A typo in a variable name would otherwise be ignored silently.
        if key.startswith(ENV_PREFIX) and key not in known and key not in _NOT_SETTINGS:
            raise ConfigError(key, source[key], "unknown setting")
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
_NOT_SETTINGS = frozenset({"GATEWAY_ADMIN_URL", "GATEWAY_ADMIN_TOKEN"})
