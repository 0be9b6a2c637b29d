"""SQS: send many messages reliably, and find a queue's URL from its ARN.

``SendMessageBatch`` takes at most 10 entries and 1 MiB, and an HTTP 200 can still list
``Failed`` entries: those are retried (sender faults are not), and whatever still fails is
returned to the caller, which decides (intake answers 503 so Segment retries).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from orb_bridge.aws import clients as aws
from orb_bridge.core.config import RedeliverySettings

MAX_ENTRIES_PER_BATCH = 10
# Stay under the 256 KiB limit that older queues still pin, for the whole batch.
MAX_BATCH_BYTES = 256 * 1024
SEND_ATTEMPTS = 3
# Bodies per worker when a large batch is queued concurrently (10 SendMessageBatch entries each).
SEND_CHUNK = 100
# Segment's default batch of 1,000 events is one wave of 10 slices: the request waits on 10
# sequential SendMessageBatch calls, not 20 (8 workers took two waves); 4,000 events take four.
SEND_WORKERS = 10


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


def send_concurrently(queue: SqsQueue, bodies: Sequence[str], workers: int = SEND_WORKERS) -> list[SendFailure]:
    """``queue.send_all`` over slices in parallel: 4,000 events in sequence would outlast Segment's timeout."""
    if len(bodies) <= SEND_CHUNK or workers <= 1:
        return queue.send_all(bodies)
    from concurrent.futures import ThreadPoolExecutor  # only large batches need it

    _ = queue.client  # create the shared client before the threads need it
    starts = range(0, len(bodies), SEND_CHUNK)

    def send_slice(start: int) -> list[SendFailure]:
        failures = queue.send_all(bodies[start : start + SEND_CHUNK])
        return [dataclasses.replace(failure, index=start + failure.index) for failure in failures]

    with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
        return [failure for failures in pool.map(send_slice, starts) for failure in failures]
