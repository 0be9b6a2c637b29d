"""The ingest service against a scripted Orb (httpx.MockTransport) and moto SQS for rejections."""

from __future__ import annotations

import contextlib
import json
import threading

import httpx
import pytest

from orb_bridge.ingest.messages import SqsMessage
from tests.support.ingest_doubles import FakeOrb, make_service, messages_for, rejected_records, usage_event


def plenty_of_time() -> float:
    return 60.0


def test_every_event_is_sent_once_in_chunks_of_at_most_the_limit(rejected_queue):
    orb = FakeOrb()
    events = [usage_event(i) for i in range(1234)]
    report = make_service(orb, rejected_queue).ingest(messages_for(events), plenty_of_time)

    assert report.failed_message_ids == []
    assert report.events_ingested == 1234
    assert report.requests_made == 3
    assert all(len(request) <= 500 for request in orb.requests)
    assert sorted(orb.sent_keys()) == sorted(event.idempotency_key for event in events)
    # Chunks go out concurrently, so any request may arrive first: find the one carrying event 0.
    first_chunk = next(request for request in orb.requests if request[0]["idempotency_key"] == "key-0")
    assert first_chunk[0] == events[0].to_orb()
    assert rejected_records(rejected_queue) == []


def test_chunk_size_follows_the_settings(rejected_queue):
    orb = FakeOrb()
    report = make_service(orb, rejected_queue, max_events_per_request=10).ingest(
        messages_for([usage_event(i) for i in range(25)]), plenty_of_time
    )
    assert sorted(len(request) for request in orb.requests) == [5, 10, 10]
    assert report.events_ingested == 25


def test_an_empty_batch_sends_nothing(rejected_queue):
    orb = FakeOrb()
    report = make_service(orb, rejected_queue).ingest([], plenty_of_time)
    assert report.failed_message_ids == [] and orb.requests == []


def test_an_unreadable_message_is_kept_in_the_rejected_queue_and_not_retried(rejected_queue):
    orb = FakeOrb()
    messages = [
        *messages_for([usage_event(1)]),
        SqsMessage("garbage", "not json"),
        SqsMessage(
            "no-customer", json.dumps({"event_name": "x", "idempotency_key": "k", "timestamp": "2026-11-21T09:00:00Z"})
        ),
    ]
    report = make_service(orb, rejected_queue).ingest(messages, plenty_of_time)

    assert report.failed_message_ids == []
    assert report.messages_rejected_at_ingest == 2
    assert orb.sent_keys() == ["key-1"]
    records = {record["sqs_message_id"]: record for record in rejected_records(rejected_queue)}
    assert set(records) == {"garbage", "no-customer"}
    assert records["garbage"]["stage"] == "ingest"
    assert records["garbage"]["message_body"] == "not json"
    assert any("customer" in error for error in records["no-customer"]["errors"])


def test_identical_duplicates_are_sent_once_and_share_their_fate(rejected_queue):
    orb = FakeOrb()
    events = [usage_event(1), usage_event(2), usage_event(1)]
    report = make_service(orb, rejected_queue).ingest(messages_for(events), plenty_of_time)
    assert orb.sent_keys().count("key-1") == 1
    assert report.failed_message_ids == [] and report.events_ingested == 2

    orb = FakeOrb()
    orb.scripted = [lambda: httpx.Response(503, json={"status": 503})]
    report = make_service(orb, rejected_queue).ingest(messages_for(events), plenty_of_time)
    assert report.failed_message_ids == ["msg-0", "msg-1", "msg-2"]


def test_the_same_event_serialised_differently_is_an_identical_duplicate(rejected_queue):
    orb = FakeOrb()
    event = usage_event(1)
    reordered = json.dumps(dict(reversed(list(event.to_orb().items()))))
    assert reordered != event.to_message_body()
    messages = [SqsMessage("msg-0", event.to_message_body()), SqsMessage("msg-1", reordered)]
    report = make_service(orb, rejected_queue).ingest(messages, plenty_of_time)
    assert orb.sent_keys() == ["key-1"]
    assert report.failed_message_ids == [] and report.messages_rejected_at_ingest == 0
    assert rejected_records(rejected_queue) == []


def test_a_conflicting_duplicate_is_rejected_with_a_reason_and_the_first_is_sent(rejected_queue):
    orb = FakeOrb()
    first, conflicting = usage_event(1), usage_event(1, properties={"units": 99})
    # 1 and 1.0 and True compare equal in Python but are different bodies for Orb.
    as_float = usage_event(2, properties={"units": 2.0})
    events = [first, conflicting, usage_event(2), as_float]
    report = make_service(orb, rejected_queue).ingest(messages_for(events), plenty_of_time)

    assert report.failed_message_ids == []
    assert [e for request in orb.requests for e in request if e["idempotency_key"] == "key-1"] == [first.to_orb()]
    records = rejected_records(rejected_queue)
    assert sorted(r["sqs_message_id"] for r in records) == ["msg-1", "msg-3"]
    conflict = next(r for r in records if r["sqs_message_id"] == "msg-1")
    assert conflict["stage"] == "ingest"
    assert "conflicting duplicate" in conflict["reason"]
    assert conflict["orb_event"]["properties"] == {"units": 99}
    assert conflict["sent_event"] == first.to_orb()


