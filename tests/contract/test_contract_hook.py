"""The contract hook itself: it catches answers and bridge requests outside Orb's spec."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from orb_bridge_dev.orb_sandbox import OrbSandbox, contract
from orb_bridge_dev.orb_sandbox.wsgi import Reply
from tests.contract.extract_spec import extract

SUBSET = Path(__file__).with_name("orb-openapi-subset.json")
AUTH = {"Authorization": "Bearer k"}


@pytest.fixture
def checker() -> contract.ContractChecker:
    return contract.ContractChecker(json.loads(SUBSET.read_text()))


def test_the_suite_runs_with_the_hook_on() -> None:
    assert contract.active_spec() == str(SUBSET)


def test_a_non_conforming_sandbox_answer_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    with OrbSandbox(api_key="k") as sandbox:
        original = sandbox.handle

        def broken(*args: object) -> Reply:
            reply = original(*args)
            if reply.status == 200:  # an Event without its required fields, a timestamp without offset
                return Reply.json(200, {"data": [{"id": "k", "timestamp": "2026-01-01T00:00:00"}]})
            return reply

        monkeypatch.setattr(sandbox, "handle", broken)
        response = httpx.post(f"{sandbox.base_url}/events/search", json={"event_ids": ["k"]}, headers=AUTH)
    assert response.status_code == 200
    [violation] = contract.take_violations()
    assert "POST /v1/events/search" in violation and "'deprecated' is a required property" in violation
    assert "is not a 'date-time'" in violation


def test_an_undocumented_status_is_a_violation(checker: contract.ContractChecker) -> None:
    assert checker.check_response("POST", "/v1/ingest", 405, {"status": 405}) == [
        "405 is not a documented answer of POST /v1/ingest"
    ]
    problem = {"type": "https://docs.withorb.com/reference/error-responses#429-too-many-requests", "status": 429}
    assert checker.check_response("POST", "/v1/ingest", 429, problem) == []
    assert checker.check_response("POST", "/v1/ingest", 429, {**problem, "status": 400})


def test_an_off_spec_request_from_the_bridge_is_recorded() -> None:
    bridge = {**AUTH, "User-Agent": "segment-orb-bridge/0.1.0"}
    with OrbSandbox(api_key="k") as sandbox:
        # Orb refuses an unknown event field: the sandbox answers 400, and the bridge was wrong to send it.
        answer = httpx.post(
            f"{sandbox.base_url}/ingest",
            headers=bridge,
            params={"debug": "true", "dry_run": "1"},
            json={
                "events": [
                    {
                        "idempotency_key": "k",
                        "event_name": "e",
                        "properties": {},
                        "timestamp": "2026-01-01T00:00:00Z",
                        "external_customer_id": "u",
                        "extra": 1,
                    }
                ]
            },
        )
        other_client = httpx.post(f"{sandbox.base_url}/ingest", headers=AUTH, json={"events": [], "x": 1})
    assert answer.status_code == 400 and other_client.status_code == 400
    [violation] = contract.take_violations()  # the other client's bad request is only answered
    assert "request body: events/0: Additional properties are not allowed ('extra' was unexpected)" in violation
    assert "query parameter dry_run is not in Orb's spec" in violation


def test_the_subset_is_self_contained_and_what_the_script_extracts(checker: contract.ContractChecker) -> None:
    subset = json.loads(SUBSET.read_text())
    again = extract(subset)
    assert again["paths"] == subset["paths"] and again["components"] == subset["components"]
    revert = checker.operation("POST", "/v1/events/backfills/bf_1/revert")
    assert revert is not None and revert["operationId"] == "revert-backfill"
