"""Test hooks for ``POST /v1/ingest``: random faults, scripted answers, and Orb's rate limits."""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class FaultConfig:
    """Random faults injected into ``POST /v1/ingest`` only; a faulted request ingests nothing.

    Rates are probabilities per request, drawn from the sandbox's seeded RNG with one draw per
    request (their sum should stay <= 1). Attributes may be changed while the server runs.
    """

    error_500_rate: float = 0.0
    error_429_rate: float = 0.0
    latency_seconds: float = 0.0
    # A "timeout" holds the request for ``timeout_seconds`` (past any sane client timeout),
    # then closes the connection without answering.
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    drop_connection_rate: float = 0.0
    # Sent as ``retry-after`` on injected 429s when set (seconds, may be fractional).
    retry_after_seconds: float | None = None
    # ``/ingest?backfill_id=`` only, drawn after the events were stored (so unlike the faults
    # above, the request WAS ingested): the answer is lost, as a dropped connection ("drop") or a
    # 500 ("500"). What a client sees when Orb took the events but the reply never arrived.
    backfill_answer_lost_rate: float = 0.0
    backfill_answer_lost_as: str = "drop"
    # Answered 200 (nothing in the answer says so) yet each valid event is dropped with this
    # probability: Orb silently keeping only part of a request, what reconciliation exists to catch.
    lose_rate: float = 0.0

    def loses_event(self, rng: random.Random) -> bool:
        return self.lose_rate > 0 and rng.random() < self.lose_rate

    def loses_backfill_answer(self, rng: random.Random) -> bool:
        return self.backfill_answer_lost_rate > 0 and rng.random() < self.backfill_answer_lost_rate

    def draw(self, rng: random.Random) -> str | None:
        """The fault for one request (one draw), or None."""
        draw = rng.random()
        threshold = 0.0
        for name, rate in (
            ("drop_connection", self.drop_connection_rate),
            ("timeout", self.timeout_rate),
            ("error_500", self.error_500_rate),
            ("error_429", self.error_429_rate),
        ):
            threshold += max(rate, 0.0)
            if draw < threshold:
                return name
        return None


@dataclass
class ScriptedResponse:
    """A canned answer for one ingest request (the request is then not ingested).

    ``body=None`` means Orb's usual body for the status: ``{"validation_failed": []}`` for 200,
    an RFC 7807 problem otherwise. 5xx answers carry ``Transient-Error: true`` unless ``headers``
    says otherwise. ``drop_connection`` closes the socket (after ``delay_seconds``) without
    answering.
    """

    status: int = 200
    body: dict | None = None
    delay_seconds: float = 0.0
    drop_connection: bool = False
    headers: dict | None = None


@dataclass
class IngestHold:
    """Holds one client's ingest requests mid-flight, so a test can kill that client at a known
    point (``OrbSandbox.hold_ingest``).

    Requests carrying any of ``keys`` skip random faults and rate limits (so the point is reached
    whatever the draws). Once one of ``keys`` has been ingested, the next such request is held:
    ``reached`` is set and the request waits until ``release`` is set (or the sandbox stops),
    then the connection is dropped without an answer, as if the client had gone away. After
    ``release``, requests are served as usual (faults and limits included).
    """

    keys: frozenset[str]
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held_requests: int = 0

    def matches(self, events: list) -> bool:
        return any(isinstance(e, dict) and e.get("idempotency_key") in self.keys for e in events)


class _TokenBucket:
    """``capacity`` tokens refilled at ``rate`` per second. A request may take more tokens than
    are left once the bucket holds ``min(cost, capacity)`` (then it owes the rest), so a request
    larger than the whole budget is not refused forever."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.tokens = capacity
        self.updated: float | None = None

    def _refill(self, now: float) -> None:
        if self.updated is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` could be taken (0 if now)."""
        self._refill(now)
        missing = min(cost, self.capacity) - self.tokens
        return max(0.0, missing / self.rate)

    def take(self, cost: float) -> None:
        self.tokens -= cost


class RateLimiter:
    """Orb's ingestion limits (off when 0): requests per second and events per minute, each a
    token bucket holding one period's budget. Reads time from the sandbox's injectable clock, so
    tests decide when time passes. Not thread-safe: the sandbox calls it under its lock."""

    def __init__(self, requests_per_second: float = 0.0, events_per_minute: float = 0.0) -> None:
        self.requests_per_second = requests_per_second
        self.events_per_minute = events_per_minute
        self._requests = _TokenBucket(requests_per_second, requests_per_second) if requests_per_second > 0 else None
        self._events = _TokenBucket(events_per_minute, events_per_minute / 60) if events_per_minute > 0 else None

    @property
    def enabled(self) -> bool:
        return self._requests is not None or self._events is not None

    def admit(self, event_count: int, now: datetime) -> int | None:
        """Take one request and ``event_count`` events from the budget; or, if over it, take
        nothing and return the whole seconds to wait (``Retry-After``)."""
        moment = now.timestamp()
        wait = 0.0
        if self._requests is not None:
            wait = max(wait, self._requests.wait_for(1, moment))
        if self._events is not None:
            wait = max(wait, self._events.wait_for(event_count, moment))
        if wait > 0:
            return max(1, math.ceil(wait))
        if self._requests is not None:
            self._requests.take(1)
        if self._events is not None:
            self._events.take(event_count)
        return None
