"""``dynamodb://TABLE?key=KEY``: the state shared by every task of a fleet.

Table layout: partition key ``pk`` (the environment's key), sort key ``sk``. The
state is the item ``sk = "state"``; every write also puts an audit item
``sk = "history#<version>"`` in the same transaction, so the history cannot
miss a change and is read with one Query. A record is put only where none is
(a version is never reused: a change is numbered past the newest record).

Reads are single eventually consistent GetItems with short timeouts and boto3's
``standard`` retries. Writes are conditional on the version and are not retried
blindly: after a timeout the item is read again, and the write counts as done
if it landed, is retried if nothing changed, and is a conflict otherwise.
botocore's exceptions are translated into StoreError/ConflictError here and
nowhere else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.errors import ConflictError, StateError, StoreError
from gateway.state import MAX_VERSION, MaintenanceState
from gateway.stores.base import expected_version, history_record

STATE_SORT_KEY = "state"
HISTORY_PREFIX = "history#"

_CONDITION = "attribute_not_exists(pk) OR version = :expected"
# A history record is never overwritten: a change whose version was used before fails whole.
_NEW_RECORD = "attribute_not_exists(sk)"
# The sort keys of history records (``history#`` and the version in 12 digits, more for a
# version past 10^12): the range a Query in version order reads, leaving out hand-made keys.
_FIRST_RECORD = f"{HISTORY_PREFIX}0"
_LAST_RECORD = HISTORY_PREFIX + "9" * len(str(MAX_VERSION))


@dataclass(frozen=True)
class DynamoDBLocation:
    table: str
    key: str = "default"
    region: str | None = None
    endpoint_url: str | None = None
    connect_timeout: float = 1.0
    read_timeout: float = 1.0
    max_attempts: int = 3

    @classmethod
    def parse(cls, raw: str) -> DynamoDBLocation:
        """Parse ``dynamodb://TABLE?key=KEY&region=R&endpoint_url=URL&connect_timeout=S&read_timeout=S&max_attempts=N``."""
        parts = urlsplit(raw.strip())
        table = parts.netloc
        if not table or parts.path not in ("", "/"):
            raise ValueError("expected dynamodb://TABLE?key=KEY (the table name, then options)")
        if not all(ch.isalnum() or ch in "_-." for ch in table) or not 3 <= len(table) <= 255:
            raise ValueError(f"{table!r} is not a DynamoDB table name")
        options: dict[str, Any] = {}
        for name, values in parse_qs(parts.query, keep_blank_values=True, strict_parsing=False).items():
            value = values[-1]
            if name in ("key", "region", "endpoint_url"):
                if not value:
                    raise ValueError(f"{name} is empty")
                options[name] = value
            elif name in ("connect_timeout", "read_timeout"):
                try:
                    options[name] = float(value)
                except ValueError:
                    raise ValueError(f"{name} must be a number of seconds") from None
                if not options[name] > 0:
                    raise ValueError(f"{name} must be > 0")
            elif name == "max_attempts":
                if not value.isdigit() or int(value) < 1:
                    raise ValueError("max_attempts must be a whole number >= 1")
                options[name] = int(value)
            else:
                raise ValueError(f"unknown option {name!r}")
        endpoint = options.get("endpoint_url")
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError("endpoint_url must be an http:// or https:// URL")
        return cls(table=table, **options)


