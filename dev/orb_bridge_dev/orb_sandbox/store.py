"""What the sandbox remembers: ingested events and backfills (callers hold the sandbox's lock).

An event is *billed* (counted by search and volume) when it was ingested outside a backfill, or
through a backfill that is now reflected (or being reverted from reflected), and no reflected
``replace_existing_events`` backfill has replaced it. Events of a pending backfill are invisible
until it closes (Orb: "changes from a backfill are not reflected until the backfill is closed");
reverting takes them out again.

Orb reflects a closed backfill asynchronously: the sandbox keeps a closed backfill ``pending``
(``close_time`` now in the past) for ``reflect_delay``, its events still hidden, then makes it
``reflected``; a revert of a closed backfill likewise stays ``pending_revert`` (its events still
billed if they were) for ``reflect_delay``. A pending backfill takes a key as many times as it is
sent (Orb documents no deduplication within a backfill; the costly reading) unless
``dedupe_within_backfill``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orb_bridge_dev.orb_sandbox.problems import canonical, format_utc

MAX_BACKFILL_WINDOW = timedelta(days=31)
DEFAULT_CLOSE_AFTER = timedelta(days=1)  # NewBackfill.close_time: "1 day after the creation"


@dataclass(slots=True)  # slots: a 500-event request builds 500 of them (and the reconciler's bench, millions)
class StoredEvent:
    key: str
    event_name: str
    customer_id: str | None
    external_customer_id: str | None
    properties: dict[str, Any]
    timestamp: datetime
    ingested_at: datetime
    backfill_id: str | None = None
    replaced_by: str | None = None  # the reflected backfill that replaced it
    deprecated: bool = False  # PUT /events/{id}/deprecate: kept, shown by search, not billed
    amended: bool = False  # PUT /events/{id}: billed with the new body, gone from search
    unattributed: bool = False  # its external customer id matched no customer in Orb

    @classmethod
    def from_event(cls, event: dict[str, Any], moment: datetime, now: datetime, backfill_id: str | None) -> StoredEvent:
        return cls(
            event["idempotency_key"],
            event["event_name"],
            event.get("customer_id"),
            event.get("external_customer_id"),
            dict(event["properties"]),  # valid: flat, primitive values only (validation.event_errors)
            moment,
            now,
            backfill_id,
        )

    def content(self) -> tuple:
        return (
            self.event_name,
            self.customer_id,
            self.external_customer_id,
            canonical(self.properties),
            self.timestamp,
        )

    @property
    def is_deprecated(self) -> bool:
        return self.deprecated or self.replaced_by is not None

    @property
    def matched_customer_id(self) -> str | None:
        """Orb's customer for the event: none when its external id matched no customer."""
        if self.customer_id is not None or self.unattributed or self.external_customer_id is None:
            return self.customer_id
        return synthetic_customer_id(self.external_customer_id)

    def to_orb(self) -> dict[str, Any]:
        """The spec's ``Event`` schema (search results)."""
        return {
            "id": self.key,
            "customer_id": self.matched_customer_id,
            "external_customer_id": self.external_customer_id,
            "event_name": self.event_name,
            "properties": dict(self.properties),
            "timestamp": format_utc(self.timestamp),
            "deprecated": self.is_deprecated,
        }

    def as_dict(self) -> dict[str, Any]:
        """The test helpers' view (``OrbSandbox.ingested_events``)."""
        body = self.to_orb()
        body.update(idempotency_key=self.key, ingested_at=format_utc(self.ingested_at), backfill_id=self.backfill_id)
        body["customer_id"] = self.customer_id  # as sent, not Orb's match
        return body


def synthetic_customer_id(external_customer_id: str) -> str:
    """The sandbox has no customer records: an external id stands for a customer with this id."""
    return "cus_ext_" + hashlib.sha256(external_customer_id.encode("utf-8")).hexdigest()[:16]


@dataclass
class Backfill:
    id: str
    created_at: datetime
    timeframe_start: datetime
    timeframe_end: datetime
    close_time: datetime
    replace_existing_events: bool
    customer_id: str | None = None
    external_customer_id: str | None = None
    deprecation_filter: str | None = None  # kept and echoed; the sandbox does not evaluate it
    status: str = "pending"
    reverted_at: datetime | None = None
    events: list[StoredEvent] = field(default_factory=list)
    closed_at: datetime | None = None  # closed (by a call or at close_time), reflected or not
    reflected_at: datetime | None = None
    revert_requested_at: datetime | None = None

    @property
    def accepts_events(self) -> bool:
        return self.status == "pending" and self.closed_at is None

    @property
    def billed(self) -> bool:
        """Its events count: reflected, or reverting from reflected until the revert completes."""
        return self.reflected_at is not None and self.status in ("reflected", "pending_revert")

    def covers_customer(self, customer_id: str | None, external_customer_id: str | None) -> bool:
        if self.customer_id is None and self.external_customer_id is None:
            return True
        if self.external_customer_id is not None:
            return external_customer_id == self.external_customer_id or customer_id == self.scoped_customer_id
        return customer_id == self.customer_id

    def covers(self, event: StoredEvent) -> bool:
        return self.timeframe_start <= event.timestamp < self.timeframe_end and self.covers_customer(
            event.customer_id, event.external_customer_id
        )

    @property
    def scoped_customer_id(self) -> str | None:
        if self.external_customer_id is not None:
            return synthetic_customer_id(self.external_customer_id)
        return self.customer_id

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.timeframe_start < end and start < self.timeframe_end

    def to_orb(self) -> dict[str, Any]:
        """Exactly the spec's ``Backfill`` schema."""
        return {
            "id": self.id,
            "status": self.status,
            "created_at": format_utc(self.created_at),
            "timeframe_start": format_utc(self.timeframe_start),
            "timeframe_end": format_utc(self.timeframe_end),
            "events_ingested": len(self.events),  # every event taken, repeated keys included
            "close_time": format_utc(self.close_time),
            "reverted_at": format_utc(self.reverted_at) if self.reverted_at else None,
            "customer_id": self.scoped_customer_id,
            "deprecation_filter": self.deprecation_filter,
            "replace_existing_events": self.replace_existing_events,
        }


