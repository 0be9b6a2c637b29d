"""Orb's backfills in the sandbox, as the spec describes them (clock injected)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orb_bridge_dev.orb_sandbox import FaultConfig, OrbSandbox

API_KEY = "backfill-key"
ERRORS = "https://docs.withorb.com/reference/error-responses"
BACKFILL_FIELDS = {
    "id",
    "status",
    "created_at",
    "timeframe_start",
    "timeframe_end",
    "events_ingested",
    "close_time",
    "reverted_at",
    "customer_id",
    "deprecation_filter",
    "replace_existing_events",
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=API_KEY, clock=clock) as running:
        yield running


@pytest.fixture
def client(sandbox: OrbSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        yield http


def event(key: str, moment: datetime, customer: str = "user-1", **properties: object) -> dict:
    return {
        "event_name": "api_call",
        "idempotency_key": key,
        "timestamp": iso(moment),
        "properties": properties or {"n": 1},
        "external_customer_id": customer,
    }


def create(client: httpx.Client, start: datetime, end: datetime, **options: object) -> httpx.Response:
    return client.post("/events/backfills", json={"timeframe_start": iso(start), "timeframe_end": iso(end), **options})


def days_ago(clock: Clock, days: float) -> datetime:
    return clock.now - timedelta(days=days)


def search(client: httpx.Client, *keys: str, clock: Clock) -> list[dict]:
    criteria = {"event_ids": list(keys), "timeframe_start": iso(days_ago(clock, 30))}
    return client.post("/events/search", json=criteria).json()["data"]


def test_create_has_the_spec_shape_and_defaults(client: httpx.Client, clock: Clock) -> None:
    backfill = create(client, days_ago(clock, 3), days_ago(clock, 1)).json()
    assert set(backfill) == BACKFILL_FIELDS
    assert backfill["status"] == "pending" and backfill["replace_existing_events"] is True
    assert backfill["close_time"] == iso(clock.now + timedelta(days=1))  # default: one day after creation
    assert backfill["events_ingested"] == 0 and backfill["reverted_at"] is None and backfill["customer_id"] is None
    assert client.get(f"/events/backfills/{backfill['id']}").json() == backfill


@pytest.mark.parametrize("window", [(40, 0), (1, 2), (1, 1)], ids=["over-31-days", "end-before-start", "empty"])
def test_bad_windows_are_400(client: httpx.Client, clock: Clock, window: tuple[int, int]) -> None:
    response = create(client, days_ago(clock, window[0]), days_ago(clock, window[1]))
    assert response.status_code == 400 and response.json()["type"] == f"{ERRORS}#400-request-validation-errors"


def test_overlapping_pending_backfills_are_refused(client: httpx.Client, clock: Clock) -> None:
    first = create(client, days_ago(clock, 5), days_ago(clock, 3)).json()
    overlapping = create(client, days_ago(clock, 4), days_ago(clock, 2), external_customer_id="other")
    # The spec's answer for a conflict with another resource: 409 (it was 400 before issue 21).
    assert overlapping.status_code == 409 and overlapping.json()["type"] == f"{ERRORS}#409-resource-conflict"
    assert create(client, days_ago(clock, 3), days_ago(clock, 2)).status_code == 200  # end is exclusive
    client.post(f"/events/backfills/{first['id']}/close")
    assert create(client, days_ago(clock, 4), days_ago(clock, 3.5)).status_code == 200  # first is no longer pending


def test_late_events_only_through_an_open_backfill_covering_them(
    sandbox: OrbSandbox, client: httpx.Client, clock: Clock
) -> None:
    backfill = create(client, days_ago(clock, 3), days_ago(clock, 1), replace_existing_events=False).json()
    late = event("late", days_ago(clock, 2))
    assert client.post("/ingest", json={"events": [late]}).status_code == 400  # outside the grace period
    outside = client.post(
        "/ingest", params={"backfill_id": backfill["id"]}, json={"events": [late, event("older", days_ago(clock, 5))]}
    )
    assert outside.status_code == 400
    assert [f["idempotency_key"] for f in outside.json()["validation_failed"]] == ["older"]
    ok = client.post("/ingest", params={"backfill_id": backfill["id"]}, json={"events": [late]})
    assert ok.status_code == 200 and ok.json() == {"validation_failed": []}
    # Not billed, not searchable, until the backfill closes.
    assert sandbox.ingested_events() == {} and search(client, "late", clock=clock) == []
    closed = client.post(f"/events/backfills/{backfill['id']}/close").json()
    assert closed["status"] == "reflected" and closed["events_ingested"] == 1 and closed["close_time"] == iso(clock.now)
    assert [e["id"] for e in search(client, "late", clock=clock)] == ["late"]
    again = client.post(
        "/ingest", params={"backfill_id": backfill["id"]}, json={"events": [event("x", days_ago(clock, 2))]}
    )
    assert again.status_code == 400 and again.json()["type"] == f"{ERRORS}#400-constraint-violation"
    unknown = client.post("/ingest", params={"backfill_id": "bf_nope"}, json={"events": [late]})
    assert unknown.status_code == 404 and unknown.json()["type"] == f"{ERRORS}#404-resource-not-found"


def test_customer_scope(sandbox: OrbSandbox, client: httpx.Client, clock: Clock) -> None:
    backfill = create(client, days_ago(clock, 3), days_ago(clock, 1), external_customer_id="user-1").json()
    assert backfill["customer_id"]  # the scoped customer's Orb id
    other = client.post(
        "/ingest",
        params={"backfill_id": backfill["id"]},
        json={"events": [event("theirs", days_ago(clock, 2), customer="user-2")]},
    )
    assert (
        other.status_code == 400 and "another customer" in other.json()["validation_failed"][0]["validation_errors"][0]
    )
    mine = client.post(
        "/ingest", params={"backfill_id": backfill["id"]}, json={"events": [event("mine", days_ago(clock, 2))]}
    )
    assert mine.status_code == 200


def test_close_with_replace_existing_events_replaces_what_the_window_held(
    sandbox: OrbSandbox, client: httpx.Client, clock: Clock
) -> None:
    hour_ago = clock.now - timedelta(hours=1)
    client.post("/ingest", json={"events": [event("old-a", hour_ago), event("kept", hour_ago, customer="user-2")]})
    backfill = create(client, clock.now - timedelta(hours=2), clock.now, external_customer_id="user-1").json()
    client.post("/ingest", params={"backfill_id": backfill["id"]}, json={"events": [event("new-a", hour_ago, n=2)]})
    assert set(sandbox.ingested_events()) == {"old-a", "kept"}

    client.post(f"/events/backfills/{backfill['id']}/close")
    assert set(sandbox.ingested_events()) == {"new-a", "kept"}  # only user-1's events were in scope
    found = {e["id"]: e["deprecated"] for e in search(client, "old-a", "new-a", clock=clock)}
    assert found == {"old-a": True, "new-a": False}
    volume = client.get("/events/volume", params={"timeframe_start": iso(clock.now - timedelta(hours=3))}).json()
    assert sum(bucket["count"] for bucket in volume["data"]) == 2

    reverted = client.post(f"/events/backfills/{backfill['id']}/revert").json()
    assert reverted["status"] == "reverted" and reverted["reverted_at"] == iso(clock.now)
    assert set(sandbox.ingested_events()) == {"old-a", "kept"}
    assert client.post(f"/events/backfills/{backfill['id']}/revert").status_code == 400


def test_without_replace_a_key_already_billed_is_billed_twice(
    sandbox: OrbSandbox, client: httpx.Client, clock: Clock
) -> None:
    # Why a backfill command must search before it ingests: keys only deduplicate within a backfill.
    client.post("/ingest", json={"events": [event("k", clock.now - timedelta(hours=1))]})
    backfill = create(client, clock.now - timedelta(hours=2), clock.now, replace_existing_events=False).json()
    client.post(
        "/ingest", params={"backfill_id": backfill["id"]}, json={"events": [event("k", clock.now - timedelta(hours=1))]}
    )
    client.post(f"/events/backfills/{backfill['id']}/close")
    assert sandbox.billed_count_by_key() == {"k": 2} and sandbox.stats()["billed_twice"] == 1


def test_a_backfill_closes_itself_at_its_close_time(sandbox: OrbSandbox, client: httpx.Client, clock: Clock) -> None:
    backfill = create(
        client, days_ago(clock, 3), days_ago(clock, 1), close_time=iso(clock.now + timedelta(hours=2))
    ).json()
    client.post("/ingest", params={"backfill_id": backfill["id"]}, json={"events": [event("late", days_ago(clock, 2))]})
    clock.now += timedelta(hours=2)
    fetched = client.get(f"/events/backfills/{backfill['id']}").json()
    assert fetched["status"] == "reflected" and fetched["close_time"] == backfill["close_time"]
    assert set(sandbox.ingested_events()) == {"late"}


def test_revert_of_a_pending_backfill_and_list_pagination(client: httpx.Client, clock: Clock) -> None:
    ids = []
    for index in range(3):
        created = create(client, days_ago(clock, 10 - 2 * index), days_ago(clock, 9 - 2 * index)).json()
        ids.append(created["id"])
    assert client.post(f"/events/backfills/{ids[0]}/revert").json()["status"] == "reverted"
    assert client.post(f"/events/backfills/{ids[0]}/close").status_code == 400
    first = client.get("/events/backfills", params={"limit": 2}).json()
    assert [b["id"] for b in first["data"]] == [ids[2], ids[1]] and first["pagination_metadata"]["has_more"]
    rest = client.get("/events/backfills", params={"cursor": first["pagination_metadata"]["next_cursor"]}).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]]
    assert rest["pagination_metadata"] == {"has_more": False, "next_cursor": None}


@pytest.mark.parametrize("dedupe", [False, True], ids=["default-costly", "dedupe-switch"])
def test_a_key_sent_twice_into_one_backfill_is_billed_twice_unless_deduplicated(clock: Clock, dedupe: bool) -> None:
    # Orb documents no deduplication within a backfill: the sandbox assumes the costly reading.
    with (
        OrbSandbox(api_key=API_KEY, clock=clock, dedupe_within_backfill=dedupe) as sandbox,
        httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as client,
    ):
        backfill = create(client, days_ago(clock, 3), days_ago(clock, 1), replace_existing_events=False).json()
        for _ in range(2):
            sent = client.post(
                "/ingest", params={"backfill_id": backfill["id"]}, json={"events": [event("k", days_ago(clock, 2))]}
            )
            assert sent.status_code == 200
        closed = client.post(f"/events/backfills/{backfill['id']}/close").json()
        assert closed["events_ingested"] == (1 if dedupe else 2)
        assert sandbox.billed_count_by_key() == {"k": 1 if dedupe else 2}


@pytest.mark.parametrize("lost_as", ["drop", "500"])
def test_an_ingested_backfill_request_can_lose_its_answer(clock: Clock, lost_as: str) -> None:
    faults = FaultConfig(backfill_answer_lost_rate=1.0, backfill_answer_lost_as=lost_as)
    with (
        OrbSandbox(api_key=API_KEY, clock=clock, faults=faults) as sandbox,
        httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as client,
    ):
        backfill = create(client, days_ago(clock, 3), days_ago(clock, 1), replace_existing_events=False).json()
        request = {"events": [event("k", days_ago(clock, 2))]}
        if lost_as == "drop":
            with pytest.raises(httpx.TransportError):
                client.post("/ingest", params={"backfill_id": backfill["id"]}, json=request)
        else:
            assert client.post("/ingest", params={"backfill_id": backfill["id"]}, json=request).status_code == 500
        # Live ingest is not affected; the backfill took the event all the same.
        assert client.post("/ingest", json={"events": [event("live", clock.now)]}).status_code == 200
        assert client.get(f"/events/backfills/{backfill['id']}").json()["events_ingested"] == 1
        assert sandbox.stats()["outcomes"]["answer_lost"] == 1


def test_a_closed_backfill_shows_only_after_the_reflect_delay_and_reverts_through_pending_revert(
    clock: Clock,
) -> None:
    with (
        OrbSandbox(api_key=API_KEY, clock=clock, backfill_reflect_delay=timedelta(minutes=5)) as sandbox,
        httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as client,
    ):
        backfill = create(client, days_ago(clock, 3), days_ago(clock, 1), replace_existing_events=False).json()
        bid = backfill["id"]
        client.post("/ingest", params={"backfill_id": bid}, json={"events": [event("late", days_ago(clock, 2))]})
        closed = client.post(f"/events/backfills/{bid}/close").json()
        # Closed (close_time in the past) but not reflected yet: still pending, events hidden.
        assert closed["status"] == "pending" and closed["close_time"] == iso(clock.now)
        assert search(client, "late", clock=clock) == [] and sandbox.ingested_events() == {}
        again = client.post(f"/events/backfills/{bid}/close")
        assert again.status_code == 400 and again.json()["type"] == f"{ERRORS}#400-constraint-violation"
        more = client.post("/ingest", params={"backfill_id": bid}, json={"events": [event("x", days_ago(clock, 2))]})
        assert more.status_code == 400
        clock.now += timedelta(minutes=5)
        assert client.get(f"/events/backfills/{bid}").json()["status"] == "reflected"
        assert [e["id"] for e in search(client, "late", clock=clock)] == ["late"]

        reverting = client.post(f"/events/backfills/{bid}/revert").json()
        assert reverting["status"] == "pending_revert" and set(sandbox.ingested_events()) == {"late"}
        clock.now += timedelta(minutes=5)
        assert client.get(f"/events/backfills/{bid}").json()["status"] == "reverted"
        assert sandbox.ingested_events() == {}

        # Reverting one that was never closed drops its events at once.
        open_one = create(client, days_ago(clock, 3), days_ago(clock, 1), replace_existing_events=False).json()
        client.post(
            "/ingest", params={"backfill_id": open_one["id"]}, json={"events": [event("o", days_ago(clock, 2))]}
        )
        assert client.post(f"/events/backfills/{open_one['id']}/revert").json()["status"] == "reverted"
        clock.now += timedelta(days=2)
        assert sandbox.ingested_events() == {}
