"""The hostile-input suite's harness: the real Track intake handler on moto's SQS.

Every finding of the security review (issue 9) has a test here that failed before its fix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from orb_bridge import aws, intake
from orb_bridge.observability import metrics
from tests.support.lambdas import FakeLambdaContext, load_handler

SECRET = "hostile-shared-secret-71c3"
TOKEN = "hostile-bearer-token-0b9e"
# Lambda refuses a response over 6 MB; SQS a message over 256 KiB on older queues.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
MAX_RECORD_BYTES = 256 * 1024


def sign(data: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha1).hexdigest()


def js_stringify(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def track(n: int = 1, **overrides: Any) -> dict[str, Any]:
    event = {"type": "track", "event": "api_call", "userId": f"cust-{n}", "messageId": f"msg-{n}",
             "timestamp": "2026-11-02T10:00:00Z", "properties": {"amount": n}}
    event.update(overrides)
    return event


def http_event(body: bytes, headers: dict[str, Any] | None = None, base64_encoded: bool = False) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "POST /segment",
        "rawPath": "/segment",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {"http": {"method": "POST", "path": "/segment"}, "requestId": "hostile"},
        "body": base64.b64encode(body).decode() if base64_encoded else body.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": base64_encoded,
    }


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    size: int  # bytes of the whole Lambda response


@dataclass
class IntakeStack:
    sqs: Any
    urls: dict[str, str]

    def invoke(self, event: dict[str, Any]) -> Answer:
        response = load_handler("track_intake").lambda_handler(event, FakeLambdaContext())
        return Answer(response["statusCode"], json.loads(response["body"]), len(json.dumps(response).encode()))

    def drain(self, queue: str) -> list[str]:
        bodies: list[str] = []
        while messages := self.sqs.receive_message(
            QueueUrl=self.urls[queue], MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", []):
            bodies.extend(message["Body"] for message in messages)
        return bodies


@pytest.fixture
def intake_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[IntakeStack]:
    """Shared secret and Bearer token configured, as the README recommends."""
    with mock_aws():
        aws.reset_clients()
        sqs = aws.client("sqs")
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("ingest", "rejected")}
        monkeypatch.setenv("INGEST_QUEUE_URL", urls["ingest"])
        monkeypatch.setenv("REJECTED_QUEUE_URL", urls["rejected"])
        monkeypatch.setenv("SEGMENT_SHARED_SECRET", SECRET)
        monkeypatch.setenv("SEGMENT_AUTH_TOKEN", TOKEN)
        monkeypatch.setenv("EXTERNAL_CUSTOMER_ID_FIELD", "userId")
        monkeypatch.setenv("PROPERTIES_MAPPING", '{"amount": "amount"}')
        for name in ("ALLOW_UNAUTHENTICATED", "REQUIRE_BEARER_FOR_BATCHES", "SEGMENT_SHARED_SECRET_ARN",
                     "SEGMENT_AUTH_TOKEN_ARN", "MAX_BATCH_EVENTS", "MAX_BODY_BYTES",
                     "ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES"):
            monkeypatch.delenv(name, raising=False)
        intake.reset()
        metrics.clear_metrics()
        yield IntakeStack(sqs, urls)
        intake.reset()
    aws.reset_clients()
