"""Each function's first request, in a fresh process, imports no pydantic (issue 12).

pydantic costs about 70 ms of a cold start, a sixth of the floor the cold-start targets are
measured against (BENCHMARKS.md); the handlers read settings, SQS records, Orb's usual answer,
usage events and webhooks without it, and keep the pydantic models for what those plain checks
do not accept. This guards that path in `make test`, where a timing could not: a child process
(moto in-process for AWS, the Orb sandbox over loopback for Orb) runs the first request as
Lambda would and lists the modules it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orb_bridge.webhooks.signature import format_timestamp, sign
from orb_bridge_dev.commands.webhook.event import default_payload, http_api_event
from orb_bridge_dev.orb_sandbox import OrbSandbox
from tests.support.ingest_doubles import usage_event
from tests.support.segment_requests import http_event, track

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "first-request-key"
WEBHOOK_SECRET = "first-request-secret"

CHILD = """
import json, os, sys
spec = json.loads(sys.argv[1])
os.environ.update(spec["env"])
from moto import mock_aws

with mock_aws():
    import boto3

    sqs = boto3.client("sqs")
    for variable in ("INGEST_QUEUE_URL", "REJECTED_QUEUE_URL"):
        if variable in spec["env"]:
            os.environ[variable] = sqs.create_queue(QueueName=variable.lower()[:-4])["QueueUrl"]
    if "IDEMPOTENCY_TABLE_NAME" in spec["env"]:
        boto3.client("dynamodb").create_table(
            TableName=spec["env"]["IDEMPOTENCY_TABLE_NAME"],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("events").create_event_bus(Name=spec["env"]["WEBHOOK_EVENT_BUS_NAME"])
    before = {name for name in sys.modules if name.split(".")[0] in ("pydantic", "pydantic_core")}
    sys.path[:0] = [spec["function_dir"], spec["layer_dir"]]
    import app

    class Context:
        aws_request_id = "00000000-0000-4000-8000-000000000000"
        function_name = "first-request"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:first-request"

        def get_remaining_time_in_millis(self):
            return 60_000

    response = app.lambda_handler(spec["event"], Context())
    loaded = sorted(
        name for name in sys.modules if name.split(".")[0] in ("pydantic", "pydantic_core") and name not in before
    )
    print(json.dumps({"response": response, "pydantic": loaded}))
"""

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "SegmentOrbBridge",
}


@pytest.fixture(scope="module")
def orb() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=API_KEY) as sandbox:
        yield sandbox


def first_request(function: str, env: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "env": {**AWS_ENV, **env},
        "event": event,
        "function_dir": str(ROOT / "functions" / function),
        "layer_dir": str(ROOT / "layers" / "orb_bridge"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_track_intakes_first_request_imports_no_pydantic() -> None:
    body = json.dumps([track(n) for n in range(3)]).encode()
    env = {
        "INGEST_QUEUE_URL": "-",
        "REJECTED_QUEUE_URL": "-",
        "SEGMENT_AUTH_TOKEN": "token",
        "EXTERNAL_CUSTOMER_ID_FIELD": "userId",
        "POWERTOOLS_SERVICE_NAME": "track_intake",
    }
    result = first_request("track_intake", env, http_event(body, {"authorization": "Bearer token"}))
    assert result["response"]["statusCode"] == 200, result["response"]
    assert json.loads(result["response"]["body"])["accepted"] == 3
    assert result["pydantic"] == []


def test_orb_ingests_first_request_imports_no_pydantic(orb: OrbSandbox) -> None:
    a_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bodies = [usage_event(n, timestamp=a_minute_ago).to_message_body() for n in range(3)]
    event = {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"r-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
            }
            for n, body in enumerate(bodies)
        ]
    }
    env = {
        "ORB_API_BASE_URL": orb.base_url,
        "ORB_API_KEY": API_KEY,
        "REJECTED_QUEUE_URL": "-",
        "POWERTOOLS_SERVICE_NAME": "orb_ingest",
    }
    result = first_request("orb_ingest", env, event)
    assert result["response"] == {"batchItemFailures": []}
    assert orb.wait_for_ingested(["key-0", "key-1", "key-2"], timeout=5)
    assert result["pydantic"] == []


def test_orb_webhooks_first_request_imports_no_pydantic() -> None:
    now = datetime.now(UTC)
    raw = default_payload(now)
    timestamp = format_timestamp(now)
    event = http_api_event(raw, timestamp, sign(WEBHOOK_SECRET, timestamp, raw))
    env = {
        "ORB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_EVENT_BUS_NAME": "orb-webhooks",
        "IDEMPOTENCY_TABLE_NAME": "webhook-idempotency",
        "POWERTOOLS_SERVICE_NAME": "orb_webhook",
    }
    result = first_request("orb_webhook", env, event)
    assert result["response"]["statusCode"] == 200, result["response"]
    assert result["pydantic"] == []
