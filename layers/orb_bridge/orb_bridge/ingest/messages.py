"""Reading an ingest batch: SQS message bodies -> unique Orb events, and the rejected-queue records.

A body is a usage event or, redriven from the rejected queue, a rejection record whose event is
replayed (``orb_bridge.ingest.replay``).

Duplicates are collapsed so no request carries an idempotency key twice (Orb refuses a request
holding one key twice with different bodies).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from orb_bridge.core.config import MappingSettings
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.core.observability import logger
from orb_bridge.ingest.replay import Action, IngestMessage, plain_event_fields, read_ingest_message, rejection_after


class Message(Protocol):
    """An SQS message as ingest reads it (``ingest_batch.SqsRecord``, or ``SqsMessage``)."""

    @property
    def message_id(self) -> str: ...

    @property
    def body(self) -> str: ...


@dataclass(frozen=True)
class SqsMessage:
    message_id: str
    body: str


@dataclass
class PendingEvent:
    """One unique event to send, and every SQS message that carries it."""

    key: str  # its idempotency key
    payload: dict[str, Any]  # the event as Orb takes it (``OrbUsageEvent.to_orb``), checked
    body: str  # the first message's body, as sent by intake
    message_ids: list[str]
    # The rejection record the event replays (the first among its messages), None for a usage
    # event: a failure is written with ``replay.rejection_after(origin, ...)``, flat.
    origin: Mapping[str, Any] | None = None
    # ``body`` itself when it is exactly ``payload`` written as JSON: sent as is, not re-encoded.
    wire: str | None = None

    def text(self) -> str:
        """The event as JSON for Orb's request."""
        return self.wire if self.wire is not None else json.dumps(self.payload, separators=(",", ":"))

    def same_event_as(self, body: str, payload: dict[str, Any]) -> bool:
        # Intake serialises deterministically, so a redelivered duplicate has the same body; only
        # a differing body needs the (costlier) comparison of the events themselves.
        return body == self.body or _canonical(payload) == _canonical(self.payload)

    @property
    def timestamp(self) -> str:
        return str(self.payload["timestamp"])


@dataclass(frozen=True)
class Rejection:
    body: str
    # For an event's rejection, the event's own list: a duplicate read after the event was sent
    # (chunks are sent while the batch is still being read) joins it there.
    message_ids: Sequence[str]


@dataclass
class Batch:
    """A batch read: records for the rejected queue, and what needs no request (the events to
    send come out of ``collect`` chunk by chunk)."""

    rejections: list[Rejection] = field(default_factory=list)
    # Replays that need the mapping settings while they are broken: failed deliveries, held back.
    mapping_error_ids: list[str] = field(default_factory=list)
    mapping_error: str = ""
    skipped_ids: list[str] = field(default_factory=list)  # nothing to bill: acknowledged
    replayed: int = 0  # messages that were rejection records, now sent again
    replays_refused: int = 0  # rejection records that went back to the rejected queue unsent


def collect(
    messages: Sequence[Message],
    batch: Batch,
    chunk_size: int,
    mapping_settings: Callable[[], MappingSettings] | None = None,
) -> Iterator[list[PendingEvent]]:
    """Read bodies (usage events or redriven rejection records, see ``orb_bridge.ingest.replay``) and
    yield the unique events to send, ``chunk_size`` at a time, as soon as a chunk is full: its
    request can go out while the rest of the batch is read. Duplicates are collapsed so no
    request carries an idempotency key twice; a later duplicate of an event already yielded
    joins that event's messages (they succeed or fail together). Everything else read goes to
    ``batch``, complete once the iterator is exhausted."""
    settings = _once(mapping_settings or _settings_from_env)
    by_key: dict[str, PendingEvent] = {}
    chunk: list[PendingEvent] = []
    for message in messages:
        payload = plain_event_fields(message.body)
        if payload is not None:  # the usual message: forwarded as written when unambiguous
            origin, wire = None, message.body if _holds_only(message.body, payload) else None
        else:
            item = read_ingest_message(message.body, settings)
            if not _to_send(item, message, batch):
                continue
            assert item.event is not None  # noqa: S101 (type narrowing: an event to send)
            payload, origin, wire = item.event.to_orb(), item.origin, None
        key = payload["idempotency_key"]
        existing = by_key.get(key)
        if existing is None:
            pending = by_key[key] = PendingEvent(key, payload, message.body, [message.message_id], origin, wire)
            chunk.append(pending)
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        elif existing.same_event_as(message.body, payload):
            # Identical duplicate: one event in Orb; its messages succeed or fail together.
            existing.message_ids.append(message.message_id)
            if existing.origin is None:
                existing.origin = origin
        else:
            batch.rejections.append(_conflicting_duplicate(message, key, payload, origin, existing))
    if chunk:
        yield chunk


