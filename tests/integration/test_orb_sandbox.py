"""The Orb sandbox behaves like Orb's API (docs/facts.md, its OpenAPI spec: tests/contract/), over loopback HTTP.

Backfills and rate limits: test_orb_sandbox_backfills.py, test_orb_sandbox_limits.py."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orb_bridge_dev.orb_sandbox import (
    FaultConfig,
    OrbSandbox,
    ScriptedResponse,
    parse_iso8601,
)

API_KEY = "test-orb-key"
WEBHOOK_SECRET = "whsec-sandbox-test"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def minutes_ago(minutes: float) -> str:
    return iso(datetime.now(UTC) - timedelta(minutes=minutes))


def make_event(key: str, **overrides: object) -> dict:
    event: dict[str, Any] = {
        "event_name": "api_call",
        "idempotency_key": key,
        "timestamp": minutes_ago(1),
        "properties": {"tokens": 12, "model": "small", "cached": False, "cost": 0.25},
        "external_customer_id": "user-1",
    }
    event.update(overrides)
    return {name: value for name, value in event.items() if value is not ...}


@pytest.fixture
def sandbox() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, seed=7) as running:
        yield running


@pytest.fixture
def client(sandbox: OrbSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5) as http:
        yield http


def ingest(client: httpx.Client, events: list, **params: str) -> httpx.Response:
    return client.post("/ingest", json={"events": events}, params=params)


# ----------------------------------------------------------------------------- server basics


def test_base_url_is_loopback_with_v1_prefix_and_picked_port(sandbox: OrbSandbox) -> None:
    assert sandbox.port > 0
    assert sandbox.base_url == f"http://127.0.0.1:{sandbox.port}/v1"


URL_NOT_FOUND = "https://docs.withorb.com/reference/error-responses#404-url-not-found"
VALIDATION_ERROR = "https://docs.withorb.com/reference/error-responses#400-request-validation-errors"


def test_unknown_path_or_method_is_orbs_url_not_found(client: httpx.Client) -> None:
    for response in (client.get("/customers"), client.get("/ingest"), client.delete("/events/backfills")):
        assert response.status_code == 404
        assert response.json()["type"] == URL_NOT_FOUND and response.json()["title"]


def test_stop_frees_the_port_and_the_context_manager_restarts_cleanly() -> None:
    with OrbSandbox() as first:
        port = first.port
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/v1/ingest", timeout=1)
    with OrbSandbox(port=port) as second:
        assert second.port == port


# ----------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {API_KEY}"}, {"Authorization": "Bearer"}],
    ids=["missing", "wrong-key", "wrong-scheme", "empty-token"],
)
def test_ingest_without_the_right_bearer_key_is_401_problem_json(sandbox: OrbSandbox, headers: dict) -> None:
    response = httpx.post(f"{sandbox.base_url}/ingest", json={"events": [make_event("k1")]}, headers=headers)
    assert response.status_code == 401
    problem = response.json()
    assert (
        problem["status"] == 401 and problem["title"] and problem["type"].startswith("https://") and problem["detail"]
    )
    assert response.headers["content-type"] == "application/problem+json"
    assert sandbox.ingested_events() == {}


def test_search_and_volume_need_auth_too(sandbox: OrbSandbox) -> None:
    assert httpx.post(f"{sandbox.base_url}/events/search", json={"event_ids": ["x"]}).status_code == 401
    assert (
        httpx.get(f"{sandbox.base_url}/events/volume", params={"timeframe_start": minutes_ago(60)}).status_code == 401
    )


# ----------------------------------------------------------------------------- ingest: the happy path


def test_valid_events_are_ingested_and_stored_as_sent(sandbox: OrbSandbox, client: httpx.Client) -> None:
    by_external = make_event("k-ext")
    by_orb_id = make_event("k-cus", external_customer_id=..., customer_id="cus_123")
    response = ingest(client, [by_external, by_orb_id])

    assert response.status_code == 200
    assert response.json() == {"validation_failed": []}
    stored = sandbox.ingested_events()
    assert set(stored) == {"k-ext", "k-cus"}
    assert stored["k-ext"]["external_customer_id"] == "user-1" and stored["k-ext"]["customer_id"] is None
    assert stored["k-cus"]["customer_id"] == "cus_123" and stored["k-cus"]["external_customer_id"] is None
    assert stored["k-ext"]["properties"] == by_external["properties"]
    assert stored["k-ext"]["event_name"] == "api_call"
    assert parse_iso8601(stored["k-ext"]["timestamp"]) == parse_iso8601(by_external["timestamp"])
    assert sandbox.ingest_request_count == 1
    assert sandbox.wait_for_ingested(["k-ext", "k-cus"], timeout=0.1)


def test_exactly_500_events_are_accepted(sandbox: OrbSandbox, client: httpx.Client) -> None:
    response = ingest(client, [make_event(f"k{i}") for i in range(500)])
    assert response.status_code == 200 and response.json()["validation_failed"] == []
    assert sandbox.ingested_count == 500


def test_more_than_500_events_is_a_400_and_ingests_nothing(sandbox: OrbSandbox, client: httpx.Client) -> None:
    response = ingest(client, [make_event(f"k{i}") for i in range(501)])
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == VALIDATION_ERROR and body["validation_errors"]
    assert sandbox.ingested_count == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"events": {}}',
        b'{"nope": []}',
        b'{"events": [1]}',
        b'{"events": [{"event_name": "x"}]}',
        b'{"events": [{"idempotency_key": "k", "properties": {"x": NaN}}]}',
    ],
    ids=["not-json", "array", "events-object", "no-events", "event-not-object", "no-idempotency-key", "nan"],
)
def test_unreadable_request_is_a_400_request_validation_error(
    sandbox: OrbSandbox, client: httpx.Client, raw: bytes
) -> None:
    response = client.post("/ingest", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["type"] == VALIDATION_ERROR
    assert isinstance(body["validation_errors"], list) and body["validation_errors"]
    assert sandbox.ingested_count == 0


# ----------------------------------------------------------------------------- ingest: per-event validation


@pytest.mark.parametrize(
    ("overrides", "mentions"),
    [
        ({"event_name": ...}, "event_name"),
        ({"event_name": ""}, "event_name"),
        ({"timestamp": ...}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": 1700000000}, "timestamp"),
        ({"properties": ...}, "properties"),
        ({"properties": {"nested": {"a": 1}}}, "properties.nested"),
        ({"properties": {"listed": [1, 2]}}, "properties.listed"),
        ({"properties": {"empty": None}}, "properties.empty"),
        ({"customer_id": "cus_1"}, "Exactly one"),
        ({"external_customer_id": ...}, "Exactly one"),
        ({"external_customer_id": None}, "Exactly one"),
        ({"external_customer_id": 42}, "external_customer_id"),
        ({"extra_field": "x"}, "extra_field"),
    ],
    ids=[
        "no-name",
        "empty-name",
        "no-timestamp",
        "bad-timestamp",
        "numeric-timestamp",
        "no-properties",
        "nested-property",
        "list-property",
        "null-property",
        "both-customer-ids",
        "no-customer-id",
        "null-customer-id",
        "non-string-customer-id",
        "unknown-field",
    ],
)
def test_an_invalid_event_makes_the_whole_request_a_400_and_nothing_is_ingested(
    sandbox: OrbSandbox, client: httpx.Client, overrides: dict, mentions: str
) -> None:
    response = ingest(client, [make_event("good"), make_event("bad", **overrides)])

    assert response.status_code == 400 and response.json()["type"] == VALIDATION_ERROR
    failed = response.json()["validation_failed"]
    assert [entry["idempotency_key"] for entry in failed] == ["bad"]
    assert any(mentions in message for message in failed[0]["validation_errors"]), failed
    assert sandbox.ingested_events() == {}


def test_a_failed_key_is_not_marked_so_the_fixed_event_can_be_resent(sandbox: OrbSandbox, client: httpx.Client) -> None:
    ingest(client, [make_event("k", properties={"nested": {"a": 1}})])
    response = ingest(client, [make_event("k", properties={"a": 1})], debug="true")
    assert response.json()["debug"] == {"duplicate": [], "ingested": ["k"]}
    assert sandbox.ingested_events()["k"]["properties"] == {"a": 1}


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (timedelta(hours=11, minutes=59), True),
        (timedelta(hours=12, minutes=1), False),
        (timedelta(minutes=-4), True),
        (timedelta(minutes=-6), False),
    ],
    ids=["inside-grace", "past-grace", "4-min-ahead", "6-min-ahead"],
)
def test_timestamps_outside_the_grace_period_or_over_5_minutes_ahead_fail(
    sandbox: OrbSandbox, client: httpx.Client, age: timedelta, accepted: bool
) -> None:
    event = make_event("k", timestamp=iso(datetime.now(UTC) - age))
    response = ingest(client, [event])
    assert response.status_code == (200 if accepted else 400)
    assert ("k" in sandbox.ingested_events()) is accepted
    if not accepted:
        assert "timestamp" in response.json()["validation_failed"][0]["validation_errors"][0]


def test_the_grace_period_is_configurable() -> None:
    with OrbSandbox(api_key=API_KEY, grace_period=timedelta(hours=1)) as short:
        response = httpx.post(
            f"{short.base_url}/ingest",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={
                "events": [make_event("old", timestamp=minutes_ago(61)), make_event("new", timestamp=minutes_ago(59))]
            },
        )
        assert response.status_code == 400
        assert [f["idempotency_key"] for f in response.json()["validation_failed"]] == ["old"]
        assert short.ingested_events() == {}


def test_timestamp_forms_orb_accepts(sandbox: OrbSandbox, client: httpx.Client) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    forms = {
        "z-long-fraction": moment.strftime("%Y-%m-%dT%H:%M:%S") + ".1652304793Z",
        "no-offset-is-utc": moment.strftime("%Y-%m-%dT%H:%M:%S"),
        "offset": (moment + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") + "+02:00",
    }
    response = ingest(client, [make_event(key, timestamp=value) for key, value in forms.items()])
    assert response.json()["validation_failed"] == []
    stored = sandbox.ingested_events()
    assert parse_iso8601(stored["no-offset-is-utc"]["timestamp"]) == moment
    assert parse_iso8601(stored["offset"]["timestamp"]) == moment
    assert parse_iso8601(stored["z-long-fraction"]["timestamp"]) == moment.replace(microsecond=165230)


# ----------------------------------------------------------------------------- ingest: idempotency


def test_same_key_twice_with_different_bodies_rejects_the_whole_request(
    sandbox: OrbSandbox, client: httpx.Client
) -> None:
    events = [make_event("other"), make_event("k", properties={"n": 1}), make_event("k", properties={"n": 2})]
    response = ingest(client, events)
    assert response.status_code == 400
    assert "k" in response.json()["detail"]
    assert sandbox.ingested_count == 0


def test_same_key_twice_with_the_same_body_is_ingested_once(sandbox: OrbSandbox, client: httpx.Client) -> None:
    event = make_event("k")
    response = ingest(client, [event, dict(event)], debug="true")
    assert response.status_code == 200
    assert response.json()["debug"] == {"duplicate": ["k"], "ingested": ["k"]}
    assert sandbox.ingested_count == 1


def test_an_ingested_key_is_never_ingested_again(sandbox: OrbSandbox, client: httpx.Client) -> None:
    first = make_event("k", properties={"n": 1})
    assert ingest(client, [first]).json() == {"validation_failed": []}

    resent = ingest(client, [first, make_event("new")], debug="true")
    changed = ingest(client, [make_event("k", properties={"n": 999})])

    assert resent.json()["debug"] == {"duplicate": ["k"], "ingested": ["new"]}
    assert changed.json() == {"validation_failed": []}  # silently ignored, as Orb does
    assert sandbox.ingested_events()["k"]["properties"] == {"n": 1}
    assert sandbox.ingest_attempts_by_key["k"] == 3
    assert sandbox.duplicate_count == 2
    assert [c["idempotency_key"] for c in sandbox.conflicting_duplicates] == ["k"]


def test_concurrent_requests_with_the_same_key_ingest_it_once(sandbox: OrbSandbox) -> None:
    event = make_event("shared")
    results: list[int] = []

    def send() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            for _ in range(5):
                results.append(http.post(f"{sandbox.base_url}/ingest", json={"events": [event]}).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 40
    assert sandbox.ingested_count == 1
    assert sandbox.ingest_attempts_by_key["shared"] == 40
    assert sandbox.duplicate_count == 39


# ----------------------------------------------------------------------------- scripted responses


def test_scripted_responses_answer_the_next_requests_in_order_then_normal_processing_resumes(
    sandbox: OrbSandbox, client: httpx.Client
) -> None:
    sandbox.script_ingest_responses(
        [
            ScriptedResponse(status=500),
            ScriptedResponse(status=429, headers={"retry-after": "1"}),
            ScriptedResponse(
                status=200, body={"validation_failed": [{"idempotency_key": "k", "validation_errors": ["x"]}]}
            ),
        ]
    )
    first, second, third = (ingest(client, [make_event("k")]) for _ in range(3))
    assert first.status_code == 500 and first.headers["transient-error"] == "true" and first.json()["status"] == 500
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert third.json()["validation_failed"][0]["validation_errors"] == ["x"]
    assert sandbox.ingested_count == 0  # scripted answers ingest nothing

    assert ingest(client, [make_event("k")]).json() == {"validation_failed": []}
    assert set(sandbox.ingested_events()) == {"k"}
    assert sandbox.ingest_request_count == 4 and sandbox.pending_scripted_responses == 0


def test_scripted_drop_connection_closes_without_an_answer(sandbox: OrbSandbox, client: httpx.Client) -> None:
    sandbox.script_ingest_responses([ScriptedResponse(drop_connection=True)])
    with pytest.raises(httpx.RemoteProtocolError):
        ingest(client, [make_event("k")])
    assert sandbox.ingested_count == 0
    assert ingest(client, [make_event("k")]).status_code == 200  # the client's pool recovers


def test_scripted_delay_holds_the_answer(sandbox: OrbSandbox, client: httpx.Client) -> None:
    sandbox.script_ingest_responses([ScriptedResponse(delay_seconds=0.5)])
    with pytest.raises(httpx.ReadTimeout):
        client.post("/ingest", json={"events": [make_event("k")]}, timeout=0.05)
    assert sandbox.ingested_count == 0


# ----------------------------------------------------------------------------- faults


def test_error_500_fault_answers_transient_500_and_ingests_nothing(sandbox: OrbSandbox, client: httpx.Client) -> None:
    sandbox.faults.error_500_rate = 1.0
    response = ingest(client, [make_event("k")])
    assert response.status_code == 500 and response.headers["transient-error"] == "true"
    assert response.json()["status"] == 500
    assert sandbox.ingested_count == 0
    assert client.post("/events/search", json={"event_ids": ["k"]}).status_code == 200  # only /ingest is faulted

    sandbox.faults = FaultConfig()
    assert ingest(client, [make_event("k")]).status_code == 200
    assert sandbox.ingested_count == 1
    assert sandbox.stats()["outcomes"] == {"error_500": 1, "processed": 1}


def test_error_429_fault_carries_retry_after_when_configured(sandbox: OrbSandbox, client: httpx.Client) -> None:
    sandbox.faults = FaultConfig(error_429_rate=1.0, retry_after_seconds=0.25)
    response = ingest(client, [make_event("k")])
    assert response.status_code == 429 and response.headers["retry-after"] == "0.25"
    assert sandbox.ingested_count == 0


def test_drop_connection_fault(sandbox: OrbSandbox, client: httpx.Client) -> None:
    sandbox.faults = FaultConfig(drop_connection_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        ingest(client, [make_event("k")])
    assert sandbox.ingested_count == 0


def test_timeout_fault_holds_past_the_client_timeout_and_ingests_nothing(sandbox: OrbSandbox) -> None:
    sandbox.faults = FaultConfig(timeout_rate=1.0, timeout_seconds=1.0)  # 20x the client timeout
    with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=0.05) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post(f"{sandbox.base_url}/ingest", json={"events": [make_event("k")]})
    assert not sandbox.wait_for_ingested(["k"], timeout=0.4)


def test_latency_past_the_client_timeout_still_ingests_the_request(sandbox: OrbSandbox) -> None:
    # The case that makes idempotency keys necessary: the client gave up, Orb did not.
    # 2 s against a 0.05 s client timeout: the client gives up first even on a loaded machine.
    sandbox.faults = FaultConfig(latency_seconds=2.0)
    with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=0.05) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post(f"{sandbox.base_url}/ingest", json={"events": [make_event("k")]})
    assert sandbox.wait_for_ingested(["k"], timeout=5)


def test_fault_draws_are_reproducible_from_the_seed() -> None:
    def outcomes(seed: int) -> list[int]:
        with OrbSandbox(api_key=API_KEY, seed=seed, faults=FaultConfig(error_500_rate=0.3, error_429_rate=0.3)) as sb:
            with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
                return [
                    http.post(f"{sb.base_url}/ingest", json={"events": [make_event(f"k{i}")]}).status_code
                    for i in range(30)
                ]

    first = outcomes(11)
    assert first == outcomes(11)
    assert {200, 429, 500} <= set(first)


# ----------------------------------------------------------------------------- search and volume


def test_search_by_event_ids_returns_events_in_the_sdk_shape(sandbox: OrbSandbox, client: httpx.Client) -> None:
    ingest(client, [make_event("a"), make_event("b", external_customer_id=..., customer_id="cus_9")])
    data = client.post("/events/search", json={"event_ids": ["b", "a", "unknown"]}).json()["data"]
    assert [event["id"] for event in data] == ["b", "a"]
    assert set(data[0]) == {
        "id",
        "customer_id",
        "external_customer_id",
        "event_name",
        "properties",
        "timestamp",
        "deprecated",
    }
    assert data[0]["customer_id"] == "cus_9" and data[0]["deprecated"] is False
    assert data[1]["external_customer_id"] == "user-1"


def test_search_honours_the_timeframe(sandbox: OrbSandbox, client: httpx.Client) -> None:
    ingest(client, [make_event("recent", timestamp=minutes_ago(5)), make_event("older", timestamp=minutes_ago(120))])
    found = client.post(
        "/events/search",
        json={
            "event_ids": ["recent", "older"],
            "timeframe_start": minutes_ago(60),
            "timeframe_end": minutes_ago(0),
        },
    ).json()["data"]
    assert [event["id"] for event in found] == ["recent"]


@pytest.mark.parametrize(
    "criteria",
    [
        {"timeframe_start": "2026-01-01T00:00:00Z"},
        {"event_ids": []},
        {"event_ids": [f"k{i}" for i in range(501)]},
        {"event_ids": [1]},
        {"event_ids": ["a"], "customer_id": "c"},
    ],
    ids=["no-event-ids", "empty", "501-ids", "not-strings", "unknown-criterion"],
)
def test_search_needs_1_to_500_event_ids(client: httpx.Client, criteria: dict) -> None:
    response = client.post("/events/search", json=criteria)
    assert response.status_code == 400 and response.json()["type"] == VALIDATION_ERROR
    assert response.json()["validation_errors"]


def test_search_defaults_to_the_last_week_and_500_ids_are_fine(sandbox: OrbSandbox, client: httpx.Client) -> None:
    ingest(client, [make_event("recent")])
    ids = ["recent", *(f"missing-{i}" for i in range(499))]
    assert [e["id"] for e in client.post("/events/search", json={"event_ids": ids}).json()["data"]] == ["recent"]
    long_ago = {"event_ids": ["recent"], "timeframe_end": iso(datetime.now(UTC) - timedelta(days=8))}
    assert client.post("/events/search", json=long_ago).json()["data"] == []


def test_volume_counts_events_in_hourly_buckets(sandbox: OrbSandbox, client: httpx.Client) -> None:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    ingest(
        client,
        [
            make_event("a", timestamp=iso(base + timedelta(minutes=5))),
            make_event("b", timestamp=iso(base + timedelta(minutes=55))),
            make_event("c", timestamp=iso(base + timedelta(hours=1, minutes=1))),
            make_event("d", timestamp=iso(base + timedelta(hours=2, minutes=1))),
        ],
    )
    response = client.get(
        "/events/volume", params={"timeframe_start": iso(base), "timeframe_end": iso(base + timedelta(hours=2))}
    )
    buckets = response.json()["data"]
    assert [(parse_iso8601(b["timeframe_start"]), b["count"]) for b in buckets] == [
        (base, 2),
        (base + timedelta(hours=1), 1),
    ]
    assert all(
        parse_iso8601(b["timeframe_end"]) - parse_iso8601(b["timeframe_start"]) == timedelta(hours=1) for b in buckets
    )


def test_volume_pages_with_limit_and_cursor(sandbox: OrbSandbox, client: httpx.Client) -> None:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    ingest(
        client, [make_event(f"h{hour}", timestamp=iso(base + timedelta(hours=hour, minutes=10))) for hour in range(5)]
    )
    seen, cursor, pages = [], None, 0
    while True:
        params = {"timeframe_start": iso(base), "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/events/volume", params=params).json()
        seen += [parse_iso8601(bucket["timeframe_start"]) for bucket in page["data"]]
        pages += 1
        cursor = page["pagination_metadata"]["next_cursor"]
        assert page["pagination_metadata"]["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert pages == 3 and seen == [base + timedelta(hours=hour) for hour in range(5)]
    assert client.get("/events/volume", params={"timeframe_start": iso(base), "limit": "101"}).status_code == 400
    assert client.get("/events/volume", params={"timeframe_start": iso(base), "cursor": "bogus!"}).status_code == 400


def test_volume_requires_timeframe_start(client: httpx.Client) -> None:
    assert client.get("/events/volume").status_code == 400
    assert client.get("/events/volume", params={"timeframe_start": "soon"}).status_code == 400


# ----------------------------------------------------------------------------- reset


def test_reset_forgets_events_counters_and_scripts(sandbox: OrbSandbox, client: httpx.Client) -> None:
    ingest(client, [make_event("k")])
    sandbox.script_ingest_responses([ScriptedResponse(status=500)])
    sandbox.reset()
    assert sandbox.ingested_events() == {} and sandbox.ingest_request_count == 0
    assert sandbox.pending_scripted_responses == 0
    assert ingest(client, [make_event("k")], debug="true").json()["debug"]["ingested"] == ["k"]


# ----------------------------------------------------------------------------- standalone


def test_module_runs_standalone_with_flags() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orb_bridge_dev.orb_sandbox",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--error-500-rate",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/v1", line)
        assert found is not None, line
        base_url = found.group(0)
        response = httpx.post(f"{base_url}/ingest", json={"events": []}, headers={"Authorization": "Bearer cli-key"})
        assert response.status_code == 500
        ok = httpx.post(
            f"{base_url}/events/search", json={"event_ids": ["k"]}, headers={"Authorization": "Bearer cli-key"}
        )
        assert ok.status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
