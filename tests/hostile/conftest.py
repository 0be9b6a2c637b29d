"""The hostile-input suite's fixtures: the real Track intake handler on moto's SQS, and the Orb
webhook function on moto (helpers in tests/support).

Every finding of the security review (issue 9) has a test here that failed before its fix.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.core.observability import metrics
from orb_bridge.intake import service as intake
from tests.support.fuzz_intake import Intake, intake_on_moto_env
from tests.support.segment_requests import SECRET, TOKEN, IntakeStack
from tests.support.webhook_stack import WebhookStack, webhook_stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookStack]:
    """The Orb webhook function on moto (DynamoDB, EventBridge to an observed queue)."""
    with webhook_stack(monkeypatch) as built:
        yield built


@pytest.fixture(scope="module")
def intake_on_moto() -> Iterator[Intake]:
    with intake_on_moto_env() as built:
        yield built


@pytest.fixture
def intake_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[IntakeStack]:
    """Shared secret and Bearer token configured, as the README recommends."""
    with mock_aws():
        aws.reset_clients()
        sqs = aws.client("sqs")
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("ingest", "rejected")}
        # The table counting the hourly budget of stored unauthenticated bytes (the template's
        # WebhookIdempotencyTable); the budget itself is the default, 10 MiB.
        aws.client("dynamodb").create_table(
            TableName="budget",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        monkeypatch.setenv("UNAUTHENTICATED_STORE_TABLE_NAME", "budget")
        monkeypatch.setenv("INGEST_QUEUE_URL", urls["ingest"])
        monkeypatch.setenv("REJECTED_QUEUE_URL", urls["rejected"])
        monkeypatch.setenv("SEGMENT_SHARED_SECRET", SECRET)
        monkeypatch.setenv("SEGMENT_AUTH_TOKEN", TOKEN)
        monkeypatch.setenv("EXTERNAL_CUSTOMER_ID_FIELD", "userId")
        monkeypatch.setenv("PROPERTIES_MAPPING", '{"amount": "amount"}')
        for name in (
            "ALLOW_UNAUTHENTICATED",
            "REQUIRE_BEARER_FOR_BATCHES",
            "SEGMENT_SHARED_SECRET_ARN",
            "SEGMENT_AUTH_TOKEN_ARN",
            "MAX_BATCH_EVENTS",
            "MAX_BODY_BYTES",
            "ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES",
            "UNAUTHENTICATED_STORE_BYTES_PER_HOUR",
        ):
            monkeypatch.delenv(name, raising=False)
        intake.reset()
        metrics.clear_metrics()
        yield IntakeStack(sqs, urls)
        intake.reset()
    aws.reset_clients()
