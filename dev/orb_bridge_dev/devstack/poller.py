"""An SQS poller that behaves like Lambda's SQS event source mapping, for the dev stack.

- gathers up to ``batch_size`` messages, waiting at most ``batching_window`` seconds;
- invokes the handler with a Lambda-shaped SQS event and a context whose remaining time
  counts down from the function's timeout;
- deletes the messages that succeeded; those listed in ``batchItemFailures`` stay in the queue
  and reappear after the visibility timeout; a raised exception, a timeout or an invalid
  response fails the whole batch (as Lambda does);
- the queue's redrive policy moves a message to the dead-letter queue after
  ``maxReceiveCount`` receives (moto's SQS implements that on receive).

moto's SQS scans the whole queue on every call, so the poller polls continuously and keeps
the queue drained rather than letting it grow.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orb_bridge_dev.devstack.lambda_runtime import LambdaContext
from orb_bridge_dev.devstack.local_aws import REGION

# Lambda delivers at most 10 messages per ReceiveMessage; local caps keep the dev stack lively.
MAX_LOCAL_BATCH_SIZE = 100
MAX_LOCAL_BATCHING_WINDOW = 0.5
IDLE_SLEEP_SECONDS = 0.05

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class PollerStats:
    batches: int = 0
    received: int = 0
    succeeded: int = 0  # deleted after the handler reported success
    failed: int = 0  # left in the queue for a retry (batchItemFailures, exception, timeout)
    batch_errors: int = 0  # invocations that failed as a whole
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "batches": self.batches,
                "received": self.received,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "batch_errors": self.batch_errors,
                "last_error": self.last_error,
            }


def _lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    converted = {}
    for name, value in attributes.items():
        converted[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
    return converted


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of a Lambda SQS event, from a ReceiveMessage result entry."""
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": _lambda_message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode("utf-8")).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def failed_message_ids(response: Any, message_ids: set[str]) -> set[str]:
    """Which messages to leave in the queue, per Lambda's ReportBatchItemFailures rules.

    A malformed response (or an unknown, empty or missing itemIdentifier) fails the whole batch.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        return set(message_ids)
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(message_ids)
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return set(message_ids)
        failed.add(identifier)
    return failed


class SqsEventSourcePoller:
    def __init__(
        self,
        *,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        function_name: str,
        function_timeout: float,
        batch_size: int = 10,
        batching_window: float = 0.0,
        on_batch: Callable[[list[dict[str, Any]], set[str], str | None], None] | None = None,
    ) -> None:
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.function_name = function_name
        self.function_timeout = function_timeout
        self.batch_size = max(1, min(int(batch_size), MAX_LOCAL_BATCH_SIZE))
        self.batching_window = max(0.0, min(float(batching_window), MAX_LOCAL_BATCHING_WINDOW))
        self.on_batch = on_batch
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"poller-{self.function_name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.poll_once()
            except Exception as exc:  # SQS unreachable (e.g. while stopping): back off, keep going
                with self.stats.lock:
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                handled = 0
                self._stop.wait(0.5)
            if not handled:
                self._stop.wait(IDLE_SLEEP_SECONDS)

    def receive_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        window_end = time.monotonic() + self.batching_window
        while len(messages) < self.batch_size and not self._stop.is_set():
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            received = response.get("Messages", [])
            messages.extend(received)
            if time.monotonic() >= window_end or (not received and messages and not self.batching_window):
                break
            if not received:
                if not messages:
                    break
                self._stop.wait(min(IDLE_SLEEP_SECONDS, max(0.0, window_end - time.monotonic())))
        return messages

    def poll_once(self) -> int:
        """Receive one batch and invoke the handler; return the number of messages handled."""
        messages = self.receive_batch()
        if not messages:
            return 0
        records = [sqs_record(message, self.queue_arn) for message in messages]
        event = {"Records": records}
        context = LambdaContext(self.function_name, self.function_timeout)
        message_ids = {record["messageId"] for record in records}
        error: str | None = None
        try:
            response = self.handler(event, context)
            failed = failed_message_ids(response, message_ids)
            if context.timed_out:
                error = f"Task timed out after {self.function_timeout:.2f} seconds"
                failed = set(message_ids)
        except Exception as exc:  # the whole batch fails and comes back after the visibility timeout
            error = f"{type(exc).__name__}: {exc}"
            failed = set(message_ids)

        succeeded = [record for record in records if record["messageId"] not in failed]
        self._delete(succeeded)
        with self.stats.lock:
            self.stats.batches += 1
            self.stats.received += len(records)
            self.stats.succeeded += len(succeeded)
            self.stats.failed += len(failed)
            if error:
                self.stats.batch_errors += 1
                self.stats.last_error = error
        if self.on_batch is not None:
            self.on_batch(records, failed, error)
        return len(records)

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
