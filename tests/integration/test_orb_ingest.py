"""OrbIngestFunction end to end in-process: the real handler, the Orb sandbox over loopback,
moto SQS for the rejected queue. Each scenario then replays what SQS would redeliver, to check
that every valid event ends up in Orb exactly once and every other one in the rejected queue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.queues import SqsQueue
from orb_bridge.ingest import container as ingest_container
from orb_bridge.ingest.messages import SqsMessage
from orb_bridge.ingest.service import IngestService
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.orb.client import OrbClient, shared_http_client
from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge_dev.devstack import lambda_runtime
from orb_bridge_dev.orb_sandbox import ERROR_BODY_VARIANTS, IngestRules, OrbSandbox, ScriptedResponse
from tests.support.lambdas import FakeLambdaContext, load_handler

API_KEY = "sandbox-key"


@pytest.fixture(scope="module")
def sandbox():
    with OrbSandbox(api_key=API_KEY, port=0, seed=7) as server:
        yield server


@pytest.fixture
def orb(sandbox):
    sandbox.reset()
    sandbox.faults.latency_seconds = 0.0
    yield sandbox
    sandbox.reset()
    sandbox.faults.latency_seconds = 0.0


@pytest.fixture
def rejected_queue_url():
    with mock_aws():
        aws.reset_clients()
        yield boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="RejectedQueue")["QueueUrl"]
    aws.reset_clients()


@pytest.fixture
def handler(orb, rejected_queue_url, monkeypatch):
    monkeypatch.setenv("ORB_API_BASE_URL", orb.base_url)
    monkeypatch.setenv("ORB_API_KEY", API_KEY)
    monkeypatch.delenv("ORB_API_KEY_SECRET_ARN", raising=False)
    monkeypatch.setenv("REJECTED_QUEUE_URL", rejected_queue_url)
    monkeypatch.setenv("ORB_REQUEST_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("INGEST_SAFETY_MARGIN_SECONDS", "1")
    ingest_container.forget_container_service()
    yield load_handler("orb_ingest")
    ingest_container.forget_container_service()


def now_minus(seconds: float = 60) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def usage_event(i: int, **changes) -> OrbUsageEvent:
    fields = {
        "event_name": "api_call",
        "idempotency_key": f"evt-{i:05d}",
        "timestamp": now_minus(),
        "external_customer_id": f"cust-{i % 13}",
        "properties": {"units": i, "region": "eu"},
    }
    fields.update(changes)
    return OrbUsageEvent(**fields)


def sqs_event(events: Sequence[OrbUsageEvent | str], first_id: int = 0) -> dict:
    bodies = [item if isinstance(item, str) else item.to_message_body() for item in events]
    return lambda_runtime.sqs_event(bodies, first_id=first_id)


def failed_ids(response: dict) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def redeliver(event: dict, response: dict) -> dict:
    """The SQS event Lambda would get next: only the messages reported as failed."""
    failed = set(failed_ids(response))
    return {"Records": [record for record in event["Records"] if record["messageId"] in failed]}


def rejected(url: str) -> list[dict]:
    sqs = aws.client("sqs")
    records: list[dict] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        records.extend(json.loads(message["Body"]) for message in batch)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return records


def test_normal_ingest_puts_every_event_in_orb_once(handler, orb, rejected_queue_url):
    events = [usage_event(i) for i in range(1200)]
    events.append(events[3])  # an identical duplicate
    response = handler.lambda_handler(sqs_event(events), FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    stored = orb.ingested_events()
    assert set(stored) == {f"evt-{i:05d}" for i in range(1200)}
    assert stored["evt-00007"]["properties"] == {"units": 7, "region": "eu"}
    assert orb.ingest_request_count == 3
    assert orb.stats()["duplicates"] == 0
    assert rejected(rejected_queue_url) == []


@pytest.mark.parametrize("error_body", ERROR_BODY_VARIANTS)
@pytest.mark.parametrize("ingest_valid_on_400", [False, True], ids=["400-ingests-nothing", "400-ingests-valid"])
def test_validation_failed_events_are_kept_in_the_rejected_queue(
    handler, orb, rejected_queue_url, monkeypatch, error_body, ingest_valid_on_400
):
    # Orb answers the whole request 400; which body shape, and whether it kept the valid events,
    # it does not say: every combination must end with the valid events ingested exactly once.
    monkeypatch.setattr(
        orb, "rules", IngestRules(error_body=error_body, ingest_valid_events_on_400=ingest_valid_on_400)
    )
    too_old = usage_event(1, timestamp=now_minus(13 * 3600))
    events: list[OrbUsageEvent | str] = [usage_event(0), too_old, usage_event(2), "{not json"]
    response = handler.lambda_handler(sqs_event(events), FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    assert orb.billed_count_by_key() == {"evt-00000": 1, "evt-00002": 1}
    records = {record["stage"]: record for record in rejected(rejected_queue_url)}
    assert set(records) == {"orb", "ingest"}
    assert records["orb"]["orb_event"] == too_old.to_orb()
    assert records["orb"]["sqs_message_ids"] == ["msg-00001"]
    assert any("grace period" in str(error) for error in records["orb"]["errors"])  # Orb's reason, kept
    assert records["ingest"]["message_body"] == "{not json"


@pytest.mark.parametrize(
    "failure",
    [
        ScriptedResponse(status=500),
        ScriptedResponse(status=503),
        ScriptedResponse(status=200, drop_connection=True),
    ],
    ids=["500", "503", "dropped-connection"],
)
def test_a_transient_failure_is_redelivered_and_then_ingested_exactly_once(
    handler, orb, rejected_queue_url, monkeypatch, failure
):
    monkeypatch.setenv("ORB_MAX_CONCURRENT_REQUESTS", "1")
    monkeypatch.setenv("ORB_MAX_EVENTS_PER_REQUEST", "10")
    orb.script_ingest_responses([failure])
    event = sqs_event([usage_event(i) for i in range(25)])

    first = handler.lambda_handler(event, FakeLambdaContext())
    assert failed_ids(first) == [f"msg-{i:05d}" for i in range(10)]
    assert set(orb.ingested_events()) == {f"evt-{i:05d}" for i in range(10, 25)}

    second = handler.lambda_handler(redeliver(event, first), FakeLambdaContext())
    assert second == {"batchItemFailures": []}
    assert set(orb.ingested_events()) == {f"evt-{i:05d}" for i in range(25)}
    assert max(orb.ingest_attempts_by_key.values()) == 1
    assert rejected(rejected_queue_url) == []


def test_a_whole_chunk_400_naming_nobody_is_split_down_to_the_bad_event(handler, orb, rejected_queue_url, monkeypatch):
    # The sandbox only answers 400 for request-level problems our events cannot have, so the
    # 400s are scripted: the bad event comes first, so bisection asks about it 4 times
    # (8 -> 4 -> 2 -> 1 events) and every other request is processed normally.
    # The 400 names no event (no key, no index): only splitting can find it. One request at a
    # time, so the scripted answers meet the halves holding the bad event in order.
    monkeypatch.setenv("ORB_MAX_CONCURRENT_REQUESTS", "1")
    problem = {
        "status": 400,
        "title": "Request validation error",
        "detail": "an event is invalid",
        "validation_errors": ["properties.units: unsupported value"],
    }
    orb.script_ingest_responses([ScriptedResponse(status=400, body=problem)] * 4)
    event = sqs_event([usage_event(i) for i in range(8)])

    response = handler.lambda_handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    assert set(orb.ingested_events()) == {f"evt-{i:05d}" for i in range(1, 8)}
    assert orb.ingest_request_count == 4 + 3  # 4 refusals, then [1], [2, 3], [4..7]
    (record,) = rejected(rejected_queue_url)
    assert record["stage"] == "orb"
    assert record["orb_event"]["idempotency_key"] == "evt-00000"
    assert "HTTP 400" in record["reason"]
    assert "properties.units: unsupported value" in record["errors"]


def test_a_real_400_from_an_oversized_request_is_split_and_then_accepted(orb, rejected_queue_url):
    # Settings normally cap chunks at 500; built directly, the sandbox's own limit answers 400.
    settings = IngestSettings(
        orb_api_base_url=orb.base_url,
        orb_api_key=API_KEY,
        rejected_queue_url=rejected_queue_url,
        max_events_per_request=600,
        request_timeout_seconds=5,
        safety_margin_seconds=1,
    )
    service = IngestService(
        settings, OrbClient(orb.base_url, API_KEY, shared_http_client()), SqsQueue(rejected_queue_url)
    )
    events = [usage_event(i) for i in range(600)]

    report = service.ingest([SqsMessage(f"m{i}", e.to_message_body()) for i, e in enumerate(events)], lambda: 60.0)

    assert report.failed_message_ids == []
    assert report.requests_made == 3
    assert orb.ingested_count == 600
    assert rejected(rejected_queue_url) == []


def test_a_wrong_api_key_fails_everything_and_dead_letters_nothing(handler, orb, rejected_queue_url, monkeypatch):
    monkeypatch.setenv("ORB_API_KEY", "not-the-key")
    monkeypatch.setenv("ORB_MAX_CONCURRENT_REQUESTS", "1")
    monkeypatch.setenv("ORB_MAX_EVENTS_PER_REQUEST", "5")
    event = sqs_event([usage_event(i) for i in range(15)])

    response = handler.lambda_handler(event, FakeLambdaContext())

    assert failed_ids(response) == [f"msg-{i:05d}" for i in range(15)]
    assert orb.ingest_request_count == 1  # stopped after the first 401
    assert orb.ingested_count == 0
    assert rejected(rejected_queue_url) == []

    # Once the key is fixed (secret rotated), the redelivered messages go through.
    monkeypatch.setenv("ORB_API_KEY", API_KEY)
    assert handler.lambda_handler(redeliver(event, response), FakeLambdaContext()) == {"batchItemFailures": []}
    assert orb.ingested_count == 15


def test_a_response_slower_than_the_request_timeout_fails_the_chunk(handler, orb, monkeypatch):
    monkeypatch.setenv("ORB_REQUEST_TIMEOUT_SECONDS", "0.3")
    orb.script_ingest_responses([ScriptedResponse(status=200, delay_seconds=2.0)])
    response = handler.lambda_handler(
        sqs_event([usage_event(0), usage_event(1)]), FakeLambdaContext(timeout_seconds=10)
    )
    assert failed_ids(response) == ["msg-00000", "msg-00001"]


def test_slow_responses_stop_new_requests_before_the_lambda_timeout(handler, orb, monkeypatch):
    # Budget: 2.5 s invocation, 1 s margin, 1 s per request; each answer takes 0.6 s. After the
    # first chunk under 2 s remain, too little to start another request safely. The invocation's
    # clock moves only with Orb's latency, so a loaded machine cannot eat the budget first.
    monkeypatch.setenv("ORB_REQUEST_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("ORB_MAX_CONCURRENT_REQUESTS", "1")
    monkeypatch.setenv("ORB_MAX_EVENTS_PER_REQUEST", "4")
    elapsed = [0.0]
    monkeypatch.setattr(orb, "sleep", lambda seconds: elapsed.__setitem__(0, elapsed[0] + seconds))
    orb.faults.latency_seconds = 0.6
    context = FakeLambdaContext(timeout_seconds=2.5, clock=lambda: elapsed[0])

    response = handler.lambda_handler(sqs_event([usage_event(i) for i in range(12)]), context)

    assert context.get_remaining_time_in_millis() > 0
    assert orb.ingest_request_count == 1
    assert set(orb.ingested_events()) == {f"evt-{i:05d}" for i in range(4)}
    assert failed_ids(response) == [f"msg-{i:05d}" for i in range(4, 12)]


def test_no_request_is_started_when_the_invocation_is_nearly_over(handler, orb):
    response = handler.lambda_handler(sqs_event([usage_event(0)]), FakeLambdaContext(timeout_seconds=3))
    assert failed_ids(response) == ["msg-00000"]
    assert orb.ingest_request_count == 0


def test_ten_thousand_records_in_one_invocation(handler, orb, rejected_queue_url):
    events = [usage_event(i) for i in range(10_000)]
    too_old = {17, 4242, 9999}
    for i in too_old:
        events[i] = usage_event(i, timestamp=now_minus(24 * 3600))
    event = sqs_event(events)

    response = handler.lambda_handler(event, FakeLambdaContext(timeout_seconds=120))

    assert response == {"batchItemFailures": []}
    # Each chunk holding a stale event is answered 400 as a whole (Orb's spec) and bisected:
    # at most 2 requests per level of a 500-event chunk's halving.
    assert 20 < orb.ingest_request_count <= 20 + len(too_old) * 2 * math.ceil(math.log2(500))
    assert orb.ingested_count == 10_000 - len(too_old)
    assert max(orb.billed_count_by_key().values()) == 1
    assert {r["orb_event"]["idempotency_key"] for r in rejected(rejected_queue_url)} == {
        f"evt-{i:05d}" for i in too_old
    }


@pytest.mark.parametrize("cause", ["wrong_api_key", "orb_500"])
def test_failed_messages_are_held_back_instead_of_redriven(handler, orb, rejected_queue_url, monkeypatch, cause):
    """Redelivery of failed messages is delayed exponentially (Orb errors from 1 min, a wrong
    API key from 15 min) so that maxReceiveCount quick failures do not move good events to the
    rejected queue."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="IngestQueue", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for i in range(3):
        sqs.send_message(QueueUrl=queue_url, MessageBody=usage_event(i).to_message_body())
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert len(received) == 3
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"]},
                "eventSourceARN": queue_arn,
                "eventSource": "aws:sqs",
            }
            for m in received
        ]
    }
    if cause == "wrong_api_key":
        monkeypatch.setenv("ORB_API_KEY", "wrong-key")
        ingest_container.forget_container_service()
    else:
        orb.script_ingest_responses([ScriptedResponse(status=500, body={"status": 500, "title": "boom"})])

    response = handler.lambda_handler(event, FakeLambdaContext(30))

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        m["MessageId"] for m in received
    )
    # Without the hold-back they would be visible again after the queue's 1 s visibility timeout.
    import time

    time.sleep(1.5)
    assert sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []) == []
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "3"
    assert sqs.receive_message(QueueUrl=rejected_queue_url).get("Messages", []) == []
    assert orb.ingested_events() == {}


