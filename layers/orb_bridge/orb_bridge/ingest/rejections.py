"""Ingest's rejections: building the record of an event Orb refused, and writing records to the rejected queue."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from orb_bridge.aws.queues import SqsQueue
from orb_bridge.core.observability import logger
from orb_bridge.ingest.messages import PendingEvent, Rejection, epoch
from orb_bridge.ingest.replay import STAGES, rejection_after

BACKFILL_HINT = (
    "the event is older than Orb's grace period ({hours:g} h, ORB_GRACE_PERIOD_HOURS): replaying "
    "it cannot work; ingest it through an Orb backfill with `orb-bridge backfill {target}` "
    "(dry run first, then --yes)"
)
# Set by the dev stack (`--dev`): deployed, the hint names the stack the operator knows.
BACKFILL_TARGET_VARIABLE = "ORB_BRIDGE_BACKFILL_TARGET"


def backfill_hint(hours: float) -> str:
    target = os.environ.get(BACKFILL_TARGET_VARIABLE, "").strip() or "--stack <name>"
    return BACKFILL_HINT.format(hours=hours, target=target)


def is_late(event: PendingEvent, now: float, grace_period_hours: float) -> bool:
    """Older than Orb's grace period (Orb's wording for a late event is unpublished: its age decides)."""
    try:
        return epoch(event) < now - grace_period_hours * 3600
    except ValueError:
        return False


def orb_refusal(
    event: PendingEvent, reason: str, errors: Sequence[str], late_after_hours: float | None = None
) -> Rejection:
    """The record of an event Orb refused; a late one's names the way out (a backfill; replaying cannot work)."""
    extra: dict[str, Any] = {"sqs_message_ids": event.message_ids}
    if late_after_hours is not None:
        reason = f"outside Orb's grace period ({late_after_hours:g} h): {reason}"
        extra["hint"] = backfill_hint(late_after_hours)
    return orb_rejection(event, reason, errors, extra)


def orb_rejection(event: PendingEvent, reason: str, errors: Sequence[str], extra: dict[str, Any]) -> Rejection:
    logger.warning(
        "event refused by Orb sent to the rejected queue",
        extra={
            "idempotency_key": event.key,
            "message_ids": event.message_ids,
            "errors": list(errors),
            "replay": event.origin is not None,
        },
    )
    return Rejection(
        rejection_after(event.origin, stage="orb", reason=reason, errors=errors, orb_event=event.payload, extra=extra),
        event.message_ids,
    )


def write_rejections(rejected_queue: SqsQueue, rejections: list[Rejection]) -> tuple[set[str], dict[str, int]]:
    """Keep every rejection; return the message ids whose rejection could not be written, and
    the records written by stage."""
    if not rejections:
        return set(), {}
    try:
        failures = rejected_queue.send_all([rejection.body for rejection in rejections])
    except Exception:  # e.g. no SQS client could be built: keep the messages in SQS instead
        logger.exception("could not write to the rejected queue: messages left for SQS to redeliver")
        return {message_id for rejection in rejections for message_id in rejection.message_ids}, {}
    if failures:
        logger.error(
            "some rejections could not be written to the rejected queue: messages left for SQS to redeliver",
            extra={"failures": [f"{f.code}: {f.message}" for f in failures[:10]], "count": len(failures)},
        )
    unwritten = {failure.index for failure in failures}
    written: dict[str, int] = {}
    for index, rejection in enumerate(rejections):
        if index not in unwritten:
            stage = record_stage(rejection.body)
            written[stage] = written.get(stage, 0) + 1
    return {message_id for index in unwritten for message_id in rejections[index].message_ids}, written


def record_stage(body: str) -> str:
    """The ``stage`` of a record ``rejection_record`` wrote (``unknown`` otherwise)."""
    try:
        stage = json.loads(body).get("stage")
    except (ValueError, AttributeError):
        return "unknown"
    return stage if isinstance(stage, str) and stage in STAGES else "unknown"
