"""The soak's last step: reconcile what it sent against the sandbox, after the drain.

Ingest does not write the audit archive yet (issue 17 is built in parallel): the archive is built
from the ingest requests the sandbox answered 200 (``store.accepted_requests``), one object per
request as ingest's writer will, into the dev stack's ``AuditBucket``; the dev stack's reconciler
(the deployed ``Reconciler``) then runs every due pass, unpaced, at a time when the first and final
passes of every send-hour are due. Every valid event must be archived and found present.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.audit_archive import archive_accepted_requests


def start_recording(stack: Any) -> None:
    stack.sandbox.store.accepted_requests = []


def reconcile(stack: Any, valid_keys: set[str], run_id: str) -> tuple[dict[str, Any], list[str]]:
    """Archive what Orb accepted, reconcile it; the figures and any failures."""
    accepted = stack.sandbox.store.accepted_requests or []
    stack.sandbox.store.accepted_requests = None
    s3 = stack.local_aws.client("s3")
    objects = archive_accepted_requests(s3, stack.env["AUDIT_BUCKET_NAME"], accepted, request_id=run_id)
    archived = {event["idempotency_key"] for request in accepted for event in request["events"]}
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
        failures.append(f"reconcile: {len(valid_keys - archived)} valid events were never answered 200 (not archived)")
    not_present = sum(count for cls, count in counts.items() if cls != "present")
    if not_present or shortfall or counts.get("present", 0) < len(valid_keys):
        failures.append(f"reconcile: not every valid event is present in Orb: {counts}, volume shortfall {shortfall}")
    return figures, failures
