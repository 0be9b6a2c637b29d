"""Orb's ingestion rate limits in the sandbox: 429 ``TooManyRequests`` with ``Retry-After``, on an
injected clock (time moves only when the test says so)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orb_bridge_dev.orb_sandbox import OrbSandbox, RateLimiter

API_KEY = "limits-key"
TOO_MANY = "https://docs.withorb.com/reference/error-responses#429-too-many-requests"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def events(prefix: str, count: int, clock: Clock) -> list[dict]:
    stamp = (clock.now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    return [
        {
            "event_name": "e",
            "idempotency_key": f"{prefix}-{i}",
            "timestamp": stamp,
            "properties": {"n": i},
            "external_customer_id": "u",
        }
        for i in range(count)
    ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client_for(clock: Clock) -> Iterator:
    running: list[OrbSandbox] = []

    def start(**limits: float) -> tuple[OrbSandbox, httpx.Client]:
        sandbox = OrbSandbox(api_key=API_KEY, clock=clock, **limits).start()
        running.append(sandbox)
        return sandbox, httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"})

    yield start
    for sandbox in running:
        sandbox.stop()


def test_requests_per_second_over_the_limit_get_429_with_retry_after(client_for, clock: Clock) -> None:
    sandbox, client = client_for(rate_limit_requests_per_second=3)
    answers = [client.post("/ingest", json={"events": events(f"r{i}", 1, clock)}) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["type"] == TOO_MANY and limited.json()["status"] == 429
    assert limited.headers["retry-after"] == "1"
    assert "r3-0" not in sandbox.ingested_events()  # a 429 ingests nothing

    clock.advance(0.34)  # a third of a second: one request's worth of budget comes back
    assert client.post("/ingest", json={"events": events("r3", 1, clock)}).status_code == 200
    assert client.post("/ingest", json={"events": events("r4", 1, clock)}).status_code == 429
    assert sandbox.stats()["outcomes"] == {"processed": 4, "rejected_429": 2}


def test_events_per_minute_budget_and_its_retry_after(client_for, clock: Clock) -> None:
    sandbox, client = client_for(rate_limit_events_per_minute=1000)
    assert client.post("/ingest", json={"events": events("a", 500, clock)}).status_code == 200
    assert client.post("/ingest", json={"events": events("b", 400, clock)}).status_code == 200
    limited = client.post("/ingest", json={"events": events("c", 500, clock)})
    # 100 events left, 400 missing at 1000/60 per second: 24 s.
    assert limited.status_code == 429 and limited.headers["retry-after"] == "24"
    clock.advance(23)
    assert client.post("/ingest", json={"events": events("c", 500, clock)}).status_code == 429
    clock.advance(1)
    assert client.post("/ingest", json={"events": events("c", 500, clock)}).status_code == 200
    assert sandbox.ingested_count == 1400


def test_limits_are_off_by_default(client_for, clock: Clock) -> None:
    _, client = client_for()
    assert {client.post("/ingest", json={"events": events(f"x{i}", 500, clock)}).status_code for i in range(30)} == {
        200
    }


def test_a_request_larger_than_the_whole_budget_passes_once_the_budget_is_full() -> None:
    limiter = RateLimiter(events_per_minute=100)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert limiter.admit(500, now) is None  # full bucket: admitted, now 400 in debt
    assert limiter.admit(1, now) == 241  # (400 + 1) / (100 / 60) s
    assert limiter.admit(500, now + timedelta(seconds=300)) is None
