"""Which archived keys a pass looks up, and that a pass holds only those events' bodies, not the hour's
(tracemalloc peaks with wide margins: deterministic, never timed)."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import boto3
from moto import mock_aws

from bench import reconcile_memory
from orb_bridge.reconcile.selection import KeySelector


def event(number: int, hour: str = "2026-03-02T00") -> dict[str, Any]:
    return {
        "idempotency_key": f"key-{number:07d}",
        "event_name": "api_call",
        "timestamp": f"{hour}:00:00.000Z",
        "properties": {"tokens": number, "model": "small", "note": "x" * 100},
        "external_customer_id": f"cust-{number % 7}",
    }


def select(numbers: list[int], full_check: int, sample_size: int, seed: int = 1, hours: int = 1) -> Any:
    selector = KeySelector(full_check, sample_size, seed, lambda line: json.loads(line)["event"]["timestamp"][:13])
    for number in numbers:
        hour = f"2026-03-02T{number % hours:02d}"
        selector.add(f"key-{number:07d}", json.dumps({"event": event(number, hour)}), hour)
    chosen = selector.selection()
    chosen.events = [json.loads(line)["event"] for line in chosen.lines]  # type: ignore[attr-defined]
    return chosen


def test_at_most_the_full_check_size_every_distinct_key_is_looked_up_once_in_key_order() -> None:
    numbers = [3, 1, 2, 1, 3, 0]  # 1 and 3 archived twice (a request re-sent after a lost answer)
    chosen = select(numbers, full_check=4, sample_size=2)
    assert not chosen.sampled and chosen.total_keys == 4
    assert [e["idempotency_key"] for e in chosen.events] == [f"key-{n:07d}" for n in range(4)]
    assert chosen.events[1] == event(1)  # the body as archived
    assert chosen.unchecked_by_event_hour == {}


def test_above_it_a_seeded_sample_the_same_in_any_order_and_the_rest_counted_per_event_hour() -> None:
    numbers = list(range(1000))
    chosen = select(numbers + numbers[:100], full_check=999, sample_size=50, hours=3)
    assert chosen.sampled and chosen.total_keys == 1000 and len(chosen.events) == 50
    keys = [e["idempotency_key"] for e in chosen.events]
    assert keys == sorted(keys) and len(set(keys)) == 50
    again = select(list(reversed(numbers)), full_check=999, sample_size=50, hours=3)
    assert [e["idempotency_key"] for e in again.events] == keys  # resumed: the same sample
    other = select(numbers, full_check=999, sample_size=50, seed=2, hours=3)
    assert [e["idempotency_key"] for e in other.events] != keys  # another pass: another sample
    assert sum(chosen.unchecked_by_event_hour.values()) == 950
    for index in range(3):
        hour = f"2026-03-02T{index:02d}"
        in_hour = len([n for n in numbers if n % 3 == index])
        sampled = len([e for e in chosen.events if e["timestamp"].startswith(hour)])
        assert chosen.unchecked_by_event_hour[hour] == in_hour - sampled


def test_a_sample_of_the_whole_hour_when_the_sample_is_larger_than_the_hour() -> None:
    chosen = select(list(range(30)), full_check=10, sample_size=100)
    assert chosen.sampled and len(chosen.events) == 30 and chosen.unchecked_by_event_hour == {}


def peak_bytes(action: Any) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_sampled_hour_holds_about_twelve_bytes_per_key_not_its_events() -> None:
    # 20,000 events of ~300 bytes of JSON each: ~30 MB as parsed dicts; the sample keeps 100 of them.
    peak = peak_bytes(lambda: select(list(range(20_000)), full_check=1000, sample_size=100))
    assert peak < 2 * 1024 * 1024


def test_a_pass_over_a_sampled_hour_holds_a_few_objects_at_a_time_not_the_hour() -> None:
    """The whole pass as deployed (reading from S3, choosing, looking up, checkpoint and report):
    10,000 archived events would be ~15 MB held at once; one object of 500 at a time is ~1 MB."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        reconcile_memory.create_resources(s3, dynamodb)
        reconcile_memory.write_hour(s3, 10_000)
        measured = reconcile_memory.measure_pass(s3, dynamodb, full_check_events_per_hour=1000, sample_size=100)
    assert measured["sampled"] and measured["archived_keys"] == 10_000 and measured["checked_keys"] == 100
    assert measured["peak_mb"] < 6
