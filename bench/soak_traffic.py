"""The Segment side of the soak: the events and requests it plans, and the sender posting them like Segment."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.soak_config import AUTH_TOKEN, INVALID_KINDS, SoakConfig, SoakReport


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now_iso() -> str:
    return _iso(datetime.now(UTC))


def make_event(run_id: str, seq: int, invalid_kind: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": "api_call",
        "userId": f"customer_{seq % 500}",
        "messageId": f"{run_id}-{seq:07d}",
        "timestamp": _now_iso(),
        "properties": {"amount": seq % 100, "seq": seq, "region": "eu-west-1", "ignored": "not mapped"},
        "context": {"library": {"name": "soak"}},
    }
    if invalid_kind == "missing userId":
        del event["userId"]
    elif invalid_kind == "nested property":
        event["properties"]["amount"] = {"value": 3}
    elif invalid_kind == "unparseable timestamp":
        event["timestamp"] = "not a time"
    elif invalid_kind == "empty event name":
        event["event"] = ""
    elif invalid_kind == "stale timestamp":
        event["timestamp"] = _iso(datetime.now(UTC) - timedelta(hours=13))
    elif invalid_kind == "future timestamp":
        event["timestamp"] = _iso(datetime.now(UTC) + timedelta(hours=2))
    return event


@dataclass
class Plan:
    requests: list[tuple[str, bytes, int]]  # (shape, body, events in it)
    valid: dict[str, dict[str, Any]]  # messageId -> Segment event
    invalid: dict[str, str]  # messageId -> kind


def plan_requests(config: SoakConfig, run_id: str, rng: random.Random) -> Plan:
    valid: dict[str, dict[str, Any]] = {}
    invalid: dict[str, str] = {}
    events = []
    for seq in range(config.events):
        kind = INVALID_KINDS[seq % len(INVALID_KINDS)] if rng.random() < config.invalid_rate else None
        event = make_event(run_id, seq, kind)
        events.append(event)
        if kind:
            invalid[event["messageId"]] = kind
        else:
            valid[event["messageId"]] = event
    requests: list[tuple[str, bytes, int]] = []
    index = 0
    while index < len(events):
        if rng.random() < config.single_rate / (config.single_rate + (1 - config.single_rate) / (config.max_batch / 2)):
            chunk, shape = events[index : index + 1], "single"
            body: Any = chunk[0]
        else:
            size = rng.randint(2, config.max_batch)
            chunk = events[index : index + size]
            shape = "batch" if rng.random() < 0.2 else "array"
            body = {"batch": chunk} if shape == "batch" else chunk
        requests.append((shape, json.dumps(body, separators=(",", ":")).encode(), len(chunk)))
        index += len(chunk)
    return Plan(requests, valid, invalid)


class Sender:
    """Posts the planned requests like Segment: retries 5xx and connection errors, re-sends some."""

    def __init__(self, stack: Any, config: SoakConfig, rng: random.Random, report: SoakReport) -> None:
        import httpx

        self.stack = stack
        self.config = config
        self.rng = rng
        self.report = report
        self.client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=config.senders + 2))
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.sqs = stack.local_aws.client("sqs")

    def post(self, body: bytes) -> int:
        import httpx

        headers = {"content-type": "application/json", "authorization": f"Bearer {AUTH_TOKEN}"}
        for attempt in range(8):
            try:
                status = self.client.post(self.stack.segment_url, content=body, headers=headers).status_code
            except httpx.HTTPError:
                status = 0
            with self.lock:
                self.statuses[str(status)] += 1
            if status and status < 500 and status != 429:
                return status
            with self.lock:
                self.report.intake_retries += 1
            time.sleep(min(0.05 * 2**attempt, 2))
        raise RuntimeError("intake kept failing: Segment would give up after 4 hours; the soak gives up now")

    def wait_for_room(self) -> None:
        """Backpressure: moto slows down with queue depth, so keep the ingest queue shallow."""
        url = self.stack.resources.ingest_queue.url
        while True:
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]
            if int(attributes["ApproximateNumberOfMessages"]) < self.config.max_queue_depth:
                return
            # Each look costs moto a scan of the whole queue: polling fast starves ingest's own calls.
            time.sleep(0.5)

    def send_all(self, plan: Plan, on_progress: Any = None) -> None:
        requests = list(plan.requests)
        resends = [r for r in requests if self.rng.random() < self.config.resend_rate]
        # Segment retries after a while; interleave the re-sends with the later traffic.
        schedule: list[tuple[str, bytes, int, bool]] = [(*r, False) for r in requests]
        for resend in resends:
            position = self.rng.randint(requests.index(resend) + 1, len(schedule))
            schedule.insert(position, (*resend, True))
        self.report.resent_requests = len(resends)
        self.report.resent_events = sum(r[2] for r in resends)
        self.report.requests = len(schedule)
        self.report.requests_by_shape = dict(Counter(r[0] for r in requests))

        cursor = iter(enumerate(schedule))
        cursor_lock = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            sent_since_check = 0
            while True:
                with cursor_lock:
                    item = next(cursor, None)
                if item is None or errors:
                    return
                position, (_, body, count, _) = item
                if sent_since_check >= 200:
                    self.wait_for_room()
                    sent_since_check = 0
                try:
                    self.post(body)
                except BaseException as exc:  # noqa: BLE001 (reported after the join)
                    errors.append(exc)
                    return
                sent_since_check += count
                if on_progress is not None:
                    on_progress(position, count)

        threads = [threading.Thread(target=worker, name=f"soak-sender-{i}") for i in range(self.config.senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        self.client.close()
