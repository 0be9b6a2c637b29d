"""Finding 3: at LogLevel=DEBUG botocore logged Secrets Manager's responses (the secrets) and
settings objects' repr held them. Each handler runs here at DEBUG, on the paths that read,
use and refuse credentials, and every captured line is searched for every secret."""

from __future__ import annotations

import io
import json
import logging

import boto3
import httpx
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.core.observability import logger
from orb_bridge.ingest import container as ingest_container
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.intake import service as intake
from orb_bridge.intake.settings import IntakeSettings
from orb_bridge.webhooks import service as webhook_service
from orb_bridge.webhooks.settings import WebhookSettings
from tests.support.lambdas import FakeLambdaContext, load_handler, sqs_event
from tests.support.segment_requests import http_event, js_stringify, sign, track

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SECRETS = {
    "segment-token": "tok-NEVER-LOGGED-3f9a",
    "segment-secret": "shared-NEVER-LOGGED-8c2e",
    "orb-api-key": "orbkey-NEVER-LOGGED-55d1",
    "orb-webhook": "whsec-NEVER-LOGGED-a7b4",
}


@pytest.fixture
def debug_logs(monkeypatch, capsys):
    """Everything logged at DEBUG, through the root logger (where Lambda's runtime sends library
    logs, and Powertools' records propagate), formatted with extras as Powertools writes them;
    plus anything printed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logger.registered_formatter)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # what Lambda does for ApplicationLogLevel DEBUG
    logger.setLevel("DEBUG")
    try:
        yield lambda: stream.getvalue() + "".join(capsys.readouterr())
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        logger.setLevel("INFO")


@pytest.fixture
def deployed(monkeypatch):
    with mock_aws():
        aws.reset_clients()
        secrets_manager = boto3.client("secretsmanager", region_name="us-east-1")
        arns = {
            name: secrets_manager.create_secret(Name=name, SecretString=value)["ARN"] for name, value in SECRETS.items()
        }
        sqs = aws.client("sqs")
        for name in ("INGEST_QUEUE_URL", "REJECTED_QUEUE_URL"):
            monkeypatch.setenv(name, sqs.create_queue(QueueName=name.lower())["QueueUrl"])
        env = {
            "SEGMENT_AUTH_TOKEN_ARN": arns["segment-token"],
            "SEGMENT_SHARED_SECRET_ARN": arns["segment-secret"],
            "ORB_API_KEY_SECRET_ARN": arns["orb-api-key"],
            "ORB_WEBHOOK_SECRET_ARN": arns["orb-webhook"],
            "EXTERNAL_CUSTOMER_ID_FIELD": "userId",
            "ORB_API_BASE_URL": "https://orb.test/v1",
            "WEBHOOK_EVENT_BUS_NAME": "bus",
            "IDEMPOTENCY_TABLE_NAME": "idem",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in (
            "SEGMENT_AUTH_TOKEN",
            "SEGMENT_SHARED_SECRET",
            "ORB_API_KEY",
            "ORB_WEBHOOK_SECRET",
            "ALLOW_UNAUTHENTICATED",
        ):
            monkeypatch.delenv(name, raising=False)
        aws.client("dynamodb").create_table(
            TableName="idem",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        aws.client("events").create_event_bus(Name="bus")
        intake.reset()
        yield
        intake.reset()
        ingest_container.forget_container_service()
    aws.reset_clients()


def assert_no_secret_in(text: str) -> None:
    assert text  # something was logged at DEBUG
    for name, value in SECRETS.items():
        assert value not in text, f"{name} reached the logs"


def test_track_intake_at_debug(deployed, debug_logs):
    handler = load_handler("track_intake").lambda_handler
    body = js_stringify(track(1))
    assert (
        handler(http_event(body, {"authorization": f"Bearer {SECRETS['segment-token']}"}), FakeLambdaContext())[
            "statusCode"
        ]
        == 200
    )
    assert (
        handler(http_event(body, {"x-signature": sign(body, SECRETS["segment-secret"])}), FakeLambdaContext())[
            "statusCode"
        ]
        == 200
    )
    assert handler(http_event(body, {"authorization": "Bearer wrong"}), FakeLambdaContext())["statusCode"] == 401
    assert_no_secret_in(debug_logs())


def test_orb_ingest_at_debug(deployed, debug_logs, monkeypatch):
    answers = iter([httpx.Response(200, json={"validation_failed": []}), httpx.Response(401, json={"status": 401})])
    monkeypatch.setattr(
        ingest_container, "_http", httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    )
    monkeypatch.setattr(ingest_container, "_service", None)
    handler = load_handler("orb_ingest").lambda_handler
    event = sqs_event(
        [
            json.dumps(
                {
                    "event_name": "e",
                    "idempotency_key": "k",
                    "timestamp": "2026-11-02T10:00:00Z",
                    "external_customer_id": "c",
                }
            )
        ]
    )
    assert handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert handler(event, FakeLambdaContext())["batchItemFailures"]  # a 401: the key is logged about, not logged
    assert_no_secret_in(debug_logs())


def test_orb_webhook_at_debug(deployed, debug_logs):
    from tests.support.webhook_stack import delivery, webhook_body

    app = load_handler("orb_webhook")
    webhook_service.reset()
    assert (
        app.lambda_handler(delivery(webhook_body(), secret=SECRETS["orb-webhook"]), FakeLambdaContext())["statusCode"]
        == 200
    )
    assert app.lambda_handler(delivery(webhook_body(), secret="wrong"), FakeLambdaContext())["statusCode"] == 401
    webhook_service.reset()
    assert_no_secret_in(debug_logs())


def test_settings_repr_holds_no_secret(deployed):
    for settings in (IntakeSettings.from_env(), IngestSettings.from_env(), WebhookSettings.from_env()):
        assert_no_secret_in(repr(settings) + str(settings))
