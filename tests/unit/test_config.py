"""Settings from the environment: defaults, clear errors, secrets from Secrets Manager."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from orb_bridge.config import (
    WEBHOOK_MAX_BODY_BYTES,
    IngestSettings,
    IntakeSettings,
    MappingSettings,
    WebhookSettings,
)
from orb_bridge.errors import ConfigurationError
from orb_bridge.secrets import split_secrets

INTAKE_ENV = {
    "EXTERNAL_CUSTOMER_ID_FIELD": "userId",
    "INGEST_QUEUE_URL": "https://sqs.example/ingest",
    "REJECTED_QUEUE_URL": "https://sqs.example/rejected",
    "SEGMENT_AUTH_TOKEN": "token",
}
WEBHOOK_ENV = {"ORB_WEBHOOK_SECRET": "whsec", "WEBHOOK_EVENT_BUS_NAME": "bus", "IDEMPOTENCY_TABLE_NAME": "table"}


def test_mapping_defaults_follow_segments_orb_destination():
    settings = MappingSettings.from_env({"EXTERNAL_CUSTOMER_ID_FIELD": "context.groupId"})
    assert (settings.event_name_field, settings.idempotency_key_field) == ("event", "messageId")
    assert settings.external_customer_id_field == "context.groupId"
    assert settings.properties_mapping == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "EXTERNAL_CUSTOMER_ID_FIELD is required"),
        ({"EXTERNAL_CUSTOMER_ID_FIELD": "userId", "PROPERTIES_MAPPING": "{amount: x}"}, "PROPERTIES_MAPPING is not valid JSON"),
        ({"EXTERNAL_CUSTOMER_ID_FIELD": "userId", "PROPERTIES_MAPPING": '["amount"]'}, "must be a JSON object"),
        ({"EXTERNAL_CUSTOMER_ID_FIELD": "userId", "PROPERTIES_MAPPING": '{"amount": 1}'}, "must be a JSON object"),
        ({"EXTERNAL_CUSTOMER_ID_FIELD": "properties..id"}, "must be a dotted path"),
    ],
)
def test_mapping_misconfiguration_is_named(env, message):
    with pytest.raises(ConfigurationError, match=message):
        MappingSettings.from_env(env)


def test_intake_fails_closed_without_credentials():
    env = {k: v for k, v in INTAKE_ENV.items() if k != "SEGMENT_AUTH_TOKEN"}
    with pytest.raises(ConfigurationError, match="no Segment authentication configured"):
        IntakeSettings.from_env(env)
    assert IntakeSettings.from_env({**env, "ALLOW_UNAUTHENTICATED": "true"}).allow_unauthenticated is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"ALLOW_UNAUTHENTICATED": "maybe"}, "ALLOW_UNAUTHENTICATED must be true or false"),
        ({"MAX_BATCH_EVENTS": "NaN"}, "MAX_BATCH_EVENTS must be >= 1"),
        ({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES must be a number"),
        ({"REQUIRE_BEARER_FOR_BATCHES": "true", "SEGMENT_AUTH_TOKEN": "", "SEGMENT_SHARED_SECRET": "s"},
         "REQUIRE_BEARER_FOR_BATCHES=true needs SEGMENT_AUTH_TOKEN"),
        ({"INGEST_QUEUE_URL": " "}, "INGEST_QUEUE_URL is required"),
    ],
)
def test_intake_misconfiguration_is_named(extra, message):
    with pytest.raises(ConfigurationError, match=message):
        IntakeSettings.from_env({**INTAKE_ENV, **extra})


def test_ingest_needs_a_key_and_caps_requests_at_orbs_500():
    with pytest.raises(ConfigurationError, match="ORB_API_KEY_SECRET_ARN"):
        IngestSettings.from_env({"REJECTED_QUEUE_URL": "q"})
    settings = IngestSettings.from_env(
        {"ORB_API_KEY": "k", "REJECTED_QUEUE_URL": "q", "ORB_MAX_EVENTS_PER_REQUEST": "2000",
         "ORB_API_BASE_URL": "http://127.0.0.1:3001/v1/"}
    )
    assert settings.max_events_per_request == 500
    assert settings.orb_api_base_url == "http://127.0.0.1:3001/v1"


def test_webhook_body_limit_never_exceeds_what_eventbridge_takes():
    assert WebhookSettings.from_env(WEBHOOK_ENV).max_body_bytes == WEBHOOK_MAX_BODY_BYTES < 256 * 1024
    raised = WebhookSettings.from_env({**WEBHOOK_ENV, "ORB_WEBHOOK_MAX_BODY_BYTES": str(10 * 1024 * 1024)})
    assert raised.max_body_bytes == WEBHOOK_MAX_BODY_BYTES
    lowered = WebhookSettings.from_env({**WEBHOOK_ENV, "ORB_WEBHOOK_MAX_BODY_BYTES": "65536"})
    assert lowered.max_body_bytes == 65536


def test_webhook_secrets_rotate_and_are_required():
    settings = WebhookSettings.from_env({**WEBHOOK_ENV, "ORB_WEBHOOK_SECRET": "new, old\nolder\n"})
    assert settings.secrets == ("new", "old", "older")
    with pytest.raises(ConfigurationError, match="no Orb webhook secret configured"):
        WebhookSettings.from_env({**WEBHOOK_ENV, "ORB_WEBHOOK_SECRET": " "})
    assert split_secrets(None) == [] and split_secrets(" , \n") == []


def test_secret_arns_are_read_from_secrets_manager_and_win_over_plain_values():
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="orb-bridge/orb-api-key", SecretString="from-secrets-manager")["ARN"]
        settings = IngestSettings.from_env(
            {"ORB_API_KEY_SECRET_ARN": arn, "ORB_API_KEY": "plain", "REJECTED_QUEUE_URL": "q"}
        )
        assert settings.orb_api_key == "from-secrets-manager"

        missing = arn.rsplit(":", 1)[0] + ":orb-bridge/missing-AbCdEf"
        with pytest.raises(ConfigurationError, match="could not read secret ORB_API_KEY_SECRET_ARN") as raised:
            IngestSettings.from_env({"ORB_API_KEY_SECRET_ARN": missing, "REJECTED_QUEUE_URL": "q"})
        assert "from-secrets-manager" not in str(raised.value)


def test_ingest_grace_period_defaults_to_orbs_12_hours_and_is_configurable():
    base = {"ORB_API_KEY": "k", "REJECTED_QUEUE_URL": "q"}
    assert IngestSettings.from_env(base).grace_period_hours == 12.0
    assert IngestSettings.from_env({**base, "ORB_GRACE_PERIOD_HOURS": "24"}).grace_period_hours == 24.0
    with pytest.raises(ConfigurationError, match="ORB_GRACE_PERIOD_HOURS"):
        IngestSettings.from_env({**base, "ORB_GRACE_PERIOD_HOURS": "soon"})
