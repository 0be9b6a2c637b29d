"""Property tests on POST /segment: whatever arrives, no 5xx, no escaping exception, and nothing
unauthenticated or invalid reaches the ingest queue.

SQS is moto's (in-process); each example gets fresh queues so what one request enqueued is
seen exactly. Examples are derandomised so CI runs the same inputs every time.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import event as record_event
from hypothesis import given
from hypothesis import strategies as st

from orb_bridge.orb.usage_event import OrbUsageEvent
from tests.support.fuzz_intake import (
    AUTH_TOKEN,
    PROPERTIES_MAPPING,
    Intake,
    as_id,
    first_element_bytes,
    forged_credentials,
    fuzz_headers,
    http_api_event,
    http_bodies,
    raw_bodies,
    sign,
    track_elements,
)
from tests.support.strategies import fuzz_settings

# Powertools warns when an invocation published no metric (every refused request): noise here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

FUZZ_SETTINGS = fuzz_settings(max_examples=200)


# ---- properties ---------------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(data=st.data())
def test_unauthenticated_requests_never_enqueue_anything(intake_on_moto: Intake, data: st.DataObject) -> None:
    raw = data.draw(raw_bodies())
    body, is_base64 = data.draw(http_bodies(raw))
    headers = {**data.draw(fuzz_headers), **data.draw(forged_credentials)}
    if headers.get("x-signature", "").strip().lower() in {sign(raw), sign(first_element_bytes(raw) or b"")}:
        return  # astronomically unlikely; a forged header that happens to be right is not forged

    response, ingested, rejected = intake_on_moto.invoke(http_api_event(body, is_base64, headers))

    record_event(f"status {response['statusCode']}")
    assert response["statusCode"] in {400, 401, 413}, response
    assert json.loads(response["body"])["message"]
    assert ingested == [] and rejected == []


@FUZZ_SETTINGS
@given(data=st.data())
def test_authenticated_requests_enqueue_only_valid_events(intake_on_moto: Intake, data: st.DataObject) -> None:
    raw = data.draw(raw_bodies())
    body, is_base64 = data.draw(http_bodies(raw))
    credential = data.draw(st.sampled_from(["bearer", "signature", "first-element-signature"]))
    headers = data.draw(fuzz_headers)
    if credential == "bearer":
        headers["Authorization"] = f"Bearer {AUTH_TOKEN}"
    elif credential == "signature":
        headers["X-Signature"] = sign(raw)
    else:
        headers["x-signature"] = sign(first_element_bytes(raw) or raw)

    response, ingested, rejected = intake_on_moto.invoke(http_api_event(body, is_base64, headers))

    status = response["statusCode"]
    record_event(f"status {status}")
    assert status < 500, response
    answer = json.loads(response["body"])
    events = [OrbUsageEvent.from_message_body(message) for message in ingested]  # each one valid
    if status != 200:
        assert ingested == [], "a refused request must not enqueue usage events"
        assert answer.get("message")
        return

    # Accepted: exactly the Track calls that map, one message each, with what the sender sent.
    assert answer["accepted"] == len(ingested)
    assert answer["accepted"] + answer["skipped"] >= 1
    elements = track_elements(raw)
    assert answer["accepted"] + answer["skipped"] + len(answer["rejected"]) == len(elements)
    assert len(rejected) == len(answer["rejected"])
    for record in map(json.loads, rejected):
        assert record["stage"] == "intake" and record["reason"]
    rejected_indexes = {item["index"] for item in answer["rejected"]}
    sources = [
        element
        for index, element in enumerate(elements)
        if index not in rejected_indexes and isinstance(element, dict) and element.get("type") == "track"
    ]
    expected = sorted((as_id(s["messageId"]), as_id(s["event"]), as_id(s["userId"])) for s in sources)
    assert sorted((e.idempotency_key, e.event_name, e.external_customer_id) for e in events) == expected
    for event in events:
        assert set(event.properties) <= set(PROPERTIES_MAPPING.values())
