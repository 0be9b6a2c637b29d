"""The ingest queue and its event source on a fake clock, for runs of simulated hours.

``SimulatedSqs`` answers the handler's SQS calls (``SendMessageBatch`` of deferred copies and
rejections, ``ChangeMessageVisibilityBatch`` of hold-backs) and keeps the template's redrive: a
message received more than ``max_receive_count`` times is dead-lettered. ``run_event_source``
invokes ``ingest_batch.handle`` one batch at a time, moving the clock to the next message due
when none is visible. Nothing sleeps: the ingest service's ``sleep`` moves the same clock.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orb_bridge.ingest import batch as ingest_batch

ACCOUNT = "123456789012"
QUEUE_NAME = "IngestQueue"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{QUEUE_NAME}"
QUEUE_URL = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{QUEUE_NAME}"
REJECTED_URL = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/rejected"


class FakeClock:
    """Wall and monotonic clock at once; ``sleep`` moves it (one thread sleeps at a time)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@dataclass(order=True)
class _Message:
    visible_at: float
    seq: int
    id: str = field(compare=False)
    body: str = field(compare=False)
    attributes: dict[str, Any] = field(compare=False, default_factory=dict)
    sent_at: float = field(compare=False, default=0.0)
    receive_count: int = field(compare=False, default=0)


class SimulatedSqs:
    def __init__(self, clock: FakeClock, max_receive_count: int = 10, visibility_seconds: int = 360) -> None:
        self.clock = clock
        self.max_receive_count = max_receive_count
        self.visibility_seconds = visibility_seconds
        self._seq = itertools.count()
        self._heap: list[_Message] = []
        self._in_flight: dict[str, _Message] = {}
        self.dead_lettered: list[str] = []  # bodies moved by the redrive
        self.rejected: list[str] = []  # bodies the handler wrote to the rejected queue

    def put(self, body: str, attributes: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        now = self.clock()
        message = _Message(now + delay, next(self._seq), uuid.uuid4().hex, body, attributes or {}, now)
        heapq.heappush(self._heap, message)

    def next_visible(self) -> float | None:
        return self._heap[0].visible_at if self._heap else None

    @property
    def waiting(self) -> int:
        return len(self._heap) + len(self._in_flight)

    def receive(self, limit: int) -> list[dict[str, Any]]:
        now = self.clock()
        taken: list[dict[str, Any]] = []
        while self._heap and self._heap[0].visible_at <= now and len(taken) < limit:
            message = heapq.heappop(self._heap)
            message.receive_count += 1
            if message.receive_count > self.max_receive_count:
                self.dead_lettered.append(message.body)
                continue
            message.visible_at = now + self.visibility_seconds
            self._in_flight[message.id] = message
            taken.append(self._record(message))
        return taken

    def settle(self, records: list[dict[str, Any]], failed: set[str]) -> None:
        """Delete what succeeded; a failed message comes back at its (held-back) visibility."""
        for record in records:
            message = self._in_flight.pop(record["messageId"])
            if message.id in failed:
                heapq.heappush(self._heap, message)

    def _record(self, message: _Message) -> dict[str, Any]:
        return {
            "messageId": message.id,
            "receiptHandle": message.id,
            "body": message.body,
            "attributes": {
                "ApproximateReceiveCount": str(message.receive_count),
                "SentTimestamp": str(int(message.sent_at * 1000)),
            },
            "messageAttributes": {
                name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
                for name, value in message.attributes.items()
            },
            "eventSourceARN": QUEUE_ARN,
        }

    # ---- the SQS client the handler uses (aws.client("sqs")) ---------------------------------
    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        for entry in Entries:
            if QueueUrl == REJECTED_URL:
                self.rejected.append(entry["MessageBody"])
            else:
                assert QueueUrl == QUEUE_URL, QueueUrl
                self.put(entry["MessageBody"], entry.get("MessageAttributes"), entry.get("DelaySeconds", 0))
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        for entry in Entries:
            self._in_flight[entry["ReceiptHandle"]].visible_at = self.clock() + int(entry["VisibilityTimeout"])
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


class _Context:
    def __init__(self, clock: FakeClock, timeout_seconds: float) -> None:
        self.clock, self.deadline = clock, clock() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - self.clock()) * 1000)


def run_event_source(
    queue: SimulatedSqs,
    until: float,
    arrivals: list[tuple[float, str]] = (),  # type: ignore[assignment]
    batch_size: int = 100,
    timeout_seconds: float = 60.0,
    after_invocation: Callable[[], None] = lambda: None,
) -> int:
    """Deliver ``arrivals`` (time, body) and invoke the handler until ``until``; return the invocations."""
    clock = queue.clock
    pending = sorted(arrivals)
    invocations = 0
    while clock() < until:
        while pending and pending[0][0] <= clock():
            queue.put(pending.pop(0)[1])
        records = queue.receive(batch_size)
        if not records:
            upcoming = [t for t in (queue.next_visible(), pending[0][0] if pending else None) if t is not None]
            clock.now = max(clock(), min([*upcoming, until]))
            continue
        invocations += 1
        response = ingest_batch.handle(
            {"Records": records}, _Context(clock, timeout_seconds), clock=clock, monotonic=clock
        )
        queue.settle(records, {item["itemIdentifier"] for item in response["batchItemFailures"]})
        after_invocation()
        clock.now += 0.5  # the event source's next poll
    return invocations
