"""Pacing Orb requests to a budget shared by every concurrent ingest invocation.

Orb limits ingestion per account (live defaults: 100 requests/s and 10,000 events/min; see
docs/facts.md and https://docs.withorb.com/reference/rate-limits). Up to ``MaximumConcurrency``
invocations send at once, each with many requests in flight, so the budget must be shared.

Mechanism: GCRA (the "virtual scheduling" form of a token bucket) on DynamoDB, one item per
limit holding its theoretical arrival time ``tat`` (ms). A request of cost ``c`` reserves the
slot ``[max(tat, now), max(tat, now) + c * interval)`` with a single conditional ``UpdateItem``:
``ADD tat :c`` if ``now <= tat <= latest start`` (a busy bucket), else ``SET tat = now + c`` if
``tat < now`` (an idle one). Both are atomic, so no slot is ever handed out twice and no
read-modify-write race exists, and a reservation costs one write in the common case.
Alternatives rejected: a budget derived from ``MaximumConcurrency`` (each invocation taking
1/N of the limit) wastes N-1 shares whenever fewer invocations run, which is most of the time;
optimistic read-then-put locking degrades quadratically when 100 threads contend at once.

No burst tolerance: slots are spaced exactly, so any 60-second window holds at most the
per-minute budget (plus nothing), whatever window Orb's limiter uses. A request that would have
to wait past its invocation's budget reserves nothing and reports how long the wait would be.
The two limits are separate items; a request reserves events first, then a request slot (a slot
reserved and then not used is a little budget wasted, never exceeded).

When the table cannot be used (DynamoDB down, throttled, permissions), ingest neither stops nor
sends unpaced: ``TableOrLocal`` falls back for the rest of the invocation to ``LocalPacer``, the
same GCRA in this container's memory at 1/``INGEST_MAX_CONCURRENCY`` of the budget, so that
all invocations together stay within Orb's limits (while some invocations still reach the table
and others do not, up to twice the budget may be used; Orb then answers 429, which defers).
Stopping instead would count the messages as failed deliveries and dead-letter good events
after ``maxReceiveCount`` (about 17 hours of table outage).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from orb_bridge.aws import clients as aws
from orb_bridge.core.observability import logger

EVENTS_ITEM = "orb-ingest-events"
REQUESTS_ITEM = "orb-ingest-requests"
# Conditional writes lost to a concurrent writer before giving up (each loss means progress
# elsewhere; the bound only guards against a table that keeps refusing).
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Slot:
    """A reservation: start the request ``wait_seconds`` from now (granted), or do not (refused)."""

    granted: bool
    wait_seconds: float


class Pacer(Protocol):
    def reserve(self, events: int, latest_start_seconds: float) -> Slot: ...

    def hold_off(self, seconds: float) -> None: ...


class NoPacing:
    """``ORB_REQUESTS_PER_SECOND=0`` and ``ORB_EVENTS_PER_MINUTE=0``: no table, no AWS call."""

    def reserve(self, events: int, latest_start_seconds: float) -> Slot:
        return Slot(True, 0.0)

    def hold_off(self, seconds: float) -> None:
        return None


class DynamoDbPacer:
    def __init__(
        self,
        table_name: str,
        requests_per_second: float,
        events_per_minute: float,
        client: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        # Milliseconds of budget one request / one event uses up (0: that limit is off).
        self.ms_per_request = 1000.0 / requests_per_second if requests_per_second > 0 else 0.0
        self.ms_per_event = 60_000.0 / events_per_minute if events_per_minute > 0 else 0.0
        self._client = client
        self.clock = clock

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws.client("dynamodb")

    def reserve(self, events: int, latest_start_seconds: float) -> Slot:
        """Reserve a start within ``latest_start_seconds`` from now for a request of ``events``."""
        now_ms = self.clock() * 1000
        latest_ms = now_ms + max(0.0, latest_start_seconds) * 1000
        wait_ms = 0.0
        for item, cost in ((EVENTS_ITEM, events * self.ms_per_event), (REQUESTS_ITEM, self.ms_per_request)):
            if cost <= 0:
                continue
            start_ms = self._reserve_one(item, cost, now_ms, latest_ms)
            if start_ms is None or start_ms > latest_ms:
                refused = self._tat(item) - now_ms
                return Slot(False, max(refused, cost, wait_ms) / 1000)
            wait_ms = max(wait_ms, start_ms - now_ms)
        return Slot(True, max(0.0, wait_ms) / 1000)

    def hold_off(self, seconds: float) -> None:
        """Orb answered 429: no invocation starts a request before ``seconds`` from now."""
        until_ms = int((self.clock() + seconds) * 1000)
        for item, cost in ((EVENTS_ITEM, self.ms_per_event), (REQUESTS_ITEM, self.ms_per_request)):
            if cost <= 0:
                continue
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": item}},
                    UpdateExpression="SET tat = :until",
                    ConditionExpression="attribute_not_exists(tat) OR tat < :until",
                    ExpressionAttributeValues={":until": {"N": str(until_ms)}},
                )
            except Exception as exc:
                if not _condition_failed(exc):
                    raise  # already held off at least that long otherwise

    def _reserve_one(self, item: str, cost_ms: float, now_ms: float, latest_ms: float) -> float | None:
        """The start (ms) of the slot reserved on ``item``, or None when it would start too late."""
        cost = round(cost_ms) or 1
        now = int(now_ms)
        client = self.client
        for _ in range(MAX_ATTEMPTS):
            try:  # a busy bucket: queue behind the last reservation
                answer = client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": item}},
                    UpdateExpression="ADD tat :cost",
                    ConditionExpression="tat >= :now AND tat <= :latest",
                    ExpressionAttributeValues={
                        ":cost": {"N": str(cost)},
                        ":now": {"N": str(now)},
                        ":latest": {"N": str(int(latest_ms))},
                    },
                    ReturnValues="UPDATED_NEW",
                )
                return float(answer["Attributes"]["tat"]["N"]) - cost
            except Exception as exc:
                if not _condition_failed(exc):
                    raise
            try:  # an idle bucket: start now
                client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": item}},
                    UpdateExpression="SET tat = :next",
                    ConditionExpression="attribute_not_exists(tat) OR tat < :now",
                    ExpressionAttributeValues={":next": {"N": str(now + cost)}, ":now": {"N": str(now)}},
                )
                return float(now)
            except Exception as exc:
                if not _condition_failed(exc):
                    raise
            if self._tat(item) > latest_ms:  # neither: the queue of reservations is too long
                return None
        return None

    def _tat(self, item: str) -> float:
        answer = self.client.get_item(TableName=self.table_name, Key={"id": {"S": item}}, ConsistentRead=True)
        return float(answer.get("Item", {}).get("tat", {}).get("N", 0))


def _condition_failed(exc: Exception) -> bool:
    # By code, not by client.exceptions: those classes belong to one client instance.
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class LocalPacer:
    """The table's GCRA held in this process (thread-safe): the fallback when the table fails.

    Both limits are checked and reserved together under one lock, from the later of their two
    earliest starts; as with the table, a request that would start after ``latest_start_seconds``
    reserves nothing and reports the wait.
    """

    def __init__(
        self, requests_per_second: float, events_per_minute: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.ms_per_request = 1000.0 / requests_per_second if requests_per_second > 0 else 0.0
        self.ms_per_event = 60_000.0 / events_per_minute if events_per_minute > 0 else 0.0
        self.clock = clock
        self._tat = {EVENTS_ITEM: 0.0, REQUESTS_ITEM: 0.0}
        self._lock = threading.Lock()

    def reserve(self, events: int, latest_start_seconds: float) -> Slot:
        costs = {EVENTS_ITEM: events * self.ms_per_event, REQUESTS_ITEM: self.ms_per_request}
        costs = {item: cost for item, cost in costs.items() if cost > 0}
        with self._lock:
            now_ms = self.clock() * 1000
            start_ms = max([now_ms, *(self._tat[item] for item in costs)])
            if start_ms - now_ms > max(0.0, latest_start_seconds) * 1000:
                return Slot(False, max([start_ms - now_ms, *costs.values()]) / 1000)
            for item, cost in costs.items():
                self._tat[item] = start_ms + cost
        return Slot(True, (start_ms - now_ms) / 1000)

    def hold_off(self, seconds: float) -> None:
        with self._lock:
            until_ms = (self.clock() + seconds) * 1000
            for item in self._tat:
                self._tat[item] = max(self._tat[item], until_ms)


# One local budget per container, kept across invocations (and across settings reloads).
_local_pacers: dict[tuple[float, float], LocalPacer] = {}
_local_lock = threading.Lock()


def container_share(requests_per_second: float, events_per_minute: float, concurrency: int) -> Pacer:
    """This container's 1/``concurrency`` share of the budget, as a process-wide ``LocalPacer``."""
    if requests_per_second <= 0 and events_per_minute <= 0:
        return NoPacing()
    key = (requests_per_second / concurrency, events_per_minute / concurrency)
    with _local_lock:
        pacer = _local_pacers.get(key)
        if pacer is None:
            pacer = _local_pacers[key] = LocalPacer(*key)
        return pacer


