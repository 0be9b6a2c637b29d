"""The reconciler's bench (issue 18): reconcile N archived events against the Orb sandbox.

The archive is written straight to moto's S3 in-process (objects of 500 events, in the archive's
format) and the events are put straight into the sandbox's store (no HTTP: ingest is measured
elsewhere); the reconciler then runs as deployed, over real HTTP to the sandbox, paced at
``requests_per_second``. Measured: Orb calls (searches, volume), S3 requests, time against the
pacing bound (calls / rate), and the cost per million events.

    python -m bench.reconcile_bench --events 100000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "layers" / "orb_bridge", ROOT / "dev", ROOT):
    sys.path.insert(0, str(path)) if str(path) not in sys.path else None

from bench.cost import DYNAMODB_READ_UNIT, DYNAMODB_WRITE_UNIT, LAMBDA_GB_SECOND, LAMBDA_REQUEST  # noqa: E402

BUCKET = "bench-audit"
TABLE = "bench-reconcile-checkpoints"
API_KEY = "bench-reconcile-key"
PER_OBJECT = 500
S3_GET = 0.0004 / 1000  # S3 Standard, us-east-1: GET per request
S3_LIST_OR_PUT = 0.005 / 1000  # LIST and PUT per request
MEMORY_MB = 512  # OrbReconcileFunction's MemorySize
# The sandbox's clock: every send-hour's first and final passes are due, no daily pass yet.
SENT = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def _event(number: int, sent_hour: datetime) -> dict[str, Any]:
    moment = sent_hour + timedelta(milliseconds=number % 3_000_000)
    return {
        "idempotency_key": f"bench-{number:08d}",
        "event_name": "api_call",
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "properties": {"tokens": number % 1000, "model": "small"},
        "external_customer_id": f"cust-{number % 97}",
    }


def _archive_and_ingest(s3: Any, sandbox: Any, events: int, hours: int) -> int:
    """Write the archive (one object per 500 events) and put the same events in Orb's store."""
    from orb_bridge_dev.orb_sandbox.store import StoredEvent
    from tests.support.audit_archive import write_archive_object

    per_hour = math.ceil(events / hours)
    objects = 0
    with sandbox.lock:
        for start in range(0, events, PER_OBJECT):
            sent_hour = SENT + timedelta(hours=start // per_hour)
            chunk = [_event(n, sent_hour) for n in range(start, min(events, start + PER_OBJECT))]
            objects += 1
            write_archive_object(s3, BUCKET, chunk, sent_hour + timedelta(minutes=55), request_number=objects)
            for body in chunk:
                moment = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
                sandbox.store.admit(StoredEvent.from_event(body, moment, moment, None), None)
    return objects


def run(events: int = 100_000, hours: int = 10, requests_per_second: float = 2.0) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from orb_bridge.orb.reconcile_client import OrbReadClient
    from orb_bridge.reconcile.pacing import Pacer
    from orb_bridge.reconcile.service import Reconciler
    from orb_bridge.reconcile.settings import ReconcileSettings
    from orb_bridge_dev.orb_sandbox import OrbSandbox

    now = SENT + timedelta(hours=hours + 20)
    with mock_aws(), OrbSandbox(api_key=API_KEY, clock=lambda: now) as sandbox:
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        started = time.perf_counter()
        objects = _archive_and_ingest(s3, sandbox, events, hours)
        generate_seconds = time.perf_counter() - started

        dynamo_calls = {"read": 0, "write": 0}

        def count_dynamodb(event_name: str, **_: Any) -> None:
            dynamo_calls["write" if event_name.endswith(("PutItem",)) else "read"] += 1

        dynamodb.meta.events.register("before-call.dynamodb.*", count_dynamodb)
        settings = ReconcileSettings(
            orb_api_base_url=sandbox.base_url,
            orb_api_key=API_KEY,
            audit_bucket_name=BUCKET,
            checkpoint_table_name=TABLE,
            requests_per_second=requests_per_second,
            grace_period_hours=12,
            safety_margin_seconds=0,
        )
        pacer = Pacer(requests_per_second)
        orb = OrbReadClient(sandbox.base_url, API_KEY, pacer)
        metrics: dict[str, float] = {}
        reconciler = Reconciler(
            settings,
            s3,
            dynamodb,
            orb,
            lambda metric, value: metrics.__setitem__(metric.name, metrics.get(metric.name, 0) + value),
            now,
            lambda: 900.0,
        )
        started = time.perf_counter()
        summary = reconciler.run()
        seconds = time.perf_counter() - started

    calls = sum(orb.calls.values())
    pacing_bound = (calls - 1) / requests_per_second if calls else 0.0
    passes = len(summary.done)
    checked = int(metrics.get("EventsReconciled", 0))
    scale = 1e6 / events
    # At the deployed pace the run lasts calls / ReconcileRequestsPerSecond: Lambda bills that time.
    deployed_seconds = calls / 2.0
    gets = objects * passes // hours  # each pass reads its send-hour's objects once
    cost = {
        "s3": (reconciler.s3_requests - gets) * S3_LIST_OR_PUT + gets * S3_GET,
        # Checkpoint items stay under 1 KB (not-present keys only): one unit per request.
        "dynamodb": dynamo_calls["write"] * DYNAMODB_WRITE_UNIT + dynamo_calls["read"] * DYNAMODB_READ_UNIT,
        "lambda_at_2_per_second": deployed_seconds * MEMORY_MB / 1024 * LAMBDA_GB_SECOND
        + math.ceil(deployed_seconds / 900) * LAMBDA_REQUEST,
    }
    return {
        "events": events,
        "send_hours": hours,
        "passes": passes,
        "archive_objects": objects,
        "generate_seconds": generate_seconds,
        "requests_per_second": requests_per_second,
        "searches": orb.calls["search"],
        "volume_calls": orb.calls["volume"],
        "searches_per_million": orb.calls["search"] * scale,
        "searches_per_million_per_pass": orb.calls["search"] * scale / max(1, passes / hours),
        "s3_requests": reconciler.s3_requests,
        "dynamodb_requests": dict(dynamo_calls),
        "seconds": seconds,
        "pacing_bound_seconds": pacing_bound,
        "ratio": seconds / pacing_bound if pacing_bound else 0.0,
        "checked": checked,
        "not_present": {name: metrics.get(name, 0) for name in metrics if name != "EventsReconciled"},
        "stopped": summary.stopped,
        "cost_per_million": {name: value * scale for name, value in cost.items()},
        "cost_per_million_total": sum(cost.values()) * scale,
        "cost_per_million_per_pass": sum(cost.values()) * scale / max(1, passes / hours),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--hours", type=int, default=10, help="send-hours the events are spread over")
    parser.add_argument("--requests-per-second", type=float, default=2.0, help="the deployed default: 2")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.events, args.hours, args.requests_per_second), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
