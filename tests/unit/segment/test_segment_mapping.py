"""Segment Track -> Orb usage event mapping."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orb_bridge.core.config import MappingSettings
from orb_bridge.core.http_request import BodyError, BodyProblem
from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge.segment.body import parse_segment_body
from orb_bridge.segment.mapping import (
    MappingError,
    event_size,
    map_body,
    map_element,
    map_elements,
    normalise_timestamp,
)
from orb_bridge.segment.models import MappedEvent
from tests.support.strategies import fuzz_settings

SETTINGS = MappingSettings(
    properties_mapping={"amount": "amount", "currency": "currency", "confirmation_time": "confirmed_at"}
)


def accepted(outcome: MappedEvent) -> OrbUsageEvent:
    assert outcome.orb_event is not None, outcome.error
    return outcome.orb_event


def refusal(outcome: MappedEvent) -> str:
    assert outcome.error is not None, "the event was not refused"
    return outcome.error


def seed_track(**overrides):
    """The example from Segment's Orb destination docs, as Segment delivers it."""
    event = {
        "type": "track",
        "event": "payment_confirmed",
        "userId": "external_customer_id",
        "messageId": "ajs-next-1652304793-abc",
        "timestamp": "2022-05-11T21:33:13.1652304793Z",
        "properties": {"amount": 100.00, "currency": "USD", "confirmation_time": "2022-05-11T21:33:13.1652304793Z"},
    }
    event.update(overrides)
    return event


def test_seed_example_maps_to_orb_event():
    outcome = map_element(0, seed_track(), SETTINGS)
    assert outcome.accepted and not outcome.skipped and outcome.error is None
    assert accepted(outcome).to_orb() == {
        "event_name": "payment_confirmed",
        "external_customer_id": "external_customer_id",
        "idempotency_key": "ajs-next-1652304793-abc",
        "timestamp": "2022-05-11T21:33:13.165230Z",
        "properties": {"amount": 100.0, "currency": "USD", "confirmed_at": "2022-05-11T21:33:13.1652304793Z"},
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2022-05-11T21:33:13.1652304793Z", "2022-05-11T21:33:13.165230Z"),
        ("2022-05-11T21:33:13Z", "2022-05-11T21:33:13Z"),
        ("2022-05-11t21:33:13.5z", "2022-05-11T21:33:13.500000Z"),
        ("2022-05-11T21:33:13.000Z", "2022-05-11T21:33:13Z"),
        ("2022-05-11T23:33:13.123+02:00", "2022-05-11T21:33:13.123000Z"),
        ("2022-05-11T20:03:13-01:30", "2022-05-11T21:33:13Z"),
        ("2022-05-12T01:03:13+0330", "2022-05-11T21:33:13Z"),
        ("2021-12-31T23:30:00-01:00", "2022-01-01T00:30:00Z"),
        ("2022-05-11 21:33:13+00:00", "2022-05-11T21:33:13Z"),
    ],
)
def test_timestamps_are_normalised_to_utc(raw, expected):
    assert normalise_timestamp(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("2022-05-11T21:33:13", "no UTC offset"),
        ("2022-13-11T21:33:13Z", "not a valid date-time"),
        ("2022-02-30T00:00:00Z", "not a valid date-time"),
        ("2022-05-11T21:33:13+25:00", "invalid UTC offset"),
        ("2022-05-11", "not an ISO 8601"),
        ("yesterday", "not an ISO 8601"),
        (1652304793, "got number"),
        ({"at": "2022-05-11T21:33:13Z"}, "got object"),
    ],
)
def test_bad_timestamps_are_refused(raw, why):
    with pytest.raises(MappingError, match=why):
        normalise_timestamp(raw)


def test_timestamp_falls_back_to_original_timestamp_then_received_at():
    event = seed_track(originalTimestamp="2022-05-11T10:00:00Z", receivedAt="2022-05-11T11:00:00Z")
    del event["timestamp"]
    assert accepted(map_element(0, event, SETTINGS)).timestamp == "2022-05-11T10:00:00Z"
    del event["originalTimestamp"]
    assert accepted(map_element(0, event, SETTINGS)).timestamp == "2022-05-11T11:00:00Z"
    del event["receivedAt"]
    outcome = map_element(0, event, SETTINGS)
    assert outcome.rejected and "timestamp: none of 'timestamp'" in refusal(outcome)


