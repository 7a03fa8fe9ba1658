"""Sites by name: ``--site prod`` (or ``GATEWAY_SITE=prod``) reads prod's store, gateway and token
from a small TOML file, as the AWS CLI reads a profile and Heroku's ``-a app`` names an app.

The file (``GATEWAY_SITES_FILE``, else ``$XDG_CONFIG_HOME/maintenance-gateway/sites.toml``,
else ``~/.config/maintenance-gateway/sites.toml``) holds one table per site::

    [prod]
    store = "dynamodb://shop-state?key=shop-prod&region=eu-west-1"   # as GATEWAY_STORE says it
    url = "https://shop.example.com"           # the gateway (through the ALB)
    token_env = "SHOP_PROD_ADMIN_TOKEN"        # or token_file = "~/.config/maintenance-gateway/prod.token"

A token is never required to sit in the file: ``token_env`` names a variable, ``token_file`` a
file that holds only the token. ``token`` (inline) is taken only from a sites file that its owner
alone may read (mode 0600), and ``token_file`` only from such a file, as ssh takes a private key:
a token others can read is refused, not used. Every value is checked when the site is chosen, so
a mistyped site stops the command (exit 78) before anything is read or written.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.cli.client import admin_base_url, clean_token
from gateway.errors import ConfigError, StoreError
from gateway.stores.file import open_regular
from gateway.settings import SITE_VARIABLE, SITES_FILE_VARIABLE

SITE_FLAG = "--site"
# What a site may say; anything else is a typo, refused with the key it was probably meant to be.
SITE_KEYS = ("store", "url", "token", "token_env", "token_file")
_TOKEN_KEYS = ("token", "token_env", "token_file")
_SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A sites file or token file larger than this is not one.
_MAX_FILE_BYTES = 64 * 1024


def sites_path() -> Path:
    """Where the sites file is: GATEWAY_SITES_FILE, else the XDG config directory's."""
    chosen = os.environ.get(SITES_FILE_VARIABLE, "").strip()
    if chosen:
        return Path(chosen).expanduser().absolute()
    config_home = os.environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(config_home) if config_home and Path(config_home).is_absolute() else Path.home() / ".config"
    return base / "maintenance-gateway" / "sites.toml"


@dataclass(frozen=True)
class Site:
    """One site of the sites file, its values checked; the token is read when it is used."""

    name: str
    path: Path
    store: str | None
    url: str | None
    token_key: str | None  # which of _TOKEN_KEYS gives the token, if any
    token_value: str | None  # the inline token, the variable's name or the token file's path

    @property
    def label(self) -> str:
        """How messages name it: ``site prod (/home/op/.config/maintenance-gateway/sites.toml)``."""
        return f"site {self.name} ({self.path})"

    def token(self) -> str | None:
        """The site's admin token, or None when it names none; ConfigError when it cannot be had."""
        if self.token_key is None or self.token_value is None:
            return None
        where = f"{self.path} [{self.name}] {self.token_key}"
        if self.token_key == "token":
            raw = self.token_value
        elif self.token_key == "token_env":
            if not os.environ.get(self.token_value, "").strip():
                raise ConfigError(where, self.token_value, f"the variable {self.token_value} is not set; export it or change {self.token_key}")
            raw = os.environ[self.token_value]
        else:
            raw = _read_private(Path(self.token_value), where)
        try:
            token = clean_token(raw)
        except ValueError as exc:
            raise ConfigError(where, "****", str(exc)) from None
        if not token:
            raise ConfigError(where, "****" if self.token_key == "token" else self.token_value, "the token is empty")
        return token


def load_site(name: str, chosen_by: str) -> Site:
    """The site ``name`` of the sites file; ConfigError naming ``chosen_by`` (--site or
    GATEWAY_SITE), the file and the key when the site or one of its values is wrong."""
    path = sites_path()
    sites = _read_sites(path, chosen_by, name)
    if name not in sites:
        known = sorted(sites)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        listed = f"it has {', '.join(known)}" if known else "it names no site"
        raise ConfigError(chosen_by, name, f"no such site in {path} ({listed}){hint}")
    table = sites[name]
    if not isinstance(table, dict):
        raise ConfigError(f"{path} {name}", str(table)[:64], f"expected a table: [{name}] with store = ... and/or url = ...")
    return _site(name, path, table)


