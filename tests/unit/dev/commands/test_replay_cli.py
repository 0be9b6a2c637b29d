"""`orb-bridge replay` against a moto stack, drained by the real ingest into an Orb fake."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import moto.sqs.models
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.queues import SqsQueue
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.ingest.messages import SqsMessage
from orb_bridge.ingest.service import IngestService
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.orb.client import OrbClient
from orb_bridge_dev.commands import replay as replay_cmd
from tests.support.orb_backfill_fake import FakeOrb
from tests.support.rejected_stack import HOUR, STACK, all_bodies, create_stack, orb_event, segment_event, send

NOW = datetime.now(UTC).replace(microsecond=0)
FIXED_MAPPING = {"amount": "amount"}


@pytest.fixture
def stack():
    with mock_aws():
        aws.reset_clients()
        yield create_stack(FIXED_MAPPING)
    aws.reset_clients()


def run(*argv: str, session_factory: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--stack", STACK, "--region", "us-east-1", *argv])
    code = replay_cmd.run(args, {}, out, err, now=lambda: NOW, session_factory=session_factory, wait_seconds=0)
    return code, out.getvalue(), err.getvalue()


def drain_into_orb(sqs: Any, ingest_url: str, rejected_url: str, orb: FakeOrb) -> None:
    """One ingest invocation per receive, as the event source mapping would run it."""
    settings = IngestSettings(
        orb_api_base_url="https://orb.test/v1", orb_api_key="orb-key", rejected_queue_url=rejected_url
    )
    service = IngestService(
        settings,
        OrbClient(settings.orb_api_base_url, "orb-key", httpx.Client(transport=orb.transport())),
        SqsQueue(rejected_url, client=sqs),
    )
    while batch := sqs.receive_message(QueueUrl=ingest_url, MaxNumberOfMessages=10).get("Messages", []):
        report = service.ingest([SqsMessage(m["MessageId"], m["Body"]) for m in batch], lambda: 60.0)
        assert report.failed_message_ids == []
        sqs.delete_message_batch(
            QueueUrl=ingest_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def mixed_records() -> list[str]:
    recent = NOW - 2 * HOUR
    return [
        # rejected by a mapping that looked for the customer in the wrong field
        *(
            rejection_record(
                stage="intake",
                reason="external_customer_id: no value at 'accountId'",
                segment_event=segment_event(i, recent),
            )
            for i in range(3)
        ),
        rejection_record(stage="orb", reason="Orb refused the event", orb_event=orb_event(10, recent, "cust_2")),
        json.dumps(orb_event(11, recent)),  # moved by the queue's redrive
        rejection_record(
            stage="orb", reason="timestamp outside the grace period", orb_event=orb_event(12, NOW - 20 * HOUR)
        ),
        rejection_record(
            stage="intake", reason="event too large", extra={"replayable": False, "segment_event_excerpt": "{"}
        ),
    ]


def test_dry_run_prints_the_table_and_changes_nothing(stack):
    sqs, ingest_url, rejected_url = stack
    records = mixed_records()
    send(sqs, rejected_url, records)
    code, out, _ = run()
    assert code == 0
    assert "7 record(s) on the rejected queue, 7 selected" in out
    assert "dry run: nothing changed" in out
    for expected in (
        "intake",
        "redriven",
        "cust_2",
        "payment_confirmed",
        "12-24 h",
        "replay",
        "backfill",
        "keep: not replayable",
    ):
        assert expected in out
    # Every record is still there, visible at once, unchanged; nothing was enqueued.
    assert Counter(all_bodies(sqs, rejected_url)) == Counter(records)
    assert all_bodies(sqs, ingest_url) == []


def test_yes_replays_what_can_be_replayed_and_keeps_the_rest(stack):
    sqs, ingest_url, rejected_url = stack
    send(sqs, rejected_url, mixed_records())
    code, out, _ = run("--yes")
    assert code == 0 and "replayed 5 event(s)" in out
    assert "1 record(s) older than the grace period: run `orb-bridge backfill`" in out
    events = [json.loads(body) for body in all_bodies(sqs, ingest_url)]
    assert sorted(e["idempotency_key"] for e in events) == ["msg-0", "msg-1", "msg-10", "msg-11", "msg-2"]
    # The intake records were re-mapped with the stack's current mapping: amount kept, nothing else.
    assert {json.dumps(e["properties"]) for e in events if e["idempotency_key"] == "msg-1"} == {'{"amount": 1}'}
    left = [json.loads(body) for body in all_bodies(sqs, rejected_url)]
    assert sorted(r["reason"] for r in left) == ["event too large", "timestamp outside the grace period"]

    orb = FakeOrb(now=lambda: NOW)
    drain_into_orb(sqs, ingest_url, rejected_url, orb)
    assert sorted(orb.billed()) == ["msg-0", "msg-1", "msg-10", "msg-11", "msg-2"]


def test_filters_select_what_is_replayed(stack):
    sqs, ingest_url, rejected_url = stack
    send(sqs, rejected_url, mixed_records())
    code, out, _ = run("--yes", "--stage", "orb", "--customer", "cust_2")
    assert code == 0 and "1 selected" in out
    assert [json.loads(b)["idempotency_key"] for b in all_bodies(sqs, ingest_url)] == ["msg-10"]
    assert len(all_bodies(sqs, rejected_url)) == 6
    code, out, _ = run("--yes", "--reason-contains", "ACCOUNTID", "--since", "1h")
    assert "3 selected" in out and len(all_bodies(sqs, ingest_url)) == 4


def test_a_mapping_still_broken_leaves_intake_records_in_place(stack):
    sqs, ingest_url, rejected_url = stack
    record = rejection_record(
        stage="intake",
        reason="properties.amount: nested object not allowed",
        segment_event=segment_event(1, NOW - HOUR) | {"properties": {"amount": {"x": 1}}},
    )
    send(sqs, rejected_url, [record])
    _code, out, _ = run("--yes")
    assert "replayed 0 event(s)" in out and "cannot be replayed" in out
    assert all_bodies(sqs, rejected_url) == [record] and all_bodies(sqs, ingest_url) == []


class KilledAfterEnqueue:
    """An SQS client whose process dies at its first DeleteMessageBatch: no call after it returns."""

    def __init__(self, client: Any) -> None:
        self.client, self.dead = client, False

    def __getattr__(self, name: str) -> Any:
        if self.dead:
            raise KeyboardInterrupt("killed")
        if name == "delete_message_batch":

            def die(**_: Any) -> Any:
                self.dead = True
                raise KeyboardInterrupt("killed between enqueue and delete")

            return die
        return getattr(self.client, name)


def killing_session(**kwargs: Any) -> Any:
    session = boto3.session.Session(**kwargs)
    make_client = session.client
    session.client = lambda service, **kw: (
        KilledAfterEnqueue(make_client(service, **kw)) if service == "sqs" else make_client(service, **kw)
    )
    return session


def test_a_replay_killed_between_enqueue_and_delete_bills_nothing_twice(stack, monkeypatch):
    sqs, ingest_url, rejected_url = stack
    records = [
        rejection_record(stage="orb", reason="Orb was down", orb_event=orb_event(i, NOW - HOUR)) for i in range(25)
    ]
    send(sqs, rejected_url, records)
    orb = FakeOrb(now=lambda: NOW)

    with pytest.raises(KeyboardInterrupt):
        run("--yes", session_factory=killing_session)
    # The first 10 events were enqueued; no record was deleted, none released (the process died).
    assert len(all_bodies(sqs, ingest_url)) == 10 and all_bodies(sqs, rejected_url) == []
    drain_into_orb(sqs, ingest_url, rejected_url, orb)
    assert len(orb.billed()) == 10

    # The hold expires (moto's clock moved past it), and the operator runs it again.
    real_clock = moto.sqs.models.unix_time_millis
    monkeypatch.setattr(
        moto.sqs.models,
        "unix_time_millis",
        lambda dt=None: real_clock(dt) + (0 if dt is not None else (replay_cmd.DEFAULT_HOLD_SECONDS + 1) * 1000),
    )
    code, out, _ = run("--yes")
    assert code == 0 and "replayed 25 event(s)" in out
    drain_into_orb(sqs, ingest_url, rejected_url, orb)
    assert sorted(orb.billed()) == sorted(f"msg-{i}" for i in range(25))
    assert orb.duplicate_keys_sent == 10  # resent, and ingested once: Orb's idempotency key
    assert all_bodies(sqs, rejected_url) == []


def test_ctrl_c_releases_what_was_not_replayed(stack):
    sqs, ingest_url, rejected_url = stack
    send(
        sqs,
        rejected_url,
        [rejection_record(stage="orb", reason="r", orb_event=orb_event(i, NOW - HOUR)) for i in range(15)],
    )

    class InterruptedOnce:
        def __init__(self, client: Any) -> None:
            self.client, self.deletes = client, 0

        def __getattr__(self, name: str) -> Any:
            if name == "delete_message_batch":
                self.deletes += 1
                if self.deletes == 2:
                    raise KeyboardInterrupt
            return getattr(self.client, name)

    def session_factory(**kwargs: Any) -> Any:
        session = boto3.session.Session(**kwargs)
        make_client = session.client
        session.client = lambda service, **kw: (
            InterruptedOnce(make_client(service, **kw)) if service == "sqs" else make_client(service, **kw)
        )
        return session

    with pytest.raises(KeyboardInterrupt):
        run("--yes", session_factory=session_factory)
    # 10 replayed and deleted; the other 5 are back on the queue at once, for the rerun.
    assert len(all_bodies(sqs, rejected_url)) == 5
    _code, out, _ = run("--yes")
    assert "replayed 5 event(s)" in out and all_bodies(sqs, rejected_url) == []
    keys = [json.loads(b)["idempotency_key"] for b in all_bodies(sqs, ingest_url)]
    assert sorted(set(keys)) == sorted(f"msg-{i}" for i in range(15))


def test_an_unknown_stack_is_a_clear_error(stack):
    out, err = io.StringIO(), io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--stack", "nope", "--region", "us-east-1"])
    assert replay_cmd.run(args, {}, out, err, wait_seconds=0) == 2
    assert "cannot read stack 'nope'" in err.getvalue()


def test_dev_without_an_endpoint_says_where_to_find_it(tmp_path, monkeypatch):
    from orb_bridge_dev.deployment import dev_stacks

    monkeypatch.setattr(dev_stacks, "DEV_STACKS_DIR", tmp_path / "none")
    out, err = io.StringIO(), io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--dev"])
    assert replay_cmd.run(args, {}, out, err, wait_seconds=0) == 2
    assert "--endpoint-url" in err.getvalue()


def test_dev_finds_the_dev_stack_queues_at_its_moto_address(tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer

    from orb_bridge_dev.deployment import dev_stacks

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ingest_url = sqs.create_queue(QueueName="segment-orb-bridge-IngestQueue")["QueueUrl"]
        rejected_url = sqs.create_queue(QueueName="segment-orb-bridge-RejectedQueue")["QueueUrl"]
        send(
            sqs,
            rejected_url,
            [rejection_record(stage="intake", reason="r", segment_event=segment_event(7, NOW - HOUR))],
        )
        out, err = io.StringIO(), io.StringIO()
        # `orb-bridge dev` leaves its addresses in a well-known file while it runs: --dev just works.
        monkeypatch.setattr(dev_stacks, "DEV_STACKS_DIR", tmp_path)
        dev_stacks.register(3000, endpoint, "http://127.0.0.1:3001/v1")
        args = replay_cmd.build_parser().parse_args(["--dev", "--yes"])
        code = replay_cmd.run(args, {}, out, err, now=lambda: NOW, wait_seconds=0)
        assert code == 0, err.getvalue()
        assert "dev stack dev-3000 at http://127.0.0.1" in out.getvalue() and "replayed 1 event(s)" in out.getvalue()
        # Mapped with make dev's defaults (amount, currency, confirmation_time).
        (body,) = all_bodies(sqs, ingest_url)
        assert json.loads(body)["properties"] == {"amount": 7}
        assert all_bodies(sqs, rejected_url) == []
    finally:
        server.stop()


@pytest.mark.parametrize("command", ["replay", "backfill"])
def test_the_orb_bridge_command_dispatches_to_it(command, capsys):
    from orb_bridge_dev import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: orb-bridge {command}" in capsys.readouterr().out
