"""The rejected queue seen from an operator's machine: where it is, what is on it, and the plan.

Shared by ``orb-bridge replay`` and ``orb-bridge backfill``. SQS has no "peek": reading the queue
receives every message with a visibility timeout (``--hold-seconds``) so none is seen twice in
a run; what a run does not act on is released (visibility 0) at its end, so a dry run changes
nothing. A killed run's messages simply reappear when the hold expires.

Bounded memory: a queue may hold a million records of up to 200 KiB each, so records are
classified batch by batch as they arrive and their bodies dropped. Each ``Entry`` keeps the
message id, the receipt handle and summary fields cut to ``MAX_SUMMARY_CHARS`` (1,024) each,
about 6 KiB at most per record; the event itself only for the records the run will send (the
selected ones a ``replay --yes`` replays, or a ``backfill`` backfills), which are what it sends
anyway. A dry run of ``replay`` keeps no event at all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orb_bridge.core.config import MappingSettings
from orb_bridge.ingest.replay import Action, is_rejection_record, read_ingest_message, replay_record
from orb_bridge.orb.usage_event import OrbUsageEvent

DEFAULT_GRACE_PERIOD_HOURS = 12.0
# Replaying an event this close to the grace period's edge risks Orb refusing it on arrival.
GRACE_MARGIN = timedelta(minutes=30)
REDRIVEN = "redriven"  # a usage event moved by the queue's redrive (no stage)
STAGE_CHOICES = ("intake", "orb", "ingest", REDRIVEN)
# Each text an Entry keeps (reason, why, event name, customer) is cut to this (memory bound).
MAX_SUMMARY_CHARS = 1024


class TargetError(RuntimeError):
    """The stack or dev stack cannot be reached as asked (the message says what to change)."""


@dataclass
class Target:
    label: str
    sqs: Any
    ingest_queue_url: str
    rejected_queue_url: str
    mapping: Callable[[], MappingSettings]
    orb_base_url: str
    orb_api_key: Callable[[], str]
    # The stack's audit archive (output AuditBucketName) and an S3 client for it; "" = none.
    audit_bucket: str = ""
    s3: Any = None
    # For `orb-bridge status`: what else the deployment says about itself (all untrusted input).
    cloudwatch: Any = None
    outputs: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)
    alarm_prefix: str = ""  # alarms CloudFormation names after the stack
    # For `orb-bridge reconcile --check`: the reconciler's checkpoint table ("" = none), asked lazily.
    checkpoint_table: Callable[[], str] = lambda: ""
    dynamodb: Any = None


@dataclass
class Entry:
    """One message on the rejected queue and what a replay would do with it: ids and summary
    fields only (never the body); ``event`` only if the run may send it (else None)."""

    message_id: str
    receipt_handle: str
    sent_at: datetime
    stage: str
    reason: str
    rejected_at: datetime
    event: OrbUsageEvent | None
    action: str  # "replay", "backfill" or "keep"
    why: str = ""
    # Summary fields, taken from ``event`` when given.
    event_name: str = "-"
    customer: str = "-"
    event_time: datetime | None = None
    # The record as it is on the queue: kept only when a run asks for it (`orb-bridge rejected --full`).
    body: str = ""

    def __post_init__(self) -> None:
        event = self.event
        if event is not None:
            self.event_name = event.event_name
            self.customer = event.external_customer_id or event.customer_id or "-"
            self.event_time = parse_time(event.timestamp)
        self.reason, self.why = _clip(self.reason), _clip(self.why)
        self.event_name, self.customer = _clip(self.event_name), _clip(self.customer)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY_CHARS else text[:MAX_SUMMARY_CHARS] + "..."


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """``2h``, ``3d``, ``45m`` ago, or an ISO 8601 date-time (UTC if no offset)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", text)
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now - timedelta(**{unit: float(match.group(1))})
    try:
        return parse_time(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since: expected e.g. 2h, 3d or 2026-11-23T10:00:00Z, got {text!r}"
        ) from None


def late_cutoff(now: datetime, grace_period_hours: float) -> datetime:
    """Events older than this need a backfill; newer ones can be replayed through ingest."""
    return now - timedelta(hours=grace_period_hours) + GRACE_MARGIN


