"""Draining a backlog against Orb's rate limit: ``make bench`` section 7.

A backlog of SQS messages (one Orb event each) is drained by ``MaximumConcurrency`` concurrent
OrbIngest invocations (the handler, in threads of this process, batches of ``IngestBatchSize``)
into the Orb sandbox limited to ``events_per_minute`` (and 100 requests/s, Orb's live default),
with ingest pacing at the same budget through a pacing table on moto's DynamoDB server (the
GCRA of ``orb_bridge.ingest.pacing``). It reports the minutes to drain against the theoretical
``backlog / events_per_minute``, the sandbox's 429s, the events dead-lettered (must be 0), and
the longest idle gap in Orb's traffic: the most time between two accepted requests beyond what
the first one's events use of the budget (``events * 60 / events_per_minute``), i.e. how long
Orb's budget sat unused while events waited in the queue.

The queue is this module's: an in-memory SQS with delays, visibility and ``maxReceiveCount``
(the template's 10), answering the handler's ``SendMessageBatch`` (deferred copies) and
``ChangeMessageVisibilityBatch`` (hold-backs) in-process: moto's SQS slows down with depth.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

from bench.common import FakeLambdaContext, isolate_aws_environment, load_handler
from bench.ingest import API_KEY, REJECTED_QUEUE_URL, orb_events
from bench.orb_traffic import idle_gaps, record_orb_requests, stop_recording
from bench.sqs_stub import _RawBody

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:bench-drain-ingest"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench-drain-ingest"
MAX_RECEIVE_COUNT = 10  # template.yaml MaxReceiveCount default
VISIBILITY_SECONDS = 360  # template.yaml IngestQueue VisibilityTimeout
PACING_TABLE = "bench-drain-pacing"


@dataclass(order=True)
class _Message:
    visible_at: float
    seq: int
    id: str = field(compare=False)
    body: str = field(compare=False)
    attributes: dict[str, Any] = field(compare=False, default_factory=dict)
    receive_count: int = field(compare=False, default=0)


class BacklogQueue:
    """Just enough SQS for the event source mapping and the handler's calls (thread-safe)."""

    def __init__(self, bodies: list[str]) -> None:
        self.lock = threading.Lock()
        self.seq = itertools.count()
        self.heap: list[_Message] = []
        self.in_flight: dict[str, _Message] = {}
        self.dead_lettered = 0
        self.deferred_copies = 0
        self.rejected = 0
        now = time.monotonic()
        for body in bodies:
            self._put(body, {}, now)

    def _put(self, body: str, attributes: dict[str, Any], visible_at: float) -> None:
        heapq.heappush(self.heap, _Message(visible_at, next(self.seq), uuid.uuid4().hex, body, attributes))

    def receive(self, limit: int) -> list[_Message]:
        now = time.monotonic()
        taken: list[_Message] = []
        with self.lock:
            while self.heap and self.heap[0].visible_at <= now and len(taken) < limit:
                message = heapq.heappop(self.heap)
                message.receive_count += 1
                if message.receive_count > MAX_RECEIVE_COUNT:  # the redrive: dead-lettered
                    self.dead_lettered += 1
                    continue
                message.visible_at = now + VISIBILITY_SECONDS
                self.in_flight[message.id] = message
                taken.append(message)
        return taken

    def settle(self, messages: list[_Message], failed: set[str]) -> None:
        with self.lock:
            for message in messages:
                self.in_flight.pop(message.id, None)
                if message.id in failed:
                    heapq.heappush(self.heap, message)  # visible again at its (held-back) visible_at

    @property
    def remaining(self) -> int:
        with self.lock:
            return len(self.heap) + len(self.in_flight)

    def record(self, message: _Message) -> dict[str, Any]:
        return {
            "messageId": message.id,
            "receiptHandle": message.id,
            "body": message.body,
            "attributes": {
                "ApproximateReceiveCount": str(message.receive_count),
                "SentTimestamp": str(int(time.time() * 1000)),
            },
            "messageAttributes": {
                name: {"stringValue": value["StringValue"], "dataType": value["DataType"]}
                for name, value in message.attributes.items()
            },
            "eventSource": "aws:sqs",
            "eventSourceARN": QUEUE_ARN,
            "awsRegion": "us-east-1",
        }

    # ---- the handler's SQS calls, answered in-process (botocore before-send hooks) -------------
    def hook(self, client: Any) -> None:
        client.meta.events.register("before-send.sqs.SendMessageBatch", self._send_batch)
        client.meta.events.register("before-send.sqs.ChangeMessageVisibilityBatch", self._change_visibility)
        client.meta.events.register("before-send.sqs.GetQueueUrl", self._queue_url)

    def _queue_url(self, request: Any, **_: Any) -> AWSResponse:
        return _respond(request, {"QueueUrl": QUEUE_URL})

    def _send_batch(self, request: Any, **_: Any) -> AWSResponse:
        payload = json.loads(request.body)
        now = time.monotonic()
        with self.lock:
            for entry in payload["Entries"]:
                if payload["QueueUrl"] == REJECTED_QUEUE_URL:
                    self.rejected += 1
                    continue
                self.deferred_copies += 1
                self._put(entry["MessageBody"], entry.get("MessageAttributes", {}), now + entry.get("DelaySeconds", 0))
        return _answer(
            request,
            [
                {
                    "Id": e["Id"],
                    "MessageId": uuid.uuid4().hex,
                    "MD5OfMessageBody": hashlib.md5(e["MessageBody"].encode()).hexdigest(),
                }
                for e in payload["Entries"]
            ],
        )

    def _change_visibility(self, request: Any, **_: Any) -> AWSResponse:
        payload = json.loads(request.body)
        now = time.monotonic()
        with self.lock:
            for entry in payload["Entries"]:
                message = self.in_flight.get(entry["ReceiptHandle"])
                if message is not None:
                    message.visible_at = now + int(entry["VisibilityTimeout"])
        return _answer(request, [{"Id": e["Id"]} for e in payload["Entries"]])


