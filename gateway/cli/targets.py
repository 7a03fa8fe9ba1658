"""Where an operator command acts, chosen once and named before it does anything.

Each value is taken from its flag, else its variable, else the site (``--site``/``GATEWAY_SITE``):
the store (``--store``, ``GATEWAY_STORE``, the site's ``store``), the gateway (``--url``,
``GATEWAY_ADMIN_URL``, the site's ``url``) and the token (``--token``, ``GATEWAY_ADMIN_TOKEN``, the
site's). A command goes through a gateway when ``--url`` or ``GATEWAY_ADMIN_URL`` names one, or
when the site names a gateway and no store; otherwise it acts on the store, and ``--wait`` asks
the site's gateway (or the local one). A flag or variable that overrides a value the site gives
is said on stderr.

The relative default store (``file:maintenance-state.json``) is ``make run``'s and ``serve``'s:
``on``, ``off``, ``status`` and ``history`` refuse to use it unless something chose it, since it
is a different file in each directory the command is run from.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.cli.client import AdminClient, admin_base_url, clean_token
from gateway.cli.output import shown
from gateway.cli.sites import SITE_FLAG, Site, load_site, sites_path
from gateway.errors import ConfigError
from gateway.settings import ADMIN_TOKEN_VARIABLE, ADMIN_URL_VARIABLE, SITE_VARIABLE
from gateway.stores import Store

STORE_VARIABLE = "GATEWAY_STORE"
DEFAULT_STORE = "file:maintenance-state.json"
# The commands that take no site: the gateway itself reads only its GATEWAY_* variables and flags.
_WITHOUT_SITE = ("serve", "healthcheck")


def on_the_state(args: argparse.Namespace) -> bool:
    """Whether the command reads or changes the state (on, off, status, history...): those that
    may go through a gateway (--url). Only they name their target and refuse the default store."""
    return "url" in vars(args)


def _waiting(args: argparse.Namespace) -> bool:
    """A change with --wait: its token (without --url) asks the local gateway's health."""
    return vars(args).get("wait") is not None


