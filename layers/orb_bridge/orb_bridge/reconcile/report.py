"""Report objects (one per send-hour and pass, never overwritten) and the metrics of a finished pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orb_bridge.core import metric_names as names
from orb_bridge.core.metric_names import Metric
from orb_bridge.reconcile.checkpoint import MAX_LISTED_KEYS, PassProgress
from orb_bridge.reconcile.classify import CLASSES, DEPRECATED, DIFFERENT, NOT_FOUND, UNATTRIBUTED

METRIC_BY_CLASS = {
    NOT_FOUND: names.EVENTS_NOT_FOUND_IN_ORB,
    DEPRECATED: names.EVENTS_DEPRECATED_IN_ORB,
    DIFFERENT: names.EVENTS_DIFFERENT_IN_ORB,
    UNATTRIBUTED: names.EVENTS_UNATTRIBUTED_IN_ORB,
}


def report_key(hour: str, pass_name: str) -> str:
    return f"reports/sent_hour={hour}/{pass_name}.json"


def build_report(
    progress: PassProgress,
    generated_at: str,
    unreadable: list[str],
    reverted_backfill_events: int,
    volume: dict[str, Any] | None,
    basis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": 1,
        "hour": progress.hour,  # the archive's send-hour
        "pass": progress.pass_name,
        "generated_at": generated_at,
        "archived_keys": progress.total_keys,
        "checked_keys": progress.checked_keys,
        "sampled": progress.sampled,
        "counts": {cls: progress.counts.get(cls, 0) for cls in CLASSES},
        "not_present": {cls: progress.listed.get(cls, []) for cls in CLASSES if progress.listed.get(cls)},
        "listed_keys_per_class_at_most": MAX_LISTED_KEYS,
        "present_by_event_hour": progress.present_by_event_hour,
        "reverted_backfill_events": reverted_backfill_events,
        "unreadable_objects": unreadable,
        "volume": volume,
        # The final pass: the basis it wrote; a daily pass: the basis it checked, or why it read the
        # archive instead (basis.py).
        "basis": basis,
    }


def put_new_object(s3: Any, bucket: str, key: str, body: bytes, **params: Any) -> bool:
    """Write ``key`` unless an object is there (``If-None-Match: *``): True if this call wrote it,
    False when an earlier run did (it stopped before marking its pass done)."""
    from botocore.exceptions import ClientError

    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        raise
    return True


def write_report(s3: Any, bucket: str, report: dict[str, Any]) -> bool:
    """Write the report unless one exists for that hour and pass (True if this call wrote it)."""
    body = json.dumps(report, indent=1, sort_keys=True).encode("utf-8")
    key = report_key(report["hour"], report["pass"])
    return put_new_object(s3, bucket, key, body, ContentType="application/json")


def emit_metrics(emit: Callable[[Metric, float], None], report: dict[str, Any]) -> None:
    emit(names.EVENTS_RECONCILED, report["checked_keys"])
    for cls, metric in METRIC_BY_CLASS.items():
        emit(metric, report["counts"].get(cls, 0))
    volume = report.get("volume") or {}
    emit(names.VOLUME_SHORTFALL, volume.get("shortfall", 0))
