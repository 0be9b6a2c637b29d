"""The first-request events of the lambda-like bench: a Segment Track call, a 1,000-event body,
an SQS batch for ingest and an Orb webhook signed now, with the secrets they carry."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orb_bridge_dev.devstack.gateway import http_api_v2_event
from orb_bridge_dev.devstack.lambda_runtime import sqs_event

SEGMENT_TOKEN = "bench-segment-token"
ORB_API_KEY = "bench-orb-key"  # the sandbox's key (bench.sandbox_process.API_KEY)
WEBHOOK_SECRET = "bench-webhook-secret"
ACCOUNT = "123456789012"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def segment_event(index: int) -> dict[str, Any]:
    now = _now()
    return {
        "type": "track",
        "event": "api_call",
        "userId": f"customer_{index % 97}",
        "anonymousId": f"anon-{index}",
        "messageId": f"bench-{uuid.uuid4()}",
        "timestamp": now,
        "originalTimestamp": now,
        "sentAt": now,
        "receivedAt": now,
        "properties": {"amount": index % 100, "currency": "USD", "region": "eu-west-1", "ignored": "x" * 20},
        "context": {"library": {"name": "analytics-node", "version": "6.0.0"}, "ip": "203.0.113.7"},
    }


def http_event(body: bytes, headers: list[tuple[str, str]], path: str) -> dict[str, Any]:
    return http_api_v2_event(
        method="POST",
        raw_path=path,
        raw_query="",
        headers=headers,
        body=body,
        route_key=f"POST {path}",
        source_ip="127.0.0.1",
        host="localhost",
    )


def write_events(directory: Path, batch_events: int = 1000) -> dict[str, str]:
    """Fresh first-request events (new ids, a webhook signed now) as the event sources build them."""
    from orb_bridge.webhooks import signature

    auth = [("content-type", "application/json"), ("authorization", f"Bearer {SEGMENT_TOKEN}")]
    webhook_body = json.dumps(
        {
            "id": f"wh_{uuid.uuid4().hex}",
            "created_at": _now(),
            "type": "resource_event.test",
            "properties": {"message": "bench"},
        }
    ).encode()
    timestamp = signature.format_timestamp(datetime.now(UTC))
    webhook_headers = [
        ("content-type", "application/json"),
        ("x-orb-timestamp", timestamp),
        ("x-orb-signature", signature.sign(WEBHOOK_SECRET, timestamp, webhook_body)),
    ]
    run = uuid.uuid4().hex[:8]
    orb_events = [
        json.dumps(
            {
                "event_name": "api_request",
                "idempotency_key": f"{run}-{n}",
                "timestamp": _now(),
                "external_customer_id": "customer_1",
                "properties": {"n": n},
            }
        )
        for n in range(10)
    ]
    ingest = sqs_event(orb_events, "bench-ingest")
    for record in ingest["Records"]:
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:{ACCOUNT}:bench-ingest"
    events = {
        "track_intake": http_event(json.dumps(segment_event(0)).encode(), auth, "/segment"),
        "intake_batch": http_event(
            json.dumps([segment_event(n) for n in range(batch_events)]).encode(), auth, "/segment"
        ),
        "orb_ingest": ingest,
        "orb_webhook": http_event(webhook_body, webhook_headers, "/orb/webhook"),
    }
    paths = {}
    for name, event in events.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(event))
        paths[name] = str(path)
    return paths
