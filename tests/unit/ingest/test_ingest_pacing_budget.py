"""One pacing item per Orb request: the single GCRA bucket keeps both of Orb's limits, and costs one
conditional write per granted reservation. Fake clocks only: no sleeping, no timing."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.ingest.pacing import BUDGET_ITEM, DynamoDbPacer, LocalPacer
from tests.support.strategies import fuzz_settings

START = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingClient:
    """DynamoDB with its calls counted by operation."""

    def __init__(self) -> None:
        self.client = boto3.client("dynamodb", region_name="us-east-1")
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(**kwargs)

        return call


def create_table(name: str = "pacing") -> str:
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def table():
    with mock_aws():
        aws.reset_clients()
        yield create_table()
    aws.reset_clients()


def test_one_bucket_charges_each_request_the_larger_of_its_two_costs(table):
    """100 requests/s and 10,000 events/min: 1 event costs 10 ms (the request limit), 500 events
    3 s (the events limit), all on the one item."""
    clock = Clock()
    client = CountingClient()
    pacer = DynamoDbPacer(table, requests_per_second=100, events_per_minute=10_000, client=client, clock=clock)
    waits = [pacer.reserve(events, latest_start_seconds=60).wait_seconds for events in (1, 500, 1, 1)]
    assert waits == pytest.approx([0, 0.01, 3.01, 3.02])
    items = client.client.scan(TableName=table)["Items"]
    assert [item["id"]["S"] for item in items] == [BUDGET_ITEM]
    assert items[0]["tat"]["N"] == str(int(START * 1000) + 3030)


def test_one_update_item_per_granted_reservation_busy_or_idle(table):
    """Before: two items, each an ADD and, on an idle bucket, a failed ADD then a SET (2 to 4
    writes per request). Now one write: busy, ADD; idle, SET, chosen by the last tat seen."""
    clock = Clock()
    client = CountingClient()
    pacer = DynamoDbPacer(table, requests_per_second=100, events_per_minute=10_000, client=client, clock=clock)
    for _ in range(5):  # busy: queued behind each other at the same instant
        assert pacer.reserve(500, latest_start_seconds=60).granted
    assert client.calls == {"update_item": 5}
    for _ in range(5):  # idle: an hour apart
        clock.now += 3600
        assert pacer.reserve(500, latest_start_seconds=60).wait_seconds == 0
    assert client.calls == {"update_item": 10}


def test_a_pacer_whose_hint_is_stale_still_gets_a_slot(table):
    """Another container made the bucket busy after this pacer last saw it idle: its SET fails,
    its ADD queues it behind (two writes, the uncommon case), never the same slot."""
    clock = Clock()
    client = CountingClient()
    ours = DynamoDbPacer(table, 0, 10_000, client=client, clock=clock)
    other = DynamoDbPacer(table, 0, 10_000, clock=clock)
    assert ours.reserve(500, 60).wait_seconds == 0
    clock.now += 3600
    assert other.reserve(500, 60).wait_seconds == 0
    assert ours.reserve(500, 60).wait_seconds == pytest.approx(3)
    assert client.calls == {"update_item": 3}


def test_hold_off_sets_the_one_item(table):
    clock = Clock()
    client = CountingClient()
    pacer = DynamoDbPacer(table, 100, 10_000, client=client, clock=clock)
    pacer.hold_off(30)
    assert client.calls == {"update_item": 1}
    assert pacer.reserve(10, 60).wait_seconds == pytest.approx(30)
    assert client.calls == {"update_item": 2}


limits = st.one_of(
    st.tuples(st.integers(1, 200), st.integers(100, 200_000)),
    st.tuples(st.just(0), st.integers(100, 200_000)),
    st.tuples(st.integers(1, 200), st.just(0)),
)
# (events in the request, ms since the previous request was asked for: often 0, a busy bucket)
requests = st.lists(
    st.tuples(st.integers(1, 500), st.one_of(st.just(0.0), st.floats(0, 5_000, allow_nan=False))),
    min_size=1,
    max_size=40,
)


@fuzz_settings(40)
@given(limits=limits, requests=requests)
def test_the_starts_handed_out_stay_within_both_limits(limits: tuple[int, int], requests: list[tuple[int, float]]):
    """Starts are at least 1/R apart (so never more than R in any second), and in any 60 s window
    the events of the requests started in it, all but the last, stay under E: the bucket advances
    by each request's events' share of the minute before the next may start. (No spacing can bound
    the last one's: a window opening on a 1-event request can end on a 500-event one.) The local
    fallback hands out exactly the same starts."""
    requests_per_second, events_per_minute = limits
    with mock_aws():
        aws.reset_clients()
        clock, local_clock = Clock(), Clock()
        table = DynamoDbPacer(create_table(), requests_per_second, events_per_minute, clock=clock)
        local = LocalPacer(requests_per_second, events_per_minute, clock=local_clock)
        starts: list[tuple[float, int]] = []  # (start in ms since START, events)
        for events, gap_ms in requests:
            clock.now += gap_ms / 1000
            local_clock.now = clock.now
            slot = table.reserve(events, latest_start_seconds=3_600)
            assert slot.granted and slot == local.reserve(events, latest_start_seconds=3_600)
            starts.append(((clock.now - START) * 1000 + slot.wait_seconds * 1000, events))
    aws.reset_clients()

    tolerance = 1e-3  # float seconds to ms and back
    times = [start for start, _ in starts]
    assert times == sorted(times)
    if requests_per_second:
        assert all(b - a >= 1000 / requests_per_second - tolerance for a, b in pairwise(times))
        for i, first in enumerate(times):
            in_second = [t for t in times[i:] if t < first + 1000 - tolerance]
            assert len(in_second) <= requests_per_second
    if events_per_minute:
        for i, (first, _) in enumerate(starts):
            in_minute = [events for t, events in starts[i:] if t < first + 60_000 - tolerance]
            assert sum(in_minute[:-1]) < events_per_minute


@fuzz_settings(30)
@given(
    size=st.sampled_from([1, 10, 100, 250, 500]),
    multiple=st.integers(1, 60),
    count=st.integers(1, 80),
)
def test_with_requests_of_one_size_dividing_the_budget_no_minute_holds_more_than_it(
    size: int, multiple: int, count: int
) -> None:
    events_per_minute = size * multiple
    pacer = LocalPacer(0, events_per_minute, clock=Clock())
    starts = [pacer.reserve(size, latest_start_seconds=1e9).wait_seconds * 1000 for _ in range(count)]
    for i, first in enumerate(starts):
        assert size * sum(1 for t in starts[i:] if t < first + 60_000 - 1e-3) <= events_per_minute
