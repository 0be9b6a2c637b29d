"""The shared pacer (DynamoDB GCRA) under moto, with an injected clock: no sleeping."""

from __future__ import annotations

import threading

import boto3
import httpx
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.ingest.pacing import DynamoDbPacer, LocalPacer, NoPacing, container_share, pacer_from_settings
from orb_bridge.ingest.settings import IngestSettings
from tests.support.ingest_doubles import FakeOrb, make_service, messages_for, usage_event


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def table():
    with mock_aws():
        aws.reset_clients()
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="pacing",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield "pacing"
    aws.reset_clients()


def test_events_per_minute_space_requests_by_their_size(table):
    clock = Clock()
    pacer = DynamoDbPacer(table, requests_per_second=100, events_per_minute=10_000, clock=clock)
    waits = [pacer.reserve(500, latest_start_seconds=60).wait_seconds for _ in range(4)]
    # 500 events = 3 s of a 10,000/min budget; the first starts at once.
    assert waits == pytest.approx([0, 3, 6, 9])


def test_a_slot_beyond_the_latest_start_is_refused_and_reserves_nothing(table):
    clock = Clock()
    pacer = DynamoDbPacer(table, requests_per_second=0, events_per_minute=10_000, clock=clock)
    for _ in range(3):
        assert pacer.reserve(500, latest_start_seconds=7).granted
    refused = pacer.reserve(500, latest_start_seconds=7)
    assert not refused.granted and refused.wait_seconds == pytest.approx(9)
    clock.now += 9  # the budget comes back with time
    assert pacer.reserve(500, latest_start_seconds=0).wait_seconds == pytest.approx(0)


def test_an_idle_bucket_does_not_save_up_a_burst(table):
    clock = Clock()
    pacer = DynamoDbPacer(table, requests_per_second=10, events_per_minute=0, clock=clock)
    pacer.reserve(1, 10)
    clock.now += 3600
    waits = [pacer.reserve(1, 10).wait_seconds for _ in range(3)]
    assert waits == pytest.approx([0, 0.1, 0.2])