class TableOrLocal:
    """One invocation's pacer: the shared table until it fails, then the container's share.

    After a failure the rest of the invocation uses the local budget without asking the table
    again (a table timing out would otherwise cost every request its timeout); the next
    invocation tries the table first. ``table_errors`` counts the failures (the
    ``PacingTableErrors`` metric).
    """

    def __init__(self, table: Pacer, local: Pacer) -> None:
        self.table = table
        self.local = local
        self.table_errors = 0
        self._failed = threading.Event()
        self._lock = threading.Lock()

    def reserve(self, events: int, latest_start_seconds: float) -> Slot:
        if not self._failed.is_set():
            try:
                return self.table.reserve(events, latest_start_seconds)
            except Exception:
                self._table_failed("reserve")
        return self.local.reserve(events, latest_start_seconds)

    def hold_off(self, seconds: float) -> None:
        self.local.hold_off(seconds)  # also, should the table fail later in this container
        if not self._failed.is_set():
            try:
                self.table.hold_off(seconds)
            except Exception:
                self._table_failed("hold_off")

    def _table_failed(self, operation: str) -> None:
        with self._lock:
            self.table_errors += 1
        if not self._failed.is_set():
            self._failed.set()
            logger.exception(
                "the pacing table could not be used: this invocation paces by its container's share of the budget",
                extra={"operation": operation},
            )


def pacer_from_settings(requests_per_second: float, events_per_minute: float, table_name: str) -> Pacer:
    if requests_per_second <= 0 and events_per_minute <= 0:
        return NoPacing()
    return DynamoDbPacer(table_name, requests_per_second, events_per_minute)
