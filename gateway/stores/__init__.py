"""The stores that can hold the maintenance state, chosen by ``GATEWAY_STORE``."""

from __future__ import annotations

from gateway.stores.base import Store, apply_change, change_state
from gateway.stores.threads import call_off_loop

__all__ = ["Store", "apply_change", "call_off_loop", "change_state", "open_store", "parse_store_url"]

SCHEMES = ("file:", "memory:", "dynamodb://")


def parse_store_url(raw: str) -> tuple[str, str]:
    """Split a store URL into its kind and argument; ValueError says what is wrong."""
    value = raw.strip()
    if value.startswith("file:"):
        path = value[len("file:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError("file: needs a path, e.g. file:maintenance-state.json")
        return "file", path
    if value == "memory:":
        return "memory", ""
    if value.startswith("dynamodb://"):
        from gateway.stores.dynamodb import DynamoDBLocation

        DynamoDBLocation.parse(value)
        return "dynamodb", value
    raise ValueError(f"unknown store; expected one of {', '.join(s + '...' for s in SCHEMES)}")


def open_store(raw: str) -> Store:
    kind, argument = parse_store_url(raw)
    if kind == "file":
        from gateway.stores.file import FileStore

        return FileStore(argument)
    if kind == "dynamodb":
        from gateway.stores.dynamodb import DynamoDBLocation, DynamoDBStore

        return DynamoDBStore(DynamoDBLocation.parse(argument))
    from gateway.stores.memory import MemoryStore

    return MemoryStore()
