"""Ingest replays rejection records redriven onto the ingest queue (issue 11), and routes late events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.core.config import MappingSettings
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.ingest.messages import SqsMessage
from orb_bridge.ingest.replay import MAX_REPLAY_COUNT
from tests.support.ingest_doubles import FakeOrb, make_service, messages_for, rejected_records, usage_event

EVENT_TIME = "2026-11-21T09:00:00Z"
HOUR = 3600.0


def at(hours_after_event: float) -> float:
    return datetime(2026, 11, 21, 9, tzinfo=UTC).timestamp() + hours_after_event * HOUR


def service(orb: FakeOrb, queue: str, mapping=lambda: MappingSettings(), now: float = at(1), **settings):
    built = make_service(orb, queue, **settings)
    built.mapping_settings = mapping
    built.clock = lambda: now
    return built


def segment_track(key: str, **changes) -> dict:
    event = {
        "type": "track",
        "event": "api_call",
        "userId": "cust-1",
        "messageId": key,
        "timestamp": EVENT_TIME,
        "properties": {"units": 3},
    }
    event.update(changes)
    return event


def intake_record(key: str, **changes) -> str:
    return rejection_record(
        stage="intake", reason="mapping: no external customer id", segment_event=segment_track(key, **changes)
    )


def plenty_of_time() -> float:
    return 60.0


def test_a_redriven_intake_record_is_re_mapped_with_the_current_mapping_and_sent(rejected_queue):
    orb = FakeOrb()
    mapping = MappingSettings(properties_mapping={"units": "units"})
    messages = [SqsMessage("redriven", intake_record("seg-1")), *messages_for([usage_event(1)])]
    report = service(orb, rejected_queue, lambda: mapping).ingest(messages, plenty_of_time)

    assert report.failed_message_ids == [] and report.events_ingested == 2
    assert report.events_replayed == 1 and report.replays_refused == 0
    (sent,) = [event for event in orb.requests[0] if event["idempotency_key"] == "seg-1"]
    assert sent["external_customer_id"] == "cust-1" and sent["properties"] == {"units": 3}
    assert rejected_records(rejected_queue) == []


def test_a_replayed_event_refused_again_goes_back_once_flat_with_a_replay_count(rejected_queue):
    orb = FakeOrb()
    orb.invalid_keys = {"key-2": ["amount must be a number"]}
    first = rejection_record(
        stage="orb", reason="Orb refused the event", errors=["old"], orb_event=usage_event(2).to_orb()
    )
    report = service(orb, rejected_queue).ingest([SqsMessage("m", first)], plenty_of_time)

    assert report.failed_message_ids == [] and report.events_rejected_by_orb == 1
    (record,) = rejected_records(rejected_queue)
    assert record["stage"] == "orb" and record["errors"] == ["amount must be a number"]
    assert record["orb_event"] == usage_event(2).to_orb()  # at top level, never nested
    assert record["replay_count"] == 1
    assert [entry["reason"] for entry in record["history"]] == ["Orb refused the event"]
    assert "message_body" not in record


def test_a_record_replayed_too_often_is_not_sent_again(rejected_queue):
    orb = FakeOrb()
    tired = json.loads(rejection_record(stage="orb", reason="refused", orb_event=usage_event(3).to_orb()))
    tired["replay_count"] = MAX_REPLAY_COUNT
    report = service(orb, rejected_queue).ingest([SqsMessage("m", json.dumps(tired))], plenty_of_time)

    assert orb.requests == [] and report.failed_message_ids == []
    assert report.replays_refused == 1
    (record,) = rejected_records(rejected_queue)
    assert record["replay_count"] == MAX_REPLAY_COUNT + 1 and "orb-bridge replay" in record["reason"]


def test_while_the_mapping_is_broken_redriven_intake_records_wait_and_plain_events_flow(rejected_queue):
    orb = FakeOrb()

    def broken() -> MappingSettings:
        raise ConfigurationError("PROPERTIES_MAPPING is not valid JSON")

    messages = [SqsMessage("redriven", intake_record("seg-1")), *messages_for([usage_event(1)])]
    report = service(orb, rejected_queue, broken).ingest(messages, plenty_of_time)

    assert orb.sent_keys() == ["key-1"]
    assert report.failed_message_ids == ["redriven"] == report.mapping_error_message_ids
    assert "PROPERTIES_MAPPING" in report.mapping_error
    assert rejected_records(rejected_queue) == []


def test_a_replayed_segment_call_that_is_not_billed_is_acknowledged(rejected_queue):
    orb = FakeOrb()
    record = rejection_record(stage="intake", reason="x", segment_event={"type": "identify", "userId": "u"})
    report = service(orb, rejected_queue).ingest([SqsMessage("m", record)], plenty_of_time)

    assert orb.requests == [] and report.failed_message_ids == [] and rejected_records(rejected_queue) == []


def test_an_event_orb_refuses_past_the_grace_period_names_the_backfill_command(rejected_queue):
    orb = FakeOrb()
    orb.invalid_keys = {"key-1": ["too old"], "key-2": ["bad property"]}
    late = usage_event(1)
    fresh = usage_event(2, timestamp="2026-11-21T21:30:00Z")  # 30 min before now, within 12 h
    report = service(orb, rejected_queue, now=at(13)).ingest(messages_for([late, fresh]), plenty_of_time)

    assert report.late_events_rejected == 1
    records = {record["orb_event"]["idempotency_key"]: record for record in rejected_records(rejected_queue)}
    assert records["key-1"]["reason"].startswith("outside Orb's grace period (12 h): Orb refused the event")
    assert "orb-bridge backfill --stack <name>" in records["key-1"]["hint"]
    assert "grace period" not in records["key-2"]["reason"] and "hint" not in records["key-2"]


def test_in_the_dev_stack_the_late_event_hint_names_dev(rejected_queue, monkeypatch):
    monkeypatch.setenv("ORB_BRIDGE_BACKFILL_TARGET", "--dev")  # what the dev stack sets
    orb = FakeOrb()
    orb.invalid_keys = {"key-1": ["too old"]}
    service(orb, rejected_queue, now=at(13)).ingest(messages_for([usage_event(1)]), plenty_of_time)
    (record,) = rejected_records(rejected_queue)
    assert "`orb-bridge backfill --dev`" in record["hint"]


def test_the_grace_period_follows_the_setting(rejected_queue):
    orb = FakeOrb()
    orb.invalid_keys = {"key-1": ["too old"]}
    report = service(orb, rejected_queue, now=at(13), grace_period_hours=24).ingest(
        messages_for([usage_event(1)]), plenty_of_time
    )

    assert report.late_events_rejected == 0
    (record,) = rejected_records(rejected_queue)
    assert "hint" not in record


def test_a_late_record_replayed_and_refused_for_another_reason_loses_its_old_hint(rejected_queue):
    orb = FakeOrb()
    orb.invalid_keys = {"key-2": ["bad property"]}
    fresh = usage_event(2, timestamp="2026-11-21T21:30:00Z")
    old = json.loads(
        rejection_record(
            stage="orb",
            reason="outside Orb's grace period (12 h): refused",
            orb_event=fresh.to_orb(),
            extra={"hint": "backfill it", "sqs_message_ids": ["x"]},
        )
    )
    service(orb, rejected_queue, now=at(13)).ingest([SqsMessage("m", json.dumps(old))], plenty_of_time)

    (record,) = rejected_records(rejected_queue)
    assert "hint" not in record and record["sqs_message_ids"] == ["m"] and record["replay_count"] == 1