def classify(message: Mapping[str, Any], mapping: Callable[[], MappingSettings], cutoff: datetime) -> Entry:
    body = message["Body"]
    sent_at = datetime.fromtimestamp(int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000, UTC)
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        decoded = None
    if is_rejection_record(decoded):
        stage, reason = decoded["stage"], decoded["reason"]
        try:
            rejected_at = parse_time(str(decoded.get("rejected_at")))
        except ValueError:
            rejected_at = sent_at
        decision = replay_record(decoded, mapping, ignore_limit=True)
    else:
        stage, reason, rejected_at = REDRIVEN, "moved by the queue's redrive after maxReceiveCount", sent_at
        decision = read_ingest_message(body, mapping)
    entry = Entry(
        message["MessageId"],
        message["ReceiptHandle"],
        sent_at,
        stage,
        reason,
        rejected_at,
        decision.event,
        "keep",
    )
    if decision.event is None and isinstance(decoded, Mapping) and isinstance(decoded.get("segment_event"), Mapping):
        # An intake record the mapping still refuses: its names as its Segment event has them.
        entry.event_name, entry.customer = (_clip(name) for name in segment_names(decoded["segment_event"], mapping))
    if decision.action is Action.SEND and decision.event is not None:
        late = entry.event_time is not None and entry.event_time < cutoff
        entry.action = "backfill" if late else "replay"
        entry.why = "older than the grace period: needs `orb-bridge backfill`" if late else decision.detail
    elif decision.action is Action.REJECT and decision.rejection is not None:
        entry.why = json.loads(decision.rejection)["reason"]
    else:
        entry.why = decision.detail
    return entry


def segment_names(event: Mapping[str, Any], mapping: Callable[[], MappingSettings]) -> tuple[str, str]:
    """(event name, customer) of a Segment event as the mapping reads them, "-" where it cannot."""
    from orb_bridge.segment.mapping import MappingError, identifier

    try:
        settings = mapping()
    except Exception:  # the stack's mapping is misconfigured: names unknown, the record still listed
        return "-", "-"
    names = []
    for path, role in ((settings.event_name_field, "event_name"), (settings.external_customer_id_field, "customer")):
        try:
            names.append(identifier(event, path, role))
        except MappingError:
            names.append("-")
    return names[0], names[1]


@dataclass(frozen=True)
class Filters:
    stages: frozenset[str] = frozenset()
    reason_contains: str = ""
    since: datetime | None = None
    customer: str = ""

    def match(self, entry: Entry) -> bool:
        return (
            (not self.stages or entry.stage in self.stages)
            and (not self.reason_contains or self.reason_contains.lower() in entry.reason.lower())
            and (self.since is None or entry.rejected_at >= self.since)
            and (not self.customer or entry.customer == self.customer)
        )


# -- SQS --------------------------------------------------------------------------------------------


def read_entries(
    sqs: Any, queue_url: str, hold_seconds: int, read: Callable[[dict[str, Any]], Entry], wait_seconds: int = 1
) -> list[Entry]:
    """Every message on the queue as ``read`` makes it an ``Entry``, each held invisible for
    ``hold_seconds``; a batch's bodies are dropped before the next batch is received."""
    entries: dict[str, Entry] = {}
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=hold_seconds,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["SentTimestamp"],
        ).get("Messages", [])
        if not batch:
            return list(entries.values())
        for message in batch:  # at-least-once: the latest receipt handle is the valid one
            entries[message["MessageId"]] = read(message)


def _batched(items: Sequence[Any], size: int = 10) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def release(sqs: Any, queue_url: str, entries: Sequence[Entry]) -> None:
    """Make messages visible again at once (best effort: otherwise they return after the hold)."""
    for batch in _batched(entries):
        with contextlib.suppress(Exception):
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": entry.receipt_handle, "VisibilityTimeout": 0}
                    for i, entry in enumerate(batch)
                ],
            )


def delete(sqs: Any, queue_url: str, entries: Sequence[Entry]) -> list[Entry]:
    """Delete messages; return those that could not be deleted."""
    failed: list[Entry] = []
    for batch in _batched(entries):
        response = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": entry.receipt_handle} for i, entry in enumerate(batch)],
        )
        failed += [batch[int(item["Id"])] for item in response.get("Failed", [])]
    return failed


# -- the table --------------------------------------------------------------------------------------
