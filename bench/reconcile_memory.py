"""The reconciler's memory for one send-hour's pass (issue 18): the largest hour it looks up in full
(``ReconcileFullCheckEventsPerHour`` events) and a larger hour it samples.

The archive is written to moto's S3 first; then tracemalloc follows one first pass of the hour as
deployed (reading, choosing the keys, looking them up, the checkpoint and the report), Orb answered
by a stub that finds nothing (every key is then reported not found, at most 500 listed: what a pass
holds does not depend on the answer). The peak is of Python allocations made during the pass.

    python -m bench.reconcile_memory --events 100000
    python -m bench.reconcile_memory --events 1000000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "layers" / "orb_bridge", ROOT / "dev", ROOT):
    sys.path.insert(0, str(path)) if str(path) not in sys.path else None

BUCKET = "bench-audit-memory"
TABLE = "bench-reconcile-memory"
HOUR = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
PER_OBJECT = 500


class NothingFound:
    """An Orb that holds nothing: every search answers no events."""

    def __init__(self) -> None:
        self.calls = {"search": 0, "volume": 0, "backfill": 0}

    def search(self, keys: Sequence[str], start: datetime, end: datetime) -> list[Any]:
        self.calls["search"] += 1
        return []

    def volume(self, start: datetime, end: datetime) -> dict[str, int]:
        self.calls["volume"] += 1
        return {}

    def backfill_status(self, backfill_id: str) -> str:
        self.calls["backfill"] += 1
        return "reflected"


def archived_event(number: int, sent_hour: datetime = HOUR, spread_ms: int = 3_600_000) -> dict[str, Any]:
    """A typical Track event as ingest sends it (the reconcile benches' events: ~200 bytes of JSON),
    timed ``number % spread_ms`` milliseconds into ``sent_hour``."""
    moment = sent_hour + timedelta(milliseconds=number % spread_ms)
    return {
        "idempotency_key": f"bench-{number:08d}",
        "event_name": "api_call",
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "properties": {"tokens": number % 1000, "model": "small"},
        "external_customer_id": f"cust-{number % 97}",
    }


def write_hour(s3: Any, events: int) -> None:
    from tests.support.audit_archive import write_archive_object

    for number, start in enumerate(range(0, events, PER_OBJECT), start=1):
        chunk = [archived_event(n) for n in range(start, min(events, start + PER_OBJECT))]
        write_archive_object(s3, BUCKET, chunk, HOUR + timedelta(minutes=30), request_number=number)


def measure_pass(s3: Any, dynamodb: Any, full_check_events_per_hour: int, sample_size: int) -> dict[str, Any]:
    """tracemalloc's peak over one first pass of ``HOUR`` (the archive already written)."""
    from orb_bridge.reconcile.service import Reconciler
    from orb_bridge.reconcile.settings import ReconcileSettings

    settings = ReconcileSettings(
        orb_api_base_url="http://127.0.0.1:9",
        orb_api_key="unused",
        audit_bucket_name=BUCKET,
        checkpoint_table_name=TABLE,
        full_check_events_per_hour=full_check_events_per_hour,
        sample_size=sample_size,
        safety_margin_seconds=0,
    )
    orb = NothingFound()
    now = HOUR + timedelta(hours=2)
    reconciler = Reconciler(settings, s3, dynamodb, orb, lambda metric, value: None, now, lambda: 900.0)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        started = time.perf_counter()
        report = reconciler.check_hour(HOUR, "first")
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report is not None
    return {
        "archived_keys": report["archived_keys"],
        "checked_keys": report["checked_keys"],
        "sampled": report["sampled"],
        "searches": orb.calls["search"],
        "peak_mb": peak / 1024 / 1024,
        "seconds_traced": seconds,
    }


def create_resources(s3: Any, dynamodb: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    dynamodb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def run(events: int, full_check_events_per_hour: int = 100_000, sample_size: int = 10_000) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_resources(s3, dynamodb)
        started = time.perf_counter()
        write_hour(s3, events)
        written = time.perf_counter() - started
        result = measure_pass(s3, dynamodb, full_check_events_per_hour, sample_size)
    return {"events_in_hour": events, "write_seconds": written, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events archived in the one send-hour")
    parser.add_argument("--full-check", type=int, default=100_000, help="ReconcileFullCheckEventsPerHour")
    parser.add_argument("--sample-size", type=int, default=10_000, help="ReconcileSampleSize")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.events, args.full_check, args.sample_size), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