def test_unparseable_timestamp_rejects_instead_of_falling_back():
    outcome = map_element(0, seed_track(timestamp="not a time", receivedAt="2022-05-11T11:00:00Z"), SETTINGS)
    assert outcome.rejected and "timestamp: 'timestamp'" in refusal(outcome) and "not a time" in refusal(outcome)


def test_dotted_paths_and_numeric_ids_are_stringified():
    settings = MappingSettings(
        event_name_field="properties.meter",
        external_customer_id_field="context.groupId",
        idempotency_key_field="properties.request_id",
    )
    event = seed_track(context={"groupId": 4711}, properties={"meter": "api_calls", "request_id": "r-1"})
    orb = accepted(map_element(0, event, settings))
    assert (orb.event_name, orb.external_customer_id, orb.idempotency_key) == ("api_calls", "4711", "r-1")
    assert orb.properties == {}


@pytest.mark.parametrize(
    ("context", "error"),
    [
        (None, "external_customer_id: no value at 'context.groupId'"),
        ({}, "external_customer_id: no value at 'context.groupId'"),
        ({"groupId": None}, "external_customer_id: no value at 'context.groupId'"),
        ({"groupId": "  "}, "external_customer_id: 'context.groupId' is empty"),
        ({"groupId": {"id": 1}}, "must be a string or number, got object"),
        ({"groupId": [1]}, "must be a string or number, got array"),
        ({"groupId": True}, "must be a string or number, got boolean"),
        ("acme", "external_customer_id: no value at 'context.groupId'"),
    ],
)
def test_missing_or_unusable_ids_reject_the_event(context, error):
    settings = MappingSettings(external_customer_id_field="context.groupId")
    event = seed_track()
    if context is not None:
        event["context"] = context
    outcome = map_element(3, event, settings)
    assert outcome.rejected and not outcome.accepted
    assert error in refusal(outcome)
    assert outcome.index == 3 and outcome.message_id == "ajs-next-1652304793-abc"


def test_all_problems_of_an_event_are_reported_together():
    outcome = map_element(0, {"type": "track", "properties": {"amount": {"v": 1}}}, SETTINGS)
    for part in ("event_name:", "external_customer_id:", "idempotency_key:", "timestamp:", "properties.amount"):
        assert part in refusal(outcome)


def test_properties_only_mapped_keys_renamed_nulls_dropped():
    settings = MappingSettings(properties_mapping={"amount": "amount_usd", "paid": "paid", "note": "note", "n": "n"})
    event = seed_track(properties={"amount": 12.5, "paid": True, "note": None, "n": 3, "secret": "x"})
    assert accepted(map_element(0, event, settings)).properties == {"amount_usd": 12.5, "paid": True, "n": 3}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"value": 1}, "properties.amount: nested object not allowed"),
        ([1, 2], "properties.amount: nested array not allowed"),
        (float("nan"), "properties.amount: is not a finite number"),
        (float("inf"), "properties.amount: is not a finite number"),
    ],
)
def test_nested_or_non_finite_property_rejects_naming_the_key(value, error):
    outcome = map_element(0, seed_track(properties={"amount": value}), SETTINGS)
    assert outcome.rejected and error in refusal(outcome)


def test_unmapped_nested_property_is_simply_dropped():
    event = seed_track(properties={"amount": 1, "cart": {"items": [1, 2]}})
    assert accepted(map_element(0, event, SETTINGS)).properties == {"amount": 1}


def test_properties_must_be_an_object():
    assert "properties: must be an object, got array" in refusal(map_element(0, seed_track(properties=[1]), SETTINGS))


def test_message_id_longer_than_segment_allows_is_rejected():
    assert "longer than 100" in refusal(map_element(0, seed_track(messageId="m" * 101), SETTINGS))
    assert map_element(0, seed_track(messageId="m" * 100), SETTINGS).accepted


def test_event_over_32_kb_is_rejected():
    outcome = map_element(0, seed_track(context={"blob": "x" * 33_000}), SETTINGS)
    assert outcome.rejected and "more than Segment's limit of 32768" in refusal(outcome)


def test_characters_sqs_cannot_carry_are_rejected():
    outcome = map_element(0, seed_track(event="meter\uffff"), SETTINGS)
    assert outcome.rejected and "U+FFFF" in refusal(outcome)


