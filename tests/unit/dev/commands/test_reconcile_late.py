"""Past Orb's grace period `orb-bridge reconcile --repair` never re-sends on its own: it lists the
events and the exact commands a person runs once they decide the events are truly lost. Only
``--repair --yes --late-to-rejected`` writes them to the rejected queue, as records `orb-bridge
backfill` plans as late events and bills once (a rerun's duplicate record included)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge_dev.commands.backfill import command as backfill_cmd
from orb_bridge_dev.commands.reconcile import command as reconcile
from orb_bridge_dev.commands.reconcile.late import LATE_REASON
from tests.support.audit_archive import write_archive_object
from tests.support.orb_backfill_fake import FakeOrb
from tests.support.reconcile_stack import REGION, Recorder, create_reconcile_stack, run_command
from tests.support.rejected_stack import STACK, all_bodies

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LATE_HOUR = NOW - timedelta(hours=20)  # past the 12-hour grace period
FRESH_HOUR = NOW - timedelta(hours=2)


@pytest.fixture
def moto():
    with mock_aws():
        aws.reset_clients()
        yield
    aws.reset_clients()


def event(key: str, at: datetime) -> dict[str, Any]:
    return {
        "event_name": "payment_confirmed",
        "idempotency_key": key,
        "external_customer_id": "cust_1",
        "timestamp": (at + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "properties": {"amount": 3},
    }


def lost(bucket: str) -> None:
    """k-late and k-fresh archived (Orb answered 200), each reported not found in Orb."""
    s3 = boto3.client("s3", region_name=REGION)
    for key, hour in (("k-late", LATE_HOUR), ("k-fresh", FRESH_HOUR)):
        write_archive_object(s3, bucket, [event(key, hour)], hour)
        text = hour.strftime("%Y-%m-%dT%H")
        report = {
            "hour": text,
            "pass": "after-grace",
            "generated_at": NOW.isoformat(),
            "archived_keys": 1,
            "counts": {"not_found": 1},
            "not_present": {"not_found": [key]},
        }
        s3.put_object(Bucket=bucket, Key=f"reports/sent_hour={text}/after-grace.json", Body=json.dumps(report))


def repair(orb: FakeOrb, *argv: str) -> tuple[int, str, str]:
    recorder = Recorder(orb, {"api.withorb.com"})
    return run_command(reconcile, ["--repair", *argv], NOW, recorder.client(), pace=lambda: None)


def rejected(stack: dict[str, str]) -> list[dict[str, Any]]:
    return [json.loads(body) for body in all_bodies(boto3.client("sqs", region_name=REGION), stack["RejectedQueueUrl"])]


def backfill(orb: FakeOrb, tmp_path: Any, *argv: str) -> tuple[int, str]:
    args = backfill_cmd.build_parser().parse_args(
        ["--stack", STACK, "--region", REGION, "--state-file", str(tmp_path / "state.json"), *argv]
    )
    out = io.StringIO()
    code = backfill_cmd.run(
        args,
        {"ORB_API_KEY": "orb-key"},
        out,
        out,
        now=lambda: NOW,
        http=Recorder(orb, {"api.withorb.com"}).client(),
        sleep=lambda _: None,
        wait_seconds=0,
    )
    return code, out.getvalue()


def test_past_the_grace_period_repair_lists_and_prints_the_commands_writing_nothing(moto) -> None:
    stack = create_reconcile_stack()
    lost(stack["AuditBucketName"])
    orb = FakeOrb(now=lambda: NOW)
    for argv in ([], ["--yes"], ["--late-to-rejected"]):
        code, out, err = repair(orb, *argv)
        assert code == 0, err
        assert "past the grace period: k-late" in out and "would bill it twice" in out
        assert f"orb-bridge reconcile --stack {STACK} --repair --yes --late-to-rejected" in out
        assert f"orb-bridge backfill --stack {STACK} --stage orb --reason-contains 'past the grace period'" in out
        assert rejected(stack) == []
    document = json.loads(repair(orb, "--json")[1])["repair"]
    assert document["past_grace_period"] == ["k-late"] and document["resend"] == ["k-fresh"]
    assert document["late_to_rejected"]["asked"] is False and "written" not in document["late_to_rejected"]


def test_late_to_rejected_goes_with_repair(moto) -> None:
    create_reconcile_stack()
    code, _out, err = run_command(
        reconcile, ["--late-to-rejected"], NOW, Recorder(FakeOrb(now=lambda: NOW), set()).client()
    )
    assert code == 2 and "--late-to-rejected goes with --repair" in err


def test_late_to_rejected_writes_records_backfill_bills_once(moto, tmp_path) -> None:
    stack = create_reconcile_stack()
    lost(stack["AuditBucketName"])
    orb = FakeOrb(now=lambda: NOW)
    code, out, err = repair(orb, "--yes", "--late-to-rejected")
    assert code == 0, err
    assert "wrote 1 of them to the rejected queue" in out
    (record,) = rejected(stack)
    assert (
        record["stage"] == "orb"
        and record["reason"] == LATE_REASON
        and record["orb_event"] == event("k-late", LATE_HOUR)
    )
    # only the late event: the fresh one went through live ingest (the ingest queue)
    assert [
        json.loads(b)["idempotency_key"]
        for b in all_bodies(boto3.client("sqs", region_name=REGION), stack["IngestQueueUrl"])
    ] == ["k-fresh"]

    # killed before it reported, then rerun: a second record of the same event
    assert repair(orb, "--yes", "--late-to-rejected")[0] == 0
    assert len(rejected(stack)) == 2

    code, out = backfill(orb, tmp_path, "--stage", "orb", "--reason-contains", "past the grace period")
    assert code == 0, out
    assert "1 event(s) (1 to ingest" in out and "dry run" in out
    code, out = backfill(orb, tmp_path, "--stage", "orb", "--reason-contains", "past the grace period", "--yes")
    assert code == 0, out
    assert sorted(orb.billed()) == ["k-late"] and orb.duplicate_keys_sent == 0
    assert rejected(stack) == []
    # and the next repair finds Orb holds it: nothing to write
    document = json.loads(repair(orb, "--json")[1])["repair"]
    assert document["past_grace_period"] == [] and "k-late" in document["now_in_orb"]