def _answer(request: Any, successful: list[dict[str, Any]]) -> AWSResponse:
    return _respond(request, {"Successful": successful, "Failed": []})


def _respond(request: Any, payload: dict[str, Any]) -> AWSResponse:
    body = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(body))}
    return AWSResponse(request.url, 200, headers, _RawBody(body))


def run(
    backlog: int = 100_000,
    events_per_minute: float = 100_000,
    requests_per_second: float = 100,
    concurrency: int = 5,
    batch_size: int = 2_000,
    latency: float = 0.05,
) -> dict[str, Any]:
    """Drain ``backlog`` events; see the module docstring."""
    from orb_bridge_dev.devstack.moto_server import MotoServerProcess
    from orb_bridge_dev.orb_sandbox import FaultConfig, OrbSandbox

    isolate_aws_environment()
    moto = MotoServerProcess()
    moto.start()
    sandbox = OrbSandbox(
        api_key=API_KEY,
        faults=FaultConfig(latency_seconds=latency),
        rate_limit_requests_per_second=requests_per_second,
        rate_limit_events_per_minute=events_per_minute,
    ).start()
    saved = dict(os.environ)
    try:
        host, port = moto.get_host_and_port()
        os.environ.update(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": f"http://{host}:{port}",
                "ORB_API_BASE_URL": sandbox.base_url,
                "ORB_API_KEY": API_KEY,
                "REJECTED_QUEUE_URL": REJECTED_QUEUE_URL,
                "ORB_EVENTS_PER_MINUTE": str(events_per_minute),
                "ORB_REQUESTS_PER_SECOND": str(requests_per_second),
                "ORB_PACING_TABLE_NAME": PACING_TABLE,
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_SERVICE_NAME": "orb_ingest",
                "POWERTOOLS_LOG_LEVEL": "ERROR",
            }
        )
        from orb_bridge.aws import clients as aws
        from orb_bridge.ingest import container as ingest_container

        aws.reset_clients()  # an earlier section's clients point at its own, stopped, moto
        aws.client("dynamodb").create_table(
            TableName=PACING_TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        sends = record_orb_requests()
        handler = load_handler("orb_ingest", "bench_drain_orb_ingest")
        ingest_container.forget_container_service()
        events = orb_events(backlog, f"drain-{uuid.uuid4().hex[:8]}")
        queue = BacklogQueue([json.dumps(e, separators=(",", ":")) for e in events])
        queue.hook(aws.client("sqs"))
        invocations = itertools.count()
        stop = threading.Event()
        errors: list[BaseException] = []

        def event_source() -> None:  # one of MaximumConcurrency pollers
            while not stop.is_set():
                messages = queue.receive(batch_size)
                if not messages:
                    stop.wait(0.1)
                    continue
                next(invocations)
                try:
                    response = handler.lambda_handler(
                        {"Records": [queue.record(m) for m in messages]},
                        FakeLambdaContext(timeout_seconds=60, function_name="orb_ingest"),
                    )
                    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
                except BaseException as exc:  # noqa: BLE001 (reported after the run)
                    errors.append(exc)
                    failed = {m.id for m in messages}
                queue.settle(messages, failed)

        started = time.monotonic()
        threads = [threading.Thread(target=event_source, name=f"drain-{i}") for i in range(concurrency)]
        for thread in threads:
            thread.start()
        while queue.remaining and not errors and time.monotonic() - started < 20 * 60 * backlog / events_per_minute:
            time.sleep(0.2)
        seconds = time.monotonic() - started
        stop.set()
        for thread in threads:
            thread.join()
        stats = sandbox.stats()
    finally:
        stop_recording()
        sandbox.stop()
        moto.stop()
        os.environ.clear()
        os.environ.update(saved)
    if errors:
        raise RuntimeError(f"an ingest invocation raised: {errors[0]!r}")
    return {
        "backlog": backlog,
        "events_per_minute": events_per_minute,
        "requests_per_second": requests_per_second,
        "concurrency": concurrency,
        "batch_size": batch_size,
        "latency_ms": latency * 1000,
        "minutes": seconds / 60,
        "theoretical_minutes": backlog / events_per_minute,
        "ingested": stats["ingested"],
        "billed_twice": stats["billed_twice"],
        "orb_requests": stats["ingest_requests"],
        "orb_429s": stats["outcomes"].get("rejected_429", 0),
        "dead_lettered": queue.dead_lettered,
        "rejected": queue.rejected,
        "left": queue.remaining,
        "deferred_copies": queue.deferred_copies,
        "invocations": next(invocations),
        **idle_gaps(sends, events_per_minute),
    }


if __name__ == "__main__":
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    print(json.dumps(run(backlog=size, events_per_minute=budget), indent=2))
