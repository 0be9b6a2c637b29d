"""Intake: one 1,000-event Webhooks Actions batch through the handler, SQS answered in-process,
beside the floor of ``json.loads`` + ``json.dumps`` of the same body. Also one single event
(classic Webhooks), for the cost model.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.common import FakeLambdaContext, InProcessSqs, isolate_aws_environment, load_handler, time_per_call
from bench.log_capture import log_bytes
from orb_bridge_dev.devstack.gateway import http_api_v2_event

AUTH_TOKEN = "bench-intake-token"


def segment_batch(count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [
        {
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
        for index in range(count)
    ]


def http_event(body: str) -> dict[str, Any]:
    headers = [("content-type", "application/json"), ("authorization", f"Bearer {AUTH_TOKEN}")]
    return http_api_v2_event(
        method="POST",
        raw_path="/segment",
        raw_query="",
        headers=headers,
        body=body.encode(),
        route_key="POST /segment",
        source_ip="127.0.0.1",
        host="localhost",
    )


def run(events: int = 1000) -> dict[str, Any]:
    isolate_aws_environment()
    os.environ.update(
        {
            "INGEST_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-ingest",
            "REJECTED_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench-rejected",
            "EXTERNAL_CUSTOMER_ID_FIELD": "userId",
            "PROPERTIES_MAPPING": json.dumps({"amount": "amount", "currency": "currency", "region": "region"}),
            "SEGMENT_AUTH_TOKEN": AUTH_TOKEN,
            "POWERTOOLS_SERVICE_NAME": "track_intake",
        }
    )
    handler = load_handler("track_intake")
    from orb_bridge.aws import clients as aws
    from orb_bridge.aws import queues

    sqs = InProcessSqs(aws.client("sqs"))
    body = json.dumps(segment_batch(events))
    single_body = json.dumps(segment_batch(1)[0])
    batch_event, single_event = http_event(body), http_event(single_body)
    context = FakeLambdaContext(timeout_seconds=10, function_name="track_intake")

    response = handler.lambda_handler(batch_event, context)
    accepted = json.loads(response["body"]).get("accepted")
    if response["statusCode"] != 200 or accepted != events:
        raise RuntimeError(f"intake did not accept the batch: {response}")
    calls_before = sqs.calls
    handler.lambda_handler(batch_event, context)
    calls_per_batch = sqs.calls - calls_before
    message_bytes = sqs.bytes / sqs.messages
    _, batch_log_bytes = log_bytes(lambda: handler.lambda_handler(batch_event, context))
    _, single_log_bytes = log_bytes(lambda: handler.lambda_handler(single_event, context))

    batch_seconds = time_per_call(lambda: handler.lambda_handler(batch_event, context), min_seconds=1.0)
    single_seconds = time_per_call(lambda: handler.lambda_handler(single_event, context), min_seconds=0.5)
    floor_seconds = time_per_call(lambda: json.dumps(json.loads(body)), min_seconds=0.5)
    return {
        "events": events,
        "body_bytes": len(body.encode()),
        "handler_us_per_event": batch_seconds / events * 1e6,
        "handler_batch_ms": batch_seconds * 1000,
        "single_event_ms": single_seconds * 1000,
        "floor_us_per_event": floor_seconds / events * 1e6,
        "send_message_batch_calls": calls_per_batch,
        "sqs_message_bytes": message_bytes,
        "send_workers": queues.SEND_WORKERS,
        "send_chunk": queues.SEND_CHUNK,
        "log_bytes_per_batch": batch_log_bytes,
        "log_bytes_per_single": single_log_bytes,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
