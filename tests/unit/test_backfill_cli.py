"""`orb-bridge backfill` against a moto stack and an Orb fake with the spec's backfill semantics."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from moto import mock_aws

from orb_bridge import aws
from orb_bridge.queues import rejection_record
from orb_bridge.usage_event import OrbUsageEvent
from orb_bridge_dev import backfill_cmd
from orb_bridge_dev.backfill_plan import plan_groups
from orb_bridge_dev.orb_backfill import Pacer
from orb_bridge_dev.rejected_records import Entry
from tests.support.orb_backfill_fake import FakeOrb
from tests.support.rejected_stack import HOUR, STACK, all_bodies, create_stack, orb_event, send

NOW = datetime.now(UTC).replace(microsecond=0)
LATE = NOW - 13 * HOUR


@pytest.fixture
def stack():
    with mock_aws():
        aws.reset_clients()
        yield create_stack({"amount": "amount"})
    aws.reset_clients()


@pytest.fixture
def orb() -> FakeOrb:
    return FakeOrb(now=lambda: NOW)


def run(orb: FakeOrb, state: Path, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    args = backfill_cmd.build_parser().parse_args(
        ["--stack", STACK, "--region", "us-east-1", "--state-file", str(state), *argv]
    )
    code = backfill_cmd.run(
        args,
        {"ORB_API_KEY": "orb-key"},
        out,
        err,
        now=lambda: NOW,
        http=httpx.Client(transport=orb.transport()),
        sleep=lambda _: None,
        wait_seconds=0,
    )
    return code, out.getvalue() + err.getvalue()


def late_records(count: int, start: int = 0, customer: str = "cust_1") -> list[str]:
    return [
        rejection_record(
            stage="orb",
            reason="timestamp outside the grace period",
            orb_event=orb_event(i, LATE + timedelta(minutes=i), customer),
        )
        for i in range(start, start + count)
    ]


def test_dry_run_shows_the_plan_and_changes_nothing(stack, orb, tmp_path):
    sqs, _, rejected_url = stack
    records = late_records(5)
    send(sqs, rejected_url, records)
    orb.events["msg-0"] = {**orb_event(0, LATE), "backfill_id": None, "deprecated": False}
    code, out = run(orb, tmp_path / "state.json")
    assert code == 0 and "dry run: nothing changed" in out
    assert "replace_existing_events: false" in out
    assert f"all customers, {LATE.isoformat()}" in out and "5 event(s) (4 to ingest, 1 already in Orb" in out
    assert orb.backfills == {} and orb.ingest_calls == []
    assert sorted(all_bodies(sqs, rejected_url)) == sorted(records)
    assert not (tmp_path / "state.json").exists()


def test_late_events_are_billed_once_and_nothing_existing_is_replaced(stack, orb, tmp_path):
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(30))
    # Already in Orb: an event that got through (not on the queue), one of ours, one of ours changed since.
    orb.events["live-1"] = {
        **orb_event(99, LATE + 5 * timedelta(minutes=1)),
        "idempotency_key": "live-1",
        "backfill_id": None,
        "deprecated": False,
    }
    orb.events["msg-3"] = {**orb_event(3, LATE + timedelta(minutes=3)), "backfill_id": None, "deprecated": False}
    orb.events["msg-4"] = {
        **orb_event(4, LATE + timedelta(minutes=4)),
        "properties": {"amount": 1000},
        "backfill_id": None,
        "deprecated": False,
    }
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 0, out
    (backfill,) = orb.backfills.values()
    assert backfill["replace_existing_events"] is False and backfill["status"] == "reflected"
    assert backfill["close_time"] == NOW  # closed by the command, not left to the auto-close
    assert all(bid == backfill["id"] for bid, _ in orb.ingest_calls)
    billed = orb.billed()
    assert sorted(billed) == sorted([f"msg-{i}" for i in range(30)] + ["live-1"])
    assert billed["msg-4"]["properties"] == {"amount": 1000}  # never resent: it would not be billed
    assert not any(event["deprecated"] for event in orb.events.values())
    assert orb.duplicate_keys_sent == 0
    assert "ingested 28, already in Orb (skipped) 1" in out and "msg-4 is in Orb with a different body" in out
    # Only the record whose key Orb holds with another body is left.
    assert [json.loads(body)["orb_event"]["idempotency_key"] for body in all_bodies(sqs, rejected_url)] == ["msg-4"]


def test_a_killed_backfill_resumes_the_same_backfill_without_resending(stack, orb, tmp_path, monkeypatch):
    sqs, _, rejected_url = stack
    monkeypatch.setattr(backfill_cmd, "MAX_INGEST_EVENTS", 10)
    send(sqs, rejected_url, late_records(35))
    orb.kill_at_ingest_call = 3
    with pytest.raises(KeyboardInterrupt):
        run(orb, tmp_path / "state.json", "--yes")
    state = json.loads((tmp_path / "state.json").read_text())
    (saved,) = state["backfills"].items()
    assert saved[0] in orb.backfills and len(saved[1]["ingested_keys"]) == 20
    assert len(all_bodies(sqs, rejected_url)) == 35  # nothing deleted before the close

    orb.kill_at_ingest_call = None
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 0, out
    assert list(orb.backfills) == [saved[0]]  # resumed, no second (overlapping) backfill
    assert orb.duplicate_keys_sent == 0 and sum(len(keys) for _, keys in orb.ingest_calls) == 35
    assert sorted(orb.billed()) == sorted(f"msg-{i}" for i in range(35))
    assert all_bodies(sqs, rejected_url) == []


def test_an_overlapping_pending_backfill_is_refused(stack, orb, tmp_path):
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(3))
    someone_else = orb(
        httpx.Request(
            "POST",
            "https://orb.test/v1/events/backfills",
            headers={"Authorization": "Bearer orb-key"},
            json={"timeframe_start": (LATE - HOUR).isoformat(), "timeframe_end": (LATE + HOUR).isoformat()},
        )
    )
    assert someone_else.status_code == 200
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 1 and "overlaps" in out and "close or revert it in Orb first" in out
    assert len(orb.backfills) == 1 and orb.ingest_calls == []
    assert len(all_bodies(sqs, rejected_url)) == 3


def test_no_close_leaves_it_pending_and_a_rerun_closes_it(stack, orb, tmp_path):
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(4))
    code, out = run(orb, tmp_path / "state.json", "--yes", "--no-close", "--close-after-hours", "48")
    assert code == 0 and "left pending (--no-close)" in out
    (backfill,) = orb.backfills.values()
    assert backfill["status"] == "pending" and backfill["close_time"] == NOW + timedelta(hours=48)
    assert len(all_bodies(sqs, rejected_url)) == 4 and orb.billed() == {}
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 0 and backfill["status"] == "reflected" and len(orb.backfills) == 1
    assert sorted(orb.billed()) == [f"msg-{i}" for i in range(4)] and all_bodies(sqs, rejected_url) == []


def test_an_event_orb_refuses_is_kept_and_the_rest_billed(stack, orb, tmp_path):
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(8))
    orb.refuse_keys = {"msg-5"}
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 0 and "Orb refused msg-5" in out
    assert sorted(orb.billed()) == sorted(f"msg-{i}" for i in range(8) if i != 5)
    assert [json.loads(b)["orb_event"]["idempotency_key"] for b in all_bodies(sqs, rejected_url)] == ["msg-5"]


def test_recent_events_are_left_to_replay(stack, orb, tmp_path):
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, [rejection_record(stage="orb", reason="r", orb_event=orb_event(1, NOW - HOUR))])
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 0 and "0 older than the grace period" in out
    assert orb.backfills == {} and len(all_bodies(sqs, rejected_url)) == 1


def _entry(index: int, moment: datetime, customer: str) -> Entry:
    event = OrbUsageEvent(**orb_event(index, moment, customer))
    return Entry(f"m{index}", "r", moment, "orb", "r", moment, event, "backfill")


def test_windows_are_at_most_31_days_and_scoped_per_customer():
    start = datetime(2026, 9, 1, tzinfo=UTC)
    entries = [_entry(i, start + timedelta(days=i * 4), "a" if i % 2 else "b") for i in range(12)]  # 44 days
    account = plan_groups(entries, per_customer=False)
    assert [len(group.events) for group in account] == [8, 4]
    assert all(group.end - group.start <= timedelta(days=31) and group.scope is None for group in account)
    assert all(
        backfilled.event_time is not None and group.start <= backfilled.event_time < group.end
        for group in account
        for backfilled in entries
        if backfilled.event is not None and backfilled.event.idempotency_key in group.events
    )
    per_customer = plan_groups(entries, per_customer=True)
    assert {group.scope for group in per_customer} == {("external_customer_id", "a"), ("external_customer_id", "b")}


def test_the_pacer_keeps_to_the_event_budget():
    clock = [0.0]
    pacer = Pacer(
        requests_per_second=100,
        events_per_minute=1000,
        clock=lambda: clock[0],
        sleep=lambda seconds: clock.__setitem__(0, clock[0] + seconds),
    )
    for _ in range(6):
        pacer.acquire(500)
    # 1,000 events at once (the bucket), then 500 more every 30 s.
    assert clock[0] == pytest.approx(120.0)


def test_a_backfill_created_but_answered_with_a_500_is_adopted_not_duplicated(stack, orb, tmp_path):
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(3))
    real = orb.__call__

    answered: list[httpx.Response] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        response = real(request)
        if request.method == "POST" and request.url.path.endswith("/events/backfills") and not answered:
            answered.append(response)
            return httpx.Response(502, json={"status": 502, "title": "Bad Gateway"})
        return response

    out, err = io.StringIO(), io.StringIO()
    args = backfill_cmd.build_parser().parse_args(
        ["--stack", STACK, "--region", "us-east-1", "--state-file", str(tmp_path / "s.json"), "--yes"]
    )
    code = backfill_cmd.run(
        args,
        {"ORB_API_KEY": "orb-key"},
        out,
        err,
        now=lambda: NOW,
        http=httpx.Client(transport=httpx.MockTransport(flaky)),
        sleep=lambda _: None,
        wait_seconds=0,
    )
    assert code == 0, out.getvalue() + err.getvalue()
    assert len(orb.backfills) == 1 and answered[0].status_code == 200
    assert sorted(orb.billed()) == ["msg-0", "msg-1", "msg-2"] and all_bodies(sqs, rejected_url) == []
