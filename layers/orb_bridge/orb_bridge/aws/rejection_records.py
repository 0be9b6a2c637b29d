"""The rejected queue's record: what was rejected, at which stage and why, bounded in size.

Intake and ingest both write it; ``orb-bridge replay`` and ``backfill`` read it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

# A rejected-queue record stays under this whatever it carries: SQS refuses a message over the
# queue's maximum, and queues created before 2025 still pin 256 KiB.
MAX_RECORD_BYTES = 200 * 1024
RECORD_EXCERPT_CHARS = 8 * 1024
MAX_RECORD_TEXT_CHARS = 1024
MAX_RECORD_ERRORS = 20
# Fields that carry what was rejected, for replay: never cut, but replaced by an excerpt when
# they cannot fit (and the record is then marked ``"replayable": false``).
CARRIED_FIELDS = ("segment_event", "segment_events", "orb_event", "message_body")


def _dumps(record: dict[str, Any]) -> str | None:
    try:  # standard JSON only: NaN or Infinity would make the record unreadable to most tools
        return json.dumps(record, separators=(",", ":"), default=str, allow_nan=False)
    except (ValueError, RecursionError, TypeError):
        return None


def _clip_text(value: Any, limit: int = MAX_RECORD_TEXT_CHARS) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    return value


def _text_limit(key: str) -> int:
    return RECORD_EXCERPT_CHARS if key.endswith("_excerpt") else MAX_RECORD_TEXT_CHARS


def rejection_record(
    *,
    stage: str,
    reason: str,
    errors: Sequence[str] = (),
    segment_event: Any = None,
    orb_event: Any = None,
    extra: dict[str, Any] | None = None,
    replayable: bool = True,
) -> str:
    """The body of a rejected-queue message: enough to understand, fix and replay the event.

    ``stage`` is where it was rejected: ``intake`` (mapping), ``orb`` (Orb's validation) or
    ``ingest`` (e.g. a conflicting duplicate idempotency key). Always under ``MAX_RECORD_BYTES``:
    reasons and errors are cut, and an event too large to carry whole is replaced by an excerpt
    and the record marked ``"replayable": false`` (as is one the caller says must never be replayed).
    """
    record: dict[str, Any] = {
        "stage": stage,
        "reason": _clip_text(reason),
        "errors": [_clip_text(error) for error in list(errors)[:MAX_RECORD_ERRORS]],
        "rejected_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if len(errors) > MAX_RECORD_ERRORS:
        record["errors_omitted"] = len(errors) - MAX_RECORD_ERRORS
    if not replayable:
        record["replayable"] = False
    if segment_event is not None:
        record["segment_event"] = segment_event
    if orb_event is not None:
        record["orb_event"] = orb_event
    for key, value in (extra or {}).items():
        record[key] = value if key in CARRIED_FIELDS else _clip_text(value, _text_limit(key))
    text = _dumps(record)
    if text is not None and len(text) <= MAX_RECORD_BYTES:  # ASCII-escaped: characters == bytes
        return text
    # Too large (or not standard JSON): keep an excerpt of what was carried, never a cut event.
    record["replayable"] = False
    for key in CARRIED_FIELDS:
        if key in record:
            carried = record.pop(key)
            serialised = carried if isinstance(carried, str) else _dumps({"v": carried})
            serialised = serialised[5:-1] if serialised is not None and not isinstance(carried, str) else serialised
            if serialised is None:
                serialised = "(not serialisable as standard JSON)"
            record[f"{key}_bytes"] = len(serialised)
            record[f"{key}_excerpt"] = serialised[:RECORD_EXCERPT_CHARS]
    for key, value in list(record.items()):
        if isinstance(value, list):
            record[key] = [
                _clip_text(item if isinstance(item, str) else str(item)) for item in value[:MAX_RECORD_ERRORS]
            ]
        elif not isinstance(value, (str, int, bool)):
            record[key] = _clip_text(str(value), _text_limit(key))
    text = _dumps(record)
    if text is None or len(text) > MAX_RECORD_BYTES:  # still too large: the essentials only
        essentials = ("stage", "reason", "rejected_at", "replayable", "index")
        text = _dumps({key: value for key, value in record.items() if key in essentials or key.endswith("_excerpt")})
    return text or json.dumps({"stage": stage, "reason": "record could not be serialised", "replayable": False})
