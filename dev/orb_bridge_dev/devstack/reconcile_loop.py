"""The dev stack's reconciler: the deployed ``Reconciler`` every ``--reconcile-every`` seconds
instead of hourly, over moto's ``AuditBucket`` and the Orb sandbox.

Each round runs the passes that are due, as ``OrbReconcileFunction`` would (``first`` an hour
after a send-hour ends, ``final`` after Orb's grace period). So that a developer sees results
within a minute or two rather than hours, it also previews the send-hours whose first pass has not
run yet: once an hour's archive objects have not changed for a whole round (Orb has had that long
to settle them), that hour gets a ``dev-<time>`` pass, reported under ``reports/`` like any other,
without the volume check (the hour is still open). An empty bucket (ingest not archiving yet) makes
a round a couple of S3 listings and nothing else.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orb_bridge.core.metric_names import Metric
from orb_bridge.orb.reconcile_client import OrbRateLimitedError, OrbReadClient, OrbReadError
from orb_bridge.reconcile.archive_reader import SOURCES, hour_prefix, hour_text
from orb_bridge.reconcile.classify import CLASSES, PRESENT
from orb_bridge.reconcile.service import Reconciler, utc_now
from orb_bridge.reconcile.settings import ReconcileSettings

PREVIEW_HOURS = 3  # send-hours this recent may still lack a first pass
SHOWN_KEYS = 3  # keys named per class on the status line


@dataclass
class ReconcileView:
    """What the status line shows: the latest report of each send-hour, and the run's state."""

    rounds: int = 0
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # send-hour -> latest report
    metrics: dict[str, float] = field(default_factory=dict)  # summed, as CloudWatch would
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def summary(self) -> str:
        with self.lock:
            if self.last_error:
                return f"reconcile: {self.last_error}"
            if not self.latest:
                return "reconcile: no archived hour checked yet" if self.rounds else "reconcile: starting"
            counts = {cls: sum(report["counts"].get(cls, 0) for report in self.latest.values()) for cls in CLASSES}
            checked = sum(report["checked_keys"] for report in self.latest.values())
            parts = [f"reconcile: {len(self.latest)} hour(s), {checked} checked, {counts[PRESENT]} present"]
            for cls in CLASSES[1:]:
                if counts[cls]:
                    keys = [key for report in self.latest.values() for key in report["not_present"].get(cls, [])]
                    more = "..." if len(keys) > SHOWN_KEYS else ""
                    parts.append(f"{cls.replace('_', ' ')} {counts[cls]} [{' '.join(keys[:SHOWN_KEYS])}{more}]")
            shortfall = sum((report.get("volume") or {}).get("shortfall", 0) for report in self.latest.values())
            if shortfall:
                parts.append(f"volume short {shortfall}")
            return ", ".join(parts)


class DevReconcileLoop:
    def __init__(
        self,
        settings: ReconcileSettings,
        s3: Any,
        dynamodb: Any,
        every_seconds: float,
        clock: Callable[[], datetime] = utc_now,
        pace: Callable[[], None] | None = None,
    ) -> None:
        from orb_bridge.reconcile.pacing import Pacer

        self.settings = settings
        self.s3 = s3
        self.dynamodb = dynamodb
        self.every_seconds = every_seconds
        self.clock = clock
        self.orb = OrbReadClient(
            settings.orb_api_base_url,
            settings.orb_api_key,
            pace or Pacer(settings.requests_per_second),
            settings.request_timeout_seconds,
        )
        self.view = ReconcileView()
        self._listed: dict[str, tuple[str, ...]] = {}  # send-hour -> its objects at the last round
        self._previewed: dict[str, tuple[str, ...]] = {}  # send-hour -> its objects when last previewed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _emit(self, metric: Metric, value: float) -> None:
        with self.view.lock:
            self.view.metrics[metric.name] = self.view.metrics.get(metric.name, 0) + value

    def reconciler(self, now: datetime, seconds_left: Callable[[], float] = lambda: 900.0) -> Reconciler:
        return Reconciler(self.settings, self.s3, self.dynamodb, self.orb, self._emit, now, seconds_left)

    def _objects(self, hour: datetime) -> tuple[str, ...]:
        keys: list[str] = []
        for source in SOURCES:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.settings.audit_bucket_name, Prefix=hour_prefix(source, hour)
            )
            keys.extend(item["Key"] for page in pages for item in page.get("Contents", []))
        return tuple(sorted(keys))

    def run_once(self, seconds_left: Callable[[], float] = lambda: 900.0) -> list[dict[str, Any]]:
        """One round: the due passes, then previews of quiet, not yet first-passed hours; the reports."""
        now = self.clock()
        reconciler = self.reconciler(now, seconds_left)
        summary = reconciler.run()
        reports = list(summary.reports)
        if summary.stopped is not None:  # out of time or told to wait: no previews this round
            self._record(reports, summary.stopped)
            return reports
        recent = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=PREVIEW_HOURS)
        first_done = reconciler.checkpoints.load([f"{hour_text(h)}#first" for h in self._hours(reconciler, recent)])
        for hour in self._hours(reconciler, recent):
            label = hour_text(hour)
            if first_done.get(f"{label}#first") is not None and first_done[f"{label}#first"].status == "done":
                continue
            objects = self._objects(hour)
            quiet = objects == self._listed.get(label)
            self._listed[label] = objects
            if quiet and objects != self._previewed.get(label):
                report = reconciler.check_hour(hour, f"dev-{now.strftime('%Y%m%dT%H%M%S')}")
                if report is not None:
                    self._previewed[label] = objects
                    reports.append(report)
        self._record(reports, None)
        return reports

    def _record(self, reports: list[dict[str, Any]], stopped: str | None) -> None:
        with self.view.lock:
            self.view.rounds += 1
            self.view.last_error = stopped
            for report in reports:
                self.view.latest[report["hour"]] = report

    @staticmethod
    def _hours(reconciler: Reconciler, since: datetime) -> list[datetime]:
        return reconciler.reader.archived_hours(since)

    # ---- the background thread ---------------------------------------------------------------
    def start(self) -> DevReconcileLoop:
        self._thread = threading.Thread(target=self._loop, name="dev-reconciler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_seconds):
            try:
                self.run_once()
            except (OrbRateLimitedError, OrbReadError) as exc:
                self._failed(f"Orb read failed ({exc}); next round in {self.every_seconds:g} s")
            except Exception as exc:  # moto or the archive: say so on the status line, keep going
                traceback.print_exc()
                self._failed(f"round failed: {type(exc).__name__}: {exc}")

    def _failed(self, message: str) -> None:
        with self.view.lock:
            self.view.rounds += 1
            self.view.last_error = message

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
