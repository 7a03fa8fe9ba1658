"""The DynamoDB store's write rules when the outcome of a write is unknown (a fake client)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from gateway.errors import ConflictError, StoreError
from gateway.state import MaintenanceState, switched_on
from gateway.stores.dynamodb import DynamoDBLocation, DynamoDBStore


class FakeDynamoDB:
    """Holds one state item; each write can be made to time out, before or after it lands."""

    def __init__(self) -> None:
        self.version = 0
        self.item: dict[str, Any] | None = None
        self.plan: list[str] = []  # per write: "ok", "timeout-lost", "timeout-landed", "conflict"
        self.writes = 0

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return {} if self.item is None else {"Item": self.item}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> dict[str, Any]:
        self.writes += 1
        outcome = self.plan.pop(0) if self.plan else "ok"
        put = TransactItems[0]["Put"]
        expected = int(put["ExpressionAttributeValues"][":expected"]["N"])
        if outcome == "conflict" or self.version != expected:
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}}, "TransactWriteItems")
        if outcome == "timeout-lost":
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        self.item = put["Item"]
        self.version = int(put["Item"]["version"]["N"])
        if outcome == "timeout-landed":
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return {}


def store_with(fake: FakeDynamoDB) -> DynamoDBStore:
    return DynamoDBStore(DynamoDBLocation(table="maintenance"), client=fake, write_client=fake)


def next_on(store: DynamoDBStore) -> MaintenanceState:
    return switched_on(store.read(), now=time.time(), actor="ops")


def test_a_write_that_landed_before_timing_out_is_not_written_twice() -> None:
    fake = FakeDynamoDB()
    store = store_with(fake)
    fake.plan = ["timeout-landed"]
    state = next_on(store)
    assert store.write(state) == state
    assert fake.writes == 1  # read back, found in place: no second write, no false conflict
    assert store.read() == state


def test_a_write_that_timed_out_unapplied_is_tried_once_more() -> None:
    fake = FakeDynamoDB()
    store = store_with(fake)
    fake.plan = ["timeout-lost", "ok"]
    state = next_on(store)
    assert store.write(state) == state
    assert fake.writes == 2
    assert store.read() == state


def test_two_timeouts_give_up_without_change() -> None:
    fake = FakeDynamoDB()
    store = store_with(fake)
    fake.plan = ["timeout-lost", "timeout-lost"]
    with pytest.raises(StoreError):
        store.write(next_on(store))
    assert store.read() == MaintenanceState()


def test_someone_else_writing_meanwhile_is_a_conflict() -> None:
    fake = FakeDynamoDB()
    store = store_with(fake)
    mine = next_on(store)
    theirs = switched_on(MaintenanceState(), now=time.time(), actor="other", message="theirs")
    store.write(theirs)
    with pytest.raises(ConflictError) as caught:
        store.write(mine)
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert store.read().message == "theirs"


def test_a_cancelled_transaction_with_nothing_changed_is_retried() -> None:
    fake = FakeDynamoDB()
    store = store_with(fake)
    fake.plan = ["conflict", "ok"]  # e.g. TransactionConflict with another transaction
    state = next_on(store)
    assert store.write(state) == state
    assert fake.writes == 2
