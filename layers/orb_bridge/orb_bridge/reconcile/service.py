"""One reconciler run: every due (send-hour, pass), oldest first, until done, out of time, or Orb
says 429 (README "Reconciliation").

Each pass streams its send-hour's archive objects, keeping only the events it will look up (all of
them, or a seeded sample above ``full_check_events_per_hour``: selection.py), looks them up with
``/events/search`` in batches of 500, saves its
place after every batch, then writes its report (If-None-Match: one per hour and pass) and only then
marks itself done; so a run killed at any point is resumed by the next and no report is written twice.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orb_bridge.core.metric_names import Metric
from orb_bridge.core.observability import logger
from orb_bridge.orb.reconcile_client import SEARCH_MAX_IDS, FoundEvent, OrbRateLimitedError, OrbReadClient, OrbReadError
from orb_bridge.reconcile import passes
from orb_bridge.reconcile.archive_reader import ArchiveReader, HourArchive, hour_text
from orb_bridge.reconcile.basis import Basis, basis_key, build_basis, read_basis, write_basis
from orb_bridge.reconcile.checkpoint import CheckpointTable, PassProgress
from orb_bridge.reconcile.classify import PRESENT, classify, parse_timestamp
from orb_bridge.reconcile.reading import ReadingOutOfTimeError, event_hour_of, read_hour
from orb_bridge.reconcile.report import build_report, emit_metrics, write_report
from orb_bridge.reconcile.selection import KeySelector, Selection
from orb_bridge.reconcile.settings import ReconcileSettings
from orb_bridge.reconcile.volume import VolumeCheck

MILLISECOND = timedelta(milliseconds=1)


class _OutOfTimeError(Exception):
    pass


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)  # hour#pass
    waiting: list[str] = field(default_factory=list)  # hour#pass held back by a pending backfill
    stopped: str | None = None  # why the run ended before the work did
    reports: list[dict[str, Any]] = field(default_factory=list)


def sample_seed(item_key: str) -> int:
    return int(hashlib.sha256(item_key.encode("utf-8")).hexdigest()[:16], 16)


class Reconciler:
    def __init__(
        self,
        settings: ReconcileSettings,
        s3: Any,
        dynamodb: Any,
        orb: OrbReadClient,
        emit: Callable[[Metric, float], None],
        now: datetime,
        seconds_left: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.reader = ArchiveReader(s3, settings.audit_bucket_name)
        self.checkpoints = CheckpointTable(dynamodb, settings.checkpoint_table_name)
        self.orb = orb
        self.emit = emit
        self.now = now
        self.seconds_left = seconds_left
        self.volume = VolumeCheck(orb, self.checkpoints, settings)
        self._backfill_status: dict[str, str] = {}
        self.s3_requests = 0

    def run(self) -> RunSummary:
        summary = RunSummary()
        if self.checkpoints.not_before() > self.now.timestamp():
            summary.stopped = "waiting out Orb's Retry-After"
            return summary
        since = self.now - timedelta(
            days=self.settings.lookback_days, hours=passes.grace_hours(self.settings.grace_period_hours) + 3
        )
        hours = self.reader.archived_hours(since.replace(minute=0, second=0, microsecond=0))
        due = passes.candidates(hours, self.now, self.settings.grace_period_hours, self.settings.lookback_days)
        known = self.checkpoints.load([item.item_key for item in due])
        try:
            for item in due:
                progress = known.get(item.item_key) or PassProgress(hour_text(item.hour), item.pass_name)
                if progress.status == "done":
                    continue
                report = self._run_pass(item, progress)
                if report is None:
                    summary.waiting.append(item.item_key)
                    continue
                summary.done.append(item.item_key)
                summary.reports.append(report)
        except _OutOfTimeError:
            summary.stopped = "out of time: the next run resumes"
        except OrbRateLimitedError as exc:
            self.checkpoints.set_not_before(self.now.timestamp() + exc.retry_after_seconds)
            summary.stopped = str(exc)
        except OrbReadError as exc:
            logger.error("Orb read failed: the next run resumes", extra={"error": str(exc)})
            summary.stopped = f"Orb read failed: {exc}"
        logger.info(
            "reconciliation run",
            extra={
                "done": summary.done,
                "waiting": summary.waiting,
                "stopped": summary.stopped,
                "orb_calls": self.orb.calls,
            },
        )
        return summary

    def check_hour(self, hour: datetime, pass_name: str) -> dict[str, Any] | None:
        """One pass of one send-hour, now, whether or not it is due (the dev stack's preview passes
        of a send-hour still open); resumed from its checkpoint, never reported twice. None while a
        backfill in it is not settled."""
        item = passes.DuePass(hour, pass_name)
        progress = self.checkpoints.load([item.item_key]).get(item.item_key)
        if progress is not None and progress.status == "done":
            return None
        return self._run_pass(item, progress or PassProgress(hour_text(hour), pass_name))

    def _wanted(self, backfill_id: str | None) -> str:
        """``look up``, ``reverted`` (expected absent) or ``pending`` (a backfill not yet settled)."""
        if backfill_id is None:
            return "look up"
        status = self._backfill_status.get(backfill_id)
        if status is None:
            status = self._backfill_status[backfill_id] = self.orb.backfill_status(backfill_id)
        return {"reflected": "look up", "reverted": "reverted"}.get(status, "pending")

    def _select(self, item: passes.DuePass) -> tuple[Selection, HourArchive, int] | None:
        """The hour's keys to look up, read from its archive (reading.py; None while a backfill is pending)."""
        selector = KeySelector(
            self.settings.full_check_events_per_hour,
            self.settings.sample_size,
            sample_seed(item.item_key),
            lambda line: _event_hour(_event_of(line)),
        )
        read = HourArchive([], [], 0, 0)
        try:
            reading = read_hour(
                self.reader,
                item.hour,
                read,
                selector,
                self._wanted,
                self.seconds_left,
                self.settings.safety_margin_seconds,
            )
        except ReadingOutOfTimeError:
            raise _OutOfTimeError from None
        finally:
            self.s3_requests += read.s3_requests
        if reading.pending:
            return None
        return selector.selection(), read, reading.reverted

    def _run_pass(self, item: passes.DuePass, progress: PassProgress) -> dict[str, Any] | None:
        note: dict[str, Any] | None = None
        if item.pass_name.startswith("daily-"):
            basis, why = read_basis(self.s3, self.settings.audit_bucket_name, progress.hour)
            self.s3_requests += 1
            if basis is not None:
                return self._run_daily(item, progress, basis)
            logger.warning(
                "daily pass reads the hour's archive: no usable basis", extra={"hour": progress.hour, "reason": why}
            )
            note = {"used": False, "reason": why}
        selected = self._select(item)
        if selected is None:
            return None
        selection, archive, reverted = selected
        lines = selection.lines
        progress.total_keys, progress.sampled = selection.total_keys, selection.sampled
        self._check_batches(
            progress, len(lines), lambda start: [_event_of(line) for line in lines[start : start + SEARCH_MAX_IDS]]
        )
        if progress.sampled:
            progress.unchecked_by_event_hour = selection.unchecked_by_event_hour
        # Volume only once the hour can no longer change from live ingestion (final and daily passes).
        settled = item.pass_name == "final" or item.pass_name.startswith("daily-")  # noqa: S105 (pass names)
        volume = self.volume.check(item.hour, progress) if settled else None
        if item.pass_name == "final":  # noqa: S105 (a pass name)
            # Before the report: a run killed in between writes the same basis again (refused: exists).
            document = build_basis(progress, selection, reverted, self.settings.daily_sample_size)
            self.s3_requests += 1
            write_basis(self.s3, self.settings.audit_bucket_name, document)
            note = {"written": basis_key(progress.hour), "sample": len(document["sample"])}
        return self._finish(progress, archive.unreadable, reverted, volume, note)

    def _run_daily(self, item: passes.DuePass, progress: PassProgress, basis: Basis) -> dict[str, Any]:
        """A daily pass from its hour's basis: its keys looked up, volume against the final pass."""
        events = basis.events()
        progress.total_keys, progress.sampled = basis.archived_keys, True
        self._check_batches(progress, len(events), lambda start: events[start : start + SEARCH_MAX_IDS])
        # Expected volume: what the final pass found present, except that the sample's events count
        # as found today (a sampled event deprecated since is reported as such, not twice), plus the
        # not-present ones repaired since; events outside the sample are assumed still present, so a
        # deprecation or removal among them shows as a shortfall.
        in_sample: dict[str, int] = {}
        for event in basis.sample:
            in_sample[_event_hour(event)] = in_sample.get(_event_hour(event), 0) + 1
        hours = set(basis.present_by_event_hour) | set(progress.present_by_event_hour)
        expected = {
            hour: basis.present_by_event_hour.get(hour, 0)
            - in_sample.get(hour, 0)
            + progress.present_by_event_hour.get(hour, 0)
            for hour in hours
        }
        volume = self.volume.check(
            item.hour,
            PassProgress(
                progress.hour,
                progress.pass_name,
                present_by_event_hour=expected,
                unchecked_by_event_hour=basis.unchecked_by_event_hour,
            ),
        )
        note = {
            "used": True,
            "key": basis_key(progress.hour),
            "checked": len(events),
            "sample": len(basis.sample),
            "present_at_final": basis.present_keys,
            "not_present_at_final": len(basis.not_present) + basis.not_present_unlisted,
            "not_present_unlisted": basis.not_present_unlisted,
        }
        return self._finish(progress, [], basis.reverted_backfill_events, volume, note)

    def _check_batches(
        self, progress: PassProgress, count: int, batch_at: Callable[[int], list[dict[str, Any]]]
    ) -> None:
        """Look up ``count`` events a search at a time from the checkpoint's next batch, saving the
        checkpoint after each."""
        for index in range(progress.next_batch, math.ceil(count / SEARCH_MAX_IDS)):
            if self.seconds_left() < self.settings.safety_margin_seconds:
                self.checkpoints.save(progress)
                raise _OutOfTimeError
            self._check_batch(batch_at(index * SEARCH_MAX_IDS), progress)
            progress.next_batch = index + 1
            self.checkpoints.save(progress)

    def _finish(
        self,
        progress: PassProgress,
        unreadable: list[str],
        reverted: int,
        volume: dict[str, Any] | None,
        note: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Report (If-None-Match: once), then mark done: a run killed between the two rewrites nothing."""
        report = build_report(progress, self.now.isoformat(), unreadable, reverted, volume, note)
        self.s3_requests += 1
        write_report(self.s3, self.settings.audit_bucket_name, report)
        progress.status = "done"
        self.checkpoints.save(progress)
        emit_metrics(self.emit, report)
        return report

    def _check_batch(self, events: list[dict[str, Any]], progress: PassProgress) -> None:
        moments = [moment for event in events if (moment := parse_timestamp(str(event["timestamp"])))]
        found: dict[str, list[FoundEvent]] = {}
        if moments:
            keys = [event["idempotency_key"] for event in events]
            for match in self.orb.search(keys, min(moments), max(moments) + MILLISECOND):
                found.setdefault(match.key, []).append(match)
        for event in events:
            cls = classify(event, found.get(event["idempotency_key"], []))
            if cls == PRESENT:
                progress.counts[PRESENT] = progress.counts.get(PRESENT, 0) + 1
                hour = _event_hour(event)
                progress.present_by_event_hour[hour] = progress.present_by_event_hour.get(hour, 0) + 1
            else:
                progress.add(cls, event["idempotency_key"])
        progress.checked_keys += len(events)


def _event_of(line: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(line)["event"]
    return event


def _event_hour(event: dict[str, Any]) -> str:
    return event_hour_of(event["timestamp"])


def utc_now() -> datetime:
    return datetime.now(UTC)
