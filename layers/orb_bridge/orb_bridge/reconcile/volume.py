"""The volume check: for an event hour that live ingestion can no longer change (older than the
grace period), Orb's ``/events/volume`` count must be at least what the archive says Orb holds.

Expected minimum = archived keys of that event hour classified present, plus those a sampled pass
did not look up (assumed present, so volume still catches a loss among them), summed over every
send-hour that can hold events of that hour (hour .. hour + grace + 1), each from its latest done
pass. Volume is account-wide: other sources add to it, so only a shortfall is certain; with
``exclusive_source`` a surplus is reported too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orb_bridge.orb.reconcile_client import OrbReadClient
from orb_bridge.reconcile import passes
from orb_bridge.reconcile.archive_reader import hour_text
from orb_bridge.reconcile.checkpoint import CheckpointTable, PassProgress
from orb_bridge.reconcile.settings import ReconcileSettings


class VolumeCheck:
    def __init__(self, orb: OrbReadClient, checkpoints: CheckpointTable, settings: ReconcileSettings) -> None:
        self._orb = orb
        self._checkpoints = checkpoints
        self._settings = settings

    def _latest(self, send_hours: list[str], current: PassProgress) -> list[PassProgress]:
        wanted = [f"{hour}#{name}" for hour in send_hours for name in ("first", "final")]
        found = self._checkpoints.load(wanted)
        latest = [current]
        for hour in send_hours:
            if hour == current.hour:
                continue
            done = [found.get(f"{hour}#{name}") for name in ("final", "first")]
            chosen = next((item for item in done if item is not None and item.status == "done"), None)
            if chosen is not None:
                latest.append(chosen)
        return latest

    def check(self, event_hour: datetime, current: PassProgress) -> dict[str, Any]:
        label = hour_text(event_hour)
        send_hours = [
            hour_text(hour) for hour in passes.volume_send_hours(event_hour, self._settings.grace_period_hours)
        ]
        expected = 0
        for progress in self._latest(send_hours, current):
            expected += progress.present_by_event_hour.get(label, 0) + progress.unchecked_by_event_hour.get(label, 0)
        counts = self._orb.volume(event_hour, event_hour + timedelta(hours=1))
        orb_count = sum(count for start, count in counts.items() if start.startswith(label))
        result: dict[str, Any] = {
            "event_hour": label,
            "send_hours": send_hours,
            "expected_at_least": expected,
            "orb_count": orb_count,
            "shortfall": max(0, expected - orb_count),
        }
        if self._settings.exclusive_source:
            result["surplus"] = max(0, orb_count - expected)
        return result