def test_backoff_doubles_per_receive_and_caps_at_twelve_hours():
    from orb_bridge.aws.redelivery import backoff_seconds

    assert [backoff_seconds(n, 900) for n in (1, 2, 3, 4)] == [900, 1800, 3600, 7200]
    assert backoff_seconds(10, 900) == 12 * 3600
    assert backoff_seconds(0, 900) == 900


def test_a_429_defers_every_unsent_event_as_a_delayed_copy_and_dead_letters_nothing(
    handler, orb, rejected_queue_url, monkeypatch
):
    """After a 429 no new request starts; every event not ingested is re-sent to the ingest
    queue as a copy (its receive count starts again, so rate limiting never reaches
    maxReceiveCount) and the originals are acknowledged. Retry-After 0 keeps the copies visible
    at once for the test; the delay itself is covered by tests/unit/ingest/test_ingest_handler.py."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="IngestQueue")["QueueUrl"]
    monkeypatch.setenv("INGEST_QUEUE_URL", queue_url)
    monkeypatch.setenv("ORB_MAX_CONCURRENT_REQUESTS", "1")
    monkeypatch.setenv("ORB_MAX_EVENTS_PER_REQUEST", "10")
    orb.script_ingest_responses([ScriptedResponse(status=429, headers={"retry-after": "0"})])
    event = sqs_event([usage_event(i) for i in range(25)])

    assert handler.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert orb.ingest_request_count == 1 and orb.ingested_count == 0

    copies = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", []):
        copies += batch
    assert sorted(m["Body"] for m in copies) == sorted(r["body"] for r in event["Records"])
    assert {m["MessageAttributes"]["orb_bridge.deferrals"]["StringValue"] for m in copies} == {"1"}
    redelivered = {
        "Records": [
            {
                **lambda_runtime.sqs_event([m["Body"]])["Records"][0],
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "messageAttributes": {
                    k: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
                    for k, v in m["MessageAttributes"].items()
                },
            }
            for m in copies
        ]
    }
    assert handler.lambda_handler(redelivered, FakeLambdaContext()) == {"batchItemFailures": []}
    assert set(orb.ingested_events()) == {f"evt-{i:05d}" for i in range(25)}
    assert max(orb.ingest_attempts_by_key.values()) == 1
    assert rejected(rejected_queue_url) == []
