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
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.errors import ConflictError, StateError, StoreBlocksChange, StoreError
from gateway.state import MAX_ACTOR_LENGTH, MAX_VERSION, MaintenanceState, safe_text
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
_RECORD_DIGITS = 12
# Hand-made keys passed over before giving up (a page of keys is a few KiB).
_RECORD_KEYS_PER_PAGE = 50
_MAX_RECORD_KEY_PAGES = 20
# What a history record may hold beside the fields every store writes (see ``history_record``).
_RECORD_EXTRAS = ("aws_caller",)
# The AWS identity is asked for with at most these timeouts, and once: it must not hold up a write.
MAX_IDENTITY_TIMEOUT = 2.0


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


def chosen_region(location: DynamoDBLocation) -> str | None:
    """The region named for the store: the URL's ``region=``, else ``AWS_REGION`` (which ECS sets
    and the AWS CLI reads, but botocore does not); None leaves it to boto3's own chain
    (``AWS_DEFAULT_REGION``, the profile's ``region`` in ~/.aws/config)."""
    return location.region or os.environ.get("AWS_REGION", "").strip() or None


NO_REGION = (
    "no AWS region: add region=REGION to the URL (dynamodb://TABLE?key=KEY&region=eu-west-1), "
    "or set AWS_REGION or AWS_DEFAULT_REGION"
)


def require_region(location: DynamoDBLocation) -> None:
    """ValueError (naming ``region``) when no region is named for the store and boto3 would find
    none either: botocore would raise NoRegionError at the first read, as a traceback."""
    if chosen_region(location) or os.environ.get("AWS_DEFAULT_REGION", "").strip():
        return
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        region = botocore.session.Session().get_config_variable("region")
    except BotoCoreError as exc:  # AWS_PROFILE naming a profile that is not there
        raise ValueError(f"no AWS region in the URL, and the AWS configuration cannot be read ({exc})") from None
    if not region:
        raise ValueError(NO_REGION)