class EventStore:
    def __init__(self, reflect_delay: timedelta = timedelta(0), dedupe_within_backfill: bool = False) -> None:
        self.reflect_delay = reflect_delay
        self.dedupe_within_backfill = dedupe_within_backfill
        self.live: dict[str, StoredEvent] = {}
        self.backfills: dict[str, Backfill] = {}
        self.offered_by_key: Counter[str] = Counter()
        self.duplicate_count = 0
        self.conflicting_duplicates: list[dict[str, Any]] = []
        self.unknown_customers: set[str] = set()  # external ids Orb matches to no customer
        self.lost_keys: list[str] = []  # answered 200 but silently not kept (the lose-rate fault)
        # Every ingest request answered 200 (events as sent, when, the answer), while a list: what
        # ingest's audit archive holds, for tests and benchmarks of the reconciler. None: not kept.
        self.accepted_requests: list[dict[str, Any]] | None = None

    # ---- what Orb reports ----------------------------------------------------------------
    def visible(self) -> list[StoredEvent]:
        """Events search can find: live ones and those of reflected backfills (replaced or not)."""
        found = list(self.live.values())
        for backfill in self.backfills.values():
            if backfill.billed:
                found.extend(backfill.events)
        return found

    def billed(self) -> list[StoredEvent]:
        return [event for event in self.visible() if not event.is_deprecated]

    def searchable(self) -> list[StoredEvent]:
        """What search returns: amended events are left out (Orb's search does not return them)."""
        return [event for event in self.visible() if not event.amended]

    def searchable_under(self, keys: set[str]) -> list[StoredEvent]:
        """``searchable`` restricted to these keys, without a pass over every live event (the
        reconciler's bench searches a million)."""
        found = [event for key in keys if (event := self.live.get(key)) is not None]
        for backfill in self.backfills.values():
            if backfill.billed:
                found.extend(event for event in backfill.events if event.key in keys)
        return [event for event in found if not event.amended]

    def billed_count_by_key(self) -> Counter[str]:
        """How many billed events carry each key (2+ means billed twice, e.g. a key re-sent in a
        ``replace_existing_events: false`` backfill)."""
        return Counter(event.key for event in self.billed())

    # ---- ingest bookkeeping ----------------------------------------------------------------
    def admit(self, stored: StoredEvent, backfill: Backfill | None) -> bool:
        """Store a valid event unless its key is already taken (live events deduplicate among
        live ones; a backfill's among its own only if ``dedupe_within_backfill``); True if stored."""
        offered = self.offered_by_key
        offered[stored.key] = offered.get(stored.key, 0) + 1  # Counter's += calls __missing__ per new key
        stored.unattributed = stored.external_customer_id in self.unknown_customers
        if backfill is not None:
            earlier = next((event for event in backfill.events if event.key == stored.key), None)
            if earlier is None or not self.dedupe_within_backfill:
                backfill.events.append(stored)  # the costly reading: a repeated key is billed again
                return True
            bucket = {earlier.key: earlier}
        else:
            bucket = self.live
        existing = bucket.get(stored.key)
        if existing is not None:
            self.duplicate_count += 1
            if existing.content() != stored.content():
                self.conflicting_duplicates.append(
                    {"idempotency_key": stored.key, "stored": existing.as_dict(), "offered": stored.as_dict()}
                )
            return False
        bucket[stored.key] = stored
        return True

    # ---- backfill lifecycle ----------------------------------------------------------------
    def settle(self, now: datetime) -> None:
        """Move backfills along as time passes: auto-close at ``close_time``, reflect a closed
        one and complete a revert ``reflect_delay`` later."""
        for backfill in self.backfills.values():
            if backfill.accepts_events and backfill.close_time <= now:
                self.close(backfill, backfill.close_time)
            closed, reverting = backfill.closed_at, backfill.revert_requested_at
            if backfill.status == "pending" and closed is not None and closed + self.reflect_delay <= now:
                self._reflect(backfill, closed + self.reflect_delay)
            if backfill.status == "pending_revert" and reverting and reverting + self.reflect_delay <= now:
                self._reverted(backfill, reverting + self.reflect_delay)

    def close(self, backfill: Backfill, now: datetime) -> None:
        backfill.closed_at = backfill.close_time = now  # close_time in the past: when it closed
        if not self.reflect_delay:
            self._reflect(backfill, now)

    def _reflect(self, backfill: Backfill, now: datetime) -> None:
        backfill.status = "reflected"
        backfill.reflected_at = now
        if backfill.replace_existing_events:
            for event in self.billed():
                if event.backfill_id != backfill.id and backfill.covers(event):
                    event.replaced_by = backfill.id

    def revert(self, backfill: Backfill, now: datetime) -> None:
        """Spec: reverted before it is closed, at once; once closed, through ``pending_revert``."""
        if backfill.closed_at is None or not self.reflect_delay:
            self._reverted(backfill, now)
            return
        backfill.status = "pending_revert"
        backfill.revert_requested_at = now

    def _reverted(self, backfill: Backfill, now: datetime) -> None:
        was_reflected = backfill.reflected_at is not None
        backfill.status = "reverted"
        backfill.reverted_at = now
        if was_reflected:
            for event in self.visible():
                if event.replaced_by == backfill.id:
                    event.replaced_by = None
