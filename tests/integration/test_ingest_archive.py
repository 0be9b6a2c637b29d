"""Issue 17: the audit archive, end to end in-process: the real handler, the Orb sandbox over
loopback, moto's S3 for the bucket, the ingest queue and its event source simulated on a fake
clock (``tests.support.simulated_sqs``, with the template's redrive).

Every accepted request is archived once with exactly what Orb received; a bucket that fails after
Orb's 200 re-sends nothing to Orb and dead-letters nothing; kills between Orb's 200 and the
archive write, and between the write and the acknowledgement, leave every event billed once and
archived.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from orb_bridge.aws import archive as aws_archive
from orb_bridge.aws import clients as aws
from orb_bridge.ingest import batch as ingest_batch
from orb_bridge.ingest import container as ingest_container
from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge_dev.orb_sandbox import OrbSandbox, ScriptedResponse
from tests.support.simulated_sqs import QUEUE_URL, REJECTED_URL, FakeClock, SimulatedSqs, _Context

API_KEY = "sandbox-key"
BUCKET = "audit-bucket-test"


class Killed(BaseException):
    """The function dies here: nothing after this point runs, nothing is acknowledged."""


@pytest.fixture(scope="module")
def sandbox():
    with OrbSandbox(api_key=API_KEY, port=0, seed=11) as server:
        yield server


class Bucket:
    """moto's S3 as the handler reaches it; ``mode`` makes it fail: ``denied`` (403),
    ``unreachable`` (a real client to a closed loopback port), or a kill before or after the PUT."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.s3.create_bucket(Bucket=BUCKET)
        self.mode = "up"
        self.puts = 0

    def put_object(self, **kwargs: Any) -> Any:
        self.puts += 1
        mode = self.mode
        if mode == "denied":
            error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
            raise ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
        if mode == "unreachable":
            closed = boto3.client(
                "s3",
                region_name="us-east-1",
                endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens there
                config=Config(connect_timeout=1, retries={"total_max_attempts": 1}),
            )
            return closed.put_object(**kwargs)
        if mode == "kill_before_put":
            self.mode = "up"
            raise Killed
        answer = self.s3.put_object(**kwargs)
        if mode == "kill_after_put":
            self.mode = "up"
            raise Killed
        return answer

    def objects(self) -> dict[str, tuple[dict, list[dict]]]:
        keys = [
            item["Key"]
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for item in page.get("Contents", [])
        ]
        return {
            key: aws_archive.read_archive(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) for key in keys
        }