def test_events_a_400_names_go_to_the_rejected_queue_with_orbs_errors(rejected_queue):
    orb = FakeOrb()
    orb.invalid_keys = {"key-3": ["timestamp is outside the grace period"]}
    events = [usage_event(i) for i in range(6)] + [usage_event(3)]  # key-3 twice (identical)
    report = make_service(orb, rejected_queue).ingest(messages_for(events), plenty_of_time)

    assert report.failed_message_ids == []
    assert report.events_ingested == 5
    assert report.events_rejected_by_orb == 1
    # The whole request was a 400 naming key-3; the other five were sent again at once.
    assert [sorted(e["idempotency_key"] for e in r) for r in orb.requests] == [
        [f"key-{i}" for i in range(6)],
        [f"key-{i}" for i in (0, 1, 2, 4, 5)],
    ]
    (record,) = rejected_records(rejected_queue)
    assert record["stage"] == "orb"
    assert record["errors"] == ["timestamp is outside the grace period"]
    assert record["orb_event"] == usage_event(3).to_orb()
    assert record["sqs_message_ids"] == ["msg-3", "msg-6"]


@pytest.mark.parametrize("status", [500, 503, 408, 409])
def test_a_transient_failure_fails_only_that_chunks_messages(rejected_queue, status):
    orb = FakeOrb()
    orb.scripted = [lambda: httpx.Response(status, json={"status": status, "title": "later"})]
    events = [usage_event(i) for i in range(20)]
    # one worker: the scripted answer goes to the first chunk
    report = make_service(orb, rejected_queue, max_events_per_request=10, max_concurrent_requests=1).ingest(
        messages_for(events), plenty_of_time
    )
    assert report.failed_message_ids == [f"msg-{i}" for i in range(10)]
    assert report.events_ingested == 10
    assert rejected_records(rejected_queue) == []


def test_timeouts_and_connection_errors_fail_the_chunk(rejected_queue):
    orb = FakeOrb()

    def timeout():
        raise httpx.ReadTimeout("slow")

    def refused():
        raise httpx.ConnectError("refused")

    orb.scripted = [timeout, refused]
    report = make_service(orb, rejected_queue, max_events_per_request=5, max_concurrent_requests=1).ingest(
        messages_for([usage_event(i) for i in range(15)]), plenty_of_time
    )
    assert report.failed_message_ids == [f"msg-{i}" for i in range(10)]
    assert report.events_ingested == 5


def test_a_400_chunk_is_split_until_the_bad_events_are_isolated(rejected_queue):
    orb = FakeOrb()
    orb.bad_request_keys = {"key-5", "key-12"}
    events = [usage_event(i) for i in range(16)]
    report = make_service(orb, rejected_queue).ingest(messages_for(events), plenty_of_time)

    assert report.failed_message_ids == []
    assert report.events_ingested == 14
    assert report.events_rejected_by_orb == 2
    # each good event was accepted exactly once; bisection costs O(bad * log n) requests
    accepted = [
        e["idempotency_key"]
        for r in orb.requests
        if not orb.bad_request_keys & {e["idempotency_key"] for e in r}
        for e in r
    ]
    assert sorted(accepted) == sorted(f"key-{i}" for i in range(16) if i not in (5, 12))
    assert report.requests_made <= 1 + 2 * 2 * 4
    records = {record["orb_event"]["idempotency_key"]: record for record in rejected_records(rejected_queue)}
    assert set(records) == {"key-5", "key-12"}
    assert records["key-5"]["stage"] == "orb"
    assert "HTTP 400" in records["key-5"]["reason"]
    assert "key-5 is bad" in records["key-5"]["errors"]


def test_a_401_fails_every_message_stops_sending_and_rejects_nothing(rejected_queue):
    orb = FakeOrb()
    orb.scripted = [lambda: httpx.Response(401, json={"status": 401, "title": "Unauthenticated"})]
    events = [usage_event(i) for i in range(30)] + [usage_event(0, properties={"units": 5})]
    messages = [*messages_for(events), SqsMessage("garbage", "{")]
    report = make_service(orb, rejected_queue, max_events_per_request=10, max_concurrent_requests=1).ingest(
        messages, plenty_of_time
    )
    assert report.requests_made == 1
    assert report.configuration_error and "401" in report.configuration_error
    assert set(report.failed_message_ids) == {f"msg-{i}" for i in range(30)}
    # bad data found before sending is still kept; the 401 itself dead-letters nothing
    assert {r["sqs_message_id"] for r in rejected_records(rejected_queue)} == {"msg-30", "garbage"}


