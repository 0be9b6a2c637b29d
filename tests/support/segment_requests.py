"""Segment requests for the hostile-input suite: signing, bodies, API Gateway events, and the
real Track intake handler on moto's SQS (``IntakeStack``; the fixture is in tests/hostile/conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

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
    event = {
        "type": "track",
        "event": "api_call",
        "userId": f"cust-{n}",
        "messageId": f"msg-{n}",
        "timestamp": "2026-11-02T10:00:00Z",
        "properties": {"amount": n},
    }
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
