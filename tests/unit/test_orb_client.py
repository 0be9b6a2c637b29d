"""The Orb ingest client: request shape and classification of every kind of answer."""

from __future__ import annotations

import json

import httpx
import pytest

from orb_bridge.orb import OrbClient, Outcome

EVENT = {
    "event_name": "api_call",
    "idempotency_key": "k1",
    "timestamp": "2026-11-21T09:00:00Z",
    "external_customer_id": "cust-1",
    "properties": {"n": 1},
}


def client_answering(handler) -> OrbClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return OrbClient("https://orb.test/v1/", "secret-key", http)


def answer(status: int, body=None, content: bytes | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        if content is not None:
            return httpx.Response(status, content=content)
        return httpx.Response(status, json=body if body is not None else {})

    return handler


def test_request_is_a_bearer_post_of_the_events_to_ingest_with_the_timeout():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"validation_failed": []})

    result = client_answering(handler).ingest([EVENT], timeout_seconds=2.5)

    assert result.outcome is Outcome.OK
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://orb.test/v1/ingest"
    assert request.headers["authorization"] == "Bearer secret-key"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"events": [EVENT]}
    assert request.extensions["timeout"]["read"] == 2.5
    assert request.extensions["timeout"]["connect"] == 2.5


def test_validation_failed_events_are_reported_by_key_with_their_errors():
    body = {
        "validation_failed": [
            {"idempotency_key": "k1", "validation_errors": ["timestamp too old", "bad property"]},
            {"idempotency_key": "k2", "validation_errors": []},
        ],
        "debug": None,
    }
    result = client_answering(answer(200, body)).ingest([EVENT], 1)
    assert result.outcome is Outcome.OK
    assert dict(result.validation_failed) == {"k1": ["timestamp too old", "bad property"], "k2": []}


def test_a_200_without_validation_failed_means_everything_was_ingested():
    result = client_answering(answer(200, {})).ingest([EVENT], 1)
    assert result.outcome is Outcome.OK
    assert dict(result.validation_failed) == {}


def test_an_unreadable_200_is_retried_rather_than_trusted():
    result = client_answering(answer(200, content=b"<html>oops</html>")).ingest([EVENT], 1)
    assert result.outcome is Outcome.RETRYABLE


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(status):
    result = client_answering(answer(status, {"status": status, "title": "try later"})).ingest([EVENT], 1)
    assert result.outcome is Outcome.RETRYABLE
    assert result.status_code == status
    assert f"HTTP {status}" in result.error_summary


@pytest.mark.parametrize("status", [401, 403, 404])
def test_credentials_or_base_url_problems_are_auth_errors(status):
    result = client_answering(answer(status, {"status": status, "title": "Unauthorized"})).ingest([EVENT], 1)
    assert result.outcome is Outcome.AUTH
    assert "Unauthorized" in result.error_summary


def test_a_400_is_a_bad_request_carrying_orbs_problem_details():
    problem = {
        "status": 400,
        "title": "Request validation error",
        "type": "https://docs.withorb.com/reference/error-responses#400-request-validation-error",
        "detail": "events.0.timestamp: invalid",
        "validation_errors": ["events.0.timestamp is not a valid datetime"],
    }
    result = client_answering(answer(400, problem)).ingest([EVENT], 1)
    assert result.outcome is Outcome.BAD_REQUEST
    assert result.errors == [
        "Request validation error",
        "events.0.timestamp: invalid",
        "events.0.timestamp is not a valid datetime",
    ]


def test_a_non_json_error_body_is_kept_as_text():
    result = client_answering(answer(400, content=b"bad things")).ingest([EVENT], 1)
    assert result.outcome is Outcome.BAD_REQUEST
    assert result.errors == ["bad things"]


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.ConnectError("refused"),
     httpx.RemoteProtocolError("closed")],
)
def test_network_problems_are_retryable_and_never_raise(exc):
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    result = client_answering(handler).ingest([EVENT], 1)
    assert result.outcome is Outcome.RETRYABLE
    assert result.status_code is None
    assert type(exc).__name__ in result.error_summary


def test_the_api_key_never_appears_in_the_clients_repr():
    assert "secret-key" not in repr(client_answering(answer(200, {})))
