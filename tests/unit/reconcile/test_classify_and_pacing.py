"""The classification of one archived key, the pacer, and the stop on Orb's 429."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from orb_bridge.orb.reconcile_client import FoundEvent, OrbRateLimitedError, OrbReadClient
from orb_bridge.reconcile.classify import classify
from orb_bridge.reconcile.pacing import Pacer

MOMENT = datetime(2026, 3, 2, tzinfo=UTC)
ARCHIVED: dict[str, Any] = {
    "idempotency_key": "k",
    "event_name": "api_call",
    "timestamp": "2026-03-02T10:00:00.123456Z",
    "properties": {"tokens": 1, "cost": 0.5, "cached": False, "model": "small"},
    "external_customer_id": "user-1",
}


def found(**overrides: Any) -> FoundEvent:
    body: dict[str, Any] = {
        "key": "k",
        "event_name": "api_call",
        "customer_id": "cus_1",
        "external_customer_id": "user-1",
        "timestamp": "2026-03-02T10:00:00.123Z",
        "properties": {"tokens": 1.0, "cost": 0.5, "cached": False, "model": "small"},
        "deprecated": False,
    }
    body.update(overrides)
    return FoundEvent(**body)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([found()], "present"),  # numbers as numbers, timestamp to the millisecond
        ([found(timestamp="2026-03-02T11:00:00.123+01:00")], "present"),
        ([found(customer_id=None)], "unattributed"),
        ([found(properties={**ARCHIVED["properties"], "tokens": 2})], "different"),
        ([found(properties={**ARCHIVED["properties"], "cached": 0})], "different"),  # false is not 0
        ([found(timestamp="2026-03-02T10:00:00.124Z")], "different"),
        ([found(external_customer_id="user-2")], "different"),
        ([found(event_name="other")], "different"),
        ([found(deprecated=True)], "deprecated"),
        ([found(deprecated=True), found()], "present"),  # a deprecated one and its replacement
        ([found(deprecated=True), found(properties={"tokens": 9})], "different"),
        ([], "not_found"),
    ],
)
def test_classification(events: list[FoundEvent], expected: str) -> None:
    assert classify(ARCHIVED, events) == expected


def test_the_pacer_spaces_calls_by_the_rate_without_real_sleeps() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    pace = Pacer(2.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        pace()
    assert slept == [0.5, 0.5, 0.5, 0.5] and clock[0] == 102.0


def test_a_429_stops_with_orbs_retry_after() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(429, headers={"Retry-After": "7"}, json={}))
    with httpx.Client(transport=transport) as http:
        client = OrbReadClient("https://orb.example/v1", "key", pace=lambda: None, http_client=http)
        with pytest.raises(OrbRateLimitedError) as raised:
            client.volume(MOMENT, MOMENT)
    assert raised.value.retry_after_seconds == 7
