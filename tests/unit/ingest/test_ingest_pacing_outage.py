"""Hours of a pacing-table outage, and of Orb 5xx, on a fake clock (issue 22, item 2).

The ingest queue and its event source are simulated (``tests.support.simulated_sqs``); the
pacing table is moto's, made to fail for 18 hours by a client whose calls raise.
"""

from __future__ import annotations

import itertools
import json

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws import redelivery
from orb_bridge.core import observability
from orb_bridge.ingest import container as ingest_container
from orb_bridge.ingest.pacing import DynamoDbPacer, LocalPacer
from tests.support.ingest_doubles import FakeOrb, make_service, usage_event
from tests.support.simulated_sqs import QUEUE_URL, REJECTED_URL, FakeClock, SimulatedSqs, run_event_source

HOUR = 3600.0
EVENTS_PER_MINUTE = 600  # the configured budget (scaled down: 10 events per request)
CONCURRENCY = 5  # IngestMaxConcurrency: each container's share when the table fails
LOCAL_EVENTS_PER_MINUTE = EVENTS_PER_MINUTE / CONCURRENCY


class TableDown:
    """moto's DynamoDB, failing every call while ``down()`` says so (as an outage does)."""

    def __init__(self, down) -> None:
        self.client = boto3.client("dynamodb", region_name="us-east-1")
        self.down = down
        self.failed_calls = 0

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(**kwargs):
            if self.down():
                self.failed_calls += 1
                error = {"Error": {"Code": "InternalServerError", "Message": "table unavailable"}}
                raise ClientError(error, name)
            return method(**kwargs)

        return call


@pytest.fixture
def simulated(monkeypatch):
    with mock_aws():
        aws.reset_clients()
        clock = FakeClock()
        queue = SimulatedSqs(clock)
        monkeypatch.setattr(aws, "client", lambda service: queue if service == "sqs" else None)
        monkeypatch.setenv("INGEST_QUEUE_URL", QUEUE_URL)
        metrics: list[tuple[float, str, float]] = []
        monkeypatch.setattr(
            observability.metrics, "add_metric", lambda name, unit, value: metrics.append((clock(), name, value))
        )
        yield clock, queue, metrics
    aws.reset_clients()


def orb_recording(clock: FakeClock, orb):
    sent: list[tuple[float, int]] = []  # (time, events) of each request

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((clock(), len(json.loads(request.content)["events"])))
        return orb(request)

    return answer, sent


def use(monkeypatch, service, clock: FakeClock) -> None:
    service.sleep, service.monotonic, service.clock = clock.sleep, clock, clock
    monkeypatch.setattr(ingest_container, "container_service", lambda: service)


def test_hours_of_pacing_table_outage_dead_letter_nothing_and_keep_within_the_local_budget(simulated, monkeypatch):
    """Before: every message a failed delivery while the table is down, nothing reaching Orb;
    after MaxReceiveCount (about 17 hours of hold-backs) good events were dead-lettered."""
    clock, queue, metrics = simulated
    start = clock()
    outage = (start + 600, start + 600 + 18 * HOUR)
    table = TableDown(lambda: outage[0] <= clock() < outage[1])
    table.client.create_table(
        TableName="pacing",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    orb = FakeOrb()
    answer, sent = orb_recording(clock, orb)
    service = make_service(
        answer,
        REJECTED_URL,
        max_events_per_request=10,
        max_concurrent_requests=1,
        requests_per_second=10,
        events_per_minute=EVENTS_PER_MINUTE,
        ingest_max_concurrency=CONCURRENCY,
    )
    service.pacer = DynamoDbPacer("pacing", 10, EVENTS_PER_MINUTE, client=table, clock=clock)
    service.local_pacer = LocalPacer(10 / CONCURRENCY, LOCAL_EVENTS_PER_MINUTE, clock=clock)
    use(monkeypatch, service, clock)
    # 10 events every 5 minutes for 20 hours, and a burst of 300 every 6 hours of the outage.
    steady = [(start + n * 300, usage_event(n * 10 + i).to_message_body()) for n in range(240) for i in range(10)]
    bursts = [outage[0] + HOUR + 6 * HOUR * b for b in range(3)]
    arrivals = steady + [
        (t, usage_event(100_000 * (b + 1) + i).to_message_body()) for b, t in enumerate(bursts) for i in range(300)
    ]

    run_event_source(queue, until=start + 20 * HOUR + 600, arrivals=arrivals)

    assert queue.dead_lettered == [] and queue.rejected == [] and queue.waiting == 0
    keys = orb.sent_keys()
    assert len(keys) == len(set(keys)) == len(arrivals)  # every event, once
    during = [(t, n) for t, n in sent if outage[0] <= t < outage[1]]
    assert sum(n for _, n in during) == sum(1 for t, _ in arrivals if outage[0] <= t < outage[1])  # on time
    # Within the local budget: each request starts no sooner than the previous one's share allows.
    spacing = 60 / LOCAL_EVENTS_PER_MINUTE
    assert all(b[0] - a[0] >= a[1] * spacing - 1e-6 for a, b in itertools.pairwise(during))
    # ... and each burst drained at that pace (300 events at 120/min: 2.5 minutes, not at once).
    for burst in bursts:
        times = [t for t, _ in during if burst <= t < burst + 300]
        assert max(times) - min(times) >= (300 + 10 - 10) * spacing - 1e-6
    errors = [(t, value) for t, name, value in metrics if name == "PacingTableErrors"]
    assert errors and all(outage[0] <= t < outage[1] + 61 for t, _ in errors)
    assert not [value for _, name, value in metrics if name == "EventsRetried" and value]
    assert table.failed_calls == sum(value for _, value in errors)  # one call per invocation, then local


def test_orb_5xx_still_dead_letters_after_max_receive_count(simulated, monkeypatch):
    clock, queue, _ = simulated
    orb = FakeOrb()
    answer, sent = orb_recording(clock, lambda request: (orb(request), httpx.Response(500, json={"status": 500}))[1])
    use(monkeypatch, make_service(answer, REJECTED_URL, max_concurrent_requests=1), clock)
    start = clock()

    run_event_source(queue, until=start + 2 * 24 * HOUR, arrivals=[(start, usage_event(1).to_message_body())])

    assert len(queue.dead_lettered) == 1 and len(sent) == 10  # MaxReceiveCount deliveries, then the redrive
    span = redelivery.hold_back_span(10, 60)
    assert span - 60 <= sent[-1][0] + 512 * 60 - start <= span + 60  # about 17 hours, as documented
