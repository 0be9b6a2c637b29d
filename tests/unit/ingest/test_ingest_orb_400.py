"""Ingest against a fake Orb that answers like the spec: any invalid event makes the whole
request a 400 RequestValidationError, in each body form Orb may use, and either ingests the
valid events of that request or not (undocumented, so both are exercised)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orb_bridge.orb.client import OrbClient
from orb_bridge.orb.problems import MAX_MESSAGE_CHARS, KeyMatcher, attribute
from tests.support.ingest_doubles import make_service, messages_for, rejected_records, usage_event

VALIDATION_TYPE = "https://docs.withorb.com/reference/error-responses#400-request-validation-errors"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def stale_message(key: str) -> str:
    return f"Event with idempotency_key '{key}' is invalid: timestamp is outside the grace period of 12 hours"


class SpecOrb:
    """Orb's /ingest as its spec describes it, keys ingested at most once."""

    def __init__(self, variant: str, ingest_valid_of_400: bool) -> None:
        self.variant = variant
        self.ingest_valid_of_400 = ingest_valid_of_400
        self.ingested: dict[str, int] = {}
        self.requests: list[list[str]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        keys = [event["idempotency_key"] for event in events]
        stale = [
            e["idempotency_key"]
            for e in events
            if datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) < NOW - timedelta(hours=12)
        ]
        with self._lock:
            self.requests.append(keys)
            if stale and not self.ingest_valid_of_400:
                return self._problem(stale)
            for key in keys:
                if key not in stale and key not in self.ingested:
                    self.ingested[key] = 1
        return self._problem(stale) if stale else httpx.Response(200, json={"validation_failed": []})

    def _problem(self, stale: list[str]) -> httpx.Response:
        body = {
            "type": VALIDATION_TYPE,
            "status": 400,
            "title": "Request validation error",
            "detail": "One or more events failed validation",
        }
        if self.variant == "validation_failed":
            body["validation_errors"] = [stale_message(key) for key in stale]
            body["validation_failed"] = [
                {"idempotency_key": key, "validation_errors": [stale_message(key)]} for key in stale
            ]
        elif self.variant == "objects":
            body["validation_errors"] = [
                {"idempotency_key": key, "validation_errors": ["timestamp outside the grace period"]} for key in stale
            ]
        elif self.variant == "strings":
            body["validation_errors"] = [stale_message(key) for key in stale]
        else:  # opaque
            body["validation_errors"] = ["timestamp is outside the grace period"] * len(stale)
        return httpx.Response(400, json=body)


