"""The reconciler's bench (issue 18): reconcile N archived events against the Orb sandbox.

The archive is written straight to moto's S3 in-process (objects of 500 events, in the archive's
format) and the events are put straight into the sandbox's store (no HTTP: ingest is measured
elsewhere); the reconciler then runs as deployed, over real HTTP to the sandbox, paced at
``requests_per_second``. Measured: Orb calls (searches, volume), S3 requests, time against the
pacing bound (calls / rate) at the rate it ran at, peak memory, and the cost per million events at
the deployed rate (Lambda bills the paced waiting, so the cost follows the deployed 2 requests/s, not
the bench's faster pace).

By default only first passes are due (the clock stands an hour after the last send-hour ended), so
each key is looked up once; ``--final-passes`` moves the clock on until the final passes are due too.
Send-hours of ``events / hours`` events at most ``ReconcileFullCheckEventsPerHour`` (100,000) are
looked up in full.

    python -m bench.reconcile_bench --events 1000000 --hours 10 --requests-per-second 25
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "layers" / "orb_bridge", ROOT / "dev", ROOT):
    sys.path.insert(0, str(path)) if str(path) not in sys.path else None

from bench.cost import (  # noqa: E402
    DYNAMODB_READ_UNIT,
    DYNAMODB_WRITE_UNIT,
    LAMBDA_GB_SECOND,
    LAMBDA_REQUEST,
    template_facts,
)

BUCKET = "bench-audit"
TABLE = "bench-reconcile-checkpoints"
API_KEY = "bench-reconcile-key"
PER_OBJECT = 500
S3_GET = 0.0004 / 1000  # S3 Standard, us-east-1: GET per request
S3_LIST_OR_PUT = 0.005 / 1000  # LIST and PUT per request
DEPLOYED_REQUESTS_PER_SECOND = 2.0  # ReconcileRequestsPerSecond's default
GRACE_PERIOD_HOURS = 12
SENT = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def bench_clock(hours: int, final_passes: bool) -> datetime:
    """The reconciler's clock: every send-hour's first pass due (an hour after the last one ended);
    with ``final_passes`` their final passes too. No daily pass is due at either."""
    if final_passes:
        return SENT + timedelta(hours=hours + 20)
    if hours > GRACE_PERIOD_HOURS + 1:
        raise ValueError(f"first passes only: at most {GRACE_PERIOD_HOURS + 1} send-hours, else a final pass is due")
    return SENT + timedelta(hours=hours + 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _archive_and_ingest(s3: Any, sandbox: Any, events: int, hours: int) -> int:
    """Write the archive (one object per 500 events) and put the same events in Orb's store."""
    from bench.reconcile_memory import archived_event
    from orb_bridge_dev.orb_sandbox.store import StoredEvent
    from tests.support.audit_archive import write_archive_object

    per_hour = math.ceil(events / hours)
    objects = 0
    with sandbox.lock:
        for start in range(0, events, PER_OBJECT):
            sent_hour = SENT + timedelta(hours=start // per_hour)
            chunk = [archived_event(n, sent_hour, 3_000_000) for n in range(start, min(events, start + PER_OBJECT))]
            objects += 1
            write_archive_object(s3, BUCKET, chunk, sent_hour + timedelta(minutes=55), request_number=objects)
            for body in chunk:
                moment = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
                sandbox.store.admit(StoredEvent.from_event(body, moment, moment, None), None)
    return objects


def run(
    events: int = 100_000, hours: int = 10, requests_per_second: float = 2.0, final_passes: bool = False
) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from orb_bridge.orb.reconcile_client import OrbReadClient
    from orb_bridge.reconcile.pacing import Pacer
    from orb_bridge.reconcile.service import Reconciler
    from orb_bridge.reconcile.settings import ReconcileSettings
    from orb_bridge_dev.orb_sandbox import OrbSandbox

    now = bench_clock(hours, final_passes)
    memory_mb = template_facts().reconcile_memory_mb
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
        rss_after_fill = peak_rss_mb()

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
            grace_period_hours=GRACE_PERIOD_HOURS,
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
        select_seconds = [0.0]
        select = reconciler._select

        def timed_select(item: Any) -> Any:  # reading an hour's archive and choosing its keys
            begun = time.perf_counter()
            try:
                return select(item)
            finally:
                select_seconds[0] += time.perf_counter() - begun

        reconciler._select = timed_select  # type: ignore[method-assign]
        started = time.perf_counter()
        summary = reconciler.run()
        seconds = time.perf_counter() - started

    calls = sum(orb.calls.values())
    pacing_bound = (calls - 1) / requests_per_second if calls else 0.0
    passes = len(summary.done)
    checked = int(metrics.get("EventsReconciled", 0))
    scale = 1e6 / events
    # At the deployed pace the run lasts calls / ReconcileRequestsPerSecond: Lambda bills that time.
    deployed_seconds = calls / DEPLOYED_REQUESTS_PER_SECOND
    gets = objects * passes // hours  # each pass reads its send-hour's objects once
    cost = {
        "s3": (reconciler.s3_requests - gets) * S3_LIST_OR_PUT + gets * S3_GET,
        # Checkpoint items stay under 1 KB (not-present keys only): one unit per request.
        "dynamodb": dynamo_calls["write"] * DYNAMODB_WRITE_UNIT + dynamo_calls["read"] * DYNAMODB_READ_UNIT,
        "lambda_at_2_per_second": deployed_seconds * memory_mb / 1024 * LAMBDA_GB_SECOND
        + math.ceil(deployed_seconds / 900) * LAMBDA_REQUEST,
    }
    return {
        "events": events,
        "send_hours": hours,
        "passes": passes,
        "archive_objects": objects,
        "generate_seconds": generate_seconds,
        "peak_rss_mb_after_fill": rss_after_fill,
        "peak_rss_mb": peak_rss_mb(),
        "memory_mb": memory_mb,
        "deployed_seconds": deployed_seconds,
        "requests_per_second": requests_per_second,
        "searches": orb.calls["search"],
        "volume_calls": orb.calls["volume"],
        "searches_per_million": orb.calls["search"] * scale,
        "searches_per_million_per_pass": orb.calls["search"] * scale / max(1, passes / hours),
        "s3_requests": reconciler.s3_requests,
        "dynamodb_requests": dict(dynamo_calls),
        "seconds": seconds,
        "read_seconds_per_object": select_seconds[0] / max(1, gets),
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
    parser.add_argument(
        "--requests-per-second", type=float, default=2.0, help="the pace to run at (deployed default: 2)"
    )
    parser.add_argument("--final-passes", action="store_true", help="final passes due too (not only first)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.events, args.hours, args.requests_per_second, args.final_passes), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
