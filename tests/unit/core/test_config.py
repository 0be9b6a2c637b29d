"""Settings from the environment: defaults, clear errors, secrets from Secrets Manager."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws.secrets import split_secrets
from orb_bridge.core.config import MappingSettings, ObservabilitySettings, RedeliverySettings
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.intake.settings import IntakeSettings
from orb_bridge.webhooks.settings import WEBHOOK_MAX_BODY_BYTES, WebhookSettings

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
        (
            {"EXTERNAL_CUSTOMER_ID_FIELD": "userId", "PROPERTIES_MAPPING": "{amount: x}"},
            "PROPERTIES_MAPPING is not valid JSON",
        ),
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
        ({"MAX_BATCH_EVENTS": "NaN"}, "MAX_BATCH_EVENTS must be a whole number"),
        ({"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES must be a whole number"),
        (
            {"REQUIRE_BEARER_FOR_BATCHES": "true", "SEGMENT_AUTH_TOKEN": "", "SEGMENT_SHARED_SECRET": "s"},
            "REQUIRE_BEARER_FOR_BATCHES=true needs SEGMENT_AUTH_TOKEN",
        ),
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
        {
            "ORB_API_KEY": "k",
            "REJECTED_QUEUE_URL": "q",
            "ORB_MAX_EVENTS_PER_REQUEST": "2000",
            "ORB_API_BASE_URL": "http://127.0.0.1:3001/v1/",
        }
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


INGEST_ENV = {"ORB_API_KEY": "orb-key", "REJECTED_QUEUE_URL": "https://sqs.example/rejected"}
BASE_ENV = {
    IntakeSettings: INTAKE_ENV,
    IngestSettings: INGEST_ENV,
    WebhookSettings: WEBHOOK_ENV,
    RedeliverySettings: {},
    MappingSettings: {"EXTERNAL_CUSTOMER_ID_FIELD": "userId"},
}
# Every variable a settings model reads, one bad value each, and what the error says. Unset
# (None) means the variable is required.
BAD_VALUES = [
    (MappingSettings, "EXTERNAL_CUSTOMER_ID_FIELD", None, "EXTERNAL_CUSTOMER_ID_FIELD is required"),
    (MappingSettings, "EXTERNAL_CUSTOMER_ID_FIELD", "context..id", "EXTERNAL_CUSTOMER_ID_FIELD must be a dotted path"),
    (MappingSettings, "EVENT_NAME_FIELD", ".event", "EVENT_NAME_FIELD must be a dotted path"),
    (MappingSettings, "IDEMPOTENCY_KEY_FIELD", "messageId.", "IDEMPOTENCY_KEY_FIELD must be a dotted path"),
    (MappingSettings, "PROPERTIES_MAPPING", "{", "PROPERTIES_MAPPING is not valid JSON"),
    (IntakeSettings, "INGEST_QUEUE_URL", None, "INGEST_QUEUE_URL is required"),
    (IntakeSettings, "REJECTED_QUEUE_URL", None, "REJECTED_QUEUE_URL is required"),
    (IntakeSettings, "ALLOW_UNAUTHENTICATED", "maybe", "ALLOW_UNAUTHENTICATED must be true or false, got 'maybe'"),
    (IntakeSettings, "REQUIRE_BEARER_FOR_BATCHES", "2", "REQUIRE_BEARER_FOR_BATCHES must be true or false"),
    (
        IntakeSettings,
        "ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES",
        "sure",
        "ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES must be true or false",
    ),
    (IntakeSettings, "MAX_BODY_BYTES", "100", "MAX_BODY_BYTES must be >= 1024, got 100"),
    (IntakeSettings, "MAX_BATCH_EVENTS", "0", "MAX_BATCH_EVENTS must be >= 1"),
    (
        IntakeSettings,
        "UNAUTHENTICATED_STORE_BYTES_PER_HOUR",
        "-1",
        "UNAUTHENTICATED_STORE_BYTES_PER_HOUR must be >= 0",
    ),
    (IntakeSettings, "SEGMENT_AUTH_TOKEN", None, "no Segment authentication configured"),
    (IngestSettings, "ORB_API_KEY", None, "ORB_API_KEY_SECRET_ARN \\(or ORB_API_KEY locally\\) is required"),
    (IngestSettings, "REJECTED_QUEUE_URL", None, "REJECTED_QUEUE_URL is required"),
    (IngestSettings, "AUDIT_BUCKET_NAME", "Audit_Bucket", "AUDIT_BUCKET_NAME must be an S3 bucket name"),
    (IngestSettings, "ORB_API_BASE_URL", "http://api.withorb.com/v1", "ORB_API_BASE_URL must be an https:// URL"),
    (IngestSettings, "ORB_MAX_EVENTS_PER_REQUEST", "0", "ORB_MAX_EVENTS_PER_REQUEST must be >= 1"),
    (IngestSettings, "ORB_MAX_CONCURRENT_REQUESTS", "twenty", "ORB_MAX_CONCURRENT_REQUESTS must be a whole number"),
    (IngestSettings, "ORB_REQUEST_TIMEOUT_SECONDS", "0", "ORB_REQUEST_TIMEOUT_SECONDS must be >= 0.1"),
    (IngestSettings, "INGEST_SAFETY_MARGIN_SECONDS", "-1", "INGEST_SAFETY_MARGIN_SECONDS must be >= 0"),
    (IngestSettings, "ORB_REQUESTS_PER_SECOND", "inf", "ORB_REQUESTS_PER_SECOND must be a finite number"),
    (IngestSettings, "ORB_EVENTS_PER_MINUTE", "lots", "ORB_EVENTS_PER_MINUTE must be a number"),
    (IngestSettings, "ORB_PACING_TABLE_NAME", None, "ORB_PACING_TABLE_NAME is required when"),
    (
        IngestSettings,
        "ORB_MAX_REQUESTS_PER_INVOCATION",
        "1.5",
        "ORB_MAX_REQUESTS_PER_INVOCATION must be a whole number",
    ),
    (IngestSettings, "ORB_GRACE_PERIOD_HOURS", "0", "ORB_GRACE_PERIOD_HOURS must be > 0"),
    (IngestSettings, "INGEST_MAX_CONCURRENCY", "0", "INGEST_MAX_CONCURRENCY must be >= 1"),
    (IngestSettings, "INGEST_MAX_CONCURRENCY", "1001", "INGEST_MAX_CONCURRENCY must be <= 1000"),
    (IngestSettings, "INGEST_MAX_CONCURRENCY", "2.5", "INGEST_MAX_CONCURRENCY must be a whole number"),
    (RedeliverySettings, "RETRY_BACKOFF_SECONDS", "soon", "RETRY_BACKOFF_SECONDS must be a whole number"),
    (RedeliverySettings, "CONFIG_ERROR_BACKOFF_SECONDS", "-1", "CONFIG_ERROR_BACKOFF_SECONDS must be >= 0"),
    (WebhookSettings, "ORB_WEBHOOK_SECRET", None, "no Orb webhook secret configured"),
    (WebhookSettings, "WEBHOOK_EVENT_BUS_NAME", None, "WEBHOOK_EVENT_BUS_NAME is required"),
    (WebhookSettings, "IDEMPOTENCY_TABLE_NAME", None, "IDEMPOTENCY_TABLE_NAME is required"),
    (WebhookSettings, "ORB_WEBHOOK_TOLERANCE_SECONDS", "NaN", "ORB_WEBHOOK_TOLERANCE_SECONDS must be a finite number"),
    (WebhookSettings, "ORB_WEBHOOK_MAX_BODY_BYTES", "1k", "ORB_WEBHOOK_MAX_BODY_BYTES must be a whole number"),
]
# Names with no wrong value (any text names a log service or a metrics namespace; without the
# budget table a refused batch is kept as a summary only, fail closed).
ANY_TEXT = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "UNAUTHENTICATED_STORE_TABLE_NAME"}


@pytest.mark.parametrize(("model", "variable", "bad", "message"), BAD_VALUES, ids=lambda v: getattr(v, "__name__", v))
def test_every_bad_value_is_a_configuration_error_naming_its_variable(model, variable, bad, message):
    env = {name: value for name, value in BASE_ENV[model].items() if name != variable}
    if bad is not None:
        env[variable] = bad
    elif variable == "ORB_PACING_TABLE_NAME":
        env["ORB_REQUESTS_PER_SECOND"] = "100"  # pacing on, and no table
    with pytest.raises(ConfigurationError, match=message) as raised:
        model.from_env(env)
    for secret in ("orb-key", "whsec", "token"):
        assert secret not in str(raised.value)


def test_the_table_covers_every_variable_of_every_settings_model():
    covered = {variable for _, variable, _, _ in BAD_VALUES}
    read = set(ObservabilitySettings.variables())
    for model in (IntakeSettings, IngestSettings, WebhookSettings, RedeliverySettings, MappingSettings):
        read |= set(model.variables())
    assert read - covered == ANY_TEXT
    assert ObservabilitySettings.from_env({}).metrics_namespace == "SegmentOrbBridge"


def test_settings_repr_holds_no_secret():
    intake = IntakeSettings.from_env({**INTAKE_ENV, "SEGMENT_SHARED_SECRET": "s3cret"})
    ingest = IngestSettings.from_env(INGEST_ENV)
    webhook = WebhookSettings.from_env(WEBHOOK_ENV)
    text = " ".join(repr(settings) for settings in (intake, ingest, webhook))
    assert "orb-key" not in text and "whsec" not in text and "s3cret" not in text


def test_blank_variables_count_as_unset_and_values_are_stripped():
    settings = IngestSettings.from_env(
        {**INGEST_ENV, "ORB_MAX_CONCURRENT_REQUESTS": " ", "ORB_GRACE_PERIOD_HOURS": " 6 "}
    )
    assert (settings.max_concurrent_requests, settings.grace_period_hours) == (20, 6.0)
    assert RedeliverySettings.from_env({"RETRY_BACKOFF_SECONDS": "2"}).retry_backoff_seconds == 2
