"""SQS adapters: send many messages reliably, and keep rejected events with their reason.

``SendMessageBatch`` takes at most 10 entries and 1 MiB, and an HTTP 200 can still list
``Failed`` entries: those are retried (sender faults are not), and whatever still fails is
returned to the caller, which decides (intake answers 503 so Segment retries).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orb_bridge.aws import clients as aws
from orb_bridge.core.config import RedeliverySettings

MAX_ENTRIES_PER_BATCH = 10
# Stay under the 256 KiB limit that older queues still pin, for the whole batch.
MAX_BATCH_BYTES = 256 * 1024
SEND_ATTEMPTS = 3


@dataclass(frozen=True)
class SendFailure:
    index: int
    code: str
    message: str
    sender_fault: bool


def _batches(entries: Sequence[dict[str, Any]]) -> Iterator[list[int]]:
    batch: list[int] = []
    size = 0
    for index, entry in enumerate(entries):
        body_size = _entry_size(entry)
        if batch and (len(batch) == MAX_ENTRIES_PER_BATCH or size + body_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(index)
        size += body_size
    if batch:
        yield batch


def _entry_size(entry: dict[str, Any]) -> int:
    size = len(entry["MessageBody"].encode("utf-8"))
    for name, value in entry.get("MessageAttributes", {}).items():
        size += len(name) + len(value.get("DataType", "")) + len(str(value.get("StringValue", "")))
    return size


class SqsQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws.client("sqs")

    def send_all(self, bodies: Sequence[str], attempts: int = SEND_ATTEMPTS) -> list[SendFailure]:
        """Send every body as its own message; return what still failed after retries."""
        return self.send_entries([{"MessageBody": body} for body in bodies], attempts)

    def send_entries(self, entries: Sequence[dict[str, Any]], attempts: int = SEND_ATTEMPTS) -> list[SendFailure]:
        """Send ``SendMessageBatch`` entries without their ``Id`` (``MessageBody``,
        ``DelaySeconds``, ``MessageAttributes``); return what still failed after retries."""
        failures: list[SendFailure] = []
        for batch in _batches(entries):
            failures.extend(self._send_batch(entries, batch, attempts))
        return failures

    def _send_batch(self, bodies: Sequence[dict[str, Any]], indexes: list[int], attempts: int) -> list[SendFailure]:
        pending = list(indexes)
        final: list[SendFailure] = []  # sender faults: retrying cannot help
        last: dict[int, SendFailure] = {}
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(0.05 * 2**attempt, 0.5))
            try:
                response = self.client.send_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), **bodies[i]} for i in pending],
                )
            except Exception as exc:  # network or service error: retry the whole batch
                last = {i: SendFailure(i, type(exc).__name__, str(exc), False) for i in pending}
                continue
            last = {}
            for failed in response.get("Failed", []):
                failure = SendFailure(
                    int(failed["Id"]),
                    failed.get("Code", "Unknown"),
                    failed.get("Message", ""),
                    bool(failed.get("SenderFault")),
                )
                if failure.sender_fault:
                    final.append(failure)
                else:
                    last[failure.index] = failure
            if not last:
                return final
            pending = sorted(last)
        return final + [last[i] for i in pending]


# A rejected-queue record stays under this whatever it carries: SQS refuses a message over the
# queue's maximum, and queues created before 2025 still pin 256 KiB.
MAX_RECORD_BYTES = 200 * 1024
RECORD_EXCERPT_CHARS = 8 * 1024
MAX_RECORD_TEXT_CHARS = 1024
MAX_RECORD_ERRORS = 20
# Fields that carry what was rejected, for replay: never cut, but replaced by an excerpt when
# they cannot fit (and the record is then marked ``"replayable": false``).
CARRIED_FIELDS = ("segment_event", "segment_events", "orb_event", "message_body")


def _dumps(record: dict[str, Any]) -> str | None:
    try:  # standard JSON only: NaN or Infinity would make the record unreadable to most tools
        return json.dumps(record, separators=(",", ":"), default=str, allow_nan=False)
    except (ValueError, RecursionError, TypeError):
        return None


def _clip_text(value: Any, limit: int = MAX_RECORD_TEXT_CHARS) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value


def _text_limit(key: str) -> int:
    return RECORD_EXCERPT_CHARS if key.endswith("_excerpt") else MAX_RECORD_TEXT_CHARS


def rejection_record(
    *,
    stage: str,
    reason: str,
    errors: Sequence[str] = (),
    segment_event: Any = None,
    orb_event: Any = None,
    extra: dict[str, Any] | None = None,
    replayable: bool = True,
) -> str:
    """The body of a rejected-queue message: enough to understand, fix and replay the event.

    ``stage`` is where it was rejected: ``intake`` (mapping), ``orb`` (Orb's validation) or
    ``ingest`` (e.g. a conflicting duplicate idempotency key). Always under ``MAX_RECORD_BYTES``:
    reasons and errors are cut, and an event too large to carry whole is replaced by an excerpt
    and the record marked ``"replayable": false`` (as is one the caller says must never be replayed).
    """
    record: dict[str, Any] = {
        "stage": stage,
        "reason": _clip_text(reason),
        "errors": [_clip_text(error) for error in list(errors)[:MAX_RECORD_ERRORS]],
        "rejected_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if len(errors) > MAX_RECORD_ERRORS:
        record["errors_omitted"] = len(errors) - MAX_RECORD_ERRORS
    if not replayable:
        record["replayable"] = False
    if segment_event is not None:
        record["segment_event"] = segment_event
    if orb_event is not None:
        record["orb_event"] = orb_event
    for key, value in (extra or {}).items():
        record[key] = value if key in CARRIED_FIELDS else _clip_text(value, _text_limit(key))
    text = _dumps(record)
    if text is not None and len(text) <= MAX_RECORD_BYTES:  # ASCII-escaped: characters == bytes
        return text
    # Too large (or not standard JSON): keep an excerpt of what was carried, never a cut event.
    record["replayable"] = False
    for key in CARRIED_FIELDS:
        if key in record:
            carried = record.pop(key)
            serialised = carried if isinstance(carried, str) else _dumps({"v": carried})
            serialised = serialised[5:-1] if serialised is not None and not isinstance(carried, str) else serialised
            if serialised is None:
                serialised = "(not serialisable as standard JSON)"
            record[f"{key}_bytes"] = len(serialised)
            record[f"{key}_excerpt"] = serialised[:RECORD_EXCERPT_CHARS]
    for key, value in list(record.items()):
        if isinstance(value, list):
            record[key] = [
                _clip_text(item if isinstance(item, str) else str(item)) for item in value[:MAX_RECORD_ERRORS]
            ]
        elif not isinstance(value, (str, int, bool)):
            record[key] = _clip_text(str(value), _text_limit(key))
    text = _dumps(record)
    if text is None or len(text) > MAX_RECORD_BYTES:  # still too large: the essentials only
        essentials = ("stage", "reason", "rejected_at", "replayable", "index")
        text = _dumps({key: value for key, value in record.items() if key in essentials or key.endswith("_excerpt")})
    return text or json.dumps({"stage": stage, "reason": "record could not be serialised", "replayable": False})


# Holding back failed messages
#
# Without it SQS redelivers after the queue's fixed visibility timeout, so maxReceiveCount
# failures in a row (an Orb outage of an hour, a wrong API key) would move good events to the
# rejected queue. With it, redelivery waits exponentially longer on each failed delivery.
# SQS caps a message's visibility at 12 hours from when it was *received* (this receive, not
# the first one; a request past the cap fails), so each hold-back is capped at what is left of
# those 12 hours (``visibility_cap_seconds``). With the defaults (maxReceiveCount 10) that spans
# about 17 hours of Orb errors and about 2.6 days of a configuration error (``hold_back_span``).

# SQS caps a message's visibility timeout at 12 hours from its receipt.
MAX_VISIBILITY_TIMEOUT_SECONDS = 12 * 60 * 60
# How long ago a message whose receipt handle still works can at most have been received: the
# event source invokes within its batching window (<= 300 s) and the receipt stops working once
# the queue's visibility timeout (360 s in the template) passes. Used when the receive time is
# unknown (ApproximateFirstReceiveTimestamp is the *first* receive, exact only for receive 1).
MAX_RECEIPT_AGE_SECONDS = 15 * 60
# Margin for clock differences and the time the ChangeMessageVisibility call itself takes.
VISIBILITY_CAP_MARGIN_SECONDS = 60


def visibility_cap_seconds(receive_count: int, first_receive_ms: int | None, now: float) -> int:
    """The longest visibility SQS still grants for this receipt."""
    if receive_count <= 1 and first_receive_ms:
        received = min(first_receive_ms / 1000, now)
    else:
        received = now - MAX_RECEIPT_AGE_SECONDS
    left = MAX_VISIBILITY_TIMEOUT_SECONDS - (now - received) - VISIBILITY_CAP_MARGIN_SECONDS
    return int(max(0, left))


def backoff_seconds(
    failed_deliveries: int, base_seconds: int, cap_seconds: int = MAX_VISIBILITY_TIMEOUT_SECONDS
) -> int:
    """Exponential redelivery delay after the n-th failed delivery: base, 2x base, ... capped."""
    exponent = max(0, min(failed_deliveries - 1, 16))
    return int(min(base_seconds * 2**exponent, cap_seconds, MAX_VISIBILITY_TIMEOUT_SECONDS))


def hold_back_span(max_receive_count: int, base_seconds: int) -> int:
    """Seconds from the first failed delivery until the redrive moves a message (for the docs)."""
    cap = MAX_VISIBILITY_TIMEOUT_SECONDS - MAX_RECEIPT_AGE_SECONDS - VISIBILITY_CAP_MARGIN_SECONDS
    return sum(backoff_seconds(n, base_seconds, cap) for n in range(1, max_receive_count + 1))


def queue_url_from_arn(queue_arn: str, client: Any | None = None) -> str:
    """The URL of the queue an SQS event record came from (``eventSourceARN``).

    ``INGEST_QUEUE_URL``, when it names that queue, saves a GetQueueUrl call (and permission).
    """
    _, _, _, _region, account, name = queue_arn.split(":", 5)
    known = RedeliverySettings.from_env().ingest_queue_url
    if known.rstrip("/").endswith(f"/{account}/{name}"):
        return known
    sqs = client if client is not None else aws.client("sqs")
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def delay_redelivery(queue_url: str, receipts: Sequence[tuple[str, int]], client: Any | None = None) -> int:
    """Hold failed messages back for a while (``(receipt_handle, seconds)`` each).

    ``hold_back`` uses it for every failed message: without it the event source would redeliver
    them at once and the redrive would move good events to the rejected queue after
    ``maxReceiveCount`` quick failures. Returns how many could not be delayed (best effort:
    those simply reappear after the queue's visibility timeout).
    """
    sqs = client if client is not None else aws.client("sqs")
    failed = 0
    for start in range(0, len(receipts), MAX_ENTRIES_PER_BATCH):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
            for i, (handle, seconds) in enumerate(receipts[start : start + MAX_ENTRIES_PER_BATCH])
        ]
        try:
            response = sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except Exception:
            failed += len(entries)
            continue
        failed += len(response.get("Failed", []))
    return failed


@dataclass(frozen=True)
class Receipt:
    """A received message, as far as delaying its redelivery goes."""

    queue_arn: str
    receipt_handle: str
    receive_count: int
    # Failed deliveries of earlier copies (a deferred message is re-sent as a new one).
    earlier_failures: int = 0
    first_receive_ms: int | None = None


def backoff_base_seconds(configuration_error: bool) -> int:
    """First hold-back (``RedeliverySettings``), read at each use so the dev stack can shrink it.

    Raises ConfigurationError on a bad value (the caller logs it; SQS's visibility timeout then
    paces redelivery on its own).
    """
    settings = RedeliverySettings.from_env()
    return settings.config_error_backoff_seconds if configuration_error else settings.retry_backoff_seconds


def hold_back(
    receipts: Sequence[Receipt], base_seconds: int, client: Any | None = None, now: float | None = None
) -> int:
    """Delay each message's redelivery by ``backoff_seconds``, within what SQS still grants.

    Returns how many could not be delayed (they reappear after the visibility timeout).
    """
    now = time.time() if now is None else now
    by_queue: dict[str, list[tuple[str, int]]] = {}
    for receipt in receipts:
        cap = visibility_cap_seconds(receipt.receive_count, receipt.first_receive_ms, now)
        delay = backoff_seconds(receipt.receive_count + receipt.earlier_failures, base_seconds, cap)
        by_queue.setdefault(receipt.queue_arn, []).append((receipt.receipt_handle, delay))
    not_delayed = 0
    for queue_arn, handles in by_queue.items():
        not_delayed += delay_redelivery(queue_url_from_arn(queue_arn, client), handles, client)
    return not_delayed
