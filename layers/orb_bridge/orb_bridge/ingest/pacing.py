"""Pacing Orb requests to a budget shared by every concurrent ingest invocation.

Orb limits ingestion per account (live defaults: 100 requests/s and 10,000 events/min; see
docs/facts.md and https://docs.withorb.com/reference/rate-limits). Up to ``MaximumConcurrency``
invocations send at once, each with many requests in flight, so the budget must be shared.

Mechanism: GCRA (the "virtual scheduling" form of a token bucket) on DynamoDB, one item
(``orb-ingest-budget``) holding its theoretical arrival time ``tat`` (ms). A request of ``n``
events costs ``max(n * 60000 / events_per_minute, 1000 / requests_per_second)`` ms (a limit set
to 0 contributes 0; rounded up to whole ms) and reserves ``[max(tat, now), max(tat, now) + cost)``
with one conditional ``UpdateItem``: ``ADD tat :cost`` if ``now <= tat <= latest start`` (busy),
else ``SET tat = now + cost`` if ``tat < now`` (idle). Both are atomic: no slot is handed out
twice, no read-modify-write race. The last ``tat`` seen picks which to try first, so a request
costs one write in the common case. Consecutive starts are at least the earlier request's cost
apart: at least 1/R apart (never more than R requests in a second), and the events of all but
the last request started in any 60 s window stay under the per-minute budget (no spacing bounds
the last one's; no burst is saved up when idle). With uniform request sizes this is exactly what
one bucket per limit allowed (each cost was already the larger of the two), with mixed sizes
slightly conservative. A request that would wait past its invocation's budget reserves nothing
and reports how long the wait would be.
Alternatives rejected: a budget derived from ``MaximumConcurrency`` (each invocation taking
1/N of the limit) wastes N-1 shares whenever fewer invocations run, which is most of the time;
optimistic read-then-put locking degrades quadratically when 100 threads contend at once; one
item per limit (earlier versions: ``orb-ingest-events``, ``orb-ingest-requests``) costs two
writes and two round trips per request for the same guarantee.

Migration: the old two items are no longer read. During a deploy, old and new containers pace on
different items, so for those minutes up to twice the budget can be used; Orb then answers 429,
which defers the events (never loses them).

When the table cannot be used (DynamoDB down, throttled, permissions), ingest neither stops nor
sends unpaced: ``TableOrLocal`` (``orb_bridge.ingest.table_or_local``) falls back for the rest of the invocation to ``LocalPacer``, the
same GCRA in this container's memory at 1/``INGEST_MAX_CONCURRENCY`` of the budget, so that
all invocations together stay within Orb's limits (while some invocations still reach the table
and others do not, up to twice the budget may be used; Orb then answers 429, which defers).
Stopping instead would count the messages as failed deliveries and dead-letter good events
after ``maxReceiveCount`` (about 17 hours of table outage).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from orb_bridge.aws import clients as aws

BUDGET_ITEM = "orb-ingest-budget"
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


class Budget:
    """The milliseconds of the shared budget one request uses up (the table's and the local pacer's)."""

    def __init__(self, requests_per_second: float, events_per_minute: float) -> None:
        self.requests_per_second = requests_per_second
        self.events_per_minute = events_per_minute
        # 0: that limit is off.
        self.ms_per_request = 1000.0 / requests_per_second if requests_per_second > 0 else 0.0
        self.ms_per_event = 60_000.0 / events_per_minute if events_per_minute > 0 else 0.0

    def cost_ms(self, events: int) -> int:
        """Whole ms, rounded up (rounding down would let a window hold a little more than the limit)."""
        by_events = events * 60_000.0 / self.events_per_minute if self.events_per_minute > 0 else 0.0
        return max(1, math.ceil(max(by_events, self.ms_per_request)))


class DynamoDbPacer(Budget):
    def __init__(
        self,
        table_name: str,
        requests_per_second: float,
        events_per_minute: float,
        client: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(requests_per_second, events_per_minute)
        self.table_name = table_name
        self._client = client
        self.clock = clock
        # The last tat this pacer saw: which write to try first (tat only grows, so a hint at or
        # after now means busy; an idle bucket tried first with ADD would cost a second write).
        self._seen_tat = 0.0

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws.client("dynamodb")

    def reserve(self, events: int, latest_start_seconds: float) -> Slot:
        """Reserve a start within ``latest_start_seconds`` from now for a request of ``events``."""
        clock_ms = self.clock() * 1000
        now = math.ceil(clock_ms)  # never start before the clock (the table holds whole ms)
        latest = math.floor(clock_ms + max(0.0, latest_start_seconds) * 1000)
        cost = self.cost_ms(events)
        start = self._reserve(cost, now, latest)
        if start is None:
            return Slot(False, max(self._tat() - clock_ms, float(cost)) / 1000)
        return Slot(True, max(0.0, start - clock_ms) / 1000)

    def hold_off(self, seconds: float) -> None:
        """Orb answered 429: no invocation starts a request before ``seconds`` from now."""
        until = math.ceil((self.clock() + seconds) * 1000)
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"id": {"S": BUDGET_ITEM}},
                UpdateExpression="SET tat = :until",
                ConditionExpression="attribute_not_exists(tat) OR tat < :until",
                ExpressionAttributeValues={":until": {"N": str(until)}},
            )
        except Exception as exc:
            if not _condition_failed(exc):
                raise  # already held off at least that long otherwise
        self._seen_tat = max(self._seen_tat, until)

    def _reserve(self, cost: int, now: int, latest: int) -> int | None:
        """The start (ms) of the slot reserved, or None when it would start after ``latest``."""
        for _ in range(MAX_ATTEMPTS):
            known_busy = self._seen_tat >= now
            if not known_busy and self._start_idle(cost, now):
                return now
            start = self._queue_behind(cost, now, latest)
            if start is not None:
                return start
            if self._tat() > latest:  # neither: the queue of reservations is too long
                return None
        return None

    def _queue_behind(self, cost: int, now: int, latest: int) -> int | None:
        """A busy bucket: ``ADD`` the cost, starting where the last reservation ends."""
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"id": {"S": BUDGET_ITEM}},
                UpdateExpression="ADD tat :cost",
                ConditionExpression="tat >= :now AND tat <= :latest",
                ExpressionAttributeValues={
                    ":cost": {"N": str(cost)},
                    ":now": {"N": str(now)},
                    ":latest": {"N": str(latest)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except Exception as exc:
            if not _condition_failed(exc):
                raise
            return None
        tat = int(answer["Attributes"]["tat"]["N"])
        self._seen_tat = max(self._seen_tat, tat)
        return tat - cost

    def _start_idle(self, cost: int, now: int) -> bool:
        """An idle bucket: ``SET`` it to end one cost from now."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"id": {"S": BUDGET_ITEM}},
                UpdateExpression="SET tat = :next",
                ConditionExpression="attribute_not_exists(tat) OR tat < :now",
                ExpressionAttributeValues={":next": {"N": str(now + cost)}, ":now": {"N": str(now)}},
            )
        except Exception as exc:
            if not _condition_failed(exc):
                raise
            return False
        self._seen_tat = max(self._seen_tat, now + cost)
        return True

    def _tat(self) -> float:
        answer = self.client.get_item(TableName=self.table_name, Key={"id": {"S": BUDGET_ITEM}}, ConsistentRead=True)
        tat = float(answer.get("Item", {}).get("tat", {}).get("N", 0))
        self._seen_tat = tat  # the truth, should the item ever have been reset
        return tat