def _holds_only(body: str, payload: dict[str, Any]) -> bool:
    """Whether ``body``, read as ``payload`` (an object whose only nested object is its flat
    properties), says nothing else: JSON lets an object repeat a key, and which one a reader
    keeps is its own choice. With no whitespace after any quote, every key is followed by ``":``;
    exactly as many of those as keys read then means no key was repeated (a ``":`` inside a value
    only makes the count differ). Otherwise the payload is re-encoded, which is always safe
    (docs/facts.md#json-objects-with-a-repeated-name)."""
    if any(spaced in body for spaced in _QUOTE_THEN_WHITESPACE):
        return False
    return body.count('":') == len(payload) + len(payload["properties"])


_QUOTE_THEN_WHITESPACE = ('" ', '"\t', '"\n', '"\r')


def _to_send(item: IngestMessage, message: Message, batch: Batch) -> bool:
    """Whether ``item`` (a message that is not a plain usage event) has an event to send; what
    it is otherwise goes to ``batch``."""
    if item.action is Action.REJECT:
        assert item.rejection is not None  # noqa: S101 (type narrowing: REJECT always carries a record)
        logger.warning(
            "ingest message sent to the rejected queue unsent",
            extra={"message_id": message.message_id, "detail": item.detail},
        )
        batch.rejections.append(Rejection(_with_message_id(item.rejection, message.message_id), (message.message_id,)))
        batch.replays_refused += item.is_replay
        return False
    if item.action is Action.SKIP:
        batch.skipped_ids.append(message.message_id)
        return False
    if item.action is Action.RETRY:
        batch.mapping_error_ids.append(message.message_id)
        batch.mapping_error = item.detail
        return False
    batch.replayed += item.is_replay
    return True


def _conflicting_duplicate(
    message: Message,
    key: str,
    payload: dict[str, Any],
    origin: Mapping[str, Any] | None,
    existing: PendingEvent,
) -> Rejection:
    """Orb would refuse a request holding one key twice with different bodies: the first one
    seen is sent, this one is kept in the rejected queue."""
    logger.warning(
        "conflicting duplicate idempotency key sent to the rejected queue",
        extra={"message_id": message.message_id, "idempotency_key": key},
    )
    return Rejection(
        rejection_after(
            origin,
            stage="ingest",
            reason="conflicting duplicate: another message in the same batch has this idempotency key with a "
            "different body",
            errors=[f"idempotency_key {key!r} also used by SQS message {existing.message_ids[0]}"],
            orb_event=payload,
            extra={"sqs_message_id": message.message_id, "sent_event": existing.payload},
        ),
        (message.message_id,),
    )


def _with_message_id(record: str, message_id: str) -> str:
    """The record with the SQS message it came from (56 bytes more, within SQS's 256 KiB)."""
    decoded = json.loads(record)
    decoded.setdefault("sqs_message_id", message_id)
    return json.dumps(decoded, separators=(",", ":"))


def _settings_from_env() -> MappingSettings:
    return MappingSettings.from_env()


def _once(factory: Callable[[], MappingSettings]) -> Callable[[], MappingSettings]:
    """``factory`` called at most once per batch, its ConfigurationError remembered too."""
    memo: list[MappingSettings | ConfigurationError] = []

    def settings() -> MappingSettings:
        if not memo:
            try:
                memo.append(factory())
            except ConfigurationError as exc:
                memo.append(exc)
        if isinstance(memo[0], ConfigurationError):
            raise memo[0]
        return memo[0]

    return settings


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def epoch(event: PendingEvent) -> float:
    return datetime.fromisoformat(event.timestamp.replace("Z", "+00:00")).timestamp()


def in_order(messages: Sequence[Message], failed: set[str]) -> list[str]:
    seen: set[str] = set()
    ordered = []
    for message in messages:
        if message.message_id in failed and message.message_id not in seen:
            seen.add(message.message_id)
            ordered.append(message.message_id)
    return ordered
