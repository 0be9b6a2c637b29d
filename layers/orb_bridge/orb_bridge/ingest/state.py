"""The state of one ingest invocation: its report, the jobs it schedules and what each attempt did."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from orb_bridge.ingest.archive import ArchiveRun, Unarchived
from orb_bridge.ingest.messages import PendingEvent, Rejection
from orb_bridge.ingest.pacing import NoPacing, Pacer
from orb_bridge.orb.client import IngestResult


@dataclass
class RunCounts:
    """What an invocation counts only for its metrics."""

    orb_latencies_ms: list[float] = field(default_factory=list)  # one per answered request
    orb_errors: dict[str, int] = field(default_factory=dict)  # requests by failed outcome (kind)
    rejected_records_written: dict[str, int] = field(default_factory=dict)  # by stage

    def answer(self, outcome: str, elapsed_seconds: float) -> None:
        self.orb_latencies_ms.append(round(elapsed_seconds * 1000, 1))
        if outcome != "ok":
            self.orb_errors[outcome] = self.orb_errors.get(outcome, 0) + 1


@dataclass
class IngestReport:
    failed_message_ids: list[str]
    # message id -> seconds to hold it back before it is offered again (pacing, 429, time),
    # counted from ``deferred_as_of``: the sender subtracts the time since (``monotonic`` clock).
    deferred: dict[str, float] = field(default_factory=dict)
    deferred_as_of: float = 0.0
    events_ingested: int = 0
    events_rejected_by_orb: int = 0
    # Unreadable bodies and conflicting duplicates, kept in the rejected queue.
    messages_rejected_at_ingest: int = 0
    requests_made: int = 0
    rate_limited: int = 0  # 429 answers
    # Set when Orb refused our credentials or the base URL is wrong.
    configuration_error: str | None = None
    # Epoch seconds of the oldest event timestamp among the failed and deferred ones.
    oldest_pending_event: float | None = None
    events_replayed: int = 0  # redriven rejection records whose event was sent again
    replays_refused: int = 0  # redriven records sent back to the rejected queue unsent
    # Redriven records that need the mapping while it is broken: failed, held back as a
    # configuration error (also in ``failed_message_ids``).
    mapping_error_message_ids: list[str] = field(default_factory=list)
    mapping_error: str = ""
    late_events_rejected: int = 0  # refused by Orb and older than the grace period
    # Failed calls to the pacing table (the invocation then paced by its container's share).
    pacing_table_errors: int = 0
    # Accepted by Orb, not archived: their messages go back as copies carrying Orb's acceptance.
    unarchived: list[Unarchived] = field(default_factory=list)
    archive_write_failures: int = 0
    counted: RunCounts = field(default_factory=lambda: RunCounts())


@dataclass(frozen=True)
class Job:
    events: list[PendingEvent]
    split: bool = False  # part of a search for unnamed bad events


@dataclass(frozen=True)
class Attempt:
    """What a worker did with a job: Orb's answer, or why it did not send (``not_sent``)."""

    answer: IngestResult | None = None
    not_sent: str = ""  # "stopped", "time" or "paced"
    wait_seconds: float = 0.0
    # When ``wait_seconds`` was measured (the service's monotonic clock): a copy deferred later
    # must wait only what is left of it.
    measured_at: float = 0.0
    unarchived: Unarchived | None = None  # Orb's 200 whose archive write failed
    elapsed_seconds: float = 0.0  # the request's round trip (the service's monotonic clock)


@dataclass
class RunState:
    """One invocation's state, only touched by the scheduling thread (``stop`` by workers too)."""

    stop: threading.Event = field(default_factory=threading.Event)
    pacer: Pacer = field(default_factory=NoPacing)
    # Orb's Retry-After ends here (monotonic clock); events stopped by it wait until then.
    retry_until: float = 0.0
    requests_started: int = 0
    ingested: int = 0
    rejected_by_orb: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    failed: list[PendingEvent] = field(default_factory=list)
    # Each deferred event and when it may be sent (monotonic clock).
    deferred: list[tuple[PendingEvent, float]] = field(default_factory=list)
    rate_limited: int = 0
    configuration_error: str | None = None
    late_rejected: int = 0
    archive: ArchiveRun = field(default_factory=ArchiveRun.off)
    unarchived: list[Unarchived] = field(default_factory=list)
    counted: RunCounts = field(default_factory=lambda: RunCounts())
