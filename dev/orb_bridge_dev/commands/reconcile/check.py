"""``orb-bridge reconcile --check``: the deployed reconciler (``orb_bridge.reconcile.Reconciler``) run
now from the operator's machine, against the stack's archive, reports and checkpoint table, with
the same pacing (the stack's ``ReconcileRequestsPerSecond``). It writes the passes that are due,
exactly as the scheduled function would (one report per hour and pass, never twice), and with
``--hour H`` also a ``check-YYYYmmddTHHMMSS`` pass of that send-hour whether or not one is due.
It emits no metric: the alarms stay the scheduled function's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orb_bridge.orb.reconcile_client import OrbReadClient
from orb_bridge.reconcile.archive_reader import parse_hour
from orb_bridge.reconcile.pacing import Pacer
from orb_bridge.reconcile.service import Reconciler
from orb_bridge.reconcile.settings import ReconcileSettings
from orb_bridge_dev.deployment.reconcile_reports import checkpoint_table, require_archive
from orb_bridge_dev.deployment.rejected_records import Target, TargetError

DEFAULT_REQUESTS_PER_SECOND = 2.0  # the template's ReconcileRequestsPerSecond default
MAX_REQUESTS_PER_SECOND = 50.0  # Orb's live limit for non-ingest writes: a stack parameter above it is refused


@dataclass
class CheckResult:
    reports: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    stopped: str | None = None
    orb_calls: dict[str, int] = field(default_factory=dict)


def requests_per_second(target: Target) -> float:
    raw = str(target.parameters.get("ReconcileRequestsPerSecond", "") or "").strip()
    if not raw:
        return DEFAULT_REQUESTS_PER_SECOND
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_REQUESTS_PER_SECOND:
        raise TargetError(f"the stack's ReconcileRequestsPerSecond must be in (0, {MAX_REQUESTS_PER_SECOND:g}]")
    return value


def run_check(
    target: Target,
    grace_hours: float,
    now: datetime,
    hour: str | None,
    http_client: Any = None,
    pace: Any = None,
) -> CheckResult:
    require_archive(target)
    settings = ReconcileSettings(
        orb_api_base_url=target.orb_base_url,
        orb_api_key=target.orb_api_key(),
        audit_bucket_name=target.audit_bucket,
        checkpoint_table_name=checkpoint_table(target),
        grace_period_hours=grace_hours,
        requests_per_second=requests_per_second(target),
    )
    import httpx

    client = http_client if http_client is not None else httpx.Client()
    orb = OrbReadClient(
        settings.orb_api_base_url,
        settings.orb_api_key,
        pace or Pacer(settings.requests_per_second),
        settings.request_timeout_seconds,
        http_client=client,
    )
    reconciler = Reconciler(
        settings, target.s3, target.dynamodb, orb, lambda _metric, _value: None, now, lambda: math.inf
    )
    try:
        summary = reconciler.run()
        result = CheckResult(list(summary.reports), list(summary.waiting), summary.stopped)
        if hour is not None and summary.stopped is None:
            report = reconciler.check_hour(parse_hour(hour), f"check-{now.strftime('%Y%m%dT%H%M%S')}")
            if report is None:
                result.waiting.append(f"{hour}#check")
            else:
                result.reports.append(report)
    finally:
        if http_client is None:
            client.close()
    result.orb_calls = dict(orb.calls)
    return result
