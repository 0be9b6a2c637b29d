"""Replaying rejected events: what a message on the ingest queue carries, and what to send for it.

A message on the ingest queue is normally an ``OrbUsageEvent`` as intake enqueued it. Since the
rejected queue can be redriven into the ingest queue (the SQS console's "Start DLQ redrive" to a
custom destination, or ``aws sqs start-message-move-task``), it may also be:

- a usage event the queue's own redrive moved to the rejected queue after ``maxReceiveCount``
  (no ``stage``): sent as is;
- a rejection record (``queues.rejection_record``), replayed from the payload it keeps:
  its ``segment_event`` re-mapped with the *current* mapping settings (so fixing the mapping and
  redriving is the whole repair), else its ``orb_event``, else (an ``ingest`` record) the
  ``message_body`` it kept, read once more.

A record that fails again goes back to the rejected queue as *one* record (``rejection_after``):
the original payload stays at top level, the new ``stage``/``reason``/``errors`` replace the old
ones (kept in a short ``history``) and ``replay_count`` grows by one. It is never wrapped inside
another record, and a record replayed ``MAX_REPLAY_COUNT`` times is not sent again: something
keeps redriving it without fixing the cause, so it stays rejected, saying so.

A record whose fields do not have the types this code writes (say a ``history`` that is not a
list) is not guessed at: it is rejected alone, as it is, with the reason (``unreadable``), and
the rest of its batch goes on. No record, however malformed, fails a batch.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orb_bridge.aws.record_shape import SHAPE_ERRORS, UNREADABLE_REASON, record_problem, unreadable_record
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.core.config import MappingSettings
from orb_bridge.orb.usage_event import OrbUsageEvent, orb_fields, validation_messages

STAGES = frozenset({"intake", "orb", "ingest"})
# Three replays of the same record failing is a cause nobody fixed, or an automatic redrive loop
# (e.g. a scheduled move task): stop sending it to Orb; it stays on the rejected queue for a human.
MAX_REPLAY_COUNT = 3
# Earlier failures kept in a re-rejected record, each reason cut to this length: bounded size.
MAX_HISTORY = MAX_REPLAY_COUNT + 1
MAX_HISTORY_REASON_CHARS = 500
# Fields describing the latest failure; everything else in a record is payload and carried over.
_FAILURE_FIELDS = (
    "stage",
    "reason",
    "errors",
    "rejected_at",
    "replay_count",
    "history",
    "first_rejected_at",
    "errors_omitted",
    "hint",
    "sqs_message_id",
    "sqs_message_ids",
    "sent_event",
)


class Action(enum.Enum):
    SEND = "send"  # ``event`` goes to Orb
    REJECT = "reject"  # ``rejection`` goes (back) to the rejected queue, nothing is sent
    SKIP = "skip"  # nothing to bill (a replayed non-Track Segment call): acknowledge
    RETRY = "retry"  # our configuration is broken (mapping settings): leave it for SQS to redeliver


@dataclass(frozen=True)
class IngestMessage:
    """What to do with one ingest-queue message body (see ``read_ingest_message``)."""

    action: Action
    event: OrbUsageEvent | None = None
    # The rejection record this message replays (None: a plain usage event). Pass it to
    # ``rejection_after`` if the event fails again.
    origin: Mapping[str, Any] | None = None
    rejection: str | None = None
    detail: str = ""  # for logs: what the message was and why this action

    @property
    def is_replay(self) -> bool:
        return self.origin is not None


def is_rejection_record(value: Any) -> bool:
    """A rejection record (never a usage event: ``OrbUsageEvent`` forbids unknown fields)."""
    return isinstance(value, Mapping) and value.get("stage") in STAGES and isinstance(value.get("reason"), str)


def replay_count(record: Mapping[str, Any]) -> int:
    count = record.get("replay_count")
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def plain_event_fields(body: str) -> dict[str, Any] | None:
    """The Orb event of a message as intake enqueued it (no ``stage``: not a rejection record),
    in the form Orb takes, or None for anything else, which ``read_ingest_message`` then
    decides: the hot path, taken by ingest for every message of a 10,000-message batch."""
    return None if '"stage"' in body else orb_fields(body)


def read_ingest_message(body: str, mapping_settings: Callable[[], MappingSettings]) -> IngestMessage:
    """Decide what one ingest-queue message body is and what to send for it.

    ``mapping_settings`` is called only for records that need re-mapping, so a deployment whose
    mapping is misconfigured still ingests plain events (those records get ``Action.RETRY``).
    """
    if '"stage"' not in body:  # the hot path: intake's events, parsed once
        return _plain_event(body)
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        decoded = None
    if not is_rejection_record(decoded):
        return _plain_event(body)
    record: Mapping[str, Any] = decoded
    # A record wrapped by an older ingest that did not know records: replay the inner one.
    inner = record.get("message_body")
    if record.get("stage") == "ingest" and isinstance(inner, str):
        try:
            unwrapped = json.loads(inner)
        except (ValueError, RecursionError):
            unwrapped = None
        if is_rejection_record(unwrapped):
            record = unwrapped
    return replay_record(record, mapping_settings)


def replay_record(
    record: Mapping[str, Any], mapping_settings: Callable[[], MappingSettings], *, ignore_limit: bool = False
) -> IngestMessage:
    """The event a rejection record replays, or why it cannot be replayed.

    ``ignore_limit``: an operator's explicit replay (``orb-bridge replay``) is not a loop.
    A record that does not read as ours is refused alone (``unreadable``); this never raises.
    """
    problem = record_problem(record)
    if problem is not None:
        return unreadable(record, problem)
    try:
        return _replay_record(record, mapping_settings, ignore_limit)
    except SHAPE_ERRORS as exc:
        return unreadable(record, f"{type(exc).__name__}: {_short(exc)}")


def unreadable(record: Mapping[str, Any], problem: str) -> IngestMessage:
    """A record that does not read as ours: rejected alone, kept whole, never sent."""
    rejection = unreadable_record(record, problem)
    return IngestMessage(Action.REJECT, origin=record, rejection=rejection, detail=f"{UNREADABLE_REASON}: {problem}")


def _replay_record(
    record: Mapping[str, Any], mapping_settings: Callable[[], MappingSettings], ignore_limit: bool
) -> IngestMessage:
    count = replay_count(record)
    if record.get("replayable") is False:
        return _keep(
            record,
            "not replayable: the record does not carry the whole event "
            f"(rejected because: {_short(record.get('reason'))})",
        )
    if count >= MAX_REPLAY_COUNT and not ignore_limit:
        return _keep(
            record,
            f"not replayed again: replayed {count} times and still failing "
            f"(last reason: {_short(record.get('reason'))}); fix the cause, then "
            "replay it with `orb-bridge replay --yes`",
        )
    if "segment_event" in record:
        return _remap(record, mapping_settings)
    if isinstance(record.get("orb_event"), Mapping):
        return _validated(record, record["orb_event"], "orb_event")
    if isinstance(record.get("message_body"), str):
        try:
            event = OrbUsageEvent.from_message_body(record["message_body"])
        except ValueError as exc:  # the model's ValidationError is one
            return _refused(record, "ingest", "message body is still not a valid Orb usage event", pydantic_errors(exc))
        return IngestMessage(Action.SEND, event, record, detail="replay of a kept message body")
    return _keep(
        record, f"not replayable: the record carries no event (rejected because: {_short(record.get('reason'))})"
    )


def rejection_after(
    origin: Mapping[str, Any] | None,
    *,
    stage: str,
    reason: str,
    errors: Sequence[str] = (),
    orb_event: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The rejected-queue body for an event that failed (again).

    Without ``origin`` (a plain usage event) this is ``queues.rejection_record``. With one, the
    origin's payload is kept at top level (never nested), the new failure replaces the old one,
    ``replay_count`` is one more, and the previous failures stay in ``history``.
    """
    if origin is None:
        return rejection_record(
            stage=stage,
            reason=reason,
            errors=errors,
            orb_event=orb_event,
            extra=dict(extra) if extra is not None else None,
        )
    carried = {key: value for key, value in origin.items() if key not in _FAILURE_FIELDS}
    earlier = origin.get("history")
    history = [entry for entry in earlier if isinstance(entry, Mapping)] if isinstance(earlier, list) else []
    history.append(
        {
            "stage": origin.get("stage"),
            "reason": _short(origin.get("reason"), MAX_HISTORY_REASON_CHARS),
            "rejected_at": origin.get("rejected_at"),
        }
    )
    carried.update(extra or {})
    carried["replay_count"] = replay_count(origin) + 1
    carried["first_rejected_at"] = origin.get("first_rejected_at") or origin.get("rejected_at")
    carried["history"] = history[-MAX_HISTORY:]
    if orb_event is not None:
        carried.pop("orb_event", None)
    return rejection_record(stage=stage, reason=reason, errors=errors, orb_event=orb_event, extra=carried)


