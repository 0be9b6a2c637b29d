"""Reading an ingest batch: SQS message bodies -> unique Orb events, and the rejected-queue records.

Duplicates are collapsed so no request carries an idempotency key twice (Orb refuses a request
holding one key twice with different bodies).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from orb_bridge.observability import logger
from orb_bridge.queues import rejection_record
from orb_bridge.usage_event import OrbUsageEvent


@dataclass(frozen=True)
class SqsMessage:
    message_id: str
    body: str


@dataclass
class PendingEvent:
    """One unique event to send, and every SQS message that carries it."""

    event: OrbUsageEvent
    payload: dict[str, Any]
    body: str  # the first message's body, as sent by intake
    message_ids: list[str]

    def same_event_as(self, body: str, payload: dict[str, Any]) -> bool:
        # Intake serialises deterministically, so a redelivered duplicate has the same body; only
        # a differing body needs the (costlier) comparison of the events themselves.
        return body == self.body or _canonical(payload) == _canonical(self.payload)

    @property
    def key(self) -> str:
        return self.event.idempotency_key


@dataclass(frozen=True)
class Rejection:
    body: str
    message_ids: tuple[str, ...]


def collect(messages: Sequence[SqsMessage]) -> tuple[list[PendingEvent], list[Rejection]]:
    """Parse bodies and collapse duplicates so no request carries an idempotency key twice."""
    by_key: dict[str, PendingEvent] = {}
    rejections: list[Rejection] = []
    for message in messages:
        try:
            event = OrbUsageEvent.from_message_body(message.body)
        except ValidationError as exc:
            logger.warning(
                "unreadable ingest message sent to the rejected queue",
                extra={"message_id": message.message_id, "errors": pydantic_errors(exc)},
            )
            rejections.append(
                Rejection(
                    rejection_record(
                        stage="ingest",
                        reason="message body is not a valid Orb usage event",
                        errors=pydantic_errors(exc),
                        extra={"sqs_message_id": message.message_id, "message_body": message.body},
                    ),
                    (message.message_id,),
                )
            )
            continue
        payload = event.to_orb()
        existing = by_key.get(event.idempotency_key)
        if existing is None:
            by_key[event.idempotency_key] = PendingEvent(event, payload, message.body, [message.message_id])
        elif existing.same_event_as(message.body, payload):
            # Identical duplicate: one event in Orb; its messages succeed or fail together.
            existing.message_ids.append(message.message_id)
        else:
            # Orb would refuse the whole request; the first one seen is sent, this one is kept.
            logger.warning(
                "conflicting duplicate idempotency key sent to the rejected queue",
                extra={"message_id": message.message_id, "idempotency_key": event.idempotency_key},
            )
            rejections.append(
                Rejection(
                    rejection_record(
                        stage="ingest",
                        reason="conflicting duplicate: another message in the same batch has this "
                        "idempotency key with a different body",
                        errors=[f"idempotency_key {event.idempotency_key!r} also used by SQS message "
                                f"{existing.message_ids[0]}"],
                        orb_event=payload,
                        extra={"sqs_message_id": message.message_id, "sent_event": existing.payload},
                    ),
                    (message.message_id,),
                )
            )
    return list(by_key.values()), rejections


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def pydantic_errors(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    ]


def epoch(event: PendingEvent) -> float:
    return datetime.fromisoformat(event.event.timestamp.replace("Z", "+00:00")).timestamp()


def in_order(messages: Sequence[SqsMessage], failed: set[str]) -> list[str]:
    seen: set[str] = set()
    ordered = []
    for message in messages:
        if message.message_id in failed and message.message_id not in seen:
            seen.add(message.message_id)
            ordered.append(message.message_id)
    return ordered
