"""The OrbIngestFunction handler: SQS event in, partial batch response out, metrics, config errors."""

from __future__ import annotations

import json

import httpx
import pytest

from orb_bridge import ingest
from tests.conftest import FakeLambdaContext, load_handler, sqs_event
from tests.unit.test_ingest_service import FakeOrb, make_service, rejected_queue, usage_event  # noqa: F401



@pytest.fixture
def handler():
    ingest.forget_container_service()
    yield load_handler("orb_ingest")
    ingest.forget_container_service()


def use_service(monkeypatch, service):
    """The container's service, as if built from the environment (settings are re-read per call)."""
    ingest._service = service
    monkeypatch.setattr(ingest, "container_service", lambda: service)


def emitted_metrics(output: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and "_aws" in line:
            blob = json.loads(line)
            for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = blob[definition["Name"]]
                values[definition["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_a_configuration_error_fails_every_message_without_raising(handler, monkeypatch, capsys, caplog):
    monkeypatch.delenv("ORB_API_KEY", raising=False)
    monkeypatch.delenv("ORB_API_KEY_SECRET_ARN", raising=False)
    monkeypatch.setenv("REJECTED_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/rejected")

    response = handler.lambda_handler(sqs_event(["{}", "{}"]), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-00000"}, {"itemIdentifier": "msg-00001"}]}
    assert "ORB_API_KEY_SECRET_ARN (or ORB_API_KEY locally) is required" in caplog.text
    assert emitted_metrics(capsys.readouterr().out)["EventsRetried"] == 2


def test_the_handler_reports_only_failed_messages_and_emits_metrics(handler, rejected_queue, capsys, monkeypatch):  # noqa: F811
    orb = FakeOrb()
    orb.invalid_keys = {"key-1": ["too old"]}
    orb.scripted = [lambda: httpx.Response(200, json={"validation_failed": [
        {"idempotency_key": "key-1", "validation_errors": ["too old"]}]}),
        lambda: httpx.Response(500, json={"status": 500})]
    use_service(monkeypatch, make_service(orb, rejected_queue, max_events_per_request=2, max_concurrent_requests=1))
    bodies = [usage_event(i).to_message_body() for i in range(4)]

    response = handler.lambda_handler(sqs_event(bodies), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-00002"}, {"itemIdentifier": "msg-00003"}]}
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["EventsIngested"] == 1
    assert metrics["EventsRejectedByOrb"] == 1
    assert metrics["EventsRetried"] == 2


def test_a_401_is_logged_as_configuration_and_the_settings_are_reread_next_time(handler, rejected_queue, caplog, monkeypatch):  # noqa: F811
    orb = FakeOrb()
    orb.scripted = [lambda: httpx.Response(401, json={"status": 401, "title": "Unauthenticated"})]
    use_service(monkeypatch, make_service(orb, rejected_queue))

    response = handler.lambda_handler(sqs_event([usage_event(1).to_message_body()]), FakeLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-00000"}]}
    assert ingest._service is None
    assert "configuration error: Orb refused the request (HTTP 401" in caplog.text
