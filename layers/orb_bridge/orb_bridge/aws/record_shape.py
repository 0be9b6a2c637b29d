"""Whether a rejection record redriven to ingest (or read by the CLIs) reads as one of ours.

A record is input like any other: edited by hand, written by another tool, or cut short. One
whose fields do not have the types ``queues.rejection_record`` and ``replay.rejection_after``
write (a ``history`` that is not a list, a ``replay_count`` that is a string...) is not guessed
at: it is rejected alone, kept whole with the reason, and the rest of its batch goes on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from orb_bridge.aws.rejection_records import rejection_record

# Fields a record of ours holds, when present, with these JSON types (NoneType: null allowed).
_FIELD_TYPES: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("errors", (list,), "a list"),
    ("history", (list,), "a list"),
    ("replay_count", (int,), "a whole number"),
    ("replayable", (bool,), "true or false"),
    ("rejected_at", (str, type(None)), "a time"),
    ("first_rejected_at", (str, type(None)), "a time"),
)
# What reading a record of an unexpected shape may still raise: that record is then kept alone too.
SHAPE_ERRORS = (TypeError, ValueError, LookupError, AttributeError, RecursionError)
UNREADABLE_REASON = "unreadable record"


def record_problem(record: Mapping[str, Any]) -> str | None:
    """Why ``record`` (it has a stage and a reason) is not one of ours, or None."""
    for name, types, expected in _FIELD_TYPES:
        value = record.get(name)
        if name in record and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            return f"{name} must be {expected}, got {type(value).__name__}"
    return None


def unreadable_record(record: Mapping[str, Any], problem: str) -> str:
    """The rejected-queue body keeping ``record`` whole as ``message_body``, never replayed."""
    try:
        text = json.dumps(record, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(record)
    return rejection_record(
        stage="ingest",
        reason=f"{UNREADABLE_REASON}: {problem}",
        errors=[problem],
        extra={"message_body": text},
        replayable=False,
    )
