"""The soak's last step: reconcile the audit archive ingest wrote against the sandbox, after the drain.

Ingest archives every request Orb answered 200 into the dev stack's ``AuditBucket``, as deployed;
the dev stack's reconciler (the deployed ``Reconciler``) then runs every due pass, unpaced, at a
time when the first and final passes of every send-hour are due. Every valid event must be
archived and found present.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orb_bridge.reconcile.archive_reader import read_object


def start_recording(stack: Any) -> None:
    """Nothing to record: ingest writes the archive itself (kept for the soak's call order)."""


def archived_keys(stack: Any) -> tuple[set[str], int]:
    """Every idempotency key in the archive ingest wrote, and how many objects hold them."""
    s3 = stack.local_aws.client("s3")
    bucket = stack.env["AUDIT_BUCKET_NAME"]
    keys: set[str] = set()
    objects = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="ingest/"):
        for item in page.get("Contents", []):
            _, events = read_object(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read(), item["Key"])
            keys.update(event.key for event in events)
            objects += 1
    return keys, objects


def reconcile(stack: Any, valid_keys: set[str], run_id: str) -> tuple[dict[str, Any], list[str]]:
    """Reconcile the archive ingest wrote; the figures and any failures."""
    archived, objects = archived_keys(stack)
    grace_hours = stack.sandbox.grace_period.total_seconds() / 3600
    later = datetime.now(UTC) + timedelta(hours=grace_hours + 5)  # first and final passes due
    loop = stack._reconcile_loop(3600, clock=lambda: later, pace=lambda: None)
    reports = loop.run_once()
    counts: dict[str, int] = {}
    for report in reports:
        if report["pass"] == "first":
            for cls, count in report["counts"].items():
                counts[cls] = counts.get(cls, 0) + count
    shortfall = sum((report.get("volume") or {}).get("shortfall", 0) for report in reports)
    figures = {
        "archive_objects": objects,
        "archived_valid_keys": len(archived & valid_keys),
        "passes": len(reports),
        "first_pass_counts": counts,
        "volume_shortfall": shortfall,
        "orb_calls": dict(loop.orb.calls),
    }
    failures = []
    if valid_keys - archived:
        failures.append(f"reconcile: {len(valid_keys - archived)} valid events billed but not in the audit archive")
    not_present = sum(count for cls, count in counts.items() if cls != "present")
    if not_present or shortfall or counts.get("present", 0) < len(valid_keys):
        failures.append(f"reconcile: not every valid event is present in Orb: {counts}, volume shortfall {shortfall}")
    return figures, failures
