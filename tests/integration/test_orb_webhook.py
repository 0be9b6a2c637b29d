"""The Orb webhook function end to end over moto: DynamoDB (idempotency), EventBridge (a rule on
the bus targets an SQS queue, read to observe what was handed on) and Secrets Manager."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from orb_bridge.webhooks.forwarder import EventBridgeForwarder
from orb_bridge.webhooks.service import Outcome, WebhookReceiver
from orb_bridge.webhooks.settings import WebhookSettings
from tests.support.lambdas import FakeLambdaContext
from tests.support.webhook_stack import BUS, SECRET, delivery, orb_signature, webhook_body, webhook_stack


@pytest.fixture
def stack(monkeypatch):
    with webhook_stack(monkeypatch) as built:
        yield built


def test_valid_webhook_forwarded_with_body_as_detail(stack):
    body = webhook_body("whk_valid")
    status, answer = stack.invoke(delivery(body))
    assert (status, answer["status"], answer["id"]) == (200, "forwarded", "whk_valid")
    [event] = stack.forwarded()
    assert event["source"] == "orb"
    assert event["detail-type"] == "invoice.issued"
    assert event["detail"] == json.loads(body)
    [record] = stack.idempotency_records()
    assert record["status"]["S"] == "COMPLETED" and "expiration" in record


def test_duplicate_delivery_forwarded_once(stack):
    body = webhook_body("whk_dup")
    assert stack.invoke(delivery(body))[0] == 200
    # Orb's redelivery: same body, new timestamp and signature; and a replay of the same request.
    first_redelivery = delivery(body)
    for event in (first_redelivery, first_redelivery, delivery(body)):
        status, answer = stack.invoke(event)
        assert (status, answer["status"]) == (200, "duplicate")
    assert len(stack.forwarded()) == 1


def test_eventbridge_failure_answers_5xx_then_redelivery_forwards_once(stack, monkeypatch):
    monkeypatch.setenv("WEBHOOK_EVENT_BUS_NAME", "bus-created-later")
    body = webhook_body("whk_retry")
    status, answer = stack.invoke(delivery(body))
    assert status == 503 and answer["status"] == "forward_failed"
    assert stack.idempotency_records() == []  # not recorded as done (nor left in progress)
    stack.create_bus("bus-created-later")
    assert stack.invoke(delivery(body))[0] == 200
    assert stack.invoke(delivery(body))[1]["status"] == "duplicate"
    [event] = stack.forwarded()
    assert event["detail"]["id"] == "whk_retry"


class FailingOnce:
    """The real (moto) EventBridge client, but the first PutEvents reports a failed entry, as
    EventBridge does with HTTP 200 under throttling or internal errors."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def put_events(self, **kwargs: Any) -> dict:
        self.calls += 1
        if self.calls == 1:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
            }
        return self.client.put_events(**kwargs)


def test_failed_entry_count_is_a_failure_and_redelivery_forwards_once(stack):
    client = FailingOnce(stack.events)
    receiver = WebhookReceiver(
        WebhookSettings.from_env(), forwarder=EventBridgeForwarder(BUS, client), dynamodb_client=stack.dynamodb
    )
    body = webhook_body("whk_partial")

    def receive() -> Outcome:
        event = delivery(body)
        return receiver.receive(event["body"].encode(), event["headers"], FakeLambdaContext()).outcome

    assert receive() is Outcome.FORWARD_FAILED
    assert stack.idempotency_records() == []
    assert receive() is Outcome.FORWARDED
    assert receive() is Outcome.DUPLICATE
    assert client.calls == 2
    assert len(stack.forwarded()) == 1


class DeliversConcurrently:
    """Orb redelivers while the first invocation is still handing the webhook on."""

    def __init__(self, client: Any, concurrent: Any) -> None:
        self.client = client
        self.concurrent = concurrent
        self.concurrent_outcome: Outcome | None = None

    def put_events(self, **kwargs: Any) -> dict:
        if self.concurrent_outcome is None:
            self.concurrent_outcome = self.concurrent()
        return self.client.put_events(**kwargs)


