"""Finding 1 (high): one captured X-Signature (Segment signs a batch's first event only, with no
timestamp) let anyone post [signed event, forged events...] and have all of them billed."""

from __future__ import annotations

import json

import pytest

from orb_bridge.aws import clients as aws
from orb_bridge.orb.usage_event import OrbUsageEvent
from tests.support.segment_requests import TOKEN, IntakeStack, http_event, js_stringify, sign, track

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def smuggling_body() -> tuple[bytes, bytes]:
    signed = js_stringify(track(1))
    forged = [js_stringify(track(n, userId="victim-customer", properties={"amount": 10**6})) for n in range(2, 101)]
    return signed, b"[" + signed + b"," + b",".join(forged) + b"]"


def emitted_metrics(output: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and "_aws" in line:
            blob = json.loads(line)
            for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = blob[definition["Name"]]
                total = sum(value) if isinstance(value, list) else value
                values[definition["Name"]] = values.get(definition["Name"], 0) + total
    return values


@pytest.mark.parametrize("with_token", [True, False])
def test_the_smuggling_request_gets_a_401_and_nothing_is_billed(
    intake_stack: IntakeStack, monkeypatch, capsys, with_token: bool
) -> None:
    if not with_token:  # the template's SegmentSharedSecretOnly deployment
        monkeypatch.delenv("SEGMENT_AUTH_TOKEN")
    signed, body = smuggling_body()

    answer = intake_stack.invoke(http_event(body, {"x-signature": sign(signed)}))

    assert (answer.status, answer.body) == (401, {"message": "unauthorized"})
    assert intake_stack.drain("ingest") == []
    # Kept for the operator, marked unauthenticated and never replayable; counted for the alarm.
    records = [json.loads(record) for record in intake_stack.drain("rejected")]
    assert records and all(
        r["stage"] == "intake" and r["replayable"] is False and r["reason"].startswith("unauthenticated")
        for r in records
    )
    kept = [event for record in records for event in record["segment_events"]]
    assert len(kept) == 100 and kept[0] == track(1)
    assert emitted_metrics(capsys.readouterr().out)["SignatureOnlyBatchesRefused"] == 1


def test_a_large_refused_batch_is_kept_whole_in_bounded_records(intake_stack: IntakeStack) -> None:
    events = [track(n, context={"pad": "x" * 2000}) for n in range(1, 1001)]  # ~2 MB
    body = b"[" + b",".join(js_stringify(e) for e in events) + b"]"
    assert intake_stack.invoke(http_event(body, {"x-signature": sign(js_stringify(events[0]))})).status == 401
    records = intake_stack.drain("rejected")
    assert all(len(record.encode()) < 256 * 1024 for record in records)
    parsed = sorted((json.loads(r) for r in records), key=lambda r: r["part"])
    assert [e["messageId"] for r in parsed for e in r["segment_events"]] == [e["messageId"] for e in events]


def test_a_one_event_array_signed_over_its_event_is_accepted(intake_stack: IntakeStack) -> None:
    signed = js_stringify(track(1))
    answer = intake_stack.invoke(http_event(b"[" + signed + b"]", {"x-signature": sign(signed)}))
    assert (answer.status, answer.body["accepted"]) == (200, 1)


def test_batches_authenticate_with_the_bearer_token_or_x_segment_signature(intake_stack: IntakeStack) -> None:
    _signed, body = smuggling_body()
    assert intake_stack.invoke(http_event(body, {"authorization": f"Bearer {TOKEN}"})).status == 200
    assert intake_stack.invoke(http_event(body, {"x-segment-signature": sign(body)})).status == 200
    keys = {OrbUsageEvent.from_message_body(m).idempotency_key for m in intake_stack.drain("ingest")}
    assert len(keys) == 100


def test_the_explicit_insecure_opt_out_restores_first_event_signatures(intake_stack: IntakeStack, monkeypatch) -> None:
    monkeypatch.setenv("ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES", "true")
    signed, body = smuggling_body()
    assert intake_stack.invoke(http_event(body, {"x-signature": sign(signed)})).status == 200


def signature_only_batch(target_bytes: int, tag: str) -> bytes:
    """A batch of about ``target_bytes``, signed (X-Signature) over its first event only."""
    pad = "x" * 2000
    count = target_bytes // (len(js_stringify(track(1, context={"pad": pad}))) + 1)
    events = [track(n, messageId=f"{tag}-{n}", context={"pad": pad}) for n in range(1, count + 1)]
    return b"[" + b",".join(js_stringify(e) for e in events) + b"]"


def test_one_captured_signature_cannot_flood_the_rejected_queue(intake_stack: IntakeStack, capsys) -> None:
    # Before the budget, each 5.6 MiB request stored ~42 records (~5.9 MB): 30 MB for these five.
    budget = 10 * 1024 * 1024
    bodies = [signature_only_batch(int(5.6 * 1024 * 1024), f"r{n}") for n in range(5)]
    assert all(5.5 * 1024 * 1024 < len(body) <= 6 * 1024 * 1024 for body in bodies)
    for body in bodies:
        signature = sign(js_stringify(json.loads(body)[0]))
        assert intake_stack.invoke(http_event(body, {"x-signature": signature})).status == 401

    stored = intake_stack.drain("rejected")
    stored_bytes = sum(len(record.encode()) for record in stored)
    assert stored_bytes <= budget + len(bodies[0])
    records = [json.loads(record) for record in stored]
    # The first batch fits the hour's budget and is kept whole; the other four leave a summary each.
    whole = [r for r in records if "segment_events" in r]
    assert sorted(e["messageId"] for r in whole for e in r["segment_events"]) == sorted(
        e["messageId"] for e in json.loads(bodies[0])
    )
    summaries = [r for r in records if r.get("stored") == "summary only"]
    assert len(summaries) == 4 and len(records) == len(whole) + 4
    event_count = len(json.loads(bodies[1]))
    for summary in summaries:
        assert summary["replayable"] is False and summary["reason"].startswith("unauthenticated")
        assert summary["event_count"] == event_count and summary["body_bytes"] == len(bodies[1])
        assert "budget of 10485760 bytes is spent" in summary["errors"][0]
        assert summary["body_excerpt"].startswith('[{"type":"track"') and len(summary["body_excerpt"]) <= 1024
        assert len(json.dumps(summary)) < 2048
    assert emitted_metrics(capsys.readouterr().out)["UnauthenticatedEventsNotStored"] == 4 * event_count


def test_a_budget_table_outage_keeps_only_the_summary(intake_stack: IntakeStack, capsys) -> None:
    aws.client("dynamodb").delete_table(TableName="budget")  # the table fails: fail closed
    signed, body = smuggling_body()
    assert intake_stack.invoke(http_event(body, {"x-signature": sign(signed)})).status == 401
    [summary] = [json.loads(record) for record in intake_stack.drain("rejected")]
    assert summary["stored"] == "summary only" and summary["event_count"] == 100
    assert summary["errors"] == ["not stored whole: the budget table could not be read (fail closed)"]
    assert emitted_metrics(capsys.readouterr().out)["UnauthenticatedEventsNotStored"] == 100
