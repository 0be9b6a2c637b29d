"""Finding 2: a rotated credential takes effect in a warm container within the secret cache's
300 s, for all three functions; during a Segment rotation both values verify.

The cache's clock is injected (``secret_cache.clock``): no sleeping."""

from __future__ import annotations

import json

import boto3
import httpx
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.secrets import SECRET_CACHE_SECONDS, secret_cache
from orb_bridge.ingest import container as ingest_container
from orb_bridge.intake import service as intake
from orb_bridge.webhooks import service as webhook_service
from tests.support.lambdas import FakeLambdaContext, load_handler, sqs_event
from tests.support.segment_requests import http_event, js_stringify, sign, track

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(secret_cache, "clock", fake)
    return fake


@pytest.fixture
def secrets_manager():
    with mock_aws():
        aws.reset_clients()
        yield boto3.client("secretsmanager", region_name="us-east-1")
    aws.reset_clients()


def test_segment_token_and_shared_secret_rotate_in_a_warm_intake(secrets_manager, clock, monkeypatch):
    sqs = aws.client("sqs")
    for name in ("INGEST_QUEUE_URL", "REJECTED_QUEUE_URL"):
        monkeypatch.setenv(name, sqs.create_queue(QueueName=name.lower())["QueueUrl"])
    token_arn = secrets_manager.create_secret(Name="segment-token", SecretString="token-old")["ARN"]
    secret_arn = secrets_manager.create_secret(Name="segment-secret", SecretString="secret-old")["ARN"]
    monkeypatch.setenv("SEGMENT_AUTH_TOKEN_ARN", token_arn)
    monkeypatch.setenv("SEGMENT_SHARED_SECRET_ARN", secret_arn)
    monkeypatch.setenv("EXTERNAL_CUSTOMER_ID_FIELD", "userId")
    for name in ("SEGMENT_AUTH_TOKEN", "SEGMENT_SHARED_SECRET", "ALLOW_UNAUTHENTICATED"):
        monkeypatch.delenv(name, raising=False)
    intake.reset()
    handler = load_handler("track_intake").lambda_handler
    body = js_stringify(track(1))

    def status(headers):
        return handler(http_event(body, headers), FakeLambdaContext())["statusCode"]

    assert status({"authorization": "Bearer token-old"}) == 200
    # Rotation starts: both values in the secrets (comma or newline separated).
    secrets_manager.put_secret_value(SecretId=token_arn, SecretString="token-new,token-old")
    secrets_manager.put_secret_value(SecretId=secret_arn, SecretString="secret-new\nsecret-old")
    clock.now += SECRET_CACHE_SECONDS
    assert status({"authorization": "Bearer token-new"}) == 200
    assert status({"authorization": "Bearer token-old"}) == 200
    assert status({"x-signature": sign(body, "secret-new")}) == 200
    assert status({"x-signature": sign(body, "secret-old")}) == 200
    # Rotation ends: the revoked values stop working within the cache age, without a cold start.
    secrets_manager.put_secret_value(SecretId=token_arn, SecretString="token-new")
    secrets_manager.put_secret_value(SecretId=secret_arn, SecretString="secret-new")
    clock.now += SECRET_CACHE_SECONDS - 1
    assert status({"authorization": "Bearer token-old"}) == 200  # still cached: at most 300 s
    clock.now += 1
    assert status({"authorization": "Bearer token-old"}) == 401
    assert status({"x-signature": sign(body, "secret-old")}) == 401
    assert status({"authorization": "Bearer token-new"}) == 200


def test_orb_api_key_rotates_in_a_warm_ingest(secrets_manager, clock, monkeypatch):
    sqs = aws.client("sqs")
    monkeypatch.setenv("REJECTED_QUEUE_URL", sqs.create_queue(QueueName="rejected")["QueueUrl"])
    arn = secrets_manager.create_secret(Name="orb-api-key", SecretString="orb-key-old")["ARN"]
    monkeypatch.setenv("ORB_API_KEY_SECRET_ARN", arn)
    monkeypatch.setenv("ORB_API_BASE_URL", "https://orb.test/v1")
    monkeypatch.delenv("ORB_API_KEY", raising=False)
    keys_seen: list[str] = []

    def orb(request: httpx.Request) -> httpx.Response:
        keys_seen.append(request.headers["authorization"])
        return httpx.Response(200, json={"validation_failed": [], "debug": None})

    monkeypatch.setattr(ingest_container, "_http", httpx.Client(transport=httpx.MockTransport(orb)))
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
                    "properties": {},
                }
            )
        ]
    )

    handler(event, FakeLambdaContext())
    secrets_manager.put_secret_value(SecretId=arn, SecretString="orb-key-new")
    handler(event, FakeLambdaContext())
    clock.now += SECRET_CACHE_SECONDS
    handler(event, FakeLambdaContext())
    assert keys_seen == ["Bearer orb-key-old", "Bearer orb-key-old", "Bearer orb-key-new"]
    ingest_container.forget_container_service()


def test_orb_webhook_secret_rotates_in_a_warm_webhook_function(secrets_manager, clock, monkeypatch):
    from tests.support.webhook_stack import delivery, webhook_body

    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="idem",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws.client("events").create_event_bus(Name="bus")
    arn = secrets_manager.create_secret(Name="orb-webhook", SecretString="whk-secret-old")["ARN"]
    monkeypatch.setenv("ORB_WEBHOOK_SECRET_ARN", arn)
    monkeypatch.delenv("ORB_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("WEBHOOK_EVENT_BUS_NAME", "bus")
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "idem")
    app = load_handler("orb_webhook")
    webhook_service.reset()

    def status(secret: str) -> int:
        return app.lambda_handler(delivery(webhook_body(), secret=secret), FakeLambdaContext())["statusCode"]

    assert status("whk-secret-old") == 200
    secrets_manager.put_secret_value(SecretId=arn, SecretString="whk-secret-new")
    assert status("whk-secret-old") == 200  # within the cache age
    clock.now += SECRET_CACHE_SECONDS
    assert status("whk-secret-old") == 401
    assert status("whk-secret-new") == 200
    webhook_service.reset()