class AtomicWrites:
    """DynamoDB applies a conditional write atomically; moto's in-process backend does not
    lock between threads, so each call is serialised here as the service would."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self._client = boto3.client("dynamodb", region_name="us-east-1")

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(**kwargs):
            with self._lock:
                return method(**kwargs)

        return call


def test_concurrent_invocations_share_one_budget_and_never_get_the_same_slot(table):
    """Twenty threads as if in separate invocations (each its own pacer and client), on the one
    budget item: 500 events cost 3 s (the events limit; the request limit's 10 ms is less)."""
    clock = Clock()
    starts: list[float] = []
    lock = threading.Lock()

    def invocation() -> None:
        pacer = DynamoDbPacer(table, 100, 10_000, client=AtomicWrites(), clock=clock)
        for _ in range(3):
            slot = pacer.reserve(500, 600)
            assert slot.granted
            with lock:
                starts.append(round(clock.now + slot.wait_seconds, 3))

    threads = [threading.Thread(target=invocation) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(starts) == [clock.now + 3 * n for n in range(60)]


def test_hold_off_pushes_every_invocation_past_orbs_retry_after(table):
    clock = Clock()
    pacer = DynamoDbPacer(table, 100, 10_000, clock=clock)
    pacer.hold_off(30)
    assert pacer.reserve(10, 60).wait_seconds == pytest.approx(30)
    assert not pacer.reserve(10, 10).granted


def test_no_pacing_needs_no_table_and_makes_no_aws_call():
    assert isinstance(pacer_from_settings(0, 0, ""), NoPacing)
    settings = IngestSettings.from_env({"ORB_API_KEY": "k", "REJECTED_QUEUE_URL": "q"})
    assert not settings.paced
    with pytest.raises(ConfigurationError, match="ORB_PACING_TABLE_NAME is required"):
        IngestSettings.from_env({"ORB_API_KEY": "k", "REJECTED_QUEUE_URL": "q", "ORB_EVENTS_PER_MINUTE": "10000"})
    paced = IngestSettings.from_env(
        {
            "ORB_API_KEY": "k",
            "REJECTED_QUEUE_URL": "q",
            "ORB_REQUESTS_PER_SECOND": "100",
            "ORB_EVENTS_PER_MINUTE": "10000",
            "ORB_PACING_TABLE_NAME": "t",
        }
    )
    assert (paced.requests_per_second, paced.events_per_minute, paced.pacing_table_name) == (100, 10_000, "t")


def test_an_invocation_paced_beyond_its_time_defers_the_rest_instead_of_failing(table, rejected_queue):
    """10,000 events at 10,000/min need a minute: with 20 s left, what cannot start in time is
    deferred (re-enqueued by the handler, not counted as a failed delivery)."""
    clock = Clock()
    orb = FakeOrb()
    pacer = DynamoDbPacer(table, 100, 10_000, client=AtomicWrites(), clock=clock)
    # One request at a time: the fake clock moves only in the pacer's waits, deterministically.
    service = make_service(
        orb, rejected_queue, request_timeout_seconds=2.0, safety_margin_seconds=1.0, max_concurrent_requests=1
    )
    service.pacer, service.sleep, service.monotonic = pacer, clock.sleep, clock
    deadline = clock.now + 20

    report = service.ingest(messages_for([usage_event(i) for i in range(10_000)]), lambda: deadline - clock.now)

    assert report.failed_message_ids == []
    assert report.events_ingested == len(orb.requests) * 500
    assert report.events_ingested + len(report.deferred) == 10_000
    assert len(orb.requests) == 6  # slots at 0, 3, ... 15 s; 18 s + 2 s timeout + 1 s margin > 20 s
    assert min(report.deferred.values()) == pytest.approx(3)  # the next slot is 3 s away


def test_after_a_429_no_new_request_starts_and_its_events_wait_at_least_retry_after(rejected_queue):
    orb = FakeOrb()
    orb.scripted = [
        lambda: httpx.Response(
            429,
            headers={"retry-after": "7"},
            json={"type": "https://docs.withorb.com/reference/error-responses#429-too-many-requests", "status": 429},
        )
    ]
    service = make_service(orb, rejected_queue, max_events_per_request=10, max_concurrent_requests=1)
    service.monotonic = lambda: 1000.0  # the waits, as of the report: no time passes here
    report = service.ingest(messages_for([usage_event(i) for i in range(50)]), lambda: 60.0)

    assert len(orb.requests) == 1 and report.rate_limited == 1
    assert report.failed_message_ids == []
    assert report.deferred == {f"msg-{i}": 7.0 for i in range(50)}


def test_a_pacing_table_that_cannot_be_used_paces_by_the_containers_share_instead(rejected_queue):
    """Before: no request, every message a failed delivery (dead-lettered after MaxReceiveCount).
    Now: sent at 1/INGEST_MAX_CONCURRENCY of the budget, the table asked once per invocation."""
    clock = Clock()
    orb = FakeOrb()
    sent_at: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now)
        return orb(request)

    with mock_aws():  # no table: every reservation fails
        client = CountingClient(boto3.client("dynamodb", region_name="us-east-1"))
        service = make_service(answer, rejected_queue, max_events_per_request=5, max_concurrent_requests=1)
        service.pacer = DynamoDbPacer("missing", 0, 600, client=client, clock=clock)
        service.local_pacer = LocalPacer(0, 600 / 5, clock=clock)  # 120 events/min: 5 events every 2.5 s
        service.sleep, service.monotonic = clock.sleep, clock
        deadline = clock.now + 60
        report = service.ingest(messages_for([usage_event(i) for i in range(20)]), lambda: deadline - clock.now)
    assert report.failed_message_ids == [] and report.deferred == {}
    assert sorted(orb.sent_keys()) == sorted(f"key-{i}" for i in range(20))
    assert [round(t - sent_at[0], 3) for t in sent_at] == [0, 2.5, 5, 7.5]
    assert report.pacing_table_errors == 1 and client.calls == 1


class CountingClient:
    def __init__(self, client) -> None:
        self.client, self.calls = client, 0

    def __getattr__(self, name):
        self.calls += 1
        return getattr(self.client, name)


def test_the_local_budget_is_the_containers_share_and_outlives_the_invocation():
    share = container_share(100, 10_000, 5)
    assert isinstance(share, LocalPacer) and share is container_share(100, 10_000, 5)
    assert (share.ms_per_request, share.ms_per_event) == (50.0, 30.0)  # 20/s and 2,000/min
    assert isinstance(container_share(0, 0, 5), NoPacing)


def test_the_local_pacer_is_the_tables_gcra():
    clock = Clock()
    pacer = LocalPacer(requests_per_second=0, events_per_minute=10_000, clock=clock)
    assert [pacer.reserve(500, 7).wait_seconds for _ in range(3)] == pytest.approx([0, 3, 6])
    refused = pacer.reserve(500, 7)
    assert not refused.granted and refused.wait_seconds == pytest.approx(9)
    clock.now += 3600  # an idle bucket saves up no burst
    assert [pacer.reserve(500, 60).wait_seconds for _ in range(2)] == pytest.approx([0, 3])
    pacer.hold_off(30)
    assert pacer.reserve(1, 60).wait_seconds == pytest.approx(30)
