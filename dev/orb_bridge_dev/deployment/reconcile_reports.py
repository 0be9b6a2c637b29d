"""The reconciler's reports and archive seen from an operator's machine (``orb-bridge reconcile`` and
``orb-bridge trace``): the reports under ``reports/sent_hour=HOUR/<pass>.json``, one row per send-hour,
and the deployed ``Reconciler`` run against the stack's bucket and checkpoint table.

Everything read here (reports, archive objects, stack outputs) is input: a report that is not a
JSON object with the expected fields is listed as unreadable, never guessed at, and every text from
it is escaped before it is printed (``orb_bridge_dev.terminal.printable``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orb_bridge.reconcile.archive_reader import parse_hour
from orb_bridge.reconcile.classify import CLASSES
from orb_bridge_dev.deployment.rejected_records import Target, TargetError

REPORTS_PREFIX = "reports/sent_hour="
MAX_REPORT_BYTES = 16 * 1024 * 1024  # a report lists at most 1,000 keys per class: far below this


@dataclass
class HourRow:
    """One send-hour: the passes that ran and the latest report's figures."""

    hour: str
    passes: list[str] = field(default_factory=list)
    latest: dict[str, Any] | None = None
    unreadable: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = (self.latest or {}).get("counts") or {}
        return {cls: _int(counts.get(cls)) for cls in CLASSES}

    @property
    def archived(self) -> int:
        return _int((self.latest or {}).get("archived_keys"))

    @property
    def listed(self) -> dict[str, list[str]]:
        """Keys the latest report names per class other than present (at most 1,000 each)."""
        raw = (self.latest or {}).get("not_present") or {}
        if not isinstance(raw, dict):
            return {}
        return {
            cls: [str(key) for key in keys] for cls, keys in raw.items() if cls in CLASSES and isinstance(keys, list)
        }

    @property
    def volume(self) -> dict[str, Any] | None:
        volume = (self.latest or {}).get("volume")
        return volume if isinstance(volume, dict) else None

    def as_json(self) -> dict[str, Any]:
        return {
            "hour": self.hour,
            "passes": self.passes,
            "latest_pass": (self.latest or {}).get("pass"),
            "generated_at": (self.latest or {}).get("generated_at"),
            "archived": self.archived,
            "counts": self.counts,
            "not_present": self.listed,
            "sampled": bool((self.latest or {}).get("sampled")),
            "volume": self.volume,
            "unreadable_reports": self.unreadable,
        }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def require_archive(target: Target) -> None:
    if not target.audit_bucket or target.s3 is None:
        raise TargetError(f"{target.label} has no audit archive (output AuditBucketName): deploy issue 17's template")


def read_rows(target: Target, since: datetime, only_hour: str | None = None) -> list[HourRow]:
    """Every send-hour from ``since`` (or only ``only_hour``) with at least one report, oldest first."""
    require_archive(target)
    rows: dict[str, HourRow] = {}
    start_after = f"{REPORTS_PREFIX}{since.strftime('%Y-%m-%dT%H')}"
    prefix = f"{REPORTS_PREFIX}{only_hour}/" if only_hour else REPORTS_PREFIX
    pages = target.s3.get_paginator("list_objects_v2").paginate(
        Bucket=target.audit_bucket, Prefix=prefix, **({} if only_hour else {"StartAfter": start_after})
    )
    for page in pages:
        for item in page.get("Contents", []):
            name = str(item["Key"])
            hour, _, pass_file = name.removeprefix(REPORTS_PREFIX).partition("/")
            try:
                moment = parse_hour(hour)
            except ValueError:
                continue  # not an hour partition: not ours
            if moment < since.replace(minute=0, second=0, microsecond=0) or not pass_file.endswith(".json"):
                continue
            row = rows.setdefault(hour, HourRow(hour))
            row.passes.append(pass_file.removesuffix(".json"))
            report = _read_report(target, name, int(item.get("Size", 0)))
            if report is None:
                row.unreadable.append(name)
            elif row.latest is None or _generated_at(report) > _generated_at(row.latest):
                row.latest = report
    return [rows[hour] for hour in sorted(rows)]


def _generated_at(report: dict[str, Any]) -> str:
    """When the reconciler wrote ``report`` (ISO text, so sortable); "" if it does not say."""
    value = report.get("generated_at")
    return value if isinstance(value, str) else ""


def _read_report(target: Target, name: str, size: int) -> dict[str, Any] | None:
    if size > MAX_REPORT_BYTES:
        return None
    try:
        body = target.s3.get_object(Bucket=target.audit_bucket, Key=name)["Body"].read(MAX_REPORT_BYTES + 1)
        report = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(report, dict) or not isinstance(report.get("counts"), dict):
        return None
    return report


def checkpoint_table(target: Target) -> str:
    """The reconciler's checkpoint table: the dev stack names it as local_audit does; a deployed
    stack's is its ``ReconcileCheckpointTable`` resource."""
    name = target.checkpoint_table()
    if name:
        return name
    raise TargetError(f"{target.label} has no ReconcileCheckpointTable: deploy issue 18's template")


def strict_json(document: Any) -> str:
    """``document`` as standard JSON for ``--json``: a NaN or infinity read from a report or the archive
    (Python's reader accepts them) is written as the text JSON has no number for, so jq and other
    strict readers parse the output."""
    return json.dumps(_finite(document), indent=1, sort_keys=True, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
