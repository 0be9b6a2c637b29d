"""Which (send-hour, pass) pairs are due (README "Reconciliation: when").

- ``first``: once the send-hour is an hour old (it ended at least an hour ago).
- ``final``: once Orb's grace period has passed for every event in it, and every send-hour that can
  still hold events of its hour (up to hour + grace + 1) has had its first pass: the volume check
  for that event hour is made then.
- ``daily-YYYY-MM-DD``: once a day for each send-hour of the last ``lookback_days`` whose final pass
  is a day old, since deprecations and backfills can still change an hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from orb_bridge.reconcile.archive_reader import hour_text

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class DuePass:
    hour: datetime
    pass_name: str

    @property
    def item_key(self) -> str:
        return f"{hour_text(self.hour)}#{self.pass_name}"


def grace_hours(grace_period_hours: float) -> int:
    return math.ceil(grace_period_hours)


def first_due(hour: datetime, now: datetime) -> bool:
    return now >= hour + 2 * HOUR


def final_due(hour: datetime, now: datetime, grace_period_hours: float) -> bool:
    # Events of this hour may be sent until hour + 1 + grace; that send-hour's first pass is due an hour
    # after it ends.
    return now >= hour + (grace_hours(grace_period_hours) + 3) * HOUR


def candidates(hours: list[datetime], now: datetime, grace_period_hours: float, lookback_days: int) -> list[DuePass]:
    """Every pass these send-hours may owe now, first passes first, oldest hour first."""
    firsts = [DuePass(hour, "first") for hour in hours if first_due(hour, now)]
    finals = [DuePass(hour, "final") for hour in hours if final_due(hour, now, grace_period_hours)]
    oldest = now - timedelta(days=lookback_days)
    today = f"daily-{now.strftime('%Y-%m-%d')}"
    dailies = [
        DuePass(hour, today)
        for hour in hours
        if hour >= oldest and final_due(hour, now - timedelta(days=1), grace_period_hours)
    ]
    return firsts + finals + dailies


def volume_send_hours(event_hour: datetime, grace_period_hours: float) -> list[datetime]:
    """The send-hours that can hold events timestamped in ``event_hour``."""
    return [event_hour + offset * HOUR for offset in range(grace_hours(grace_period_hours) + 2)]