def _plain(value: Any) -> Any:
    """DynamoDB numbers arrive as Decimal; the state wants int."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class DynamoDBStore:
    def __init__(self, location: DynamoDBLocation, client: Any = None, write_client: Any = None) -> None:
        self.location = location
        self.description = f"dynamodb://{location.table}?key={location.key}"
        # The session the clients were made with, so the caller identity is asked with their credentials.
        self._session: Any = None
        if client is None or write_client is None:
            import boto3

            self._session = boto3.session.Session(region_name=chosen_region(location))
            client, write_client = self._clients(location, self._session)
        self._client = client
        self._write_client = write_client
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._deserialize = TypeDeserializer().deserialize
        self._serialize = TypeSerializer().serialize

    @staticmethod
    def _clients(location: DynamoDBLocation, session: Any) -> tuple[Any, Any]:
        # One session and two clients per process, made once: creating a client costs tens of ms.
        from botocore.config import Config

        common = {
            "connect_timeout": location.connect_timeout,
            "read_timeout": location.read_timeout,
            "max_pool_connections": 4,
        }
        # total_max_attempts counts every attempt, the first included; botocore's "max_attempts"
        # counts the retries after it (so 1 there would be two attempts).
        reads = Config(retries={"mode": "standard", "total_max_attempts": location.max_attempts}, **common)
        # Writes are conditional: a blind retry after a timeout could conflict with itself.
        writes = Config(retries={"mode": "standard", "total_max_attempts": 1}, **common)
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

    @property
    def region(self) -> str | None:
        """The region the store's clients use (their own, whichever way it was chosen)."""
        meta = getattr(self._client, "meta", None)
        region = getattr(meta, "region_name", None)
        return region if isinstance(region, str) else self.location.region

    def exists(self) -> bool:
        """Whether the state item is there: a store never written, like a mistyped key, reads as
        off, version 0. One strongly consistent GetItem of the key alone."""
        response = self._call(
            self._client,
            "get_item",
            TableName=self.location.table,
            Key=self._key(STATE_SORT_KEY),
            ConsistentRead=True,
            ProjectionExpression="pk",
        )
        return response.get("Item") is not None

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

    def write(
        self, state: MaintenanceState, previous: MaintenanceState | None = None, record: Mapping[str, str] | None = None
    ) -> MaintenanceState:
        expected = expected_version(state, previous)
        for attempt in (1, 2):
            record_exists = False
            try:
                self._transact(state, expected, previous, record)
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
                raise StoreBlocksChange(
                    f"DynamoDB {self.location.table} already holds the history record of version {state.version}, "
                    f"under a key out of version order (written by hand?); remove or rename it; nothing was changed"
                )
        raise StoreError(f"DynamoDB write to {self.location.table} did not go through twice; nothing was changed")

    def _transact(
        self, state: MaintenanceState, expected: int, previous: MaintenanceState | None, extra: Mapping[str, str] | None
    ) -> None:
        item = {name: value for name, value in state.to_item().items() if value is not None}
        record = history_record(previous, state, extra)
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
                    **{name: record[name] for name in _RECORD_EXTRAS if isinstance(record.get(name), str)},
                }
            )
        return records

    def last_recorded_version(self) -> int:
        # The newest record by sort key, read strongly consistent as the state is for a write: a
        # record written a moment ago by another writer must count. Keys that are not a
        # record's (``history#9-restored``, written by hand) sort among them and are passed over.
        query: dict[str, Any] = {
            "TableName": self.location.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": {"S": self.location.key},
                ":first": {"S": _FIRST_RECORD},
                ":last": {"S": _LAST_RECORD},
            },
            "ProjectionExpression": "sk",
            "ScanIndexForward": False,
            "Limit": _RECORD_KEYS_PER_PAGE,
            "ConsistentRead": True,
        }
        for _ in range(_MAX_RECORD_KEY_PAGES):
            response = self._call(self._client, "query", **query)
            for raw in response.get("Items", []):
                suffix = raw.get("sk", {}).get("S", "").removeprefix(HISTORY_PREFIX)
                # The gateway's own keys: the version in 12 digits or more (the first such key down
                # is the newest; more digits than 12 only a hand-made version past 10^12 has).
                if len(suffix) >= _RECORD_DIGITS and suffix.isascii() and suffix.isdigit() and int(suffix) <= MAX_VERSION:
                    return int(suffix)
            if "LastEvaluatedKey" not in response:
                return 0
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        raise StoreBlocksChange(
            f"DynamoDB {self.location.table} holds more than {_RECORD_KEYS_PER_PAGE * _MAX_RECORD_KEY_PAGES} "
            f"history keys of item {self.location.key!r} that are not the gateway's (written by hand?); nothing was changed"
        )

    def caller_identity(self) -> str:
        """The ARN of the AWS identity this store's credentials belong to (STS GetCallerIdentity),
        for the history of a change the CLI writes: asked once, with the store's session, region and
        endpoint, short timeouts and no retry. StoreError says why when it cannot be had."""
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        location = self.location
        config = Config(
            connect_timeout=min(location.connect_timeout, MAX_IDENTITY_TIMEOUT),
            read_timeout=min(location.read_timeout, MAX_IDENTITY_TIMEOUT),
            # total_max_attempts: botocore's "max_attempts" counts the retries, not the attempts.
            retries={"mode": "standard", "total_max_attempts": 1},
        )
        session = self._session if self._session is not None else boto3.session.Session()
        try:
            client = session.client("sts", config=config, region_name=location.region, endpoint_url=location.endpoint_url)
            try:
                arn = client.get_caller_identity().get("Arn")
            finally:
                client.close()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StoreError(f"STS GetCallerIdentity: {error.get('Code', 'Unknown')}: {error.get('Message', '')}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"STS GetCallerIdentity: {exc}") from exc
        if not isinstance(arn, str) or not arn:
            raise StoreError("STS GetCallerIdentity answered without an Arn")
        return safe_text(arn)[:MAX_ACTOR_LENGTH]

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
