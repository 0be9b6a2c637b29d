"""Segment Track call -> Orb usage event, with the same settings as Segment's Orb destination.

Nothing is guessed: a missing or empty identifier, an unparseable timestamp or a nested
property rejects the event with a reason naming the field, so it can be fixed and replayed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from orb_bridge.core.config import MappingSettings
from orb_bridge.core.errors import clip, quote
from orb_bridge.core.timestamps import TimestampError, utc_text
from orb_bridge.orb.usage_event import OrbUsageEvent, validation_messages
from orb_bridge.segment.body import json_type_name, parse_segment_body
from orb_bridge.segment.models import (
    MAX_EVENT_BYTES,
    MAX_MESSAGE_ID_CHARS,
    SKIPPED_CALL_TYPES,
    TRACK,
    MappedEvent,
)

TIMESTAMP_FIELDS = ("timestamp", "originalTimestamp", "receivedAt")

# Characters an SQS message body may not hold (outside #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
# #x10000-#x10FFFF): sending them fails as a sender fault, so such events are rejected here.
_NOT_SQS_SAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_MISSING = object()
# One element's rejection reason, echoed in the answer: 4,000 of them stay far below 6 MB.
MAX_ERROR_CHARS = 512


class MappingError(ValueError):
    pass


def get_path(event: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``context.groupId``), or ``_MISSING``."""
    value: Any = event
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def identifier(event: Mapping[str, Any], path: str, field: str) -> str:
    """A string identifier at ``path``; numbers are stringified, anything else is an error."""
    value = get_path(event, path)
    if value is _MISSING or value is None:
        raise MappingError(f"{field}: no value at '{path}'")
    if isinstance(value, bool):
        raise MappingError(f"{field}: '{path}' must be a string or number, got boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MappingError(f"{field}: '{path}' is not a finite number")
        return repr(value)
    if isinstance(value, str):
        if not value.strip():
            raise MappingError(f"{field}: '{path}' is empty")
        return value
    raise MappingError(f"{field}: '{path}' must be a string or number, got {json_type_name(value)}")


def normalise_timestamp(value: Any) -> str:
    """ISO 8601 with an offset or Z -> UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (``orb_bridge.core.timestamps``).

    More than six fractional digits are truncated (Segment sends up to ten); a timestamp
    without an offset is refused rather than read in some assumed zone.
    """
    if not isinstance(value, str):
        raise MappingError(f"must be an ISO 8601 string, got {json_type_name(value)}")
    try:
        return utc_text(value)
    except TimestampError as exc:
        raise MappingError(str(exc)) from None


def event_timestamp(event: Mapping[str, Any]) -> str:
    for name in TIMESTAMP_FIELDS:
        value = event.get(name)
        if value is None or value == "":
            continue
        try:
            return normalise_timestamp(value)
        except MappingError as exc:
            raise MappingError(f"timestamp: '{name}' {exc}") from None
    raise MappingError("timestamp: none of " + ", ".join(f"'{n}'" for n in TIMESTAMP_FIELDS) + " is set")


def mapped_properties(event: Mapping[str, Any], properties_mapping: Mapping[str, str]) -> dict[str, Any]:
    """Only the mapped keys, renamed; nulls dropped; scalar values only."""
    properties = event.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, Mapping):
        raise MappingError(f"properties: must be an object, got {json_type_name(properties)}")
    result: dict[str, Any] = {}
    for segment_key, orb_key in properties_mapping.items():
        value = properties.get(segment_key)
        if value is None:
            continue
        if isinstance(value, (Mapping, list)):
            raise MappingError(
                f"properties.{segment_key}: nested {json_type_name(value)} not allowed; "
                "Orb properties must be strings, numbers or booleans"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise MappingError(f"properties.{segment_key}: is not a finite number")
        if not isinstance(value, (str, int, float)):  # bool is an int
            raise MappingError(f"properties.{segment_key}: unsupported value of type {type(value).__name__}")
        result[orb_key] = value
    return result


def _message_id(element: Any) -> str | None:
    if isinstance(element, Mapping):
        message_id = element.get("messageId")
        if isinstance(message_id, str):  # echoed in answers and logs: bounded, always encodable
            return clip(message_id, MAX_MESSAGE_ID_CHARS)
    return None


def event_size(element: Mapping[str, Any]) -> int:
    # Compact JSON is the smallest form the event can have had on the wire.
    return len(json.dumps(element, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))


# An event's compact JSON takes at most this many bytes per character of its text: a character
# at most 4 UTF-8 bytes, a number at most 4.5 times its digits (1e15 is 1000000000000000.0).
_MAX_BYTES_PER_TEXT_CHAR = 5


def to_orb_event(event: Mapping[str, Any], settings: MappingSettings, text_length: int | None = None) -> OrbUsageEvent:
    """Map one Track call; raises ``MappingError`` naming what is wrong. ``text_length``, the
    event's length in the request's text when known, spares measuring a small event's size."""
    message_id = event.get("messageId")
    if message_id is not None and not isinstance(message_id, str):
        raise MappingError(f"messageId: must be a string, got {json_type_name(message_id)}")
    if isinstance(message_id, str) and len(message_id) > MAX_MESSAGE_ID_CHARS:
        raise MappingError(f"messageId: longer than {MAX_MESSAGE_ID_CHARS} characters")
    if text_length is None or text_length * _MAX_BYTES_PER_TEXT_CHAR > MAX_EVENT_BYTES:
        size = event_size(event)
        if size > MAX_EVENT_BYTES:
            raise MappingError(f"event is {size} bytes, more than Segment's limit of {MAX_EVENT_BYTES}")

    errors: list[str] = []
    fields: dict[str, Any] = {}
    for name, path in (
        ("event_name", settings.event_name_field),
        ("external_customer_id", settings.external_customer_id_field),
        ("idempotency_key", settings.idempotency_key_field),
    ):
        try:
            fields[name] = identifier(event, path, name)
        except MappingError as exc:
            errors.append(str(exc))
    for name, compute in (
        ("timestamp", lambda: event_timestamp(event)),
        ("properties", lambda: mapped_properties(event, settings.properties_mapping)),
    ):
        try:
            fields[name] = compute()
        except MappingError as exc:
            errors.append(str(exc))
    if errors:
        raise MappingError("; ".join(errors))
    try:
        orb_event = OrbUsageEvent(**fields)
    except ValueError as exc:  # pydantic's ValidationError is one (e.g. lone surrogates from \ud800 escapes)
        messages = validation_messages(exc, root="event")
        if messages is not None:
            raise MappingError("; ".join(messages)) from None
        raise MappingError(f"event holds text that cannot be encoded: {clip(exc, 120)}") from None
    bad = _NOT_SQS_SAFE.search(orb_event.to_message_body())
    if bad:
        raise MappingError(f"event holds a character that cannot be queued (U+{ord(bad.group()):04X})")
    return orb_event


def map_element(index: int, element: Any, settings: MappingSettings, text_length: int | None = None) -> MappedEvent:
    """The outcome for one element of a request: accepted, skipped, or rejected with a reason."""
    message_id = _message_id(element)
    if not isinstance(element, Mapping):
        return MappedEvent(index, None, None, error=f"event must be an object, got {json_type_name(element)}")
    call_type = element.get("type")
    if call_type is None or call_type == "":
        return MappedEvent(index, message_id, None, error="type: missing (expected 'track')")
    if not isinstance(call_type, str):
        return MappedEvent(index, message_id, None, error=f"type: must be a string, got {json_type_name(call_type)}")
    if call_type in SKIPPED_CALL_TYPES:
        return MappedEvent(index, message_id, call_type, skipped=True)
    if call_type != TRACK:
        return MappedEvent(
            index, message_id, clip(call_type), error=f"type: unknown Segment call type {quote(call_type)}"
        )
    try:
        return MappedEvent(index, message_id, call_type, orb_event=to_orb_event(element, settings, text_length))
    except MappingError as exc:
        return MappedEvent(index, message_id, call_type, error=clip(exc, MAX_ERROR_CHARS))


def map_elements(
    elements: list[Any], settings: MappingSettings, text_lengths: list[int] | None = None
) -> list[MappedEvent]:
    if text_lengths is None:
        return [map_element(index, element, settings) for index, element in enumerate(elements)]
    return [
        map_element(index, element, settings, length)
        for index, (element, length) in enumerate(zip(elements, text_lengths, strict=True))
    ]


def map_body(
    raw_body: bytes,
    settings: MappingSettings,
    *,
    max_body_bytes: int = 6 * 1024 * 1024,
    max_batch_events: int = 4000,
) -> list[MappedEvent]:
    """Dry run of intake without authentication or queues (``orb-bridge map FILE``).

    Raises ``BodyError`` (malformed or too large) when the body itself is unusable.
    """
    body = parse_segment_body(raw_body, max_body_bytes=max_body_bytes, max_batch_events=max_batch_events)
    return map_elements(body.elements, settings, body.text_lengths)
