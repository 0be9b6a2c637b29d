"""The plan of `orb-bridge backfill`: which backfills cover which late events.

A backfill's timeframe is at most 31 days (Orb's default limit), [start, end) to the second, and
either account-wide or scoped to one customer. What was asked of Orb is in ``backfill_state``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge_dev.commands.backfill.orb_client import OrbEvent
from orb_bridge_dev.deployment.rejected_records import Entry, parse_time

MAX_WINDOW = timedelta(days=31)
DEFAULT_STATE_FILE = ".orb-bridge-backfill.json"


@dataclass
class Group:
    """Late events one backfill covers: one scope, a window of at most 31 days."""

    scope: tuple[str, str] | None  # ("external_customer_id" | "customer_id", id), None: account-wide
    start: datetime
    end: datetime
    # idempotency key -> the event to send, and every record carrying it
    events: dict[str, OrbUsageEvent] = field(default_factory=dict)
    records: dict[str, list[Entry]] = field(default_factory=dict)
    # records whose key is already taken in this group by a different event: never sent, kept
    conflicts: list[Entry] = field(default_factory=list)

    @property
    def scope_label(self) -> str:
        return "all customers" if self.scope is None else f"{self.scope[0]}={self.scope[1]}"


def _scope(event: OrbUsageEvent, per_customer: bool) -> tuple[str, str] | None:
    if not per_customer:
        return None
    if event.external_customer_id:
        return ("external_customer_id", event.external_customer_id)
    return ("customer_id", event.customer_id or "")


def plan_groups(entries: Sequence[Entry], per_customer: bool) -> list[Group]:
    """Group the entries whose action is "backfill" into backfills of at most 31 days each."""
    late = sorted(
        (e for e in entries if e.action == "backfill" and e.event is not None),
        key=lambda e: (e.event_time, e.message_id),
    )
    by_scope: dict[Any, list[Entry]] = {}
    for entry in late:
        by_scope.setdefault(_scope(entry.event, per_customer), []).append(entry)  # type: ignore[arg-type]
    groups: list[Group] = []
    for scope, scoped in by_scope.items():
        group: Group | None = None
        for entry in scoped:
            moment = entry.event_time
            assert moment is not None and entry.event is not None
            if group is None or moment >= group.start + MAX_WINDOW:
                start = moment.replace(microsecond=0)
                group = Group(scope, start, start + timedelta(seconds=1))
                groups.append(group)
            group.end = max(group.end, moment.replace(microsecond=0) + timedelta(seconds=1))
            key = entry.event.idempotency_key
            existing = group.events.get(key)
            if existing is None:
                group.events[key] = entry.event
                group.records[key] = [entry]
            elif existing == entry.event:
                group.records[key].append(entry)  # the same event rejected twice: sent once
            else:
                group.conflicts.append(entry)
    return groups


def same_event(ours: OrbUsageEvent, theirs: OrbEvent) -> bool:
    """Whether the event Orb holds under our key is the one we would send."""
    if ours.event_name != theirs.event_name or parse_time(ours.timestamp) != theirs.timestamp:
        return False
    if (ours.external_customer_id or None) != (theirs.external_customer_id or None) and not (
        ours.customer_id and ours.customer_id == theirs.customer_id
    ):
        return False
    mine = ours.properties
    if set(mine) != set(theirs.properties):
        return False
    return all(_same_value(mine[key], theirs.properties[key]) for key in mine)


def _same_value(left: Any, right: Any) -> bool:
    numbers = (int, float)
    if (
        isinstance(left, numbers)
        and isinstance(right, numbers)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    ):
        return float(left) == float(right)
    return left == right


def describe(groups: Sequence[Group], found: Mapping[int, Mapping[str, bool]]) -> list[str]:
    """One line per planned backfill: scope, timeframe, events, keys already in Orb."""
    lines = []
    for index, group in enumerate(groups):
        present = found.get(index, {})
        same = sum(present.values())
        lines.append(
            f"  backfill {index + 1}: {group.scope_label}, {group.start.isoformat()} .. {group.end.isoformat()}, "
            f"{len(group.events)} event(s) ({len(group.events) - len(present)} to ingest, {same} already in Orb, "
            f"{len(present) - same} in Orb with a different body){f', {len(group.conflicts)} conflicting duplicate(s)' if group.conflicts else ''}"
        )
    return lines
