"""OrbUsageEvent without pydantic on intake's path: the same rules, errors and bytes as the model."""

from __future__ import annotations

import json
import random
import struct

import pytest
from pydantic import ValidationError

from orb_bridge.core.timestamps import TimestampError, _utc_text, utc_text
from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge.orb.usage_event_schema import OrbUsageEvent as Model

BASE = {
    "event_name": "api_call",
    "idempotency_key": "k-1",
    "timestamp": "2024-01-02T03:04:05.123Z",
    "external_customer_id": "cust_1",
}


def _floats() -> list[float]:
    rng = random.Random(7)
    values = [0.0, -0.0, 1.0, 1e15, 1e16, 1.5e16, 1e-4, 1e-5, -1.5e-5, 1e-7, 1e300, 5e-324, 0.1, 1 / 3]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(2000)]
    values += [10 ** rng.uniform(-30, 30) * rng.choice((1, -1)) for _ in range(2000)]
    return values


@pytest.mark.parametrize("value", ['x"\\\x01\x1f\x7f\u2028é😀', True, False, 0, -5, 2**62, 2**70, float("inf")])
def test_message_body_is_byte_for_byte_the_models(value):
    event, model = (
        OrbUsageEvent(**BASE, properties={"v": value, "w": 1}),
        Model(**BASE, properties={"v": value, "w": 1}),
    )
    assert event.to_message_body() == model.model_dump_json(exclude_none=True)


def test_floats_are_written_as_the_model_writes_them():
    for value in _floats():
        if value - value == 0.0:
            body = OrbUsageEvent(**BASE, properties={"v": value}).to_message_body()
            assert body == Model(**BASE, properties={"v": value}).model_dump_json(exclude_none=True), value


@pytest.mark.parametrize(
    "changes",
    [
        {"event_name": ""},
        {"event_name": 5},
        {"idempotency_key": None},
        {"timestamp": "2024-01-02T03:04:05+00:00"},
        {"timestamp": "2024-01-02T03:04:05.1234567Z"},
        {"customer_id": "c"},
        {"external_customer_id": None},
        {"properties": {"nested": {"a": 1}}},
        {"properties": {"n": None}},
        {"properties": []},
        {"unknown": 1},
        {"event_name": "a\ud800"},
    ],
)
def test_refusals_are_the_models_validation_errors(changes):
    fields = {**BASE, **changes}
    with pytest.raises(ValidationError) as ours:
        OrbUsageEvent(**fields)
    with pytest.raises(ValidationError) as models:
        Model(**fields)
    assert ours.value.errors(include_context=False) == models.value.errors(include_context=False)
    assert ours.value.title == models.value.title


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"properties": {"amount": 1.5, "region": "eu", "ok": True}},
        {"customer_id": "c", "external_customer_id": None},
    ],
)
def test_accepted_events_read_back_equal_and_to_orb_matches(extra):
    fields = {**BASE, **extra}
    event = OrbUsageEvent(**fields)
    model = Model(**fields)
    assert OrbUsageEvent.from_message_body(event.to_message_body()) == event
    assert OrbUsageEvent.model_validate(json.loads(event.to_message_body())) == event
    assert event.to_orb() == model.model_dump(exclude_none=True)


def test_reading_an_invalid_body_raises_the_models_error():
    with pytest.raises(ValidationError):
        OrbUsageEvent.from_message_body('{"event_name": "x"}')


@pytest.mark.parametrize(
    "value",
    [
        "2022-05-11T21:33:13Z",
        "2022-05-11T21:33:13.5Z",
        "2022-05-11T21:33:13.000Z",
        "2022-05-11T21:33:13.123456Z",
        "0999-01-01T00:00:00.010Z",
    ],
)
def test_the_timestamp_fast_path_agrees_with_the_general_one(value):
    assert utc_text(value) == _utc_text(value)


@pytest.mark.parametrize("value", ["2022-02-30T00:00:00Z", "2022-05-11T24:00:00Z", "2022-05-11T23:59:60Z"])
def test_the_fast_path_still_checks_the_calendar(value):
    with pytest.raises(TimestampError, match="not a valid date-time"):
        utc_text(value)
