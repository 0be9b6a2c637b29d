"""The Orb webhook function on moto, and signed Orb deliveries, for tests.

Fixtures wrapping ``webhook_stack`` live in the conftest.py files that need them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.webhooks import service as webhook_service
from orb_bridge_dev.commands.webhook.event import http_api_event
from tests.support.lambdas import FakeLambdaContext, load_handler

SECRET = "dev-secret-integration_5d1c"
BUS = "orb-webhooks"
TABLE = "orb-webhook-idempotency"


def orb_timestamp() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def orb_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), b"v1:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def webhook_body(webhook_id: str | None = None, webhook_type: str = "invoice.issued", **extra: Any) -> bytes:
    document = {
        "id": webhook_id or f"whk_{uuid.uuid4().hex[:12]}",
        "created_at": "2024-03-27T15:42:29+00:00",
        "type": webhook_type,
        "invoice": {"id": "inv_1", "amount_due": "12.50"},
        "properties": {},
        **extra,
    }
    # Orb's formatting, with spaces: re-serialising it would change the bytes.
    return json.dumps(document, indent=1).encode()


def delivery(body: bytes, secret: str = SECRET, *, base64_body: bool = False, signature: str | None = None) -> dict:
    """What API Gateway hands the function for one (re)delivery: signed now, as Orb does."""
    timestamp = orb_timestamp()
    return http_api_event(body, timestamp, signature or orb_signature(secret, timestamp, body), base64_body=base64_body)


@dataclass
class WebhookStack:
    handler: Any
    sqs: Any
    events: Any
    dynamodb: Any
    queue_url: str

    def invoke(self, event: dict) -> tuple[int, dict]:
        response = self.handler.lambda_handler(event, FakeLambdaContext(function_name="OrbWebhookFunction"))
        return response["statusCode"], json.loads(response["body"])

    def forwarded(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def idempotency_records(self) -> list[dict]:
        return self.dynamodb.scan(TableName=TABLE)["Items"]

    def create_bus(self, name: str = BUS) -> None:
        self.events.create_event_bus(Name=name)
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events.put_rule(Name="all-orb", EventBusName=name, EventPattern=json.dumps({"source": ["orb"]}))
        self.events.put_targets(Rule="all-orb", EventBusName=name, Targets=[{"Id": "queue", "Arn": arn}])


@contextmanager
def webhook_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookStack]:
    """The Orb webhook function on moto: DynamoDB (idempotency), EventBridge with a rule to an
    SQS queue (read to observe what was handed on); settings from the environment."""
    with mock_aws():
        aws.reset_clients()
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="forwarded")["QueueUrl"]
        for name in ("ORB_WEBHOOK_SECRET_ARN", "ORB_WEBHOOK_TOLERANCE_SECONDS", "ORB_WEBHOOK_MAX_BODY_BYTES"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ORB_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("WEBHOOK_EVENT_BUS_NAME", BUS)
        monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", TABLE)
        handler = load_handler("orb_webhook")
        webhook_service.reset()  # receivers hold clients of the previous moto backend
        built = WebhookStack(handler, sqs, boto3.client("events"), dynamodb, queue_url)
        built.create_bus()
        yield built
        webhook_service.reset()
        aws.reset_clients()
