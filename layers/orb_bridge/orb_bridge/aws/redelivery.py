"""Holding failed ingest messages back, so that SQS's redrive does not dead-letter good events.

Without it SQS redelivers after the queue's fixed visibility timeout, so maxReceiveCount
failures in a row (an Orb outage of an hour, a wrong API key) would move good events to the
rejected queue. With it, redelivery waits exponentially longer on each failed delivery.
SQS caps a message's visibility at 12 hours from when it was *received* (this receive, not
the first one; a request past the cap fails), so each hold-back is capped at what is left of
those 12 hours (``visibility_cap_seconds``). With the defaults (maxReceiveCount 10) that spans
about 17 hours of Orb errors and about 2.6 days of a configuration error (``hold_back_span``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orb_bridge.aws import clients as aws
from orb_bridge.aws.queues import MAX_ENTRIES_PER_BATCH, queue_url_from_arn
from orb_bridge.core.config import RedeliverySettings

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
