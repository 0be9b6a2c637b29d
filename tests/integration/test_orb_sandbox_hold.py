"""The sandbox's hold: one client's ingest request held mid-flight until the test lets go, so the
soak kills an ingest invocation at a known point (after part of its batch is in Orb)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orb_bridge_dev.orb_sandbox import FaultConfig, OrbSandbox

API_KEY = "hold-key"
# Generous: only reached when the hold is broken, and then the test fails anyway.
DEADLINE = 60.0


def events(*keys: str) -> dict:
    stamp = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    return {
        "events": [
            {
                "event_name": "e",
                "idempotency_key": key,
                "timestamp": stamp,
                "properties": {},
                "external_customer_id": "u",
            }
            for key in keys
        ]
    }


@pytest.fixture
def sandbox():
    # Every request not exempted by the hold fails: the hold's requests must skip faults.
    with OrbSandbox(api_key=API_KEY, faults=FaultConfig(error_500_rate=1.0), rate_limit_requests_per_second=1) as box:
        yield box


def post(sandbox: OrbSandbox, body: dict) -> httpx.Response:
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=DEADLINE) as c:
        return c.post("/ingest", json=body)


def test_the_next_request_after_part_of_the_keys_is_in_orb_is_held_until_released(sandbox: OrbSandbox) -> None:
    hold = sandbox.hold_ingest(["a", "b", "c", "d"])

    # Faults do not touch the hold's requests: the first one passes.
    assert post(sandbox, events("a")).status_code == 200
    assert not hold.reached.is_set()
    outcome: list[object] = []
    held = threading.Thread(target=lambda: outcome.append(_post_or_error(sandbox, events("b", "c"))))
    held.start()
    assert hold.reached.wait(DEADLINE)
    # Held, not answered: other clients are served meanwhile (and still get their faults).
    assert post(sandbox, events("other")).status_code == 500
    assert outcome == [] and held.is_alive()

    hold.release.set()
    held.join(DEADLINE)
    assert isinstance(outcome[0], httpx.TransportError)  # dropped: the client was gone
    assert set(sandbox.ingested_events()) == {"a"}
    assert hold.held_requests == 1 and sandbox.stats()["outcomes"]["held"] == 1
    # Released: the same keys are served as usual again (faults included).
    assert post(sandbox, events("b", "c")).status_code == 500


def test_nothing_is_held_before_one_of_the_keys_is_in_orb(sandbox: OrbSandbox) -> None:
    hold = sandbox.hold_ingest(["x", "y"])
    stale = events("x")
    stale["events"][0]["timestamp"] = "2000-01-01T00:00:00Z"
    assert post(sandbox, stale).status_code == 400  # refused: nothing of the hold's keys in Orb yet
    # Within the same second: the 1 request/s limit does not touch the hold's requests either.
    assert post(sandbox, events("x", "y")).status_code == 200
    assert not hold.reached.is_set()


def _post_or_error(sandbox: OrbSandbox, body: dict) -> object:
    try:
        return post(sandbox, body)
    except httpx.TransportError as error:
        return error
