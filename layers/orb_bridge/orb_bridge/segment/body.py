"""Request bodies: size limits, and the three shapes Segment sends (bytes from ``orb_bridge.http_request``).

- one event object (classic Webhooks destination),
- a JSON array (Webhooks Actions destination in batch mode, up to 4,000 events),
- ``{"batch": [...]}`` (the HTTP Tracking API shape).

Every problem is a ``BodyError``: malformed or too large, with a specific message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orb_bridge.http_request import (  # noqa: F401 (BodyError, decode_http_body: part of this module's interface)
    MAX_JSON_DEPTH,
    BodyError,
    BodyProblem,
    decode_http_body,
    json_depth_exceeds,
)
from orb_bridge.segment.models import BodyShape

MALFORMED, TOO_LARGE = BodyProblem.MALFORMED, BodyProblem.TOO_LARGE

JSON_WHITESPACE = " \t\n\r"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


@dataclass(frozen=True, slots=True)
class SegmentBody:
    shape: BodyShape
    elements: list[Any]

    @property
    def is_batch(self) -> bool:
        return self.shape != "object"


def json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def check_size(raw_body: bytes, max_body_bytes: int) -> None:
    if len(raw_body) > max_body_bytes:
        raise BodyError(TOO_LARGE, f"request body is {len(raw_body)} bytes, more than the limit of {max_body_bytes}")


def _text(raw_body: bytes) -> str:
    try:
        return raw_body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(MALFORMED, f"request body is not valid UTF-8 (byte {exc.start})") from None


def parse_segment_body(raw_body: bytes, *, max_body_bytes: int, max_batch_events: int) -> SegmentBody:
    check_size(raw_body, max_body_bytes)
    text = _text(raw_body)
    if not text.strip(JSON_WHITESPACE):
        raise BodyError(MALFORMED, "request body is empty")
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BodyError(
            MALFORMED, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # NaN/Infinity, or an integer literal longer than Python's digit limit
        raise BodyError(MALFORMED, f"request body is not valid JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise BodyError(MALFORMED, f"request body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    if json_depth_exceeds(document):
        raise BodyError(MALFORMED, f"request body is nested more than {MAX_JSON_DEPTH} levels deep")

    if isinstance(document, list):
        shape: BodyShape = "array"
        elements = document
    elif isinstance(document, dict):
        if "batch" in document and "type" not in document:
            batch = document["batch"]
            if not isinstance(batch, list):
                raise BodyError(MALFORMED, 'request body field "batch" must be a JSON array of events')
            shape, elements = "batch", batch
        else:
            shape, elements = "object", [document]
    else:
        raise BodyError(MALFORMED, f"request body must be a JSON object or array, got {json_type_name(document)}")

    if not elements:
        raise BodyError(MALFORMED, "request body holds no events (empty batch)")
    if len(elements) > max_batch_events:
        raise BodyError(
            TOO_LARGE, f"request body holds {len(elements)} events, more than the limit of {max_batch_events}"
        )
    return SegmentBody(shape=shape, elements=elements)
