"""One OrbIngestFunction invocation: SQS event in, partial batch response out.

Around ``IngestService`` this decides how each unfinished message comes back:

- **deferred** (pacing: ours or Orb's 429, or no time left to start): a copy is re-sent to the
  ingest queue with ``DelaySeconds`` (at most 900 s; a longer wait carries ``not_before`` and
  is re-sent again on arrival without calling Orb), and the original is acknowledged only if
  its copy was accepted. The delay is the wait less the time since it was measured (the
  invocation's granted requests may have taken most of a minute since), rounded up: the copy
  becomes visible when its slot comes, so Orb's budget does not sit idle while events wait. A copy starts with ``ApproximateReceiveCount`` 1, so waiting on pacing
  never counts towards ``maxReceiveCount``: sustained load above Orb's limits becomes backlog,
  not dead letters. The copy carries how often it was deferred, when it was first enqueued and
  how many failed deliveries came before (``ATTRIBUTE_*``).
- **failed** (Orb errors, configuration errors): reported in ``batchItemFailures`` and held back
  exponentially with ``ChangeMessageVisibility`` (``redelivery.hold_back``); these deliveries count,
  and after ``maxReceiveCount`` the redrive moves the message to the rejected queue.

Metrics: EventsIngested, EventsRejectedByOrb, EventsRetried, EventsDeferred, OrbRequests,
OrbRateLimited, PacingTableErrors (the pacing table failed: paced by the container's share of the
budget instead), MessagesRejectedAtIngest, EventsReplayed (redriven rejection records sent again),
ReplaysRefused (redriven records sent back to the rejected queue unsent), LateEventsRejected
(refused by Orb past the grace period: backfill them), and OldestPendingEventAgeSeconds (how old the oldest
event still waiting is, against Orb's grace period: the queue's own age restarts with each copy).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from orb_bridge.aws import queues, redelivery
from orb_bridge.core import metric_names as names
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.core.observability import emit, emit_by, logger
from orb_bridge.ingest import container as ingest_container
from orb_bridge.ingest import late_archive
from orb_bridge.ingest.archive import ATTRIBUTE_ACCEPTED, Acceptance
from orb_bridge.ingest.state import IngestReport

ATTRIBUTE_DEFERRALS = "orb_bridge.deferrals"
ATTRIBUTE_FIRST_ENQUEUED_MS = "orb_bridge.first_enqueued_ms"
ATTRIBUTE_EARLIER_FAILURES = "orb_bridge.earlier_failures"
ATTRIBUTE_NOT_BEFORE_MS = "orb_bridge.not_before_ms"
MAX_DELAY_SECONDS = 900


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class SqsRecord:
    """The fields of one SQS record that ingest uses, read from the Lambda event as is.

    Not a pydantic model (nor Powertools' ``SqsModel``, which validates every attribute of every
    record): a plain read keeps a 10,000-record batch at a few ms, and ingest's cold start free
    of pydantic. A record without a string ``messageId`` and ``body`` is not an SQS event: the
    invocation fails (``ValueError``) and SQS redelivers the batch.
    """

    __slots__ = ("attributes", "body", "message_attributes", "message_id", "receipt_handle", "source_arn")

    def __init__(self, record: Any) -> None:
        if not isinstance(record, dict):
            raise ValueError("not an SQS event: a record is not an object")
        message_id, body = record.get("messageId"), record.get("body")
        if not isinstance(message_id, str) or not isinstance(body, str):
            raise ValueError("not an SQS event: a record has no string messageId and body")
        self.message_id: str = message_id
        self.body: str = body
        self.receipt_handle: str = _text(record.get("receiptHandle"))
        self.source_arn: str = _text(record.get("eventSourceARN"))
        self.attributes: dict[str, Any] = _object(record.get("attributes"))
        self.message_attributes: dict[str, Any] = _object(record.get("messageAttributes"))

    @property
    def receive_count(self) -> int:
        return _int(self.attributes.get("ApproximateReceiveCount"), 1)

    def number(self, name: str, default: int = 0) -> int:
        if not self.message_attributes:  # the usual case: a message as intake sent it
            return default
        value = self.message_attributes.get(name)
        return _int(value.get("stringValue") if isinstance(value, dict) else None, default)

    def receipt(self) -> redelivery.Receipt:
        first = _int(self.attributes.get("ApproximateFirstReceiveTimestamp"), 0) or None
        return redelivery.Receipt(
            self.source_arn, self.receipt_handle, self.receive_count, self.number(ATTRIBUTE_EARLIER_FAILURES), first
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def sqs_records(event: Any) -> list[SqsRecord]:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise ValueError("not an SQS event: no Records list")
    return [SqsRecord(record) for record in records]


def handle(
    event: dict[str, Any],
    context: Any,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """``clock`` is the wall clock (epoch seconds); ``monotonic`` the ingest service's clock for waits."""
    records = sqs_records(event)
    now, started = clock(), monotonic()
    # Copies that arrived before their wait is over go straight back (a wait longer than 900 s).
    early = {
        r.message_id: started + r.number(ATTRIBUTE_NOT_BEFORE_MS) / 1000 - now
        for r in records
        if r.number(ATTRIBUTE_NOT_BEFORE_MS) / 1000 > now + 1
    }
    # Copies carrying Orb's acceptance wait only on the archive: never sent to Orb again.
    copies = late_archive.accepted_copies(records)
    messages = [r for r in records if r.message_id not in early and r.message_id not in copies]
    by_id = {r.message_id: r for r in records}

    try:
        service = ingest_container.container_service()
    except ConfigurationError as exc:
        # Fail every message (never delete or dead-letter them as bad data) and say why.
        logger.error(f"configuration error: {exc}; every message left for SQS to redeliver")
        failed = [message.message_id for message in messages]
        emit(names.EVENTS_RETRIED, len(failed))
        held, held_copies = _carried(((by_id[i], by_id[i].body, a) for i, a in copies.items()), monotonic())
        failed += defer(records, {**early, **held}, clock, monotonic, held_copies)
        hold_back(records, set(failed), configuration_error=True)
        return response(failed)

    repeats = [r.message_id for r in records if r.receive_count > 1 or r.number(ATTRIBUTE_DEFERRALS)]
    archive = ingest_container.container_archiver().run(getattr(context, "aws_request_id", ""), repeats)
    not_archived = late_archive.archive_late(records, copies, archive)
    report = service.ingest(messages, lambda: context.get_remaining_time_in_millis() / 1000, archive)
    if report.configuration_error:
        logger.error("configuration error: " + report.configuration_error)
        ingest_container.forget_container_service()  # re-read the key (it may have been rotated) next time
    due = {message_id: report.deferred_as_of + wait for message_id, wait in report.deferred.items()}
    # Accepted by Orb, not yet archived: acknowledged only once a copy carrying the acceptance is queued.
    unarchived = [
        (by_id[i], e.text(), u.acceptance) for u in report.unarchived for e in u.events for i in e.message_ids
    ]
    unarchived += [(by_id[i], by_id[i].body, copies[i]) for i in not_archived]
    waiting, carried = _carried(unarchived, monotonic())
    failed = list(report.failed_message_ids) + defer(records, {**due, **early, **waiting}, clock, monotonic, carried)
    # Replays waiting on a mapping fix are held back like any configuration error.
    mapping_wait = set(report.mapping_error_message_ids)
    if mapping_wait:
        hold_back(records, mapping_wait, configuration_error=True)
    if set(failed) - mapping_wait:
        hold_back(records, set(failed) - mapping_wait, configuration_error=bool(report.configuration_error))
    _emit(report, now)
    logger.info(
        "ingest batch done",
        extra={
            "messages": len(records),
            "events_ingested": report.events_ingested,
            "events_rejected_by_orb": report.events_rejected_by_orb,
            "messages_rejected_at_ingest": report.messages_rejected_at_ingest,
            "messages_failed": len(report.failed_message_ids),
            "messages_deferred": len(report.deferred) + len(early),
            "orb_requests": report.requests_made,
            "orb_rate_limited": report.rate_limited,
            "events_replayed": report.events_replayed,
            "replays_refused": report.replays_refused,
            "archive_objects_written": archive.objects_written,
            "messages_waiting_on_archive": len(waiting),
        },
    )
    return response(failed)


