"""The CLIs read a large rejected queue in bounded memory (orb_bridge_dev.deployment.rejected_records): entries
keep ids, receipt handles and summary fields; an event only for a record the run will send."""

from __future__ import annotations

import dataclasses
import io
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.queues import SqsQueue
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge_dev.commands import replay as replay_cmd
from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.rejected_records import MAX_SUMMARY_CHARS, Entry, Filters, Target
from orb_bridge_dev.devstack.moto_sqs_speedup import speed_up_moto_sqs
from tests.support.rejected_stack import HOUR, STACK, all_bodies, create_stack, orb_event

NOW = datetime.now(UTC).replace(microsecond=0)
RECORDS = 300
PAD_BYTES = 20 * 1024  # ~6 MiB on the queue


@pytest.fixture
def stack():
    speed_up_moto_sqs()  # moto otherwise scans the whole queue for every message it receives
    with mock_aws():
        aws.reset_clients()
        yield create_stack({})
    aws.reset_clients()


def send(sqs: Any, url: str, records: list[str]) -> None:
    assert SqsQueue(url, client=sqs).send_all(records) == []  # batched within SQS's 1 MiB


def large_records() -> list[str]:
    """Recent (replayable) and late (backfill) Orb rejections, each carrying ~150 KiB."""
    records = []
    for index in range(RECORDS):
        moment = NOW - (20 * HOUR if index % 2 else 2 * HOUR)
        event = orb_event(index, moment, customer=f"cust_{index % 3}")
        event["properties"]["note"] = "x" * PAD_BYTES
        records.append(rejection_record(stage="orb", reason="r" * 5000, orb_event=event))
    return records


def target() -> Target:
    args = replay_cmd.build_parser().parse_args(["--stack", STACK, "--region", "us-east-1"])
    return stack_target.resolve(args, {}, None)


def plan(
    sends: tuple[str, ...], filters: Filters | None = None, on: Target | None = None
) -> tuple[list[Entry], list[Entry]]:
    return replay_cmd.plan(on or target(), filters or Filters(), NOW, 12.0, 60, wait_seconds=0, sends=sends)


def texts(entry: Entry) -> list[str]:
    return [value for value in dataclasses.asdict(entry).values() if isinstance(value, str)]


def test_a_dry_run_over_many_large_records_keeps_no_bodies_and_no_events(stack) -> None:
    sqs, _, rejected_url = stack
    reader = target()
    plan(sends=(), on=reader)  # clients and their service models loaded before measuring
    send(sqs, rejected_url, large_records())

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        entries, selected = plan(sends=(), on=reader)
        retained, peak = (size - before for size in tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()

    assert len(entries) == len(selected) == RECORDS
    assert all(entry.event is None for entry in entries)
    assert all(len(text) <= MAX_SUMMARY_CHARS + 3 for entry in entries for text in texts(entry))
    # The summary fields still say what is there.
    assert {entry.customer for entry in entries} == {"cust_0", "cust_1", "cust_2"}
    assert {entry.action for entry in entries} == {"replay", "backfill"}
    assert all(entry.event_name == "payment_confirmed" and entry.event_time for entry in entries)
    # ~6 MiB of bodies read. Measured: 1.07 MB retained (3.6 KB a record, reasons cut to 1,024
    # characters) and a 1.9 MB peak; reading the whole queue first, as before, kept 13.9 MB.
    queue_bytes = RECORDS * PAD_BYTES
    assert retained < RECORDS * 8 * 1024, retained
    assert peak < queue_bytes / 2, (peak, queue_bytes)


def test_only_the_selected_records_the_run_sends_keep_their_event(stack) -> None:
    sqs, _, rejected_url = stack
    send(sqs, rejected_url, large_records())
    entries, selected = plan(sends=("backfill",), filters=Filters(customer="cust_1"))
    kept = [entry for entry in entries if entry.event is not None]
    assert kept and all(entry.action == "backfill" and entry.customer == "cust_1" for entry in kept)
    assert {entry.message_id for entry in kept} == {e.message_id for e in selected if e.action == "backfill"}
    assert all(entry.event is None for entry in entries if entry not in kept)


def test_replay_yes_sends_the_selected_events_read_in_bounded_memory(stack) -> None:
    sqs, ingest_url, rejected_url = stack
    records = large_records()
    send(sqs, rejected_url, records)
    out, err = io.StringIO(), io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--stack", STACK, "--region", "us-east-1", "--yes"])
    code = replay_cmd.run(args, {}, out, err, now=lambda: NOW, wait_seconds=0)
    assert code == 0, err.getvalue()
    replayed: list[Any] = all_bodies(sqs, ingest_url)
    assert len(replayed) == RECORDS // 2 and all(len(body) > PAD_BYTES for body in replayed)
    assert len(all_bodies(sqs, rejected_url)) == RECORDS // 2  # the late ones, left for backfill
