"""The Orb ingest client: request shape and classification of every kind of answer."""

from __future__ import annotations

import json

import httpx
import pytest

from orb_bridge.orb.client import OrbClient, Outcome

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


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(status):
    result = client_answering(answer(status, {"status": status, "title": "try later"})).ingest([EVENT], 1)
    assert result.outcome is Outcome.RETRYABLE
    assert result.status_code == status
    assert f"HTTP {status}" in result.error_summary


@pytest.mark.parametrize("status", [401, 403, 404])
def test_credentials_or_base_url_problems_are_configuration_errors(status):
    result = client_answering(answer(status, {"status": status, "title": "Unauthorized"})).ingest([EVENT], 1)
    assert result.outcome is Outcome.CONFIGURATION
    assert "Unauthorized" in result.error_summary


TYPES = "https://docs.withorb.com/reference/error-responses#"


def test_a_400_request_validation_error_names_events_and_carries_orbs_problem_details():
    problem = {
        "status": 400,
        "title": "Request validation error",
        "type": TYPES + "400-request-validation-errors",
        "detail": "events.0.timestamp: invalid",
        "validation_errors": ["events.0.timestamp is not a valid datetime"],
    }
    result = client_answering(answer(400, problem)).ingest([EVENT], 1)
    assert result.outcome is Outcome.INVALID_EVENTS
    assert result.attribution.by_key == {"k1": ["events.0.timestamp is not a valid datetime"]}
    assert result.errors == [
        "Request validation error",
        "events.0.timestamp: invalid",
        "events.0.timestamp is not a valid datetime",
    ]


@pytest.mark.parametrize(
    ("status", "kind", "outcome"),
    [
        (400, "400-constraint-violation", Outcome.BAD_REQUEST),
        (400, "400-duplicate-resource-creation", Outcome.BAD_REQUEST),
        (404, "404-url-not-found", Outcome.CONFIGURATION),
        (404, "404-resource-not-found", Outcome.BAD_REQUEST),
        (409, "409-resource-conflict", Outcome.RETRYABLE),
        (413, "413-request-too-large", Outcome.BAD_REQUEST),
        (429, "429-too-many-requests", Outcome.RATE_LIMITED),
        (500, "500-internal-server-error", Outcome.RETRYABLE),
    ],
)
def test_answers_are_classified_by_status_and_problem_type(status, kind, outcome):
    body = {"type": TYPES + kind, "status": status, "title": "t"}
    assert client_answering(answer(status, body)).ingest([EVENT], 1).outcome is outcome


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({}, 5.0),
        ({"retry-after": "soon"}, 5.0),
        ({"retry-after": "-3"}, 0.0),
    ],
)
def test_a_429_carries_how_long_to_wait(headers, seconds):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers=headers, json={"type": TYPES + "429-too-many-requests", "status": 429})

    result = client_answering(handler).ingest([EVENT], 1)
    assert result.outcome is Outcome.RATE_LIMITED and result.retry_after_seconds == seconds


def test_retry_after_as_an_http_date_counts_from_now():
    from orb_bridge.orb.client import retry_after

    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412500.0) == 10.0


def test_a_non_json_error_body_is_kept_as_text():
    result = client_answering(answer(400, content=b"bad things")).ingest([EVENT], 1)
    assert result.outcome is Outcome.INVALID_EVENTS and not result.attribution.by_key
    assert result.errors == ["bad things"]


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("closed"),
    ],
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


def test_the_shared_client_verifies_tls_with_httpxs_ca_bundle_and_loads_it_only_for_https():
    import ssl

    from orb_bridge.orb.client import _TransportPerScheme

    transport = _TransportPerScheme(httpx.Limits(max_connections=2))
    plain = transport._transport("http")._pool._ssl_context
    assert plain is not None
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.cert_store_stats()["x509_ca"] == 0  # trusts nothing
    assert set(transport._transports) == {"http"}
    tls = transport._transport("https")._pool._ssl_context
    assert tls is not None
    assert tls.verify_mode == ssl.CERT_REQUIRED and tls.check_hostname and tls.cert_store_stats()["x509_ca"] > 100
