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

from orb_bridge import aws

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


def _batches(bodies: Sequence[str]) -> Iterator[list[int]]:
    batch: list[int] = []
    size = 0
    for index, body in enumerate(bodies):
        body_size = len(body.encode("utf-8"))
        if batch and (len(batch) == MAX_ENTRIES_PER_BATCH or size + body_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(index)
        size += body_size
    if batch:
        yield batch


class SqsQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws.client("sqs")

    def send_all(self, bodies: Sequence[str], attempts: int = SEND_ATTEMPTS) -> list[SendFailure]:
        """Send every body as its own message; return what still failed after retries."""
        failures: list[SendFailure] = []
        for batch in _batches(bodies):
            failures.extend(self._send_batch(bodies, batch, attempts))
        return failures

    def _send_batch(self, bodies: Sequence[str], indexes: list[int], attempts: int) -> list[SendFailure]:
        pending = list(indexes)
        final: list[SendFailure] = []  # sender faults: retrying cannot help
        last: dict[int, SendFailure] = {}
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(0.05 * 2**attempt, 0.5))
            try:
                response = self.client.send_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "MessageBody": bodies[i]} for i in pending],
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


def rejection_record(
    *,
    stage: str,
    reason: str,
    errors: Sequence[str] = (),
    segment_event: Any = None,
    orb_event: Any = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """The body of a rejected-queue message: enough to understand, fix and replay the event.

    ``stage`` is where it was rejected: ``intake`` (mapping), ``orb`` (Orb's validation) or
    ``ingest`` (e.g. a conflicting duplicate idempotency key).
    """
    record: dict[str, Any] = {
        "stage": stage,
        "reason": reason,
        "errors": list(errors),
        "rejected_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if segment_event is not None:
        record["segment_event"] = segment_event
    if orb_event is not None:
        record["orb_event"] = orb_event
    if extra:
        record.update(extra)
    return json.dumps(record, separators=(",", ":"), default=str)
