"""Where a first or final pass's reading time goes, per archive object of 500 events (issue 18): the
S3 GET (moto in-process: its CPU, not the network), gunzip, splitting the lines, json per line, and
drawing the sample (keyed hash, event hour, the selector), then one whole pass's reading of a sampled
hour as deployed (``Reconciler._select``). CPU seconds (``time.process_time``): what Lambda's share
of a vCPU scales.

    python -m bench.reconcile_read --objects 40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "layers" / "orb_bridge", ROOT / "dev", ROOT):
    sys.path.insert(0, str(path)) if str(path) not in sys.path else None

PER_OBJECT = 500


def _ms_per_object(action: Callable[[], object], objects: int) -> float:
    started = time.process_time()
    action()
    return (time.process_time() - started) / objects * 1000


def run(objects: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from bench import reconcile_memory
    from orb_bridge.aws.archive import gunzip_bounded
    from orb_bridge.reconcile.passes import DuePass
    from orb_bridge.reconcile.service import Reconciler
    from orb_bridge.reconcile.settings import ReconcileSettings
    from tests.support.audit_archive import archive_body

    sent_at = reconcile_memory.HOUR + timedelta(minutes=30)
    bodies = [
        archive_body(
            [reconcile_memory.archived_event(n) for n in range(o * PER_OBJECT, (o + 1) * PER_OBJECT)],
            sent_at,
            request_number=o + 1,
        )
        for o in range(objects)
    ]
    result: dict[str, Any] = {"objects": objects, "events_per_object": PER_OBJECT}
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        reconcile_memory.create_resources(s3, dynamodb)
        for number, body in enumerate(bodies, start=1):
            s3.put_object(
                Bucket=reconcile_memory.BUCKET, Key=f"ingest/sent_hour=2026-03-02T00/r-{number:05d}.jsonl.gz", Body=body
            )
        keys = [f"ingest/sent_hour=2026-03-02T00/r-{n:05d}.jsonl.gz" for n in range(1, objects + 1)]
        result["get_ms"] = _ms_per_object(
            lambda: [s3.get_object(Bucket=reconcile_memory.BUCKET, Key=key)["Body"].read() for key in keys], objects
        )
        texts = [gunzip_bounded(body, "bench", 1 << 26).decode("utf-8") for body in bodies]
        result["gunzip_ms"] = _ms_per_object(
            lambda: [gunzip_bounded(body, "bench", 1 << 26) for body in bodies], objects
        )
        result["split_ms"] = _ms_per_object(lambda: [text.splitlines() for text in texts], objects)
        lines = [line for text in texts for line in text.splitlines()[1:]]
        result["json_ms"] = _ms_per_object(lambda: [json.loads(line) for line in lines], objects)
        settings = ReconcileSettings(
            orb_api_base_url="http://127.0.0.1:9",
            orb_api_key="unused",
            audit_bucket_name=reconcile_memory.BUCKET,
            checkpoint_table_name=reconcile_memory.TABLE,
            full_check_events_per_hour=1000,
            sample_size=100,
            safety_margin_seconds=0,
        )
        reconciler = Reconciler(
            settings,
            s3,
            dynamodb,
            reconcile_memory.NothingFound(),  # type: ignore[arg-type]
            lambda metric, value: None,
            reconcile_memory.HOUR + timedelta(hours=2),
            lambda: 900.0,
        )
        started_wall = time.perf_counter()
        result["pass_read_ms"] = _ms_per_object(
            lambda: reconciler._select(DuePass(reconcile_memory.HOUR, "first")), objects
        )
        result["pass_read_wall_ms"] = (time.perf_counter() - started_wall) / objects * 1000
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile_read", description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=40, help="archive objects of 500 events in the hour")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.objects), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
