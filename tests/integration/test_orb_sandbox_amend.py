"""The sandbox's amend, deprecate, unknown customers and the silent-loss fault (what the reconciler
must tell apart: README "Reconciliation"), as Orb's spec describes them, over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orb_bridge_dev.orb_sandbox import FaultConfig, OrbSandbox

API_KEY = "amend-key"
NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
VALIDATION = "https://docs.withorb.com/reference/error-responses#400-request-validation-errors"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(key: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_name": "api_call",
        "idempotency_key": key,
        "timestamp": iso(NOW - timedelta(minutes=10)),
        "properties": {"tokens": 12},
        "external_customer_id": "user-1",
    }
    body.update(overrides)
    return body


@pytest.fixture
def sandbox() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=API_KEY, seed=3, clock=lambda: NOW) as running:
        yield running


@pytest.fixture
def client(sandbox: OrbSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5) as http:
        yield http


def ingest(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    response = client.post("/ingest", json={"events": events})
    assert response.status_code == 200, response.text


def search(client: httpx.Client, *keys: str) -> list[dict[str, Any]]:
    response = client.post("/events/search", json={"event_ids": list(keys)})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def amended_body(**overrides: Any) -> dict[str, Any]:
    body = event("x", properties={"tokens": 99})
    del body["idempotency_key"]
    body.update(overrides)
    return body


def test_an_amended_key_disappears_from_search_but_stays_billed_with_its_new_body(
    sandbox: OrbSandbox, client: httpx.Client
) -> None:
    ingest(client, [event("a"), event("b")])
    response = client.put("/events/a", json=amended_body())
    assert response.status_code == 200 and response.json() == {"amended": "a"}
    assert [found["id"] for found in search(client, "a", "b")] == ["b"]
    assert sandbox.ingested_events()["a"]["properties"] == {"tokens": 99}
    volume = client.get("/events/volume", params={"timeframe_start": iso(NOW - timedelta(hours=1))}).json()
    assert [bucket["count"] for bucket in volume["data"]] == [2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"timestamp": iso(NOW - timedelta(minutes=11))}, "timestamp: must match"),
        ({"external_customer_id": "user-2"}, "customer: must match"),
        ({"idempotency_key": "a"}, "idempotency_key: unknown field"),
    ],
    ids=["other-timestamp", "other-customer", "idempotency-key"],
)
def test_amend_refuses_another_timestamp_customer_or_a_key(
    client: httpx.Client, overrides: dict[str, Any], message: str
) -> None:
    ingest(client, [event("a")])
    response = client.put("/events/a", json=amended_body(**overrides))
    assert response.status_code == 400 and response.json()["type"] == VALIDATION
    assert any(message in error for error in response.json()["validation_errors"])
    assert search(client, "a")[0]["properties"] == {"tokens": 12}


def test_amend_and_deprecate_of_an_unknown_event_are_404(client: httpx.Client) -> None:
    assert client.put("/events/nope", json=amended_body()).status_code == 404
    assert client.put("/events/nope/deprecate").status_code == 404


def test_a_deprecated_event_is_returned_marked_and_no_longer_billed(sandbox: OrbSandbox, client: httpx.Client) -> None:
    ingest(client, [event("a"), event("b")])
    assert client.put("/events/a/deprecate").json() == {"deprecated": "a"}
    assert client.put("/events/a/deprecate").json() == {"deprecated": "a"}  # idempotent by design
    assert [(found["id"], found["deprecated"]) for found in search(client, "a", "b")] == [("a", True), ("b", False)]
    assert set(sandbox.ingested_events()) == {"b"}
    volume = client.get("/events/volume", params={"timeframe_start": iso(NOW - timedelta(hours=1))}).json()
    assert [bucket["count"] for bucket in volume["data"]] == [1]


def test_search_returns_a_deprecated_event_and_its_replacement_under_one_key(client: httpx.Client) -> None:
    ingest(client, [event("a")])
    backfill = client.post(
        "/events/backfills",
        json={
            "timeframe_start": iso(NOW - timedelta(hours=1)),
            "timeframe_end": iso(NOW),
            "replace_existing_events": True,
        },
    ).json()
    assert client.post(
        "/ingest", params={"backfill_id": backfill["id"]}, json={"events": [event("a", properties={"tokens": 5})]}
    ).is_success
    assert client.post(f"/events/backfills/{backfill['id']}/close").is_success
    found = sorted((item["deprecated"], item["properties"]["tokens"]) for item in search(client, "a"))
    assert found == [(False, 5), (True, 12)]


def test_an_unknown_customer_is_matched_to_no_one(sandbox: OrbSandbox, client: httpx.Client) -> None:
    sandbox.forget_customer("ghost")
    ingest(client, [event("known"), event("orphan", external_customer_id="ghost")])
    by_key = {found["id"]: found for found in search(client, "known", "orphan")}
    assert by_key["known"]["customer_id"] and by_key["orphan"]["customer_id"] is None
    assert client.put("/events/orphan/deprecate").status_code == 400


def test_the_lose_rate_fault_answers_200_yet_keeps_only_part_of_the_request_seeded() -> None:
    def run() -> tuple[list[str], set[str]]:
        with OrbSandbox(api_key=API_KEY, seed=11, faults=FaultConfig(lose_rate=0.1), clock=lambda: NOW) as sandbox:
            with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
                response = http.post("/ingest", json={"events": [event(f"k{i}") for i in range(200)]})
                assert response.status_code == 200 and response.json() == {"validation_failed": []}
            return sandbox.lost_keys(), set(sandbox.ingested_events())

    lost, kept = run()
    assert 5 <= len(lost) <= 40 and kept == {f"k{i}" for i in range(200)} - set(lost)
    assert run() == (lost, kept)  # the same seed loses the same events


def test_the_lose_rate_is_switchable_while_running(sandbox: OrbSandbox, client: httpx.Client) -> None:
    sandbox.faults.lose_rate = 1.0
    ingest(client, [event("gone")])
    sandbox.faults.lose_rate = 0.0
    ingest(client, [event("kept")])
    assert set(sandbox.ingested_events()) == {"kept"} and sandbox.lost_keys() == ["gone"]
