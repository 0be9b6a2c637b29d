"""Reading the rejected queue for a run: every record received (held), classified, and the ones
the filters select. A record no reader can make sense of is listed as such, never a crash."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from orb_bridge.core.config import MappingSettings
from orb_bridge_dev.deployment.rejected_records import (
    Entry,
    Filters,
    Target,
    classify,
    late_cutoff,
    read_entries,
    release,
)

UNREADABLE = "unreadable"  # the stage shown for a message no reader could make sense of


def plan(
    target: Target,
    filters: Filters,
    now: datetime,
    grace_hours: float,
    hold_seconds: int,
    wait_seconds: int = 1,
    sends: Collection[str] = ("replay", "backfill"),
    keep_bodies: bool = False,
) -> tuple[list[Entry], list[Entry]]:
    """(every record received, the ones the filters select), each classified. Only a selected
    entry whose action is one of ``sends`` (what the run will send) keeps its event, and only with
    ``keep_bodies`` does a selected entry keep its record's text."""
    cutoff = late_cutoff(now, grace_hours)

    def read(message: dict[str, Any]) -> Entry:
        entry = _classified(message, target.mapping, cutoff)
        selected = filters.match(entry)
        if entry.action not in sends or not selected:
            entry.event = None  # bounded memory: the summary fields are all that is needed
        if keep_bodies and selected:
            entry.body = str(message.get("Body", ""))
        return entry

    entries = read_entries(target.sqs, target.rejected_queue_url, hold_seconds, read, wait_seconds)
    return entries, [entry for entry in entries if filters.match(entry)]


def _classified(message: Mapping[str, Any], mapping: Callable[[], MappingSettings], cutoff: datetime) -> Entry:
    """``classify``, or for a message it cannot read an entry kept on the queue, saying so: one
    odd record never stops a run, nor the release of every other record it received."""
    try:
        return classify(message, mapping, cutoff)
    except Exception as exc:  # anything a record can make reading raise
        why = f"unreadable record ({type(exc).__name__}): left on the rejected queue"
        moment = datetime.fromtimestamp(0, UTC)
        return Entry(
            message_id=str(message["MessageId"]),
            receipt_handle=str(message["ReceiptHandle"]),
            sent_at=moment,
            stage=UNREADABLE,
            reason=why,
            rejected_at=moment,
            event=None,
            action="keep",
            why=why,
        )


def find_key(
    target: Target, key: str, now: datetime, grace_hours: float, hold_seconds: int, wait_seconds: int = 1
) -> list[Entry]:
    """The rejected records of one idempotency key (``orb-bridge trace``): every record is received
    with a short hold, only the matching ones keep their event, and all are released at once, so
    ``replay`` misses none for longer than the read. A record whose event cannot be mapped any more
    (an intake record the mapping refuses) matches when its text holds the key as a JSON string."""
    cutoff = late_cutoff(now, grace_hours)
    quoted = json.dumps(key)

    def read(message: dict[str, Any]) -> Entry:
        entry = _classified(message, target.mapping, cutoff)
        held = entry.event.idempotency_key == key if entry.event is not None else quoted in str(message.get("Body", ""))
        entry.event = entry.event if held else None
        entry.body = "match" if held else ""  # a marker, not the record: bounded memory
        return entry

    entries = read_entries(target.sqs, target.rejected_queue_url, hold_seconds, read, wait_seconds)
    try:
        return [entry for entry in entries if entry.body == "match"]
    finally:
        release(target.sqs, target.rejected_queue_url, entries)
