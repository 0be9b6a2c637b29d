"""The OrbIngestFunction handler: SQS event in, partial batch response out, metrics, config errors."""

from __future__ import annotations

import json

import httpx
import pytest

from orb_bridge.ingest import container as ingest_container
from tests.support.ingest_doubles import FakeOrb, make_service, usage_event
from tests.support.lambdas import FakeLambdaContext, load_handler, sqs_event


@pytest.fixture
def handler():
    ingest_container.forget_container_service()
    yield load_handler("orb_ingest")
    ingest_container.forget_container_service()


def use_service(monkeypatch, service):
    """The container's service, as if built from the environment (settings are re-read per call)."""
    monkeypatch.setattr(ingest_container, "container_service", lambda: service)


def emitted_metrics(output: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and "_aws" in line:
            blob = json.loads(line)
            for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = blob[definition["Name"]]
                values[definition["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_a_configuration_error_fails_every_message_without_raising(handler, monkeypatch, capsys, caplog):
    monkeypatch.delenv("ORB_API_KEY", raising=False)
    monkeypatch.delenv("ORB_API_KEY_SECRET_ARN", raising=False)
    monkeypatch.setenv("REJECTED_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/rejected")

    response = handler.lambda_handler(sqs_event(["{}", "{}"]), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-00000"}, {"itemIdentifier": "msg-00001"}]}
    assert "ORB_API_KEY_SECRET_ARN (or ORB_API_KEY locally) is required" in caplog.text
    assert emitted_metrics(capsys.readouterr().out)["EventsRetried"] == 2


def test_the_handler_reports_only_failed_messages_and_emits_metrics(handler, rejected_queue, capsys, monkeypatch):
    orb = FakeOrb()
    orb.invalid_keys = {"key-1": ["too old"]}  # a whole-request 400 naming key-1; key-0 is re-sent

    def answer(request: httpx.Request) -> httpx.Response:
        if b'"key-2"' in request.content:  # the second chunk: Orb fails
            return httpx.Response(500, json={"status": 500})
        return orb(request)

    use_service(monkeypatch, make_service(answer, rejected_queue, max_events_per_request=2, max_concurrent_requests=1))
    bodies = [usage_event(i).to_message_body() for i in range(4)]

    response = handler.lambda_handler(sqs_event(bodies), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-00002"}, {"itemIdentifier": "msg-00003"}]}
    output = capsys.readouterr().out
    metrics = emitted_metrics(output)
    assert metrics["EventsIngested"] == 1
    assert metrics["EventsRejectedByOrb"] == 1
    assert metrics["EventsRetried"] == 2
    # Issue 20: one latency per answered request; errors by kind and records by stage split out.
    blobs = [json.loads(line) for line in output.splitlines() if line.startswith("{") and "_aws" in line]
    (totals,) = [blob for blob in blobs if "EventsIngested" in blob]
    assert len(totals["OrbRequestLatency"]) == orb_requests_answered(totals)
    by_kind = {blob["kind"]: total(blob["OrbRequestErrors"]) for blob in blobs if "OrbRequestErrors" in blob}
    assert by_kind == {"invalid_events": 1.0, "retryable": 1.0}
    by_stage = {
        blob["stage"]: total(blob["RejectedRecordsWritten"]) for blob in blobs if "RejectedRecordsWritten" in blob
    }
    assert by_stage == {"orb": 1.0}


def total(value: float | list[float]) -> float:
    return float(sum(value)) if isinstance(value, list) else float(value)


def orb_requests_answered(blob: dict) -> int:
    return int(total(blob["OrbRequests"]))


def test_a_401_is_logged_as_configuration_and_the_settings_are_reread_next_time(
    handler, rejected_queue, caplog, monkeypatch
):
    orb = FakeOrb()
    orb.scripted = [lambda: httpx.Response(401, json={"status": 401, "title": "Unauthenticated"})]
    use_service(monkeypatch, make_service(orb, rejected_queue))
    forgotten: list[bool] = []
    monkeypatch.setattr(ingest_container, "forget_container_service", lambda: forgotten.append(True))

    response = handler.lambda_handler(sqs_event([usage_event(1).to_message_body()]), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-00000"}]}
    assert forgotten == [True]  # the key (and settings) are read afresh at the next request
    assert "configuration error: Orb refused the request (HTTP 401" in caplog.text


class RecordingSqs:
    """moto's SQS, recording what ingest sends to the ingest queue; can refuse some entries."""

    def __init__(self, refuse_bodies: frozenset[str] = frozenset()) -> None:
        import boto3

        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.sent: list[dict] = []
        self.refuse_bodies = refuse_bodies

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803
        accepted = [e for e in Entries if e["MessageBody"] not in self.refuse_bodies]
        self.sent += accepted
        failed = [
            {"Id": e["Id"], "Code": "InvalidParameterValue", "Message": "no", "SenderFault": True}
            for e in Entries
            if e["MessageBody"] in self.refuse_bodies
        ]
        answer = self.sqs.send_message_batch(QueueUrl=QueueUrl, Entries=accepted) if accepted else {}
        return {"Successful": answer.get("Successful", []), "Failed": failed}

    def __getattr__(self, name):
        return getattr(self.sqs, name)


@pytest.fixture
def ingest_queue(rejected_queue, monkeypatch):  # inside rejected_queue's mock_aws
    from orb_bridge.aws import clients as aws

    recording = RecordingSqs()
    url = recording.sqs.create_queue(QueueName="IngestQueue")["QueueUrl"]
    monkeypatch.setenv("INGEST_QUEUE_URL", url)
    monkeypatch.setattr(aws, "client", lambda service: recording if service == "sqs" else None)
    return recording


def test_a_429_re_enqueues_copies_held_back_at_least_retry_after_and_acks_the_originals(
    handler, ingest_queue, rejected_queue, capsys, monkeypatch
):
    orb = FakeOrb()
    orb.scripted = [lambda: httpx.Response(429, headers={"retry-after-ms": "2500"}, json={"status": 429})]
    use_service(monkeypatch, make_service(orb, rejected_queue, max_events_per_request=2, max_concurrent_requests=1))
    event = sqs_event([usage_event(i).to_message_body() for i in range(4)], receive_count=3)

    response = handler.lambda_handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []} and len(orb.requests) == 1
    assert sorted(e["MessageBody"] for e in ingest_queue.sent) == sorted(r["body"] for r in event["Records"])
    for entry in ingest_queue.sent:
        assert entry["DelaySeconds"] == 3  # 2.5 s rounded up: at least Retry-After
        attributes = {k: v["StringValue"] for k, v in entry["MessageAttributes"].items()}
        assert attributes == {
            "orb_bridge.deferrals": "1",
            "orb_bridge.first_enqueued_ms": "1763715600000",
            "orb_bridge.earlier_failures": "2",
        }
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["EventsDeferred"] == 4 and metrics["OrbRateLimited"] == 1
    assert metrics["OldestPendingEventAgeSeconds"] > 0


def test_a_copy_sqs_refuses_leaves_its_original_to_redelivery(handler, ingest_queue, rejected_queue, monkeypatch):
    orb = FakeOrb()
    orb.scripted = [lambda: httpx.Response(429, json={"status": 429})]
    use_service(monkeypatch, make_service(orb, rejected_queue, max_concurrent_requests=1))
    bodies = [usage_event(i).to_message_body() for i in range(3)]
    ingest_queue.refuse_bodies = {bodies[1]}

    response = handler.lambda_handler(sqs_event(bodies), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-00001"}]}
    assert len(ingest_queue.sent) == 2


def test_a_wait_longer_than_sqs_delays_hops_without_calling_orb(handler, ingest_queue, rejected_queue, monkeypatch):
    import time

    orb = FakeOrb()
    use_service(monkeypatch, make_service(orb, rejected_queue))
    not_before = int((time.time() + 2000) * 1000)
    event = sqs_event([usage_event(1).to_message_body()])
    event["Records"][0]["messageAttributes"] = {
        "orb_bridge.not_before_ms": {"stringValue": str(not_before), "dataType": "Number"},
        "orb_bridge.deferrals": {"stringValue": "4", "dataType": "Number"},
    }

    assert handler.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert orb.requests == []
    (copy,) = ingest_queue.sent
    assert copy["DelaySeconds"] == 900
    assert copy["MessageAttributes"]["orb_bridge.not_before_ms"]["StringValue"] == str(not_before)
    assert copy["MessageAttributes"]["orb_bridge.deferrals"]["StringValue"] == "5"


def test_replays_are_counted_and_those_waiting_on_the_mapping_are_held_back_as_configuration_errors(
    handler, rejected_queue, capsys, monkeypatch
):
    from orb_bridge.aws.rejection_records import rejection_record
    from orb_bridge.core.errors import ConfigurationError
    from orb_bridge.ingest import batch as ingest_batch

    def broken():
        raise ConfigurationError("EXTERNAL_CUSTOMER_ID_FIELD is required")

    service = make_service(FakeOrb(), rejected_queue)
    service.mapping_settings = broken
    use_service(monkeypatch, service)
    held: list[tuple[set, bool]] = []
    monkeypatch.setattr(
        ingest_batch,
        "hold_back",
        lambda records, failed, configuration_error: held.append((set(failed), configuration_error)),
    )
    bodies = [
        rejection_record(stage="orb", reason="refused", orb_event=usage_event(1).to_orb()),
        rejection_record(
            stage="intake",
            reason="mapping",
            segment_event={"type": "track", "event": "e", "userId": "u", "messageId": "m"},
        ),
    ]

    response = handler.lambda_handler(sqs_event(bodies), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-00001"}]}
    assert held == [({"msg-00001"}, True)]
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["EventsReplayed"] == 1 and metrics["EventsIngested"] == 1


def test_a_deferred_copy_waits_only_what_is_left_of_its_wait_when_it_is_sent(
    handler, ingest_queue, rejected_queue, monkeypatch
):
    """Refused at +0 s with 48 s to wait, its copy sent after a granted request waited 45 s:
    DelaySeconds 3 (visible when its slot comes), not the 48 measured (visible 45 s late)."""
    from orb_bridge.ingest import batch as ingest_batch
    from orb_bridge.ingest.pacing import Slot
    from tests.support.simulated_sqs import FakeClock

    clock = FakeClock()
    slots = [Slot(False, 48.0), Slot(True, 45.0)]  # the first chunk refused, the second granted

    class ScriptedPacer:
        def reserve(self, events, latest_start_seconds):
            return slots.pop(0)

        def hold_off(self, seconds):
            return None

    orb = FakeOrb()
    service = make_service(orb, rejected_queue, max_events_per_request=2, max_concurrent_requests=1)
    service.pacer, service.sleep, service.monotonic = ScriptedPacer(), clock.sleep, clock
    use_service(monkeypatch, service)
    event = sqs_event([usage_event(i).to_message_body() for i in range(4)])

    response = ingest_batch.handle(event, FakeLambdaContext(), clock=clock, monotonic=clock)

    assert response == {"batchItemFailures": []} and orb.sent_keys() == ["key-2", "key-3"]
    assert [entry["DelaySeconds"] for entry in ingest_queue.sent] == [3, 3]