@pytest.fixture
def stack(sandbox, monkeypatch):
    sandbox.reset()
    with mock_aws():
        aws.reset_clients()
        clock = FakeClock(time.time())
        queue = SimulatedSqs(clock, max_receive_count=5)
        bucket = Bucket()
        monkeypatch.setattr(aws, "client", lambda service: queue if service == "sqs" else None)
        monkeypatch.setattr(aws_archive, "s3_client", lambda _writers=0: bucket)
        for name, value in {
            "ORB_API_BASE_URL": sandbox.base_url,
            "ORB_API_KEY": API_KEY,
            "REJECTED_QUEUE_URL": REJECTED_URL,
            "INGEST_QUEUE_URL": QUEUE_URL,
            "AUDIT_BUCKET_NAME": BUCKET,
            "ORB_MAX_EVENTS_PER_REQUEST": "5",
            "ORB_MAX_CONCURRENT_REQUESTS": "2",
            "ORB_REQUEST_TIMEOUT_SECONDS": "5",
            "INGEST_SAFETY_MARGIN_SECONDS": "1",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("ORB_API_KEY_SECRET_ARN", raising=False)
        ingest_container.forget_container_service()
        yield clock, queue, bucket
        ingest_container.forget_container_service()
    aws.reset_clients()


def event_body(i: int, **changes: Any) -> str:
    moment = datetime.now(UTC) - timedelta(minutes=1)
    fields: dict[str, Any] = {
        "event_name": "api_call",
        "idempotency_key": f"evt-{i:04d}",
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "external_customer_id": f"cust-{i % 3}",
        "properties": {"units": i},
    }
    fields.update(changes)
    return OrbUsageEvent(**fields).to_message_body()


def drain(clock: FakeClock, queue: SimulatedSqs, until_idle: float = 3600.0, batch_size: int = 10) -> int:
    """Invoke the handler until the queue is empty; a ``Killed`` invocation acknowledges nothing
    (its messages come back after the visibility timeout, as when a Lambda dies)."""
    invocations, deadline = 0, clock() + until_idle
    while queue.waiting and clock() < deadline:
        records = queue.receive(batch_size)
        if not records:
            upcoming = queue.next_visible()
            clock.now = max(clock(), upcoming if upcoming is not None else deadline)
            continue
        invocations += 1
        try:
            response = ingest_batch.handle({"Records": records}, _Context(clock, 60.0), clock=clock, monotonic=clock)
        except Killed:
            queue.settle(records, {record["messageId"] for record in records})
            continue
        queue.settle(records, {item["itemIdentifier"] for item in response["batchItemFailures"]})
        clock.now += 0.5
    return invocations


def archived(objects: dict[str, tuple[dict, list[dict]]]) -> Counter[str]:
    return Counter(event["idempotency_key"] for _, events in objects.values() for event in events)


def test_every_accepted_request_is_archived_once_with_exactly_the_events_orb_received(stack, sandbox):
    clock, queue, bucket = stack
    bodies = [event_body(i) for i in range(23)]
    too_old = event_body(99, timestamp="2020-01-01T00:00:00Z")  # Orb refuses it: never archived
    for body in [*bodies, too_old]:
        queue.put(body)
    # The first request is refused as a whole (a 500): nothing archived for it; SQS redelivers.
    sandbox.script_ingest_responses([ScriptedResponse(status=500)])

    drain(clock, queue)

    objects = bucket.objects()
    sent = {json.loads(body)["idempotency_key"]: json.loads(body) for body in bodies}
    assert set(sandbox.ingested_events()) == set(sent)
    assert archived(objects) == Counter({key: 1 for key in sent})  # each accepted event once, nothing else
    assert len(objects) <= sandbox.stats()["outcomes"]["processed"]  # never more objects than Orb 200s
    for key, (head, events) in objects.items():
        assert events == [sent[event["idempotency_key"]] for event in events]  # exactly as sent
        assert head["events"] == len(events) and head["orb_status"] == 200 and head["source"] == "ingest"
        assert head["orb_response"] == {"validation_failed": []} and not head["archived_late"]
        hour = head["sent_at"][:13]
        assert key.startswith(f"ingest/sent_hour={hour}/") and key.endswith(f"-{head['request_number']:05d}.jsonl.gz")
    assert queue.dead_lettered == []
    (refused,) = queue.rejected  # too_old: refused by Orb, in the rejected queue, not in the archive
    assert json.loads(refused)["orb_event"]["idempotency_key"] == "evt-0099"


@pytest.mark.parametrize("failure", ["denied", "unreachable"])
def test_a_bucket_failing_after_orbs_200_resends_nothing_and_dead_letters_nothing(stack, sandbox, failure):
    clock, queue, bucket = stack
    bodies = [event_body(i) for i in range(12)]
    for body in bodies:
        queue.put(body)
    bucket.mode = failure
    outage_ends = clock() + 2 * 3600  # longer than maxReceiveCount (5) deliveries of anything

    while clock() < outage_ends:
        drain(clock, queue, until_idle=outage_ends - clock())
    assert bucket.objects() == {} and bucket.puts > 5
    bucket.mode = "up"
    drain(clock, queue)

    keys = {json.loads(body)["idempotency_key"] for body in bodies}
    assert sandbox.ingest_attempts_by_key == Counter({key: 1 for key in keys})  # nothing re-sent to Orb
    assert queue.dead_lettered == [] and queue.rejected == []
    objects = bucket.objects()
    assert set(archived(objects)) == keys
    assert all(head["archived_late"] and head["possible_repeat"] for head, _ in objects.values())
    # Each late object keeps the request Orb answered: when it was sent, and by which function request.
    assert all(
        head["function_request_id"] and head["orb_response"] == {"validation_failed": []}
        for head, _ in objects.values()
    )


@pytest.mark.parametrize("kill", ["kill_before_put", "kill_after_put"])
def test_a_kill_around_the_archive_write_leaves_every_event_billed_once_and_archived(stack, sandbox, kill):
    clock, queue, bucket = stack
    bodies = [event_body(i) for i in range(15)]
    for body in bodies:
        queue.put(body)
    bucket.mode = kill  # the first PUT: killed just before it, or just after it landed

    drain(clock, queue)

    keys = {json.loads(body)["idempotency_key"] for body in bodies}
    assert sandbox.billed_count_by_key() == Counter({key: 1 for key in keys})
    objects = bucket.objects()
    assert set(archived(objects)) == keys
    assert queue.dead_lettered == [] and queue.rejected == []
    repeats = archived({k: v for k, v in objects.items() if v[0]["possible_repeat"]})
    # A key archived twice (a write of the killed invocation landed: this one's, or its other
    # request's) is in a repeat object: the redelivered messages say they were delivered before.
    assert all(repeats[key] >= count - 1 for key, count in archived(objects).items())
