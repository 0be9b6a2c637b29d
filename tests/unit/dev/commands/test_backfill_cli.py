"""`orb-bridge backfill` against a moto stack and an Orb fake with the spec's backfill semantics."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge_dev.commands.backfill import backfiller
from orb_bridge_dev.commands.backfill import command as backfill_cmd
from orb_bridge_dev.commands.backfill.plan import plan_groups
from orb_bridge_dev.deployment.orb_pacer import Pacer
from orb_bridge_dev.deployment.rejected_records import Entry
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


@pytest.mark.parametrize("orb_took_it", [False, True], ids=["killed-before-orb-took-it", "killed-while-orb-held-it"])
def test_a_backfill_killed_mid_ingest_is_reverted_and_redone_never_resent_into(
    stack, orb, tmp_path, monkeypatch, orb_took_it
):
    # Issue 22: killed while Orb held an ingest request, the rerun resumed the same backfill and
    # sent those events into it again (Orb documents no deduplication within a backfill).
    sqs, _, rejected_url = stack
    monkeypatch.setattr(backfiller, "MAX_INGEST_EVENTS", 10)
    send(sqs, rejected_url, late_records(35))
    orb.kill_at_ingest_call, orb.kill_after_ingesting = 3, orb_took_it
    with pytest.raises(KeyboardInterrupt):
        run(orb, tmp_path / "state.json", "--yes")
    (saved,) = json.loads((tmp_path / "state.json").read_text())["backfills"]
    first = saved["backfill_id"]
    assert first in orb.backfills and len(saved["ingested_keys"]) == 20 and len(saved["in_flight_keys"]) == 10
    assert len(all_bodies(sqs, rejected_url)) == 35  # nothing deleted before the close

    orb.kill_at_ingest_call = None
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 0, out
    assert orb.backfills[first]["status"] == "reverted"  # uncertain: reverted, not resumed
    (second,) = [bid for bid in orb.backfills if bid != first]
    assert orb.backfills[second]["status"] == "reflected"
    assert not any(bid == first for bid, _ in orb.ingest_calls[3 if orb_took_it else 2 :])  # never sent into again
    assert sorted(key for bid, keys in orb.ingest_calls if bid == second for key in keys) == sorted(
        f"msg-{i}" for i in range(35)
    )
    assert orb.duplicate_keys_sent == 0
    assert sorted(orb.billed()) == sorted(f"msg-{i}" for i in range(35))
    assert all(event["backfill_id"] == second for event in orb.billed().values())
    assert all_bodies(sqs, rejected_url) == []
    assert json.loads((tmp_path / "state.json").read_text())["backfills"] == []


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


def test_an_ingest_answered_with_a_500_is_not_retried_the_backfill_is_reverted_and_redone(stack, orb, tmp_path):
    # The client used to retry /ingest?backfill_id= itself after a 5xx: a lost answer re-sent the
    # same events into the same backfill.
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(4))
    real = orb.__call__
    lost: list[str] = []

    def ingests_then_fails(request: httpx.Request) -> httpx.Response:
        response = real(request)
        if request.url.path.endswith("/ingest") and not lost:
            lost.append(request.url.params["backfill_id"])
            return httpx.Response(500, headers={"Transient-Error": "true"}, json={"status": 500, "title": "x"})
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
        http=httpx.Client(transport=httpx.MockTransport(ingests_then_fails)),
        sleep=lambda _: None,
        wait_seconds=0,
    )
    assert code == 0, out.getvalue()
    assert f"reverted {lost[0]}: an ingest's answer was lost" in out.getvalue()
    assert [bid for bid, _ in orb.ingest_calls].count(lost[0]) == 1  # never sent into again
    assert orb.backfills[lost[0]]["status"] == "reverted" and orb.duplicate_keys_sent == 0
    assert sorted(orb.billed()) == [f"msg-{i}" for i in range(4)] and all_bodies(sqs, rejected_url) == []


def test_a_version_1_state_file_with_an_open_backfill_is_reverted_not_resumed(stack, orb, tmp_path):
    # Version 1 saved keys only after Orb's 200: an open backfill in it may hold unlisted events.
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(3))
    code, _ = run(orb, tmp_path / "state.json", "--yes", "--no-close")
    (saved,) = json.loads((tmp_path / "state.json").read_text())["backfills"]
    old_id = saved["backfill_id"]
    version_1 = {
        "version": 1,
        "backfills": {
            old_id: {
                "target": saved["target"],
                "scope": None,
                "timeframe_start": saved["timeframe_start"],
                "timeframe_end": saved["timeframe_end"],
                "ingested_keys": ["msg-0"],
                "closed": False,
            }
        },
    }
    (tmp_path / "state.json").write_text(json.dumps(version_1))
    code, out = run(orb, tmp_path / "state.json")
    assert code == 0 and f"saved backfill {old_id}: an ingest's outcome is unknown" in out  # the dry run says so
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 0, out
    assert orb.backfills[old_id]["status"] == "reverted" and len(orb.backfills) == 2
    assert sorted(orb.billed()) == ["msg-0", "msg-1", "msg-2"] and orb.duplicate_keys_sent == 0
    assert all_bodies(sqs, rejected_url) == []


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"version": 2, "backfills": [{"target": 1}]}', '{"version": 9}', "[]", "\xff"],
    ids=["not-json", "bad-entry", "unknown-version", "not-an-object", "not-utf8"],
)
def test_a_state_file_that_is_not_ours_is_refused_with_its_reason(stack, orb, tmp_path, content):
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(2))
    (tmp_path / "state.json").write_bytes(content.encode("latin-1"))
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 2 and "state file" in out and "Traceback" not in out
    assert orb.backfills == {} and len(all_bodies(sqs, rejected_url)) == 2


def test_a_wrong_api_key_is_a_clear_message_not_a_traceback(stack, orb, tmp_path):
    """Before issue 21 the dry run's look-ups let Orb's 401 escape as a traceback."""
    sqs, _, rejected_url = stack
    records = late_records(2)
    send(sqs, rejected_url, records)
    orb.api_key = "the-right-key"  # the CLI sends "orb-key"
    for argv in ((), ("--yes",)):
        code, out = run(orb, tmp_path / "state.json", *argv)
        assert code == 2, out
        assert "Orb refused the API key (HTTP 401" in out and "check ORB_API_KEY" in out
        assert "orb-key" not in out  # the key is never printed
        assert sorted(all_bodies(sqs, rejected_url)) == sorted(records)  # released, untouched
    assert orb.backfills == {} and orb.ingest_calls == []


def test_an_overlap_orb_answers_with_409_keeps_everything_and_a_rerun_resumes(stack, orb, tmp_path, monkeypatch):
    """The spec's 409 for an overlapping backfill (one created after the CLI listed the pending
    ones): nothing is ingested or deleted; once the other backfill is gone, a rerun bills it all."""
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, late_records(3))
    someone_else = orb(
        httpx.Request(
            "POST",
            "https://orb.test/v1/events/backfills",
            headers={"Authorization": "Bearer orb-key"},
            json={"timeframe_start": (LATE - HOUR).isoformat(), "timeframe_end": (LATE + HOUR).isoformat()},
        )
    ).json()
    from orb_bridge_dev.commands.backfill.orb_client import OrbBackfillClient

    with monkeypatch.context() as race:
        race.setattr(OrbBackfillClient, "pending_backfills", lambda self: [])  # created after the listing
        code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 1 and "HTTP 409" in out and "overlaps pending backfill" in out and "rerun to resume" in out
    assert orb.ingest_calls == [] and len(all_bodies(sqs, rejected_url)) == 3

    orb(
        httpx.Request(
            "POST",
            f"https://orb.test/v1/events/backfills/{someone_else['id']}/revert",
            headers={"Authorization": "Bearer orb-key"},
        )
    )
    code, out = run(orb, tmp_path / "state.json", "--yes")
    assert code == 0, out
    assert sorted(orb.billed()) == ["msg-0", "msg-1", "msg-2"] and all_bodies(sqs, rejected_url) == []