def pydantic_errors(exc: ValueError) -> list[str]:
    """``loc: msg`` per error of the usage event model's ValidationError (pydantic is imported
    only when a body was not one the plain checks accept)."""
    return validation_messages(exc, root="body") or [str(exc)]


# -- helpers ----------------------------------------------------------------------------------------


def _plain_event(body: str) -> IngestMessage:
    try:
        event = OrbUsageEvent.from_message_body(body)
    except ValueError as exc:  # the model's ValidationError is one
        rejection = rejection_record(
            stage="ingest",
            reason="message body is not a valid Orb usage event",
            errors=pydantic_errors(exc),
            extra={"message_body": body},
        )
        return IngestMessage(Action.REJECT, rejection=rejection, detail="unreadable message body")
    return IngestMessage(Action.SEND, event, detail="usage event")


def _remap(record: Mapping[str, Any], mapping_settings: Callable[[], MappingSettings]) -> IngestMessage:
    from orb_bridge.core.errors import ConfigurationError
    from orb_bridge.segment.mapping import map_element

    try:
        settings = mapping_settings()
    except ConfigurationError as exc:
        return IngestMessage(Action.RETRY, origin=record, detail=f"cannot re-map: {exc}")
    outcome = map_element(0, record["segment_event"], settings)
    if outcome.orb_event is not None:
        return IngestMessage(Action.SEND, outcome.orb_event, record, detail="re-mapped Segment event")
    if outcome.skipped:
        return IngestMessage(Action.SKIP, origin=record, detail=f"a {outcome.call_type} call is not billed")
    return _refused(record, "intake", outcome.error or "mapping refused the event", [outcome.error or ""])


def _validated(record: Mapping[str, Any], payload: Mapping[str, Any], field: str) -> IngestMessage:
    try:
        event = OrbUsageEvent.model_validate(dict(payload))
    except ValueError as exc:  # the model's ValidationError is one
        return _refused(record, "ingest", f"{field} is not a valid Orb usage event", pydantic_errors(exc))
    return IngestMessage(Action.SEND, event, record, detail=f"replay of {field}")


def _refused(record: Mapping[str, Any], stage: str, reason: str, errors: Sequence[str]) -> IngestMessage:
    return IngestMessage(
        Action.REJECT,
        origin=record,
        rejection=rejection_after(record, stage=stage, reason=reason, errors=errors),
        detail=reason,
    )


def _keep(record: Mapping[str, Any], reason: str) -> IngestMessage:
    stage = str(record["stage"]) if record.get("stage") in STAGES else "ingest"
    errors = [str(error) for error in record.get("errors") or []] if isinstance(record.get("errors"), list) else []
    return _refused(record, stage, reason, errors)


def _short(text: Any, limit: int = 200) -> str:
    value = str(text or "")
    return value if len(value) <= limit else value[: limit - 3] + "..."
