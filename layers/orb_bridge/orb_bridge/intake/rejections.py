"""What intake says about the events it rejects: their records on the rejected queue, and the
answer's list of them (bounded, so a batch of rejected events never makes the answer too large)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from orb_bridge.aws.rejection_records import MAX_RECORD_BYTES, rejection_record
from orb_bridge.segment.models import MappedEvent

# A rejected-queue message must fit SQS even on queues still pinned to 256 KiB.
MAX_REJECTION_BYTES = MAX_RECORD_BYTES
EXCERPT_CHARS = 8 * 1024
# The answer's list of rejected events stops here (Lambda refuses responses over 6 MB).
MAX_REJECTED_LISTING_BYTES = 4 * 1024 * 1024


def excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


def rejection_body(outcome: MappedEvent, element: Any) -> str:
    extra = {"index": outcome.index, "message_id": outcome.message_id}
    return rejection_record(
        stage="intake", reason=outcome.error or "", errors=[outcome.error or ""], segment_event=element, extra=extra
    )


def rejected_listing(rejected: Sequence[MappedEvent]) -> tuple[list[dict[str, Any]], int]:
    """The answer's ``rejected`` entries, within ``MAX_REJECTED_LISTING_BYTES``; and how many were left out."""
    listing: list[dict[str, Any]] = []
    size = 0
    for outcome in rejected:
        item = {"index": outcome.index, "messageId": outcome.message_id, "error": outcome.error}
        size += len(json.dumps(item)) + 2
        if size > MAX_REJECTED_LISTING_BYTES:
            break
        listing.append(item)
    return listing, len(rejected) - len(listing)
