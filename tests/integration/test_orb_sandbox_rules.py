"""The sandbox's switches for what Orb leaves open: the 400's body shape, whether a 400 request's
valid events are ingested, the future-timestamp limit; and the spec's other problem types."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orb_bridge_dev.orb_sandbox import ERROR_BODY_VARIANTS, OrbSandbox

API_KEY = "rules-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ERRORS = "https://docs.withorb.com/reference/error-responses"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def event(key: str, age: timedelta = timedelta(minutes=1)) -> dict:
    return {
        "event_name": "api_call",
        "idempotency_key": key,
        "timestamp": (NOW - age).isoformat().replace("+00:00", "Z"),
        "properties": {"tokens": 1},
        "external_customer_id": "user-1",
    }


STALE = timedelta(hours=13)


@pytest.fixture
def start() -> Iterator:
    running: list[OrbSandbox] = []

    def _start(**options: object) -> tuple[OrbSandbox, httpx.Client]:
        sandbox = OrbSandbox(api_key=API_KEY, clock=lambda: NOW, **options).start()
        running.append(sandbox)
        return sandbox, httpx.Client(base_url=sandbox.base_url, headers=AUTH)

    yield _start
    for sandbox in running:
        sandbox.stop()


def ingest(client: httpx.Client, events: list[dict]) -> httpx.Response:
    return client.post("/ingest", json={"events": events})


def test_each_body_variant_has_exactly_its_documented_shape(start) -> None:
    bodies = {}
    for variant in ERROR_BODY_VARIANTS:
        _, client = start(error_body=variant)
        response = ingest(client, [event("msg-1", STALE), event("msg-10"), event("msg-2", STALE)])
        assert response.status_code == 400
        body = bodies[variant] = response.json()
        assert body["type"] == f"{ERRORS}#400-request-validation-errors" and body["status"] == 400
        assert body["title"] and body["detail"] and body["validation_errors"]

    a = bodies["validation_failed"]
    assert [f["idempotency_key"] for f in a["validation_failed"]] == ["msg-1", "msg-2"]
    assert all(isinstance(item, str) and "msg-" not in item for item in a["validation_errors"])

    objects = bodies["objects"]["validation_errors"]
    assert [item["idempotency_key"] for item in objects] == ["msg-1", "msg-2"]
    assert all("grace period" in item["validation_errors"][0] for item in objects)
    assert "validation_failed" not in bodies["objects"]

    strings = bodies["strings"]["validation_errors"]
    assert [item.split("'")[1] for item in strings] == ["msg-1", "msg-2"]
    assert strings[0].startswith("Event with idempotency_key 'msg-1' is invalid: timestamp:")

    opaque = bodies["opaque"]["validation_errors"]
    assert opaque[0] == "2 events failed validation"
    assert not any("msg-" in item for item in opaque) and "validation_failed" not in bodies["opaque"]


@pytest.mark.parametrize("ingest_valid", [False, True])
def test_whether_the_valid_events_of_a_400_request_are_ingested_is_a_switch(start, ingest_valid: bool) -> None:
    sandbox, client = start(ingest_valid_events_on_400=ingest_valid)
    assert ingest(client, [event("good"), event("stale", STALE)]).status_code == 400
    assert set(sandbox.ingested_events()) == ({"good"} if ingest_valid else set())
    # The failing key was not marked processed: fixed, it is ingested; the good one once only.
    resent = client.post("/ingest", json={"events": [event("good"), event("stale")]}, params={"debug": "true"})
    assert resent.status_code == 200 and resent.json()["validation_failed"] == []
    assert resent.json()["debug"]["ingested"] == (["stale"] if ingest_valid else ["good", "stale"])
    assert sandbox.billed_count_by_key() == {"good": 1, "stale": 1}


@pytest.mark.parametrize(
    ("limit", "ahead", "accepted"),
    [
        (timedelta(minutes=5), timedelta(minutes=4), True),
        (timedelta(minutes=5), timedelta(minutes=6), False),
        (timedelta(hours=1), timedelta(minutes=59), True),
        (timedelta(hours=24), timedelta(hours=25), False),
    ],
)
def test_the_future_limit_is_a_setting(start, limit: timedelta, ahead: timedelta, accepted: bool) -> None:
    _sandbox, client = start(future_limit=limit)
    response = ingest(client, [event("ahead", -ahead)])
    assert response.status_code == (200 if accepted else 400)
    if not accepted:
        assert "in the future" in response.json()["validation_failed"][0]["validation_errors"][0]


def test_a_200_never_lists_failures(start) -> None:
    _, client = start()
    assert ingest(client, [event(f"k{i}") for i in range(3)]).json() == {"validation_failed": []}


def test_unknown_error_body_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="error_body"):
        OrbSandbox(error_body="xml")


def test_problem_types_follow_the_spec(start) -> None:
    sandbox, client = start()
    unauthorized = httpx.post(f"{sandbox.base_url}/events/search", json={"event_ids": ["x"]})
    assert unauthorized.status_code == 401 and unauthorized.json()["type"] == f"{ERRORS}#401-authentication-error"
    missing = client.get("/events/backfills/bf_nope")
    assert missing.status_code == 404 and missing.json()["type"] == f"{ERRORS}#404-resource-not-found"
    no_url = client.get("/no/such/url")
    assert no_url.status_code == 404 and no_url.json()["type"] == f"{ERRORS}#404-url-not-found"
    huge = client.post("/ingest", content=b"x" * (20 * 1024 * 1024 + 1), headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["type"] == f"{ERRORS}#413-request-too-large"


def test_an_idempotency_key_header_replays_the_answer_or_is_a_409_for_another_request(start) -> None:
    _sandbox, client = start()
    window = {"timeframe_start": "2026-11-01T00:00:00Z", "timeframe_end": "2026-11-02T00:00:00Z"}
    first = client.post("/events/backfills", json=window, headers={"Idempotency-Key": "create-1"})
    again = client.post("/events/backfills", json=window, headers={"Idempotency-Key": "create-1"})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    other = client.post(
        "/events/backfills", json={**window, "replace_existing_events": False}, headers={"Idempotency-Key": "create-1"}
    )
    assert other.status_code == 409 and other.json()["type"] == f"{ERRORS}#409-resource-conflict"
    assert len(client.get("/events/backfills").json()["data"]) == 1