def test_lone_surrogate_from_json_escape_is_rejected_not_crashing():
    event = json.loads(
        '{"type":"track","event":"a\\ud800","userId":"u","messageId":"m","timestamp":"2022-01-01T00:00:00Z"}'
    )
    assert map_element(0, event, SETTINGS).rejected


@pytest.mark.parametrize("call_type", ["identify", "page", "screen", "group", "alias"])
def test_non_track_calls_are_skipped(call_type):
    outcome = map_element(0, {"type": call_type, "messageId": "m-1"}, SETTINGS)
    assert outcome.skipped and not outcome.rejected and not outcome.accepted
    assert (outcome.call_type, outcome.message_id) == (call_type, "m-1")


@pytest.mark.parametrize(
    ("element", "error"),
    [
        ({"messageId": "m"}, "type: missing"),
        ({"type": "purchase"}, "unknown Segment call type 'purchase'"),
        ({"type": 7}, "type: must be a string, got number"),
        ("track", "event must be an object, got string"),
        (None, "event must be an object, got null"),
    ],
)
def test_elements_without_a_known_type_are_rejected(element, error):
    outcome = map_element(5, element, SETTINGS)
    assert outcome.rejected and error in refusal(outcome) and outcome.index == 5


def test_map_body_handles_every_shape():
    track = seed_track()
    single = map_body(json.dumps(track).encode(), SETTINGS)
    array = map_body(json.dumps([track, {"type": "page"}, 1]).encode(), SETTINGS)
    batch = map_body(json.dumps({"batch": [track, track]}).encode(), SETTINGS)
    assert [o.accepted for o in single] == [True]
    assert [(o.index, o.accepted, o.skipped, o.rejected) for o in array] == [
        (0, True, False, False),
        (1, False, True, False),
        (2, False, False, True),
    ]
    assert len(batch) == 2 and all(o.accepted for o in batch)


def test_map_body_reports_unusable_bodies():
    with pytest.raises(BodyError) as excinfo:
        map_body(b"[1, 2", SETTINGS)
    assert excinfo.value.problem is BodyProblem.MALFORMED
    with pytest.raises(BodyError) as excinfo:
        map_body(json.dumps([seed_track()] * 3).encode(), SETTINGS, max_batch_events=2)
    assert excinfo.value.problem is BodyProblem.TOO_LARGE


def test_event_size_is_measured_in_an_array_body_whatever_its_text_length_suggests():
    # In an array body each element's length in the text bounds its size: only events whose
    # text could reach 32 KB are measured, and one that does is still refused.
    small = seed_track(messageId="small")
    large = seed_track(messageId="large", context={"blob": "\u00e9" * 20_000})  # 20,000 chars, 40,000 bytes
    growing = '{"type":"track","event":"e","userId":"u","messageId":"n","timestamp":"2022-01-01T00:00:00Z",'
    growing += '"context":{"n":[' + ",".join(["1e15"] * 1500) + "]}}"  # 6 KB of text, 28 KB compact
    body = parse_segment_body(
        f"[{json.dumps(small)}, {json.dumps(large, ensure_ascii=False)}, {growing}]".encode(),
        max_body_bytes=1 << 20,
        max_batch_events=10,
    )
    assert body.text_lengths is not None and body.text_lengths[2] == len(growing)
    outcomes = map_elements(body.elements, SETTINGS, body.text_lengths)
    assert outcomes[0].accepted and outcomes[2].accepted
    assert outcomes[1].rejected and "more than Segment's limit of 32768" in refusal(outcomes[1])


@fuzz_settings(200)
@given(
    value=st.recursive(
        st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text() | st.booleans() | st.none(),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5),
        max_leaves=30,
    ),
    ensure_ascii=st.booleans(),
)
def test_compact_size_never_exceeds_five_bytes_per_character_of_any_text_of_the_event(value, ensure_ascii):
    for number in ("1e15", "9E15", "1e-5", "-0e0", "1e22", "5e-324"):  # the forms that grow most
        assert event_size({"n": json.loads(number)}) <= 5 * len(f'{{"n":{number}}}')
    text = json.dumps({"v": value}, ensure_ascii=ensure_ascii, separators=(",", ":"))
    assert event_size({"v": value}) <= 5 * len(text)
