"""orb_bridge.ingest.replay: what an ingest-queue message carries, and records that fail again."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.core.config import MappingSettings
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.ingest.replay import (
    MAX_REPLAY_COUNT,
    Action,
    IngestMessage,
    read_ingest_message,
    rejection_after,
)
from orb_bridge.orb.usage_event import OrbUsageEvent

EVENT = {
    "event_name": "payment_confirmed",
    "idempotency_key": "msg-1",
    "timestamp": "2026-11-23T10:00:00Z",
    "external_customer_id": "cust_1",
    "properties": {"amount": 100},
}
SEGMENT_EVENT = {
    "type": "track",
    "event": "payment_confirmed",
    "userId": "cust_1",
    "messageId": "msg-1",
    "timestamp": "2026-11-23T10:00:00Z",
    "properties": {"amount": 100, "currency": "USD"},
}
FIXED = MappingSettings(properties_mapping={"amount": "amount"})


def sent(message: IngestMessage) -> OrbUsageEvent:
    assert message.event is not None, message.detail
    return message.event


def rejection_of(message: IngestMessage) -> str:
    assert message.rejection is not None, message.detail
    return message.rejection


def origin_of(message: IngestMessage) -> Mapping[str, Any]:
    assert message.origin is not None, message.detail
    return message.origin


def settings() -> MappingSettings:
    return FIXED


def test_a_plain_usage_event_is_sent_as_is():
    message = read_ingest_message(json.dumps(EVENT), settings)
    assert message.action is Action.SEND
    assert message.event == OrbUsageEvent(**EVENT)
    assert message.origin is None and not message.is_replay


def test_an_unreadable_body_is_rejected_once_with_the_body_kept():
    message = read_ingest_message('{"nope": 1}', settings)
    assert message.action is Action.REJECT
    record = json.loads(rejection_of(message))
    assert record["stage"] == "ingest" and record["message_body"] == '{"nope": 1}'
    assert "replay_count" not in record


@pytest.mark.parametrize("stage", ["orb", "ingest"])
def test_an_orb_or_ingest_record_replays_its_orb_event(stage):
    body = rejection_record(stage=stage, reason="Orb refused it", errors=["x"], orb_event=EVENT)
    message = read_ingest_message(body, settings)
    assert message.action is Action.SEND
    assert sent(message).to_orb() == EVENT
    assert origin_of(message)["reason"] == "Orb refused it"


def test_an_intake_record_is_remapped_with_the_current_settings():
    # Rejected under a mapping that named a missing field; the fixed settings map it.
    body = rejection_record(
        stage="intake", reason="external_customer_id: no value at 'accountId'", segment_event=SEGMENT_EVENT
    )
    message = read_ingest_message(body, settings)
    assert message.action is Action.SEND
    assert sent(message).to_orb() == EVENT  # currency is not in the fixed mapping


def test_an_intake_record_that_still_fails_mapping_goes_back_once_with_a_count():
    broken = MappingSettings(external_customer_id_field="accountId")
    body = rejection_record(
        stage="intake", reason="first", segment_event=SEGMENT_EVENT, extra={"index": 0, "message_id": "msg-1"}
    )
    message = read_ingest_message(body, lambda: broken)
    assert message.action is Action.REJECT
    record = json.loads(rejection_of(message))
    assert record["stage"] == "intake" and "accountId" in record["reason"]
    assert record["segment_event"] == SEGMENT_EVENT and record["message_id"] == "msg-1"
    assert record["replay_count"] == 1 and record["history"][0]["reason"] == "first"
    assert "message_body" not in record  # not wrapped


def test_a_configuration_error_leaves_the_record_for_redelivery():
    def broken():
        raise ConfigurationError("EXTERNAL_CUSTOMER_ID_FIELD is required")

    body = rejection_record(stage="intake", reason="r", segment_event=SEGMENT_EVENT)
    assert read_ingest_message(body, broken).action is Action.RETRY
    # ... while a plain event never needs the mapping.
    assert read_ingest_message(json.dumps(EVENT), broken).action is Action.SEND


def test_a_non_track_call_replayed_is_skipped():
    body = rejection_record(stage="intake", reason="r", segment_event={**SEGMENT_EVENT, "type": "identify"})
    assert read_ingest_message(body, settings).action is Action.SKIP


def test_a_record_marked_not_replayable_is_never_replayed():
    body = rejection_record(stage="intake", reason="too big", extra={"replayable": False, "segment_event_excerpt": "{"})
    message = read_ingest_message(body, settings)
    assert message.action is Action.REJECT and message.event is None
    record = json.loads(rejection_of(message))
    assert record["reason"].startswith("not replayable") and "too big" in record["reason"]
    assert record["replayable"] is False and record["segment_event_excerpt"] == "{"


def test_a_record_without_any_event_is_kept_with_a_clear_reason():
    body = rejection_record(stage="intake", reason="body unusable", extra={"body_excerpt": "xx"})
    record = json.loads(rejection_of(read_ingest_message(body, settings)))
    assert record["reason"].startswith("not replayable: the record carries no event")


def test_failing_again_at_orb_keeps_the_payload_at_top_level_and_counts():
    origin = json.loads(rejection_record(stage="intake", reason="mapping", segment_event=SEGMENT_EVENT))
    again = json.loads(
        rejection_after(
            origin,
            stage="orb",
            reason="Orb refused the event",
            errors=["stale"],
            orb_event=EVENT,
            extra={"sqs_message_ids": ["m2"]},
        )
    )
    assert again["stage"] == "orb" and again["reason"] == "Orb refused the event" and again["errors"] == ["stale"]
    assert again["segment_event"] == SEGMENT_EVENT and again["orb_event"] == EVENT
    assert again["replay_count"] == 1 and again["first_rejected_at"] == origin["rejected_at"]
    # ... and once more: still flat, count 2, both earlier failures in the history.
    third = json.loads(rejection_after(again, stage="orb", reason="again", orb_event=EVENT))
    assert third["replay_count"] == 2 and [h["reason"] for h in third["history"]] == [
        "mapping",
        "Orb refused the event",
    ]
    assert third["first_rejected_at"] == origin["rejected_at"]
    assert not any(isinstance(value, str) and '"stage"' in value for value in third.values())


def test_without_an_origin_it_is_a_plain_rejection_record():
    record = json.loads(rejection_after(None, stage="orb", reason="r", orb_event=EVENT))
    assert record["stage"] == "orb" and "replay_count" not in record


def test_the_replay_limit_stops_a_redrive_loop():
    body = rejection_record(stage="orb", reason="r", orb_event=EVENT)
    for expected_count in range(1, MAX_REPLAY_COUNT + 1):
        message = read_ingest_message(body, settings)
        assert message.action is Action.SEND  # it fails at Orb again:
        body = rejection_after(message.origin, stage="orb", reason="stale", orb_event=sent(message).to_orb())
        assert json.loads(body)["replay_count"] == expected_count
    message = read_ingest_message(body, settings)
    assert message.action is Action.REJECT and message.event is None
    record = json.loads(rejection_of(message))
    assert "not replayed again" in record["reason"] and record["orb_event"] == EVENT
    assert len(record["history"]) <= MAX_REPLAY_COUNT + 1


def test_a_record_wrapped_by_an_older_ingest_is_unwrapped():
    inner = rejection_record(stage="orb", reason="Orb refused", orb_event=EVENT)
    wrapped = rejection_record(
        stage="ingest", reason="message body is not a valid Orb usage event", extra={"message_body": inner}
    )
    message = read_ingest_message(wrapped, settings)
    assert message.action is Action.SEND and sent(message).to_orb() == EVENT
    assert origin_of(message)["reason"] == "Orb refused"


def test_an_ingest_record_keeping_a_valid_body_replays_it():
    body = rejection_record(stage="ingest", reason="transient", extra={"message_body": json.dumps(EVENT)})
    message = read_ingest_message(body, settings)
    assert message.action is Action.SEND and sent(message).to_orb() == EVENT


def test_an_invalid_orb_event_in_a_record_goes_back_with_the_reason():
    body = rejection_record(stage="orb", reason="r", orb_event={**EVENT, "timestamp": "yesterday"})
    record = json.loads(rejection_of(read_ingest_message(body, settings)))
    assert record["stage"] == "ingest" and "orb_event is not a valid" in record["reason"]
    assert record["replay_count"] == 1
