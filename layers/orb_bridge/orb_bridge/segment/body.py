"""Request bodies: size limits, and the three shapes Segment sends (bytes from ``orb_bridge.core.http_request``).

- one event object (classic Webhooks destination),
- a JSON array (Webhooks Actions destination in batch mode, up to 4,000 events),
- ``{"batch": [...]}`` (the HTTP Tracking API shape).

Every problem is a ``BodyError``: malformed or too large, with a specific message.
"""

from __future__ import annotations

import json
import json.scanner
import re
from dataclasses import dataclass
from typing import Any

from orb_bridge.core.http_request import (  # noqa: F401 (BodyError, decode_http_body: part of this module's interface)
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
    # For an array body, each element's length in the text (characters): a bound on its size
    # that spares re-serialising every event to check Segment's per-event limit.
    text_lengths: list[int] | None = None

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


_SCAN = json.scanner.make_scanner(json.JSONDecoder(parse_constant=_reject_constant))  # type: ignore[arg-type]
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _array_elements(text: str) -> tuple[list[Any], list[int]] | None:
    """The elements of a top-level JSON array and each one's length in the text, read by json's
    own C scanner one element at a time. None when the text is not plainly such an array:
    ``json.loads`` then reads it as always, with its error messages."""
    index = _WHITESPACE.match(text).end()  # type: ignore[union-attr]  # matches the empty string
    if text[index : index + 1] != "[":
        return None
    elements: list[Any] = []
    lengths: list[int] = []
    index = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]
    if text[index : index + 1] == "]":
        index += 1
    else:
        while True:
            try:
                value, end = _SCAN(text, index)
            except (StopIteration, ValueError, RecursionError):
                return None
            elements.append(value)
            lengths.append(end - index)
            index = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
            separator = text[index : index + 1]
            index += 1
            if separator == "]":
                break
            if separator != ",":
                return None
            index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
    if _WHITESPACE.match(text, index).end() != len(text):  # type: ignore[union-attr]
        return None
    return elements, lengths


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
    read = _array_elements(text)
    try:
        document = read[0] if read is not None else json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BodyError(
            MALFORMED, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # NaN/Infinity, or an integer literal longer than Python's digit limit
        raise BodyError(MALFORMED, f"request body is not valid JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise BodyError(MALFORMED, f"request body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    if json_depth_exceeds(raw_body):
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
    return SegmentBody(shape=shape, elements=elements, text_lengths=read[1] if read is not None else None)