def _read_sites(path: Path, chosen_by: str, name: str) -> dict[str, Any]:
    try:
        raw = _read_limited(path)
    except FileNotFoundError:
        raise ConfigError(
            chosen_by, name, f"there is no sites file at {path}; create it (README: Sites) or point {SITES_FILE_VARIABLE} at one"
        ) from None
    except OSError as exc:
        raise ConfigError(SITES_FILE_VARIABLE, str(path), f"cannot read it: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(SITES_FILE_VARIABLE, str(path), "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(SITES_FILE_VARIABLE, str(path), f"is not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(SITES_FILE_VARIABLE, str(path), "is not valid TOML (nested too deep)") from None


def _site(name: str, path: Path, table: dict[str, Any]) -> Site:
    where = f"{path} [{name}]"
    for key in table:
        if key not in SITE_KEYS:
            close = difflib.get_close_matches(key, SITE_KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; a site takes {', '.join(SITE_KEYS)}"
            raise ConfigError(f"{where} {key}", "****" if "token" in key else str(table[key])[:64], f"unknown key{hint}")
    values: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} {key}", "****" if key == "token" else str(value)[:64], "expected a non-empty string")
        values[key] = value.strip()
    if not _SITE_NAME.fullmatch(name):
        raise ConfigError(where, name, "a site name is letters, digits, '.', '_' and '-', starting with a letter or digit")
    if "store" not in values and "url" not in values:
        raise ConfigError(where, name, "a site needs store = \"dynamodb://...\" (or \"file:/absolute/path\") and/or url = \"https://...\"")
    tokens = [key for key in _TOKEN_KEYS if key in values]
    if len(tokens) > 1:
        raise ConfigError(f"{where} {tokens[1]}", "****", f"give one of {', '.join(_TOKEN_KEYS)}, not {' and '.join(tokens)}")
    token_key = tokens[0] if tokens else None
    token_value = values.get(token_key) if token_key else None
    if token_key == "token":
        _require_private(path, f"{where} token", "keep the token out of the file (token_env or token_file) or ")
    elif token_key == "token_env" and token_value is not None and not _VARIABLE_NAME.fullmatch(token_value):
        raise ConfigError(f"{where} token_env", token_value, "expected the name of an environment variable, such as SHOP_PROD_ADMIN_TOKEN")
    elif token_key == "token_file" and token_value is not None:
        token_path = Path(token_value).expanduser()
        token_value = str(token_path if token_path.is_absolute() else path.parent / token_path)
    return Site(name, path, _store(values.get("store"), where), _url(values.get("url"), where), token_key, token_value)


def _store(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    from gateway.settings import parse_store

    if value.startswith("file:"):
        path = Path(value.removeprefix("file:")).expanduser()
        if not path.is_absolute():
            # A relative path names a different file in each directory the command is run from.
            raise ConfigError(f"{where} store", value, "a file store in a sites file needs an absolute path, such as file:/srv/shop/maintenance-state.json")
        value = f"file:{path}"
    try:
        return parse_store(value)
    except ValueError as exc:
        raise ConfigError(f"{where} store", value, str(exc)) from None


def _url(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    try:
        return admin_base_url(value)
    except ValueError as exc:
        raise ConfigError(f"{where} url", value, str(exc)) from None


def _read_limited(path: Path) -> bytes:
    """The file's bytes: a regular file only (a FIFO put there would block the command for
    ever), and no larger than any sites or token file is (cut, it would lose its last sites)."""
    try:
        descriptor = open_regular(path, os.O_RDONLY)
    except StoreError as exc:
        raise OSError(errno.EINVAL, str(exc)) from None
    with os.fdopen(descriptor, "rb") as handle:
        raw = handle.read(_MAX_FILE_BYTES + 1)
    if len(raw) > _MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {_MAX_FILE_BYTES} bytes")
    return raw


def _require_private(path: Path, where: str, instead: str) -> None:
    """ConfigError unless only the owner may read or write ``path`` (mode 0600 or 0400)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(where, str(path), f"cannot be checked: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise ConfigError(
            where, "****", f"{path} is mode {mode:04o}, so others may read the token; {instead}run chmod 600 {path}"
        )


def _read_private(path: Path, where: str) -> str:
    _require_private(path, where, "")
    try:
        return _read_limited(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(where, str(path), f"cannot read the token: {reason}") from None