def _condition_failed(exc: Exception) -> bool:
    # By code, not by client.exceptions: those classes belong to one client instance.
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class LocalPacer(Budget):
    """The table's GCRA held in this process (thread-safe): the fallback when the table fails.

    The same cost and whole milliseconds as the table; as there, a request that would start after
    ``latest_start_seconds`` reserves nothing and reports the wait.
    """

    def __init__(
        self, requests_per_second: float, events_per_minute: float, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(requests_per_second, events_per_minute)
        self.clock = clock
        self._tat = 0
        self._lock = threading.Lock()

    def reserve(self, events: int, latest_start_seconds: float) -> Slot:
        cost = self.cost_ms(events)
        with self._lock:
            clock_ms = self.clock() * 1000
            start = max(math.ceil(clock_ms), self._tat)
            if start > math.floor(clock_ms + max(0.0, latest_start_seconds) * 1000):
                return Slot(False, max(self._tat - clock_ms, float(cost)) / 1000)
            self._tat = start + cost
        return Slot(True, max(0.0, start - clock_ms) / 1000)

    def hold_off(self, seconds: float) -> None:
        with self._lock:
            self._tat = max(self._tat, math.ceil((self.clock() + seconds) * 1000))


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


def pacer_from_settings(requests_per_second: float, events_per_minute: float, table_name: str) -> Pacer:
    if requests_per_second <= 0 and events_per_minute <= 0:
        return NoPacing()
    return DynamoDbPacer(table_name, requests_per_second, events_per_minute)
