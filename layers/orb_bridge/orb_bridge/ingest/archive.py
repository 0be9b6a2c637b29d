"""Ingest's side of the audit archive (``orb_bridge.aws.archive``): what Orb accepted, kept before
the messages are acknowledged.

After each Orb 200 the worker that sent the request writes one object (``ArchiveRun.record``)
holding the events Orb accepted (sent, less ``validation_failed``). When the write fails, the
events are not sent again: their messages go back as deferred copies carrying Orb's acceptance
(``Acceptance``, message attribute ``orb_bridge.accepted``), whose body is the event exactly as
sent; a later invocation archives them without calling Orb (``orb_bridge.ingest.late_archive``).

With no bucket (``AUDIT_BUCKET_NAME`` empty or unset, e.g. unit tests that do not care), nothing
is archived and nothing waits on the archive. The template always sets it.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from orb_bridge.aws.archive import SOURCE_INGEST, ArchiveWriteError, ArchiveWriter, archive_body, archive_key, header
from orb_bridge.core.observability import logger
from orb_bridge.ingest.messages import PendingEvent
from orb_bridge.orb.client import IngestResult, Outcome

ATTRIBUTE_ACCEPTED = "orb_bridge.accepted"
# Orb's answer is kept in each copy's attribute only up to this size (SQS counts attributes
# towards a message's 256 KiB); a longer one (a 200 listing many validation failures) is summarised.
MAX_KEPT_RESPONSE_CHARS = 2048


@dataclass(frozen=True)
class Acceptance:
    """Orb's 200 for the request that carried an event: what its late archive object says."""

    sent_at: float  # epoch seconds
    function_request_id: str
    request_number: int
    orb_response: Any
    possible_repeat: bool

    def to_attribute(self) -> str:
        kept = self
        if len(json.dumps(self.orb_response, separators=(",", ":"))) > MAX_KEPT_RESPONSE_CHARS:
            failed = self.orb_response.get("validation_failed") if isinstance(self.orb_response, dict) else None
            summary = {"summarised": True, "validation_failed_count": len(failed) if isinstance(failed, list) else None}
            kept = Acceptance(
                self.sent_at, self.function_request_id, self.request_number, summary, self.possible_repeat
            )
        return json.dumps(asdict(kept), separators=(",", ":"))

    @classmethod
    def from_attribute(cls, text: str) -> Acceptance | None:
        """The attribute read back, or None when it is not one (outside input: never trusted)."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        sent_at, request_id, number = data.get("sent_at"), data.get("function_request_id"), data.get("request_number")
        if not isinstance(sent_at, int | float) or isinstance(sent_at, bool) or not 0 < sent_at < 1e11:
            return None
        if not isinstance(request_id, str) or not isinstance(number, int) or isinstance(number, bool):
            return None
        return cls(float(sent_at), request_id, number, data.get("orb_response"), data.get("possible_repeat") is True)

    @property
    def request(self) -> tuple[str, int, float]:
        """Which Orb request: copies of one request are archived together."""
        return self.function_request_id, self.request_number, self.sent_at


@dataclass(frozen=True)
class Unarchived:
    """Events Orb accepted in one request whose archive object could not be written."""

    acceptance: Acceptance
    events: list[PendingEvent]


class ArchiveRun:
    """One invocation's archive writes; ``record`` is called from the request workers."""

    def __init__(
        self, writer: ArchiveWriter | None, function_request_id: str, repeated_message_ids: Iterable[str] = ()
    ) -> None:
        self.writer = writer
        # Names every object this invocation writes: never shared (without Lambda's request id, a
        # random one), or a 412 would pass off another invocation's object as this one's.
        self.function_request_id = function_request_id or f"local-{uuid.uuid4().hex}"
        self.repeated = frozenset(repeated_message_ids)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.write_failures = 0
        self.objects_written = 0

    @classmethod
    def off(cls) -> ArchiveRun:
        return cls(None, "")

    @property
    def on(self) -> bool:
        return self.writer is not None

    def next_number(self) -> int:
        """The next request number of this invocation (Orb requests and late writes share them)."""
        with self._lock:
            return next(self._numbers)

    def record(
        self, events: list[PendingEvent], answer: IngestResult, sent_at: float, number: int
    ) -> Unarchived | None:
        """Archive what Orb accepted in a request answered ``answer``; the accepted events when the
        write failed (they must not be acknowledged before they are archived), else None."""
        if self.writer is None or answer.outcome is not Outcome.OK:
            return None
        accepted = [event for event in events if event.key not in answer.validation_failed]
        if not accepted:  # Orb refused every event: nothing it accepted to keep
            return None
        repeat = any(message_id in self.repeated for event in accepted for message_id in event.message_ids)
        acceptance = Acceptance(sent_at, self.function_request_id, number, answer.response, repeat)
        if self.write(acceptance, [event.text() for event in accepted], number, archived_late=False):
            return None
        return Unarchived(acceptance, accepted)

    def write(self, acceptance: Acceptance, event_texts: list[str], number: int, *, archived_late: bool) -> bool:
        """One object for ``event_texts``, named after this invocation and ``number``; whether it
        is in the bucket now. A late object (a later invocation's) may repeat one whose write
        seemed to fail but landed: it says so (``possible_repeat``, ``archived_late``)."""
        assert self.writer is not None  # noqa: S101 (only called when archiving is on)
        head = header(
            sent_at=acceptance.sent_at,
            orb_response=acceptance.orb_response,
            function_request_id=acceptance.function_request_id,
            request_number=acceptance.request_number,
            source=SOURCE_INGEST,
            events=len(event_texts),
            possible_repeat=acceptance.possible_repeat or archived_late,
            archived_late=archived_late,
        )
        key = archive_key(SOURCE_INGEST, acceptance.sent_at, self.function_request_id, number)
        try:
            self.writer.put(key, archive_body(head, event_texts))
        except ArchiveWriteError as exc:
            with self._lock:
                self.write_failures += 1
            logger.warning(
                "archive write failed after Orb accepted the events: their messages wait for a later archive",
                extra={"key": key, "events": len(event_texts), "error": str(exc)[:500]},
            )
            return False
        with self._lock:
            self.objects_written += 1
        return True


class Archiver:
    """The container's archive: the bucket's writer, or None when archiving is off."""

    def __init__(self, writer: ArchiveWriter | None = None) -> None:
        self.writer = writer

    def run(self, function_request_id: str, repeated_message_ids: Iterable[str] = ()) -> ArchiveRun:
        return ArchiveRun(self.writer, function_request_id, repeated_message_ids)
