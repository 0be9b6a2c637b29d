"""What Orb holds under one archived key, in one word (README "Reconciliation").

- ``present``: a non-deprecated event under the key has our event name, customer, timestamp (to the
  millisecond) and properties (numbers compared as numbers, so ``1`` and ``1.0`` agree; ``true`` is
  not ``1``), and Orb matched it to a customer.
- ``unattributed``: as present, but Orb matched no customer to it: billed to no one.
- ``different``: a non-deprecated event under our key with another body (another source used it).
- ``deprecated``: only deprecated events under the key.
- ``not_found``: nothing under the key: lost, or amended (search does not return amended events, so
  the two look alike).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from orb_bridge.orb.reconcile_client import FoundEvent

PRESENT = "present"
UNATTRIBUTED = "unattributed"
DIFFERENT = "different"
DEPRECATED = "deprecated"
NOT_FOUND = "not_found"
CLASSES = (PRESENT, UNATTRIBUTED, DIFFERENT, DEPRECATED, NOT_FOUND)


# A pass reads each archived timestamp several times (the search's timeframe, the event's hour, the
# comparison): remembered for a search's worth of events.
@lru_cache(maxsize=2048)
def parse_timestamp(text: str) -> datetime | None:
    """ISO 8601 (``Z`` or an offset) to UTC, truncated to the millisecond; None if unreadable."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _same_value(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return type(ours) is type(theirs) and ours == theirs
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return ours == theirs
    return type(ours) is type(theirs) and ours == theirs


def same_properties(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    return ours.keys() == theirs.keys() and all(_same_value(ours[name], theirs[name]) for name in ours)


def same_body(archived: Mapping[str, Any], found: FoundEvent) -> bool:
    if archived.get("event_name") != found.event_name:
        return False
    if archived.get("external_customer_id") is not None:
        if archived["external_customer_id"] != found.external_customer_id:
            return False
    elif archived.get("customer_id") != found.customer_id:
        return False
    ours = parse_timestamp(str(archived.get("timestamp")))
    return (
        ours is not None
        and ours == parse_timestamp(found.timestamp)
        and same_properties(archived.get("properties") or {}, found.properties)
    )


def classify(archived: Mapping[str, Any], found: Iterable[FoundEvent]) -> str:
    under_key = list(found)
    current = [event for event in under_key if not event.deprecated]
    matching = [event for event in current if same_body(archived, event)]
    if matching:
        return PRESENT if any(event.customer_id is not None for event in matching) else UNATTRIBUTED
    if current:
        return DIFFERENT
    return DEPRECATED if under_key else NOT_FOUND