def batch_with_stale(total: int, stale: set[int]):
    recent = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = (NOW - timedelta(hours=13)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [usage_event(i, timestamp=old if i in stale else recent) for i in range(total)]


STALE = {3, 250, 499, 500, 777, 1001, 1002, 1499, 1700, 1999}


@pytest.mark.parametrize("ingest_valid_of_400", [True, False], ids=["valid-ingested", "valid-not-ingested"])
@pytest.mark.parametrize("variant", ["validation_failed", "objects", "strings"])
def test_a_400_naming_events_costs_at_most_two_requests_per_chunk(rejected_queue, variant, ingest_valid_of_400):
    orb = SpecOrb(variant, ingest_valid_of_400)
    events = batch_with_stale(2000, STALE)
    service = make_service(orb, rejected_queue, max_concurrent_requests=4)

    report = service.ingest(messages_for(events), lambda: 60.0)

    stale_keys = {f"key-{i}" for i in STALE}
    assert report.failed_message_ids == [] and report.deferred == {}
    assert set(orb.ingested) == {e.idempotency_key for e in events} - stale_keys
    assert all(count == 1 for count in orb.ingested.values())
    assert report.events_ingested == 1990 and report.events_rejected_by_orb == 10
    # 4 chunks of 500, each holding stale events: one 400, then one re-send of the rest.
    assert report.requests_made == len(orb.requests) == 8
    records = rejected_records(rejected_queue)
    assert {r["orb_event"]["idempotency_key"] for r in records} == stale_keys
    for record in records:
        assert record["stage"] == "orb" and "grace period" in " ".join(record["errors"])
    print(
        f"\n{variant} / valid {'' if ingest_valid_of_400 else 'not '}ingested: "
        f"{report.requests_made} requests for 4 chunks"
    )


@pytest.mark.parametrize("ingest_valid_of_400", [True, False], ids=["valid-ingested", "valid-not-ingested"])
def test_an_opaque_400_is_split_concurrently_and_still_isolates_every_stale_event(rejected_queue, ingest_valid_of_400):
    orb = SpecOrb("opaque", ingest_valid_of_400)
    events = batch_with_stale(2000, STALE)
    service = make_service(orb, rejected_queue, max_concurrent_requests=20, max_requests_per_invocation=400)

    report = service.ingest(messages_for(events), lambda: 60.0)

    assert report.failed_message_ids == []
    assert report.events_rejected_by_orb == 10 and report.events_ingested == 1990
    assert all(count == 1 for count in orb.ingested.values()) and len(orb.ingested) == 1990
    assert len(orb.requests) == report.requests_made <= 400
    print(f"\nopaque / valid {'' if ingest_valid_of_400 else 'not '}ingested: {report.requests_made} requests")


def test_an_opaque_search_stops_at_the_request_budget_and_leaves_the_rest_for_redelivery(rejected_queue):
    orb = SpecOrb("opaque", False)
    events = batch_with_stale(2000, STALE)
    report = make_service(orb, rejected_queue, max_requests_per_invocation=30).ingest(
        messages_for(events), lambda: 60.0
    )

    assert report.requests_made == len(orb.requests) == 30
    accounted = report.events_ingested + report.events_rejected_by_orb + len(report.failed_message_ids)
    assert accounted == 2000 and report.failed_message_ids
    assert not set(report.failed_message_ids) & {f"msg-{i}" for i in range(2000) if f"key-{i}" in orb.ingested}


def test_an_opaque_search_stops_when_the_time_budget_runs_out(rejected_queue):
    """The invocation's clock advances 0.5 s per request (injected, no sleeping): the search
    must stop starting requests once less than timeout + margin is left."""
    orb = SpecOrb("opaque", True)
    clock = {"left": 20.0}

    def answering(request: httpx.Request) -> httpx.Response:
        clock["left"] -= 0.5
        return orb(request)

    service = make_service(answering, rejected_queue, max_concurrent_requests=1)
    report = service.ingest(messages_for(batch_with_stale(2000, STALE)), lambda: clock["left"])

    # 2 s timeout + 1 s margin: requests start while more than 3 s are left.
    assert report.requests_made == len(orb.requests) <= (20 - 3) / 0.5 + 1
    assert clock["left"] > 0
    assert (
        report.events_ingested + report.events_rejected_by_orb + len(report.failed_message_ids) + len(report.deferred)
        == 2000
    )


def test_strings_match_whole_keys_only():
    matcher = KeyMatcher(["msg-1", "msg-10", "a.b", "with space"])
    assert matcher.find("Event with idempotency_key 'msg-10' is invalid") == ["msg-10"]
    assert matcher.find("msg-1: bad; msg-100 unknown; (msg-1x)") == ["msg-1"]
    assert matcher.find('keys "a.b". and a.bc') == ["a.b"]
    assert matcher.find("the key with space is bad, not with spaces") == ["with space"]
    assert matcher.find("events[1].timestamp: invalid") == ["msg-10"]


def test_matching_five_hundred_keys_against_five_hundred_messages_is_linear():
    keys = [f"ajs-{i:04d}-0c1f" for i in range(500)]
    body = {"type": VALIDATION_TYPE, "status": 400, "validation_errors": [f"event '{k}' is invalid" for k in keys]}
    attributed = attribute(body, keys)
    assert set(attributed.by_key) == set(keys) and attributed.general == []


def test_objects_read_every_message_field_and_fastapi_locations():
    body = {
        "validation_errors": [
            {"idempotency_key": "k1", "errors": ["bad property"], "message": "see docs"},
            {"loc": ["body", "events", 1, "timestamp"], "msg": "not a datetime"},
            {"detail": "nothing to say about anyone"},
        ]
    }
    attributed = attribute(body, ["k1", "k2"])
    assert attributed.by_key == {"k1": ["bad property", "see docs"], "k2": ["not a datetime"]}
    assert attributed.general == ["nothing to say about anyone"]


def test_orbs_messages_are_bounded_in_length():
    attributed = attribute({"validation_errors": [f"'k1' {n} {'x' * 5000}" for n in range(50)]}, ["k1"])
    assert len(attributed.by_key["k1"]) == 20 and all(len(m) == MAX_MESSAGE_CHARS for m in attributed.by_key["k1"])


def test_a_client_classifies_the_400_with_the_keys_it_sent():
    orb = SpecOrb("strings", False)
    events = [e.to_orb() for e in batch_with_stale(3, {1})]
    result = OrbClient("https://orb.test/v1", "k", httpx.Client(transport=httpx.MockTransport(orb))).ingest(events, 1)
    assert result.attribution.by_key == {"key-1": [stale_message("key-1")]}