def test_nothing_is_sent_when_too_little_time_remains(rejected_queue):
    orb = FakeOrb()
    service = make_service(orb, rejected_queue, request_timeout_seconds=2.0, safety_margin_seconds=1.0)
    report = service.ingest(messages_for([usage_event(i) for i in range(3)]), lambda: 2.9)
    assert orb.requests == []
    # Not Orb's fault and not the events': deferred (re-enqueued), not a failed delivery.
    assert report.failed_message_ids == [] and report.deferred == {"msg-0": 0.0, "msg-1": 0.0, "msg-2": 0.0}


def test_sending_stops_when_the_clock_runs_down_and_timeouts_fit_the_budget(rejected_queue):
    fake = FakeOrb()
    clock = {"left": 6.0}

    def orb(request: httpx.Request) -> httpx.Response:
        clock["left"] -= 1.5  # each answer takes 1.5 s of the invocation (injected clock)
        return fake(request)

    service = make_service(
        orb,
        rejected_queue,
        max_events_per_request=2,
        max_concurrent_requests=1,
        request_timeout_seconds=2.0,
        safety_margin_seconds=1.0,
    )
    report = service.ingest(messages_for([usage_event(i) for i in range(8)]), lambda: clock["left"])
    # Started with 6, 4.5 and 3 s left; at 1.5 s a 2 s request plus the 1 s margin no longer fits.
    assert len(fake.requests) == 3
    assert fake.timeouts == [2.0, 2.0, 2.0]
    assert report.failed_message_ids == [] and sorted(report.deferred) == ["msg-6", "msg-7"]
    assert report.events_ingested == 6


def test_when_a_rejection_cannot_be_written_its_message_is_retried(rejected_queue):
    orb = FakeOrb()
    orb.invalid_keys = {"key-1": ["bad"]}
    missing = rejected_queue.rsplit("/", 1)[0] + "/no-such-queue"
    report = make_service(orb, missing).ingest(
        [*messages_for([usage_event(0), usage_event(1)]), SqsMessage("garbage", "[]")], plenty_of_time
    )
    assert report.failed_message_ids == ["msg-1", "garbage"]
    assert report.events_ingested == 1


def test_chunks_are_sent_concurrently_up_to_the_bound(rejected_queue):
    in_flight, peak = 0, 0
    lock = threading.Lock()
    release = threading.Barrier(3, timeout=60)  # generous: only a broken bound waits it out

    orb = FakeOrb()

    def slow_ok():
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        with contextlib.suppress(threading.BrokenBarrierError):
            release.wait()
        with lock:
            in_flight -= 1
        return httpx.Response(200, json={"validation_failed": []})

    orb.scripted = [slow_ok] * 6
    report = make_service(orb, rejected_queue, max_events_per_request=1, max_concurrent_requests=3).ingest(
        messages_for([usage_event(i) for i in range(6)]), plenty_of_time
    )
    assert report.failed_message_ids == []
    assert peak == 3


def test_an_event_body_as_intake_wrote_it_is_forwarded_verbatim_and_anything_ambiguous_is_re_encoded(
    rejected_queue,
):
    """Message bodies are spliced into Orb's request as written only when they say exactly what
    was read: a key repeated in the JSON text (which a reader may resolve either way), even hidden
    behind whitespace, makes ingest send the event it read, re-encoded."""
    orb = FakeOrb()
    # Non-ASCII text tells the two apart: written as is by intake, escaped when re-encoded.
    canonical = usage_event(1, properties={"city": "Z\u00fcrich"}).to_message_body()
    repeated = usage_event(2).to_message_body().replace('{"event_name"', '{"idempotency_key":"key-X","event_name"')
    hidden = usage_event(3).to_message_body().replace('{"event_name"', '{"idempotency_key" :"key-Y","event_name"')
    quoted = usage_event(4, properties={"note": 'caf\u00e9": b'}).to_message_body()  # a ": inside a value
    bodies = [canonical, repeated, hidden, quoted]
    report = make_service(orb, rejected_queue).ingest(
        [SqsMessage(f"m{n}", body) for n, body in enumerate(bodies)], plenty_of_time
    )

    assert report.failed_message_ids == [] and report.events_ingested == 4
    [sent] = orb.bodies
    text = sent.decode()
    assert canonical in text and quoted not in text and "caf\\u00e9" in text  # verbatim only when unambiguous
    assert "key-X" not in text and "key-Y" not in text and repeated not in text and hidden not in text
    assert sorted(orb.sent_keys()) == ["key-1", "key-2", "key-3", "key-4"]
    assert orb.requests[0][0] == json.loads(canonical)