def _carried(
    waiting: Iterable[tuple[SqsRecord, str, Acceptance]], now: float
) -> tuple[dict[str, float], dict[str, tuple[str, str]]]:
    """Copies to send for messages waiting on the archive: message id -> when due (``monotonic``
    clock), and -> the copy's body (the event as Orb received it) and Orb's acceptance."""
    due: dict[str, float] = {}
    carried: dict[str, tuple[str, str]] = {}
    for record, body, acceptance in waiting:
        due[record.message_id] = now + late_archive.retry_delay(record.number(ATTRIBUTE_DEFERRALS))
        carried[record.message_id] = (body, acceptance.to_attribute())
    return due, carried


def _emit(report: IngestReport, now: float) -> None:
    emit(names.EVENTS_INGESTED, report.events_ingested)
    emit(names.EVENTS_REJECTED_BY_ORB, report.events_rejected_by_orb)
    emit(names.EVENTS_RETRIED, len(report.failed_message_ids))
    emit(names.EVENTS_DEFERRED, len(report.deferred))
    emit(names.ORB_REQUESTS, report.requests_made)
    for latency_ms in report.counted.orb_latencies_ms:
        emit(names.ORB_REQUEST_LATENCY, latency_ms)
    for kind, errors in sorted(report.counted.orb_errors.items()):
        emit_by(names.ORB_REQUEST_ERRORS, errors, kind=kind)
    for stage, written in sorted(report.counted.rejected_records_written.items()):
        emit_by(names.INGEST_REJECTED_RECORDS_WRITTEN, written, stage=stage)
    optional = (
        (names.ORB_RATE_LIMITED, report.rate_limited),
        (names.MESSAGES_REJECTED_AT_INGEST, report.messages_rejected_at_ingest),
        (names.EVENTS_REPLAYED, report.events_replayed),
        (names.REPLAYS_REFUSED, report.replays_refused),
        (names.PACING_TABLE_ERRORS, report.pacing_table_errors),
        (names.LATE_EVENTS_REJECTED, report.late_events_rejected),
        (names.ARCHIVE_WRITE_FAILURES, report.archive_write_failures),
    )
    for metric, value in optional:
        if value:
            emit(metric, value)
    if report.oldest_pending_event is not None:
        emit(names.OLDEST_PENDING_EVENT_AGE, round(max(0.0, now - report.oldest_pending_event), 1))


