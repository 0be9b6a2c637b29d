"""POST /segment through ``lambda_handler`` with real (moto) SQS queues."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.core.observability import logger, metrics
from orb_bridge.intake import service as intake
from orb_bridge.orb.usage_event import OrbUsageEvent
from tests.support.lambdas import load_handler

# Refused requests publish no metrics; Powertools warns about that on every flush.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SECRET = "segment-shared-secret"
TOKEN = "segment-bearer-token"


def js_stringify(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def sign(data: bytes) -> str:
    return hmac.new(SECRET.encode(), data, hashlib.sha1).hexdigest()


def track(n: int = 1, **overrides) -> dict:
    event = {
        "type": "track",
        "event": "api_call",
        "userId": f"cust-{n}",
        "messageId": f"msg-{n}",
        "timestamp": "2022-05-11T21:33:13.1652304793Z",
        "properties": {"amount": n, "region": "eu", "ignored": {"nested": True}},
    }
    event.update(overrides)
    return event


def http_event(body: bytes | None, headers: dict | None = None, base64_encoded: bool = False) -> dict:
    event = {
        "version": "2.0",
        "routeKey": "POST /segment",
        "rawPath": "/segment",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {"http": {"method": "POST", "path": "/segment"}},
        "isBase64Encoded": base64_encoded,
    }
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if base64_encoded else body.decode()
    return event


def signed_event(body: bytes, signed: bytes | None = None) -> dict:
    return http_event(body, {"x-signature": sign(body if signed is None else signed)})


@pytest.fixture
def queues(monkeypatch):
    with mock_aws():
        aws.reset_clients()
        sqs = aws.client("sqs")
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("ingest", "rejected")}
        monkeypatch.setenv("INGEST_QUEUE_URL", urls["ingest"])
        monkeypatch.setenv("REJECTED_QUEUE_URL", urls["rejected"])
        monkeypatch.setenv("SEGMENT_SHARED_SECRET", SECRET)
        monkeypatch.setenv("SEGMENT_AUTH_TOKEN", TOKEN)
        monkeypatch.setenv("EXTERNAL_CUSTOMER_ID_FIELD", "userId")
        monkeypatch.setenv("PROPERTIES_MAPPING", '{"amount": "amount", "region": "region_code"}')
        for name in (
            "ALLOW_UNAUTHENTICATED",
            "REQUIRE_BEARER_FOR_BATCHES",
            "SEGMENT_SHARED_SECRET_ARN",
            "SEGMENT_AUTH_TOKEN_ARN",
            "MAX_BATCH_EVENTS",
            "MAX_BODY_BYTES",
        ):
            monkeypatch.delenv(name, raising=False)
        intake.reset()
        metrics.clear_metrics()  # other tests may have added metrics without flushing them
        yield urls
        intake.reset()
    aws.reset_clients()


def drain(url: str) -> list[str]:
    sqs = aws.client("sqs")
    bodies: list[str] = []
    while True:
        # Received messages stay invisible for the rest of the test: no need to delete them.
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        messages = response.get("Messages", [])
        if not messages:
            return bodies
        bodies.extend(message["Body"] for message in messages)


def invoke(event, lambda_context):
    response = load_handler("track_intake").lambda_handler(event, lambda_context)
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def test_single_signed_track_call_is_queued(queues, lambda_context, capsys):
    status, body = invoke(signed_event(js_stringify(track())), lambda_context)
    assert (status, body) == (200, {"accepted": 1, "skipped": 0, "rejected": []})
    [message] = drain(queues["ingest"])
    assert OrbUsageEvent.from_message_body(message).to_orb() == {
        "event_name": "api_call",
        "external_customer_id": "cust-1",
        "idempotency_key": "msg-1",
        "timestamp": "2022-05-11T21:33:13.165230Z",
        "properties": {"amount": 1, "region_code": "eu"},
    }
    assert drain(queues["rejected"]) == []
    output = capsys.readouterr().out
    emf = [json.loads(line) for line in output.splitlines() if '"_aws"' in line]
    assert emf and emf[-1]["TrackAccepted"] == [1.0] and emf[-1]["TrackRejected"] == [0.0]
    assert logger.get_correlation_id() == "msg-1"


def test_signed_batch_with_mixed_events(queues, lambda_context):
    elements = [track(1), {"type": "identify", "userId": "cust-1"}, track(2, userId=""), "junk", track(3)]
    first = js_stringify(elements[0])
    raw = b"[" + first + b",\n " + b", ".join(js_stringify(e) for e in elements[1:]) + b"]"
    # X-Segment-Signature: Segment's signature over the whole body (X-Signature covers only `first`).
    status, body = invoke(http_event(raw, {"X-Segment-Signature": sign(raw)}), lambda_context)
    assert status == 200
    assert body["accepted"] == 2 and body["skipped"] == 1
    assert body["rejected"] == [
        {"index": 2, "messageId": "msg-2", "error": "external_customer_id: 'userId' is empty"},
        {"index": 3, "messageId": None, "error": "event must be an object, got string"},
    ]
    keys = sorted(OrbUsageEvent.from_message_body(m).idempotency_key for m in drain(queues["ingest"]))
    assert keys == ["msg-1", "msg-3"]
    rejected = sorted((json.loads(m) for m in drain(queues["rejected"])), key=lambda r: r["index"])
    assert [(r["stage"], r["index"], r["reason"]) for r in rejected] == [
        ("intake", 2, "external_customer_id: 'userId' is empty"),
        ("intake", 3, "event must be an object, got string"),
    ]
    assert rejected[0]["segment_event"] == elements[2] and rejected[1]["segment_event"] == "junk"


def test_http_api_batch_shape_with_bearer_and_base64(queues, lambda_context):
    raw = js_stringify({"batch": [track(n) for n in range(25)]})
    event = http_event(raw, {"Authorization": f"Bearer {TOKEN}"}, base64_encoded=True)
    status, body = invoke(event, lambda_context)
    assert (status, body["accepted"]) == (200, 25)
    assert len(set(drain(queues["ingest"]))) == 25


def test_large_batch_is_queued_one_message_per_event(queues, lambda_context):
    raw = js_stringify([track(n) for n in range(1, 151)])
    status, body = invoke(http_event(raw, {"authorization": f"Bearer {TOKEN}"}), lambda_context)
    assert (status, body["accepted"]) == (200, 150)
    keys = sorted(OrbUsageEvent.from_message_body(m).idempotency_key for m in drain(queues["ingest"]))
    assert keys == sorted(f"msg-{n}" for n in range(1, 151))


def test_only_non_track_calls_is_200_skipped(queues, lambda_context):
    raw = js_stringify([{"type": "page"}, {"type": "screen"}])
    status, body = invoke(http_event(raw, {"authorization": f"Bearer {TOKEN}"}), lambda_context)
    assert (status, body) == (200, {"accepted": 0, "skipped": 2, "rejected": []})
    assert drain(queues["ingest"]) == [] and drain(queues["rejected"]) == []


def test_nothing_valid_is_400_but_kept_in_rejected_queue(queues, lambda_context):
    raw = js_stringify(track(timestamp="soon", properties={"amount": [1, 2]}))
    status, body = invoke(signed_event(raw), lambda_context)
    assert status == 400 and body["accepted"] == 0
    [rejection] = body["rejected"]
    assert "timestamp" in rejection["error"] and "properties.amount: nested array" in rejection["error"]
    [record] = [json.loads(m) for m in drain(queues["rejected"])]
    assert record["segment_event"]["messageId"] == "msg-1" and record["reason"] == rejection["error"]
    assert drain(queues["ingest"]) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-signature": "0" * 40}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"}],
)
def test_unauthenticated_requests_get_401_and_nothing_is_queued(queues, lambda_context, headers, capsys):
    status, body = invoke(http_event(js_stringify(track()), headers), lambda_context)
    assert (status, body) == (401, {"message": "unauthorized"})
    assert drain(queues["ingest"]) == [] and drain(queues["rejected"]) == []
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf and emf[-1]["TrackRequestsRefused"] == [1.0]


def test_batch_signed_over_first_element_needs_bearer_when_required(queues, lambda_context, monkeypatch):
    monkeypatch.setenv("REQUIRE_BEARER_FOR_BATCHES", "true")
    intake.reset()
    first = js_stringify(track(1))
    raw = b"[" + first + b"]"
    assert invoke(http_event(raw, {"x-signature": sign(first)}), lambda_context)[0] == 401
    both = {"x-signature": sign(first), "authorization": f"Bearer {TOKEN}"}
    assert invoke(http_event(raw, both), lambda_context)[0] == 200


def test_malformed_body_from_authenticated_sender_is_400_and_kept(queues, lambda_context):
    raw = b'{"type": "track", "event": '
    status, body = invoke(signed_event(raw), lambda_context)
    assert status == 400 and body["message"].startswith("request body is not valid JSON")
    [record] = [json.loads(m) for m in drain(queues["rejected"])]
    assert record["body_excerpt"] == raw.decode() and record["stage"] == "intake"


def test_malformed_body_from_unauthenticated_sender_is_401(queues, lambda_context):
    assert invoke(http_event(b"[not json"), lambda_context)[0] == 401
    assert drain(queues["rejected"]) == []


def test_limits_give_413(queues, lambda_context, monkeypatch):
    monkeypatch.setenv("MAX_BATCH_EVENTS", "3")
    monkeypatch.setenv("MAX_BODY_BYTES", "4096")
    intake.reset()
    bearer = {"authorization": f"Bearer {TOKEN}"}
    status, body = invoke(http_event(js_stringify([track(n) for n in range(4)]), bearer), lambda_context)
    assert status == 413 and "4 events" in body["message"]
    status, body = invoke(http_event(js_stringify([track(context={"x": "y" * 5000})]), bearer), lambda_context)
    assert status == 413 and "limit of 4096" in body["message"]
    assert drain(queues["ingest"]) == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("not an event", "not an API Gateway HTTP API event"),
        ([1, 2], "not an API Gateway HTTP API event"),
        ({"body": "{}"}, "no headers"),
        ({"headers": None, "body": "{}"}, "no headers"),
        ({"headers": {}}, "request body is empty"),
        ({"headers": {}, "body": ""}, "request body is empty"),
        ({"headers": {}, "body": "%%%", "isBase64Encoded": True}, "not valid base64"),
        ({"headers": {}, "body": 42}, "must be a string"),
    ],
)
def test_odd_events_get_400(queues, lambda_context, event, message):
    status, body = invoke(event, lambda_context)
    assert status == 400 and message in body["message"]


def test_configuration_error_is_a_generic_500_and_named_in_the_log(queues, lambda_context, monkeypatch, caplog):
    monkeypatch.setenv("PROPERTIES_MAPPING", "{not json")
    intake.reset()
    status, body = invoke(signed_event(js_stringify(track())), lambda_context)
    # The caller may be anyone: no configuration detail in the answer, all of it in the log.
    assert (status, body) == (500, {"message": "track intake is misconfigured; see the function's log"})
    assert "PROPERTIES_MAPPING is not valid JSON" in caplog.text
    monkeypatch.delenv("SEGMENT_SHARED_SECRET")
    monkeypatch.delenv("SEGMENT_AUTH_TOKEN")
    monkeypatch.setenv("PROPERTIES_MAPPING", "{}")
    status, body = invoke(signed_event(js_stringify(track())), lambda_context)
    assert (status, body) == (500, {"message": "track intake is misconfigured; see the function's log"})
    assert "no Segment authentication configured" in caplog.text
    assert SECRET not in json.dumps(body)


def test_failed_batch_entries_are_retried(queues, lambda_context, monkeypatch):
    sqs = aws.client("sqs")
    real_send = sqs.send_message_batch
    calls = []

    def flaky_send(**kwargs):
        calls.append(len(kwargs["Entries"]))
        if len(calls) == 1:  # SQS answers 200 but fails the last two entries
            kept, failed = kwargs["Entries"][:-2], kwargs["Entries"][-2:]
            response = real_send(**{**kwargs, "Entries": kept})
            response["Failed"] = [
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"} for e in failed
            ]
            return response
        return real_send(**kwargs)

    monkeypatch.setattr(sqs, "send_message_batch", flaky_send)
    raw = js_stringify([track(n) for n in range(1, 11)])
    status, body = invoke(http_event(raw, {"authorization": f"Bearer {TOKEN}"}), lambda_context)
    assert (status, body["accepted"]) == (200, 10)
    assert calls == [10, 2]
    keys = sorted(OrbUsageEvent.from_message_body(m).idempotency_key for m in drain(queues["ingest"]))
    assert keys == sorted(f"msg-{n}" for n in range(1, 11))


@pytest.mark.parametrize("queue", ["INGEST_QUEUE_URL", "REJECTED_QUEUE_URL"])
def test_sqs_outage_is_503_so_segment_retries(queues, lambda_context, monkeypatch, queue):
    monkeypatch.setenv(queue, queues["ingest"].rsplit("/", 1)[0] + "/gone")
    intake.reset()
    raw = js_stringify([track(1), track(2, userId=None)])
    status, body = invoke(http_event(raw, {"authorization": f"Bearer {TOKEN}"}), lambda_context)
    assert status == 503 and "retry" in body["message"]