def test_concurrent_duplicate_is_not_acknowledged_before_the_first_finishes(stack):
    body = webhook_body("whk_concurrent")
    settings = WebhookSettings.from_env()
    receiver: WebhookReceiver

    def second_delivery() -> Outcome:
        event = delivery(body)
        return receiver.receive(event["body"].encode(), event["headers"], FakeLambdaContext()).outcome

    client = DeliversConcurrently(stack.events, second_delivery)
    receiver = WebhookReceiver(settings, forwarder=EventBridgeForwarder(BUS, client), dynamodb_client=stack.dynamodb)
    event = delivery(body)
    first = receiver.receive(event["body"].encode(), event["headers"], FakeLambdaContext())
    assert first.outcome is Outcome.FORWARDED
    assert client.concurrent_outcome is Outcome.IN_PROGRESS
    assert len(stack.forwarded()) == 1
    # Orb retries the 409 later and is told the webhook is done.
    assert second_delivery() is Outcome.DUPLICATE


def test_concurrent_duplicate_answers_409_through_the_handler(stack, monkeypatch):
    body = webhook_body("whk_inflight")
    answers: list[int] = []
    original = EventBridgeForwarder.forward

    def forward_while_redelivered(self, webhook, detail):
        if not answers:
            answers.append(stack.invoke(delivery(body))[0])
        return original(self, webhook, detail)

    monkeypatch.setattr(EventBridgeForwarder, "forward", forward_while_redelivered)
    assert stack.invoke(delivery(body))[0] == 200
    assert answers == [409]
    assert len(stack.forwarded()) == 1


def test_base64_body(stack):
    body = webhook_body("whk_b64")
    status, answer = stack.invoke(delivery(body, base64_body=True))
    assert (status, answer["status"]) == (200, "forwarded")
    assert stack.forwarded()[0]["detail"]["id"] == "whk_b64"


def test_base64_body_verified_over_decoded_bytes(stack):
    body = webhook_body("whk_b64_wrong")
    event = delivery(body, base64_body=True)
    # Signed over the base64 text instead of the bytes Orb sent: must not verify.
    event["headers"]["x-orb-signature"] = orb_signature(
        SECRET, event["headers"]["x-orb-timestamp"], event["body"].encode()
    )
    assert stack.invoke(event)[0] == 401


@pytest.mark.parametrize("base64_body", [False, True])
def test_huge_body_413_and_nothing_forwarded(stack, monkeypatch, base64_body):
    monkeypatch.setenv("ORB_WEBHOOK_MAX_BODY_BYTES", "4096")
    body = webhook_body("whk_huge", padding="x" * 5000)
    status, answer = stack.invoke(delivery(body, base64_body=base64_body))
    assert status == 413 and "too large" in answer["message"]
    assert stack.forwarded() == [] and stack.idempotency_records() == []


def test_a_body_eventbridge_could_not_carry_is_413_by_default(stack):
    body = webhook_body("whk_too_big_for_eventbridge", padding="x" * (256 * 1024))
    status, answer = stack.invoke(delivery(body))
    assert status == 413 and "too large" in answer["message"]
    assert stack.forwarded() == [] and stack.idempotency_records() == []

    # Just under the limit: verified and forwarded whole.
    from orb_bridge.webhooks.settings import WEBHOOK_MAX_BODY_BYTES

    body = webhook_body("whk_big_but_fits", padding="x" * (WEBHOOK_MAX_BODY_BYTES - 2048))
    assert len(body) <= WEBHOOK_MAX_BODY_BYTES
    status, _ = stack.invoke(delivery(body))
    assert status == 200 and len(stack.forwarded()) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda e: e["headers"].pop("x-orb-signature"), id="missing-signature"),
        pytest.param(lambda e: e["headers"].pop("x-orb-timestamp"), id="missing-timestamp"),
        pytest.param(lambda e: e.pop("headers"), id="no-headers"),
        pytest.param(lambda e: e.update(body=e["body"].replace("inv_1", "inv_2")), id="tampered-body"),
        pytest.param(lambda e: e.update(body=json.dumps(json.loads(e["body"]))), id="reserialised-body"),
        pytest.param(lambda e: e["headers"].update({"x-orb-signature": "v2=" + "a" * 64}), id="v2-only"),
        pytest.param(lambda e: e["headers"].update({"x-orb-timestamp": "NaN"}), id="nan-timestamp"),
        pytest.param(lambda e: e["headers"].update({"x-orb-timestamp": "2020-01-01T00:00:00"}), id="stale"),
        pytest.param(lambda e: e.update(body="!!!", isBase64Encoded=True), id="bad-base64"),
        pytest.param(lambda e: e.update(body=e["body"] + "\ud800"), id="lone-surrogate-body"),
    ],
)
def test_refused_deliveries_get_a_generic_401(stack, tamper, capsys):
    event = delivery(webhook_body("whk_refused"))
    tamper(event)
    status, answer = stack.invoke(event)
    assert status == 401
    assert answer == {"status": "rejected", "message": "webhook signature verification failed"}
    assert stack.forwarded() == [] and stack.idempotency_records() == []
    out = capsys.readouterr().out
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    by_reason = [b for b in blobs if "reason" in b and "WebhooksRejected" in b]
    totals = [b for b in blobs if "reason" not in b and "WebhooksRejected" in b]
    assert len(by_reason) == 1 and by_reason[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["reason"]]
    assert len(totals) == 1 and totals[0]["WebhooksRejected"] in (1.0, [1.0])
    assert SECRET not in out


