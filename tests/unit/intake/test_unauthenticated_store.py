"""The hourly budget of stored unauthenticated bytes (orb_bridge.intake.unauthenticated_store), on moto's DynamoDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.intake.unauthenticated_store import KEY_PREFIX, UnauthenticatedStoreBudget, keep_refused_batch

TABLE = "budget"
# 2026-11-02T10:59:59Z, the last second of an hour.
END_OF_HOUR = 1_793_617_199.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        aws.reset_clients()
        client = aws.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
    aws.reset_clients()


def test_spending_stops_exactly_at_the_budget_and_never_over_spends(dynamodb: Any) -> None:
    budget = UnauthenticatedStoreBudget(TABLE, 1000, clock=Clock(END_OF_HOUR))
    assert budget.spend(600).granted
    refused = budget.spend(401)  # 1,001 > 1,000: nothing of it is spent
    assert not refused.granted and refused.reason == "this hour's budget of 1000 bytes is spent"
    assert budget.spend(400).granted  # exactly the budget
    assert not budget.spend(1).granted
    [item] = dynamodb.scan(TableName=TABLE)["Items"]
    assert item["stored_bytes"] == {"N": "1000"}


def test_containers_share_one_budget_through_the_table(dynamodb: Any) -> None:
    clock = Clock(END_OF_HOUR)
    first, second = (UnauthenticatedStoreBudget(TABLE, 1000, clock=clock) for _ in range(2))
    assert first.spend(700).granted
    assert not second.spend(700).granted
    assert second.spend(300).granted and not first.spend(1).granted


def test_each_hour_has_its_own_item_expired_by_the_tables_ttl(dynamodb: Any) -> None:
    clock = Clock(END_OF_HOUR)
    budget = UnauthenticatedStoreBudget(TABLE, 1000, clock=clock)
    assert budget.spend(1000).granted and not budget.spend(1).granted
    clock.now += 1  # 11:00:00, a new hour
    assert budget.spend(1000).granted
    items = {item["id"]["S"]: item for item in dynamodb.scan(TableName=TABLE)["Items"]}
    assert sorted(items) == [KEY_PREFIX + "2026-11-02T10", KEY_PREFIX + "2026-11-02T11"]
    # The webhook table's TTL attribute: an hour after its hour ends (epoch seconds).
    assert items[KEY_PREFIX + "2026-11-02T10"]["expiration"] == {"N": str(int(END_OF_HOUR) + 1 + 3600)}


def test_a_batch_larger_than_the_budget_or_a_zero_budget_never_reaches_the_table(dynamodb: Any) -> None:
    assert "larger than the hourly budget" in UnauthenticatedStoreBudget(TABLE, 1000).spend(1001).reason
    assert "is off" in UnauthenticatedStoreBudget(TABLE, 0).spend(1).reason
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


def test_fails_closed_when_the_table_cannot_be_read_or_is_not_configured(dynamodb: Any, caplog) -> None:
    outage = UnauthenticatedStoreBudget("no-such-table", 1000).spend(1)
    assert not outage.granted and outage.reason == "the budget table could not be read (fail closed)"
    assert [record.error for record in caplog.records] == ["ResourceNotFoundException"]
    unset = UnauthenticatedStoreBudget("", 1000).spend(1)
    assert not unset.granted and "fail closed" in unset.reason


# A zero budget refuses every batch without a table call.
REFUSING = UnauthenticatedStoreBudget("", 0)


def test_beyond_the_budget_a_batch_leaves_one_small_summary(dynamodb: Any) -> None:
    elements = [{"type": "track", "messageId": f"m-{n}", "context": {"pad": "x" * 5000}} for n in range(300)]
    raw = json.dumps(elements).encode()
    kept = keep_refused_batch(raw, elements, "", REFUSING)
    [summary] = [json.loads(record) for record in kept.records]
    assert (kept.events_not_stored, summary["event_count"], summary["body_bytes"]) == (300, 300, len(raw))
    assert summary["stored"] == "summary only" and summary["replayable"] is False
    assert summary["body_excerpt"] == raw[:1024].decode() and len(kept.records[0]) < 2048


def test_within_the_budget_a_batch_is_kept_whole_and_its_records_are_what_is_counted(dynamodb: Any) -> None:
    elements = [{"type": "track", "messageId": f"m-{n}", "context": {"pad": "x" * 5000}} for n in range(300)]
    budget = UnauthenticatedStoreBudget(TABLE, 10 * 1024 * 1024, clock=Clock(END_OF_HOUR))
    kept = keep_refused_batch(json.dumps(elements).encode(), elements, "", budget)
    assert not kept.why_not_stored and len(kept.records) > 1
    assert [e for r in kept.records for e in json.loads(r)["segment_events"]] == elements
    [item] = dynamodb.scan(TableName=TABLE)["Items"]
    assert int(item["stored_bytes"]["N"]) == sum(len(record.encode()) for record in kept.records)


def test_an_unreadable_body_counts_as_one_event_not_stored() -> None:
    kept = keep_refused_batch(b"[" + b"x" * 20_000, None, "body is not valid JSON", REFUSING)
    [summary] = [json.loads(record) for record in kept.records]
    assert kept.events_not_stored == 1 and "event_count" not in summary
    assert summary["errors"][1] == "body is not valid JSON" and len(summary["body_excerpt"]) == 1024
