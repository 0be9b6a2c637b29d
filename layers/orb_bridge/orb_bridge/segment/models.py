"""What Segment sends us, and what mapping one element of a request produced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orb_bridge.orb.usage_event import OrbUsageEvent

TRACK = "track"
# Acknowledged without billing: answering 200 stops Segment from retrying them. ``delete`` is
# the notice the classic Webhooks destination sends when a user is deleted in Segment.
SKIPPED_CALL_TYPES = frozenset({"identify", "page", "screen", "group", "alias", "delete"})

# Segment's own limits (Tracking API spec).
MAX_MESSAGE_ID_CHARS = 100
MAX_EVENT_BYTES = 32 * 1024

BodyShape = Literal["object", "array", "batch"]


@dataclass(frozen=True, slots=True)
class MappedEvent:
    """The outcome for one element of a Segment request.

    Exactly one holds: ``orb_event`` is set (accepted), ``skipped`` is true (a non-Track call),
    or ``error`` says why the element was rejected.
    """

    index: int
    message_id: str | None
    call_type: str | None
    orb_event: OrbUsageEvent | None = None
    error: str | None = None
    skipped: bool = False

    @property
    def accepted(self) -> bool:
        return self.orb_event is not None

    @property
    def rejected(self) -> bool:
        return self.error is not None