def say(text: str) -> None:
    """One line for the operator on stderr, so that stdout stays what scripts read."""
    print(f"maintenance-gateway: {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Target:
    """The command's target: a gateway's admin API (``client``) or the store of ``environment``."""

    site: Site | None
    client: AdminClient | None
    url: str | None  # the gateway: the one gone through, or with a store the one --wait asks
    url_chosen_by: str | None
    token: str | None
    store_chosen_by: str | None  # None: nothing chose one (the embedded default)
    environment: dict[str, str]  # the variables the settings are read from (the site's store added)

    @property
    def through_gateway(self) -> bool:
        return self.client is not None


def choose(args: argparse.Namespace, overrides: dict[str, str]) -> Target:
    """The target of ``args`` (see the module's docstring); ConfigError for a wrong site or
    variable, argparse.ArgumentError for flags that cannot work together."""
    site = _site(args)
    url, url_chosen_by = _url(args, site)
    store_chosen_by, store = _store_choice(overrides, site)
    environment = dict(os.environ)
    if store is not None:  # the site's, chosen by nothing else
        environment[STORE_VARIABLE] = store
    # A site's url with a store of its own is where --wait looks; any other url is gone through.
    through = url is not None and not (site is not None and url_chosen_by == site.label and site.store is not None)
    waiting = _waiting(args)
    if vars(args).get("token") and not through and not waiting:
        raise argparse.ArgumentError(
            None,
            f"--token is used only with --url (or {ADMIN_URL_VARIABLE}, or a site with a url and no store) or with --wait; "
            "without them it would be ignored: add --url URL, or leave --token out",
        )
    token = _token(args, site) if through or waiting else None
    if through and not token:
        in_site = ", or a token in the site" if site is not None else ""
        raise argparse.ArgumentError(None, f"--url needs --token (or {ADMIN_TOKEN_VARIABLE}{in_site})")
    if site is not None:
        _say_overrides(site, store_chosen_by, url_chosen_by, url, args, through)
    client = AdminClient(url, token) if through and url is not None else None
    return Target(site, client, url, url_chosen_by, token, store_chosen_by, environment)


def refuse_the_default_store(args: argparse.Namespace, target: Target) -> None:
    """ConfigError when the command would use the embedded relative default without anything choosing it."""
    if not on_the_state(args) or target.through_gateway or target.store_chosen_by is not None:
        return
    raise ConfigError(
        STORE_VARIABLE,
        DEFAULT_STORE,
        f"not set, and {args.command} does not take this default (relative to {os.getcwd()}, for make run): "
        f"choose the site with {SITE_FLAG} NAME or {SITE_VARIABLE} (sites in {sites_path()}), "
        f"or set {STORE_VARIABLE} or --store, or go through a gateway with --url",
    )


def _site(args: argparse.Namespace) -> Site | None:
    name = vars(args).get("site")
    if args.command in _WITHOUT_SITE:
        if name:
            raise argparse.ArgumentError(None, f"--site is for the commands that operate a site; {args.command} reads its GATEWAY_* variables and flags")
        return None
    if name:
        return load_site(name, SITE_FLAG)
    from_environment = os.environ.get(SITE_VARIABLE, "").strip()
    return load_site(from_environment, SITE_VARIABLE) if from_environment else None


def _url(args: argparse.Namespace, site: Site | None) -> tuple[str | None, str | None]:
    if "url" not in vars(args):
        return None, None  # a command that never goes through a gateway
    if args.url:
        return str(args.url), "--url"
    raw = os.environ.get(ADMIN_URL_VARIABLE, "")
    if raw:
        try:
            return admin_base_url(raw), ADMIN_URL_VARIABLE
        except ValueError as exc:
            raise ConfigError(ADMIN_URL_VARIABLE, raw, str(exc)) from None
    if site is not None and site.url is not None:
        return site.url, site.label
    return None, None


def _store_choice(overrides: dict[str, str], site: Site | None) -> tuple[str | None, str | None]:
    """Which setting chose the store, and the site's store when it is the site."""
    if "store" in overrides:
        return "--store", None
    if STORE_VARIABLE in os.environ:
        return STORE_VARIABLE, None
    if site is not None and site.store is not None:
        return site.label, site.store
    return None, None


def _token(args: argparse.Namespace, site: Site | None) -> str | None:
    if args.token:
        return str(args.token)  # cleaned by its type, parse_token
    raw = os.environ.get(ADMIN_TOKEN_VARIABLE, "")
    if raw.strip():
        try:
            return clean_token(raw)
        except ValueError as exc:
            # A usage error as a bad --token is; the value is never shown.
            raise argparse.ArgumentError(None, f"{ADMIN_TOKEN_VARIABLE}: {exc}") from None
    return site.token() if site is not None else None


def _say_overrides(
    site: Site, store_chosen_by: str | None, url_chosen_by: str | None, url: str | None, args: argparse.Namespace, through: bool
) -> None:
    """Says which of the site's values a flag or variable replaced, and what the command leaves unused."""
    explicit = ("--store", STORE_VARIABLE)
    if site.store is not None and store_chosen_by in explicit and not through:
        say(f"{store_chosen_by} overrides the store of {site.label}")
    if site.url is not None and url_chosen_by in ("--url", ADMIN_URL_VARIABLE):
        say(f"{url_chosen_by} overrides the url of {site.label}")
    if site.token_key is not None and (vars(args).get("token") or os.environ.get(ADMIN_TOKEN_VARIABLE, "").strip()):
        say(f"{'--token' if vars(args).get('token') else ADMIN_TOKEN_VARIABLE} overrides the token of {site.label}")
    if through and store_chosen_by is not None:
        which = f"the store of {site.label}" if store_chosen_by == site.label else store_chosen_by
        say(f"{which} is not used: the command goes through the gateway at {url} ({url_chosen_by})")


# -- naming the target


def store_facts(store: Store, raw: str) -> dict[str, Any]:
    """What identifies ``store`` (GATEWAY_STORE ``raw``): its kind, and the file or the table, key and region."""
    from gateway.stores.dynamodb import DynamoDBStore
    from gateway.stores.file import FileStore

    if isinstance(store, FileStore):
        return {"kind": "file", "path": os.path.abspath(store.path)}
    if isinstance(store, DynamoDBStore):
        location = store.location
        return {
            "kind": "dynamodb",
            "table": location.table,
            "key": location.key,
            "key_given": "key" in parse_qs(urlsplit(raw.strip()).query),
            "region": store.region,
            "endpoint_url": location.endpoint_url,
        }
    return {"kind": store.description.rstrip(":")}


def store_summary(facts: dict[str, Any]) -> str:
    """``file /abs/path``, ``DynamoDB table T, key K, region R``: what the target line says."""
    if facts["kind"] == "file":
        return f"file {facts['path']}"
    if facts["kind"] == "dynamodb":
        key = facts["key"] if facts["key_given"] else f"{facts['key']} (no key= in the URL: the default item)"
        endpoint = f", at {facts['endpoint_url']}" if facts["endpoint_url"] else ""
        return f"DynamoDB table {facts['table']}, key {key}, region {facts['region'] or '(none)'}{endpoint}"
    return f"{facts['kind']}: (this process only)"


def item_name(facts: dict[str, Any]) -> str:
    """``table T key K`` or ``file /abs/path``: the item a command found missing or creates."""
    if facts["kind"] == "dynamodb":
        return f"table {facts['table']} key {facts['key']} (region {facts['region'] or '(none)'})"
    return f"file {facts['path']}" if facts["kind"] == "file" else facts["kind"]


def item_exists(store: Store) -> bool:
    """Whether the store holds the state item at all (a store that was never written reads as
    off, version 0, just like a mistyped key): one strongly consistent read of the key."""
    from gateway.stores.dynamodb import DynamoDBStore
    from gateway.stores.file import FileStore

    if isinstance(store, FileStore):
        return store.path.exists()  # through a symlink: its target
    if isinstance(store, DynamoDBStore):
        return store.exists()
    return True  # memory: one process's own


def store_target(store: Store, raw: str, target: Target) -> dict[str, Any]:
    """The store as ``status --json`` names it (``target``), and which setting chose it."""
    facts = store_facts(store, raw)
    facts.pop("key_given", None)
    return {**facts, "chosen_by": target.store_chosen_by or "the default", "site": target.site.name if target.site else None}


def say_store(store: Store, raw: str, target: Target) -> dict[str, Any]:
    """Names the store on stderr before the command reads or writes it; its facts."""
    facts = store_facts(store, raw)
    say(f"store: {store_summary(facts)} ({target.store_chosen_by or 'the default'})")
    return facts


def gateway_target(client: AdminClient, target: Target) -> dict[str, Any]:
    """The gateway gone through and the store its detailed health says it reads, named on stderr."""
    from gateway.cli.waiting import store_read

    reads = store_read(client.health())
    said = f"which reads {shown(reads)}" if reads is not None else "which does not say which store it reads"
    say(f"gateway: {client.base} ({target.url_chosen_by}), {said}")
    return {
        "kind": "gateway",
        "url": client.base,
        "store": reads,
        "chosen_by": target.url_chosen_by,
        "site": target.site.name if target.site else None,
    }