def test_wrong_secret_and_rotation(stack, monkeypatch):
    body = webhook_body("whk_rotated")
    assert stack.invoke(delivery(body, secret="dev-secret-new"))[0] == 401
    monkeypatch.setenv("ORB_WEBHOOK_SECRET", f"{SECRET},\ndev-secret-new")
    assert stack.invoke(delivery(body, secret="dev-secret-new"))[0] == 200
    assert stack.invoke(delivery(webhook_body(), secret=SECRET))[0] == 200
    assert len(stack.forwarded()) == 2


def test_secret_from_secrets_manager(stack, monkeypatch):
    arn = boto3.client("secretsmanager").create_secret(
        Name="orb-webhook", SecretString="dev-secret-sm_1\ndev-secret-sm_2"
    )["ARN"]
    monkeypatch.delenv("ORB_WEBHOOK_SECRET")
    monkeypatch.setenv("ORB_WEBHOOK_SECRET_ARN", arn)
    assert stack.invoke(delivery(webhook_body(), secret="dev-secret-sm_2"))[0] == 200
    assert stack.invoke(delivery(webhook_body(), secret=SECRET))[0] == 401


def test_no_secret_refuses_every_request_with_a_generic_500(stack, monkeypatch, caplog):
    monkeypatch.delenv("ORB_WEBHOOK_SECRET")
    status, answer = stack.invoke(delivery(webhook_body()))
    assert status == 500
    # The caller may be anyone: the setting is named in the log only.
    assert answer["message"] == "webhook receiver is not configured; see the function's log"
    assert any("ORB_WEBHOOK_SECRET" in str(getattr(record, "error", "")) for record in caplog.records)
    assert stack.forwarded() == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"type": "invoice.issued", "created_at": "2024-03-27T15:42:29Z"}', "id"),
        (b'{"id": "whk_x", "created_at": "2024-03-27T15:42:29Z"}', "type"),
        (b'{"id": "whk_x", "type": "invoice.issued"}', "created_at"),
        (b"[]", "JSON object"),
        (b"not json", "not JSON"),
    ],
)
def test_authentic_but_unusable_payload_400(stack, body, error):
    status, answer = stack.invoke(delivery(body))
    assert status == 400 and answer["status"] == "invalid_payload"
    assert any(error in e for e in answer["errors"])
    assert stack.forwarded() == []


def test_standard_style_and_unknown_type_pass_through(stack):
    standard = webhook_body("whk_std", "subscription.started", payload_style="standard")
    unknown = webhook_body("whk_new", "widget.frobnicated")
    assert stack.invoke(delivery(standard))[0] == 200
    assert stack.invoke(delivery(unknown))[0] == 200
    types = sorted(event["detail-type"] for event in stack.forwarded())
    assert types == ["subscription.started", "widget.frobnicated"]
