"""One malformed record never fails a batch or a CLI run (issue 22, item 9).

A redriven record with a non-list ``history`` used to raise in ``rejection_after``: the whole
ingest invocation failed (1,000 good events redelivered until they dead-lettered), and
`orb-bridge replay` crashed before its release, holding every record it had received for 900 s.
A record that does not read as ours is now rejected alone, kept whole with its reason.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.record_shape import UNREADABLE_REASON
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.core.config import MappingSettings
from orb_bridge.ingest.messages import SqsMessage
from orb_bridge.ingest.replay import Action, read_ingest_message, rejection_after, replay_record
from orb_bridge_dev.commands import replay as replay_cmd
from orb_bridge_dev.commands.backfill import command as backfill_cmd
from orb_bridge_dev.deployment import rejected_plan
from tests.support.ingest_doubles import FakeOrb, make_service, messages_for, rejected_records, usage_event
from tests.support.rejected_stack import STACK, all_bodies, create_stack, orb_event, send
from tests.support.strategies import fuzz_settings, json_values

NOW = datetime.now(UTC).replace(microsecond=0)


def malformed(field: str, value: Any, **payload: Any) -> str:
    record = json.loads(rejection_record(stage="orb", reason="refused", orb_event=usage_event(7).to_orb()))
    record.update(payload)
    record[field] = value
    return json.dumps(record)


# Each would reach rejection_after (refused again, or not replayable) or be misread.
MALFORMED = [
    ("history", 5, {"replayable": False}),
    ("history", 5, {"orb_event": {"event_name": 1}}),
    ("history", {"stage": "orb"}, {}),
    ("history", "a string", {}),
    ("errors", {"e": 1}, {}),
    ("replay_count", "2", {}),
    ("replay_count", True, {}),
    ("replay_count", 2.5, {}),
    ("replayable", "no", {}),
    ("rejected_at", 5, {}),
    ("first_rejected_at", ["x"], {}),
]


@pytest.mark.parametrize(("field", "value", "payload"), MALFORMED)
def test_a_record_that_does_not_read_as_ours_is_refused_alone_with_its_reason(field, value, payload) -> None:
    body = malformed(field, value, **payload)
    item = read_ingest_message(body, lambda: pytest.fail("no mapping needed"))
    assert item.action is Action.REJECT and item.is_replay and item.rejection is not None
    record = json.loads(item.rejection)
    assert record["stage"] == "ingest" and record["replayable"] is False
    assert record["reason"].startswith(f"{UNREADABLE_REASON}: {field} must be")
    assert json.loads(record["message_body"]) == json.loads(body)  # kept whole
    # Redriven once more, it is refused the same way: one level of wrapping, never more.
    again = json.loads(read_ingest_message(item.rejection, lambda: pytest.fail("no mapping")).rejection or "")
    assert again["reason"] == record["reason"] and json.loads(again["message_body"]) == json.loads(body)


def test_rejection_after_tolerates_any_history() -> None:
    for history in (5, "text", {"a": 1}, None, [1, "x", {"stage": "orb", "reason": "old"}]):
        record = json.loads(
            rejection_after({"stage": "orb", "reason": "r", "history": history}, stage="orb", reason="n")
        )
        assert record["replay_count"] == 1 and record["history"][-1]["reason"] == "r"
        assert all(isinstance(entry, dict) for entry in record["history"])


def test_ingest_sends_the_good_events_and_rejects_only_the_malformed_one(rejected_queue) -> None:
    orb = FakeOrb()
    good = messages_for([usage_event(i) for i in range(1000)])
    bad = SqsMessage("bad", malformed("history", 5, replayable=False))
    messages = [*good[:500], bad, *good[500:]]
    report = make_service(orb, rejected_queue).ingest(messages, lambda: 60.0)

    assert report.failed_message_ids == [] and report.events_ingested == 1000
    assert sorted(orb.sent_keys()) == sorted(f"key-{i}" for i in range(1000))
    (record,) = rejected_records(rejected_queue)
    assert record["sqs_message_id"] == "bad" and record["reason"].startswith(UNREADABLE_REASON)
    assert "history must be a list, got int" in record["reason"]


@pytest.fixture
def stack():
    with mock_aws():
        aws.reset_clients()
        yield create_stack({"amount": "amount"})
    aws.reset_clients()


def good_records(count: int, at: datetime) -> list[str]:
    return [rejection_record(stage="orb", reason="late", orb_event=orb_event(i, at)) for i in range(count)]


@pytest.mark.parametrize("mode", [(), ("--yes",)], ids=["dry-run", "yes"])
def test_replay_reports_a_malformed_record_and_releases_every_record(stack, mode) -> None:
    sqs, ingest_url, rejected_url = stack
    bad = malformed("history", 5, replayable=False)
    records = [*good_records(12, NOW - timedelta(hours=2)), bad]
    send(sqs, rejected_url, records)
    out, err = io.StringIO(), io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--stack", STACK, "--region", "us-east-1", *mode])
    assert replay_cmd.run(args, {}, out, err, now=lambda: NOW, wait_seconds=0) == 0
    output = out.getvalue()
    assert "keep: unreadable record: history must be a list, got int" in output
    left = all_bodies(sqs, rejected_url)  # visible at once: nothing held for the 900 s
    assert left == [bad] if mode else sorted(left) == sorted(records)
    assert len(all_bodies(sqs, ingest_url)) == (12 if mode else 0)


def test_a_record_no_reader_expects_is_kept_and_every_record_released(stack, monkeypatch, tmp_path) -> None:
    """Whatever reading one record raises, the run goes on and releases everything it received."""
    sqs, _, rejected_url = stack
    records = [*good_records(5, NOW - timedelta(hours=13)), "poison"]
    send(sqs, rejected_url, records)
    real_classify = rejected_plan.classify

    def classify(message: Any, *args: Any) -> Any:
        if message["Body"] == "poison":
            raise RuntimeError("unexpected")
        return real_classify(message, *args)

    monkeypatch.setattr(rejected_plan, "classify", classify)
    out, err = io.StringIO(), io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--stack", STACK, "--region", "us-east-1"])
    assert replay_cmd.run(args, {}, out, err, now=lambda: NOW, wait_seconds=0) == 0
    assert "unreadable record (RuntimeError): left on the rejected queue" in out.getvalue()
    assert sorted(all_bodies(sqs, rejected_url)) == sorted(records)
    # backfill reads through the same plan: the five late events are planned, the poison kept.
    out = io.StringIO()
    args = backfill_cmd.build_parser().parse_args(
        ["--stack", STACK, "--region", "us-east-1", "--state-file", str(tmp_path / "s.json")]
    )
    assert backfill_cmd.run(args, {"ORB_API_KEY": "k"}, out, err, now=lambda: NOW, http=_no_orb(), wait_seconds=0) == 0
    assert "6 record(s) on the rejected queue, 6 selected, 5 older" in out.getvalue()
    assert sorted(all_bodies(sqs, rejected_url)) == sorted(records)


def _no_orb() -> Any:
    import httpx

    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={"data": []})))


_RECORD_FIELDS = [
    "errors",
    "history",
    "replay_count",
    "replayable",
    "rejected_at",
    "first_rejected_at",
    "orb_event",
    "segment_event",
    "message_body",
    "hint",
    "sqs_message_id",
]


@given(
    stage=st.sampled_from(["intake", "orb", "ingest"]),
    fields=st.dictionaries(st.sampled_from(_RECORD_FIELDS), json_values, max_size=6),
    replay_limit=st.booleans(),
)
@fuzz_settings(max_examples=300)
def test_no_record_of_any_shape_makes_reading_raise(stage: str, fields: dict[str, Any], replay_limit: bool) -> None:
    """Whatever a record holds, reading it decides an action; a refusal is one readable record."""
    body = json.dumps({"stage": stage, "reason": "r", **fields})
    item = read_ingest_message(body, lambda: MappingSettings())
    assert item.action in set(Action)
    if item.action is Action.REJECT:
        record = json.loads(item.rejection or "")
        assert record["stage"] in ("intake", "orb", "ingest") and isinstance(record["reason"], str)
    replay_record(json.loads(body), lambda: MappingSettings(), ignore_limit=replay_limit)
