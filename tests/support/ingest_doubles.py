"""A scripted Orb (for httpx.MockTransport), usage events and an ingest service wired to them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx

from orb_bridge.aws import clients as aws
from orb_bridge.aws.queues import SqsQueue
from orb_bridge.ingest.messages import SqsMessage
from orb_bridge.ingest.service import IngestService
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.orb.client import OrbClient
from orb_bridge.orb.usage_event import OrbUsageEvent


def usage_event(i: int, **changes) -> OrbUsageEvent:
    fields = {
        "event_name": "api_call",
        "idempotency_key": f"key-{i}",
        "timestamp": "2026-11-21T09:00:00Z",
        "external_customer_id": f"cust-{i % 7}",
        "properties": {"units": i},
    }
    fields.update(changes)
    return OrbUsageEvent(**fields)


VALIDATION_TYPE = "https://docs.withorb.com/reference/error-responses#400-request-validation-errors"


class FakeOrb:
    """Answers like Orb's spec, unless scripted: a request holding any of ``invalid_keys`` is a
    whole-request 400 ``RequestValidationError`` naming them in a ``validation_failed`` list
    (nothing of it ingested); otherwise 200 with an empty ``validation_failed``."""

    def __init__(self) -> None:
        self.requests: list[list[dict]] = []
        self.bodies: list[bytes] = []  # each request's body as sent
        self.timeouts: list[float] = []
        self.invalid_keys: dict[str, list[str]] = {}
        # key -> a 400 for any request carrying it (a "poisonous" event)
        self.bad_request_keys: set[str] = set()
        self.scripted: list[Callable[[], httpx.Response]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        with self._lock:
            self.requests.append(events)
            self.bodies.append(request.content)
            self.timeouts.append(request.extensions["timeout"]["read"])
            scripted = self.scripted.pop(0) if self.scripted else None
        if scripted is not None:
            return scripted()
        keys = [event["idempotency_key"] for event in events]
        assert len(keys) == len(set(keys)), "a request carried the same idempotency key twice"
        bad = [key for key in keys if key in self.bad_request_keys]
        if bad:
            return httpx.Response(
                400,
                json={"status": 400, "title": "Request validation error", "validation_errors": [f"{bad[0]} is bad"]},
            )
        failed = [
            {"idempotency_key": key, "validation_errors": self.invalid_keys[key]}
            for key in keys
            if key in self.invalid_keys
        ]
        if failed:
            return httpx.Response(
                400,
                json={
                    "type": VALIDATION_TYPE,
                    "status": 400,
                    "title": "Request validation error",
                    "detail": f"{len(failed)} of {len(keys)} events failed validation",
                    "validation_errors": [message for item in failed for message in item["validation_errors"]],
                    "validation_failed": failed,
                },
            )
        return httpx.Response(200, json={"validation_failed": []})

    def sent_keys(self) -> list[str]:
        return [event["idempotency_key"] for request in self.requests for event in request]


def rejected_records(url: str) -> list[dict]:
    sqs = aws.client("sqs")
    records: list[dict] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return records
        records.extend(json.loads(message["Body"]) for message in batch)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )


def make_service(orb: Callable[[httpx.Request], httpx.Response], queue_url: str, **settings: Any) -> IngestService:
    options: dict[str, Any] = {
        "max_events_per_request": 500,
        "max_concurrent_requests": 4,
        "request_timeout_seconds": 2.0,
        "safety_margin_seconds": 1.0,
    }
    options.update(settings)
    config = IngestSettings(
        orb_api_base_url="https://orb.test/v1", orb_api_key="k", rejected_queue_url=queue_url, **options
    )
    client = OrbClient(config.orb_api_base_url, config.orb_api_key, httpx.Client(transport=httpx.MockTransport(orb)))
    return IngestService(config, client, SqsQueue(queue_url))


def messages_for(events: list[OrbUsageEvent]) -> list[SqsMessage]:
    return [SqsMessage(f"msg-{n}", event.to_message_body()) for n, event in enumerate(events)]
