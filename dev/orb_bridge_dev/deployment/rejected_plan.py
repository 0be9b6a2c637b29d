"""Reading the rejected queue for a run: every record received (held), classified, and the ones
the filters select. A record no reader can make sense of is listed as such, never a crash."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from orb_bridge.core.config import MappingSettings
from orb_bridge_dev.deployment.rejected_records import Entry, Filters, Target, classify, late_cutoff, receive_all

UNREADABLE = "unreadable"  # the stage shown for a message no reader could make sense of


def plan(
    target: Target, filters: Filters, now: datetime, grace_hours: float, hold_seconds: int, wait_seconds: int = 1
) -> tuple[list[Entry], list[Entry]]:
    """(every record received, the ones the filters select), each classified."""
    cutoff = late_cutoff(now, grace_hours)
    received = receive_all(target.sqs, target.rejected_queue_url, hold_seconds, wait_seconds)
    entries = [_classified(message, target.mapping, cutoff) for message in received]
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
            body="",
            sent_at=moment,
            stage=UNREADABLE,
            reason=why,
            rejected_at=moment,
            event=None,
            action="keep",
            why=why,
        )