def defer(
    records: list[SqsRecord],
    due: dict[str, float],
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    carried: Mapping[str, tuple[str, str]] | None = None,
) -> list[str]:
    """Re-send a delayed copy of each deferred message, visible at its ``due`` time (``monotonic``
    clock); return the ids whose copy failed (those stay failed: SQS redelivers the original,
    which is safe, only counted). A ``carried`` message's copy is the event Orb accepted with
    Orb's acceptance (body, ``ATTRIBUTE_ACCEPTED``), archived later without calling Orb."""
    chosen = [record for record in records if record.message_id in due]
    if not chosen:
        return []
    by_queue: dict[str, list[SqsRecord]] = {}
    for record in chosen:
        by_queue.setdefault(record.source_arn, []).append(record)
    failed: list[str] = []
    for queue_arn, group in by_queue.items():
        try:
            queue = queues.SqsQueue(queues.queue_url_from_arn(queue_arn))
            # Measured now, just before sending: only what is left of each wait.
            now, sending = clock(), monotonic()
            entries = [_copy(record, due[record.message_id] - sending, now, carried) for record in group]
            failures = queue.send_entries(entries)
        except Exception:
            logger.exception("could not re-enqueue deferred messages: SQS will redeliver them")
            failed += [record.message_id for record in group]
            continue
        failed += [group[failure.index].message_id for failure in failures]
    if failed:
        logger.warning("some deferred messages could not be re-enqueued", extra={"count": len(failed)})
    return failed


def _copy(
    record: SqsRecord, delay: float, now: float, carried: Mapping[str, tuple[str, str]] | None = None
) -> dict[str, Any]:
    delay = max(0.0, delay)
    sent_ms = record.number(ATTRIBUTE_FIRST_ENQUEUED_MS) or _int(record.attributes.get("SentTimestamp"), 0)
    attributes = {
        ATTRIBUTE_DEFERRALS: record.number(ATTRIBUTE_DEFERRALS) + 1,
        ATTRIBUTE_FIRST_ENQUEUED_MS: sent_ms or int(now * 1000),
        # The failed deliveries of this copy's ancestors (this delivery was not one).
        ATTRIBUTE_EARLIER_FAILURES: record.number(ATTRIBUTE_EARLIER_FAILURES) + record.receive_count - 1,
    }
    if delay > MAX_DELAY_SECONDS:
        attributes[ATTRIBUTE_NOT_BEFORE_MS] = round((now + delay) * 1000)
    message_attributes = {name: {"DataType": "Number", "StringValue": str(value)} for name, value in attributes.items()}
    body = record.body
    if carried and record.message_id in carried:
        body, acceptance = carried[record.message_id]
        message_attributes[ATTRIBUTE_ACCEPTED] = {"DataType": "String", "StringValue": acceptance}
    return {
        "MessageBody": body,
        "DelaySeconds": int(min(MAX_DELAY_SECONDS, -(-delay // 1))),  # rounded up: at least what is left
        "MessageAttributes": message_attributes,
    }


def hold_back(records: list[SqsRecord], failed: set[str], configuration_error: bool) -> None:
    """Delay the redelivery of the failed messages (see ``redelivery.hold_back``)."""
    receipts = [r.receipt() for r in records if r.message_id in failed and r.receipt_handle and r.source_arn]
    try:
        not_delayed = redelivery.hold_back(receipts, redelivery.backoff_base_seconds(configuration_error))
    except Exception:  # best effort: they reappear after the queue's visibility timeout anyway
        logger.exception("could not delay redelivery of failed messages")
        return
    if not_delayed:
        logger.warning("some failed messages could not be delayed", extra={"count": not_delayed})


def response(failed_message_ids: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed_message_ids]}
