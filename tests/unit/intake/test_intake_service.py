"""The intake service below the handler: concurrent queuing and rejected-queue records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.queues import SqsQueue, send_concurrently
from orb_bridge.core.config import MappingSettings
from orb_bridge.core.observability import metrics
from orb_bridge.intake.rejections import MAX_REJECTION_BYTES
from orb_bridge.intake.service import IntakeOutcome, TrackIntake
from orb_bridge.intake.settings import IntakeSettings

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture
def sqs():
    with mock_aws():
        aws.reset_clients()
        yield aws.client("sqs")
    aws.reset_clients()
    metrics.clear_metrics()  # the service adds metrics; only the handler's decorator flushes them


def receive_all(sqs, url: str) -> list[str]:
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages", []
    ):
        bodies.extend(m["Body"] for m in messages)
    return bodies


def test_concurrent_send_reports_failures_at_their_index_in_the_whole_list(sqs):
    url = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    bodies = [f"body-{n}" for n in range(130)]
    bodies[113] = "x" * 2000  # SQS refuses the whole SendMessageBatch holding it (entries 110-119)
    failures = send_concurrently(SqsQueue(url), bodies, workers=3)
    assert sorted(f.index for f in failures) == list(range(110, 120))
    delivered = receive_all(sqs, url)
    assert sorted(delivered) == sorted(b for i, b in enumerate(bodies) if not 110 <= i < 120)


class BarrierQueue:
    """A queue whose every slice waits until ``parties`` slices are being sent at once."""

    def __init__(self, parties: int) -> None:
        import threading

        self.barrier = threading.Barrier(parties, timeout=60)
        self.client = object()
        self.sent: list[str] = []

    def send_all(self, bodies):
        self.barrier.wait()  # BrokenBarrierError unless ``parties`` slices are in flight together
        self.sent.extend(bodies)
        return []


def test_segments_default_batch_of_1000_is_queued_in_one_wave_of_slices():
    """Every slice of a 1,000-event request is in flight at once: the request waits on one slice's
    10 sequential SendMessageBatch calls, not two slices' (with 8 workers the last 2 slices waited
    for a second wave, and here the barrier would break)."""
    queue = BarrierQueue(parties=10)
    bodies = [f"body-{n}" for n in range(1000)]
    assert send_concurrently(queue, bodies) == []  # type: ignore[arg-type]
    assert sorted(queue.sent) == sorted(bodies)


def settings(ingest_url: str, rejected_url: str, **overrides: Any) -> IntakeSettings:
    values: dict[str, Any] = {
        "mapping": MappingSettings(properties_mapping={"amount": "amount"}),
        "ingest_queue_url": ingest_url,
        "rejected_queue_url": rejected_url,
        "auth_tokens": ("token",),
    }
    values.update(overrides)
    return IntakeSettings(**values)


def test_oversized_rejected_event_is_kept_as_an_excerpt_that_fits_sqs(sqs):
    ingest = sqs.create_queue(QueueName="ingest")["QueueUrl"]
    rejected = sqs.create_queue(QueueName="rejected")["QueueUrl"]
    service = TrackIntake(settings(ingest, rejected))
    huge = {
        "type": "track",
        "event": "e",
        "userId": "u",
        "messageId": "m-big",
        "timestamp": "2022-01-01T00:00:00Z",
        "context": {"blob": "\u00e9" * 300_000},
    }
    response = service.handle({"authorization": "Bearer token"}, json.dumps(huge).encode())
    assert response.outcome is IntakeOutcome.NOTHING_VALID
    assert "more than Segment's limit" in response.body["rejected"][0]["error"]
    [record] = [json.loads(b) for b in receive_all(sqs, rejected)]
    assert len(json.dumps(record)) <= MAX_REJECTION_BYTES
    assert record["message_id"] == "m-big" and "segment_event" not in record
    assert record["segment_event_bytes"] > 300_000 and record["segment_event_excerpt"].startswith('{"type":"track"')


def test_signature_secret_and_bearer_token_from_settings(sqs):
    import hashlib
    import hmac

    ingest = sqs.create_queue(QueueName="ingest")["QueueUrl"]
    rejected = sqs.create_queue(QueueName="rejected")["QueueUrl"]
    service = TrackIntake(settings(ingest, rejected, shared_secrets=("secret",), auth_tokens=()))
    body = b'{"type":"page","messageId":"p-1"}'
    signature = hmac.new(b"secret", body, hashlib.sha1).hexdigest()
    assert service.handle({"X-Signature": signature}, body).body == {"accepted": 0, "skipped": 1, "rejected": []}
    assert service.handle({"authorization": "Bearer token"}, body).outcome is IntakeOutcome.UNAUTHORIZED