def _plain(value: Any) -> Any:
    """DynamoDB numbers arrive as Decimal; the state wants int."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class DynamoDBStore:
    def __init__(self, location: DynamoDBLocation, client: Any = None, write_client: Any = None) -> None:
        self.location = location
        self.description = f"dynamodb://{location.table}?key={location.key}"
        if client is None or write_client is None:
            client, write_client = self._clients(location)
        self._client = client
        self._write_client = write_client
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._deserialize = TypeDeserializer().deserialize
        self._serialize = TypeSerializer().serialize

    @staticmethod
    def _clients(location: DynamoDBLocation) -> tuple[Any, Any]:
        # One session and two clients per process, made once: creating a client costs tens of ms.
        import boto3
        from botocore.config import Config

        session = boto3.session.Session()
        common = {
            "connect_timeout": location.connect_timeout,
            "read_timeout": location.read_timeout,
            "max_pool_connections": 4,
        }
        reads = Config(retries={"mode": "standard", "max_attempts": location.max_attempts}, **common)
        # Writes are conditional: a blind retry after a timeout could conflict with itself.
        writes = Config(retries={"mode": "standard", "max_attempts": 1}, **common)
        kwargs = {"region_name": location.region, "endpoint_url": location.endpoint_url}
        return session.client("dynamodb", config=reads, **kwargs), session.client("dynamodb", config=writes, **kwargs)

    # -- translation at the boundary

    def _call(self, client: Any, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(client, operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "Unknown")
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise _ConditionFailed(exc.response) from exc
            raise StoreError(f"DynamoDB {operation} on {self.location.table}: {code}: {error.get('Message', '')}") from exc
        except BotoCoreError as exc:
            # Timeouts, refused connections, missing credentials: one kind of failure for the gateway.
            raise StoreError(f"DynamoDB {operation} on {self.location.table}: {exc}") from exc

    def _key(self, sort_key: str) -> dict[str, Any]:
        return {"pk": {"S": self.location.key}, "sk": {"S": sort_key}}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: _plain(self._deserialize(value)) for name, value in item.items()}

    # -- the Store protocol

    def read(self, consistent: bool = False) -> MaintenanceState:
        response = self._call(
            self._client,
            "get_item",
            TableName=self.location.table,
            Key=self._key(STATE_SORT_KEY),
            # Eventually consistent reads cost half; a refresh every few seconds tolerates the lag.
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        if item is None:
            return MaintenanceState()
        try:
            return MaintenanceState.from_item(self._decode(item))
        except StateError as exc:
            raise StoreError(f"DynamoDB item {self.location.key!r} in {self.location.table}: {exc}") from exc

    def write(self, state: MaintenanceState, previous: MaintenanceState | None = None) -> MaintenanceState:
        expected = expected_version(state, previous)
        for attempt in (1, 2):
            record_exists = False
            try:
                self._transact(state, expected, previous)
                return state
            except _ConditionFailed as failed:
                # A newer version, a history record of this version already there, or a
                # transaction that collided with another: look.
                record_exists = failed.failed_item(1)
            except StoreError:
                if attempt == 2:
                    raise
                # A timeout leaves the outcome unknown: look before trying again.
            current = self.read(consistent=True)
            if current == state:
                return state  # an earlier attempt that timed out had landed
            if current.version != expected:
                raise ConflictError(expected, current.version)
            if record_exists:
                # apply_change numbers a change past the history, so only a record written by
                # hand (or out of key order) can be in the way; it is kept, and nothing changes.
                raise StoreError(
                    f"DynamoDB {self.location.table} already holds the history record of version {state.version}; nothing was changed"
                )
        raise StoreError(f"DynamoDB write to {self.location.table} did not go through twice; nothing was changed")

    def _transact(self, state: MaintenanceState, expected: int, previous: MaintenanceState | None) -> None:
        item = {name: value for name, value in state.to_item().items() if value is not None}
        record = history_record(previous, state)
        record = {
            **record,
            "old": json.dumps(record["old"]),
            "new": json.dumps(record["new"]),
        }
        self._call(
            self._write_client,
            "transact_write_items",
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.location.table,
                        "Item": {**self._key(STATE_SORT_KEY), **self._encode(item)},
                        "ConditionExpression": _CONDITION,
                        "ExpressionAttributeValues": {":expected": {"N": str(expected)}},
                    }
                },
                {
                    "Put": {
                        "TableName": self.location.table,
                        "Item": {**self._key(f"{HISTORY_PREFIX}{state.version:012d}"), **self._encode(record)},
                        "ConditionExpression": _NEW_RECORD,
                    }
                },
            ],
        )

    def _encode(self, values: dict[str, Any]) -> dict[str, Any]:
        return {name: self._serialize(value) for name, value in values.items()}

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        response = self._call(
            self._client,
            "query",
            TableName=self.location.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": self.location.key}, ":prefix": {"S": HISTORY_PREFIX}},
            ScanIndexForward=False,
            Limit=limit,
        )
        records = []
        for raw in response.get("Items", []):
            record = self._decode(raw)
            records.append(
                {
                    "version": record.get("version"),
                    "at": record.get("at"),
                    "by": record.get("by", ""),
                    "reason": record.get("reason", ""),
                    "old": json.loads(record["old"]) if record.get("old") else None,
                    "new": json.loads(record["new"]) if record.get("new") else None,
                }
            )
        return records

    def last_recorded_version(self) -> int:
        # The newest record by sort key, read strongly consistent as the state is for a write: a
        # record written a moment ago by another writer must count.
        response = self._call(
            self._client,
            "query",
            TableName=self.location.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":pk": {"S": self.location.key},
                ":first": {"S": _FIRST_RECORD},
                ":last": {"S": _LAST_RECORD},
            },
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        for raw in response.get("Items", []):
            suffix = raw.get("sk", {}).get("S", "").removeprefix(HISTORY_PREFIX)
            if suffix.isascii() and suffix.isdigit() and int(suffix) <= MAX_VERSION:
                return int(suffix)
        return 0

    def create_table(self, wait: bool = True) -> bool:
        """Create the table (on-demand billing); False when it already exists with the right keys."""
        try:
            self._call(
                self._write_client,
                "create_table",
                TableName=self.location.table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                BillingMode="PAY_PER_REQUEST",
            )
            created = True
        except StoreError as exc:
            if "ResourceInUseException" not in str(exc):
                raise
            created = False
        description = self._call(self._write_client, "describe_table", TableName=self.location.table)["Table"]
        keys = {(part["AttributeName"], part["KeyType"]) for part in description["KeySchema"]}
        if keys != {("pk", "HASH"), ("sk", "RANGE")}:
            raise StoreError(
                f"table {self.location.table} exists with keys {sorted(keys)}; expected pk (HASH) and sk (RANGE)"
            )
        if wait and description.get("TableStatus") != "ACTIVE":
            self._write_client.get_waiter("table_exists").wait(TableName=self.location.table)
        return created

    def close(self) -> None:
        for client in (self._client, self._write_client):
            close = getattr(client, "close", None)
            if close is not None:
                close()


class _ConditionFailed(Exception):
    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.response = response

    def failed_item(self, index: int) -> bool:
        """Whether the condition of the transaction's item ``index`` is one that failed."""
        reasons = self.response.get("CancellationReasons") or []
        return index < len(reasons) and reasons[index].get("Code") == "ConditionalCheckFailed"
