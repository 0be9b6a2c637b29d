"""Hostile-input properties of POST /segment: any body under any headers gets no 5xx, no answer
over Lambda's 6 MB, no rejected record over 256 KiB, and nothing reaches the ingest queue
without authentication; a batch signed over its first event only is never billed.

Derandomised, few examples, no deadline: the suite stays fast and deterministic on 2 cores."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzz_intake import (
    AUTH_TOKEN,
    Intake,
    forged_credentials,
    fuzz_headers,
    http_api_event,
    http_bodies,
    raw_bodies,
    sign,
)
from tests.support.segment_requests import MAX_RECORD_BYTES, MAX_RESPONSE_BYTES, track
from tests.support.strategies import fuzz_settings, json_values

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SETTINGS = fuzz_settings(max_examples=40)

hostile_values = st.one_of(
    json_values,
    st.integers(1, 300).map(lambda depth: "[" * depth + "]" * depth),  # deep nesting (raw JSON text)
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1" * 5000, '"\\ud800"', '"\\udfff x"']),
    st.integers(100, 20_000).map(lambda n: json.dumps("\U0001f600" * n)),
)


@st.composite
def hostile_events(draw: st.DrawFn) -> bytes:
    """A Track call's JSON text with one hostile value spliced in as raw JSON."""
    field = draw(st.sampled_from(["timestamp", "messageId", "userId", "event", "type", "properties", "context"]))
    value = draw(hostile_values)
    raw_value = value if isinstance(value, str) and value[:1] in '["NI-1' else json.dumps(value)
    base = {key: val for key, val in track(draw(st.integers(0, 99))).items() if key != field}
    text = json.dumps(base)
    return (text[:-1] + f', "{field}": {raw_value}}}').encode()


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    events = draw(st.lists(hostile_events(), min_size=1, max_size=5))
    shape = draw(st.sampled_from(["object", "array", "batch"]))
    if shape == "object":
        return events[0]
    joined = b"[" + b",".join(events) + b"]"
    return joined if shape == "array" else b'{"batch":' + joined + b"}"


def check_bounds(response: dict[str, Any], rejected: list[str]) -> None:
    assert response["statusCode"] < 500, response
    assert len(json.dumps(response).encode()) < MAX_RESPONSE_BYTES
    for record in rejected:
        assert len(record.encode()) < MAX_RECORD_BYTES
        json.loads(record, parse_constant=lambda name: pytest.fail(f"{name} in a rejected record"))


@SETTINGS
@given(data=st.data())
def test_any_body_under_any_headers_is_bounded_and_unauthenticated_enqueues_nothing(
    intake_on_moto: Intake,
    data: st.DataObject,
) -> None:
    raw = data.draw(hostile_bodies() | raw_bodies())
    body, is_base64 = data.draw(http_bodies(raw))
    headers = {**data.draw(fuzz_headers), **data.draw(forged_credentials)}
    response, ingested, rejected = intake_on_moto.invoke(http_api_event(body, is_base64, headers))
    check_bounds(response, rejected)
    assert ingested == [] and rejected == []
    assert response["statusCode"] in {400, 401, 413}


@SETTINGS
@given(data=st.data())
def test_authenticated_hostile_bodies_are_bounded(intake_on_moto: Intake, data: st.DataObject) -> None:
    raw = data.draw(hostile_bodies())
    headers = data.draw(
        st.sampled_from([{"authorization": f"Bearer {AUTH_TOKEN}"}, {"x-segment-signature": sign(raw)}])
    )
    response, ingested, rejected = intake_on_moto.invoke(
        http_api_event(raw.decode("utf-8", "surrogatepass"), False, headers)
    )
    check_bounds(response, rejected)
    if response["statusCode"] != 200:
        assert ingested == []


@SETTINGS
@given(events=st.lists(st.integers(0, 10**6), min_size=2, max_size=30), first=st.integers(0, 10**6))
def test_a_batch_signed_over_its_first_event_is_never_billed(
    intake_on_moto: Intake,
    events: list[int],
    first: int,
) -> None:
    signed = json.dumps(track(first), separators=(",", ":")).encode()
    body = b"[" + signed + b"," + b",".join(json.dumps(track(n)).encode() for n in events[1:]) + b"]"
    response, ingested, rejected = intake_on_moto.invoke(
        http_api_event(body.decode(), False, {"x-signature": sign(signed)})
    )
    check_bounds(response, rejected)
    assert response["statusCode"] == 401 and ingested == []
    assert rejected and all(json.loads(record)["replayable"] is False for record in rejected)
