"""moto's server, as the dev stack runs it, makes each DynamoDB write atomic as DynamoDB does:
of concurrent conditional writes racing for one item, exactly one wins, so no two ingest
workers are ever handed the same pacing slot."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config

from orb_bridge.ingest.pacing import DynamoDbPacer
from orb_bridge_dev.devstack.moto_dynamodb_atomic import PATCHED
from orb_bridge_dev.devstack.moto_server import MotoServerProcess

THREADS = 12


@pytest.mark.parametrize(("module_name", "path"), PATCHED)
def test_every_wrapped_method_still_exists(module_name: str, path: str) -> None:
    value: Any = importlib.import_module(module_name)
    for part in path.split("."):
        value = getattr(value, part)
    assert callable(value), f"{module_name}.{path} is gone: revisit moto_dynamodb_atomic"


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    server = MotoServerProcess()
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=THREADS * 2),
    )
    client.create_table(
        TableName="race",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    yield client
    server.stop()


def all_at_once(task: Any) -> list[Any]:
    """``task(i)`` on THREADS threads released together by a barrier."""
    barrier = threading.Barrier(THREADS, timeout=60)

    def run(i: int) -> Any:
        barrier.wait()
        return task(i)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


@pytest.mark.parametrize("round_number", range(20))
def test_of_concurrent_puts_if_absent_on_one_item_exactly_one_succeeds(dynamodb: Any, round_number: int) -> None:
    def put(i: int) -> bool:
        try:
            dynamodb.put_item(
                TableName="race",
                Item={"id": {"S": f"put-{round_number}"}, "writer": {"N": str(i)}},
                ConditionExpression="attribute_not_exists(id)",
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    assert sum(all_at_once(put)) == 1


@pytest.mark.parametrize("round_number", range(10))
def test_concurrent_workers_are_never_handed_the_same_pacing_slot(dynamodb: Any, round_number: int) -> None:
    """Every worker reads the same clock (the worst case: all take the idle-bucket branch at once);
    the slots must still be one after another, 500 events x 6 ms apart, none shared."""
    now = 1_800_000_000.0 + round_number * 10_000
    pacer = DynamoDbPacer("race", requests_per_second=0, events_per_minute=10_000, client=dynamodb, clock=lambda: now)

    slots = all_at_once(lambda _i: pacer.reserve(500, latest_start_seconds=3_600))

    assert all(slot.granted for slot in slots)
    assert sorted(round(slot.wait_seconds, 3) for slot in slots) == [3.0 * n for n in range(THREADS)]
