"""The stack's table and task role, proved against moto: the table is the layout the gateway
expects, and the task role allows exactly the DynamoDB actions the gateway calls."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import boto3

from gateway.state import switched_on
from gateway.stores import change_state, open_store
from tests.stack import REGION, api_calls, render
from tests.support import BIN, DynamoDBServer, base_env


def test_the_stack_table_is_what_the_gateway_expects(log_dir: Path) -> None:
    stack = render()
    create_table = next(call for call in api_calls(stack) if call.operation == "CreateTable")
    table_name = create_table.params["TableName"]
    server = DynamoDBServer(log_dir, name="moto-cloudformation")
    try:
        # The CreateTable call CloudFormation makes for the stack's table.
        boto3.client("dynamodb", endpoint_url=server.url, region_name=REGION).create_table(**create_table.params)
        # The gateway's own store URL from the task definition, pointed at moto.
        url = stack.environment("gateway")["GATEWAY_STORE"] + f"&endpoint_url={server.url}"
        result = subprocess.run(
            [str(BIN / "maintenance-gateway"), "init-table"],
            env={**base_env(), "GATEWAY_STORE": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        table = boto3.client("dynamodb", endpoint_url=server.url, region_name=REGION).describe_table(
            TableName=table_name
        )["Table"]
    finally:
        server.stop()
    # init-table checks the key schema: "already exists" means the template's keys are the gateway's.
    assert result.returncode == 0, result.stderr
    assert "already exists" in result.stdout
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_the_task_role_allows_exactly_what_the_gateway_calls(log_dir: Path) -> None:
    stack = render()
    (policy,) = stack.properties("TaskRole")["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    allowed = {action for statement in statements for action in statement["Action"]}
    assert all(statement["Resource"] == stack.physical["StateTable"]["Arn"] for statement in statements)

    server = DynamoDBServer(log_dir, name="moto-policy", record=True)
    try:
        url = server.store_url("maintenance-gateway", key="prod")
        store = open_store(url)
        store.create_table()  # an operator's step (init-table), not the task's
        server.recording.unlink()
        store.read()
        change_state(store, lambda s: switched_on(s, now=time.time(), actor="policy"))
        store.history()
        used: set[str] = set()
        for line in server.recording.read_text().splitlines():
            entry = json.loads(line)
            headers = {key.lower(): value for key, value in entry["headers"].items()}
            operation = headers["x-amz-target"].split(".", 1)[1]
            if operation == "TransactWriteItems":
                body = base64.b64decode(entry["body"]) if entry.get("body_encoded") else entry["body"].encode()
                # IAM checks each action inside a transaction.
                used |= {f"dynamodb:{kind}Item" for item in json.loads(body)["TransactItems"] for kind in item}
            else:
                used.add(f"dynamodb:{operation}")
    finally:
        server.stop()
    assert used == allowed
