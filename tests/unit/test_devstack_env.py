"""The settings the dev stack gives the handlers: local defaults, the user's settings win."""

from __future__ import annotations

import json

import pytest

from orb_bridge.core.config import IngestSettings, IntakeSettings, WebhookSettings
from orb_bridge_dev.devstack.local_aws import LocalResources, QueueInfo
from orb_bridge_dev.devstack.stack import (
    DEFAULT_PROPERTIES_MAPPING,
    DEV_ORB_API_KEY,
    DEV_WEBHOOK_SECRET,
    DevStack,
    DevStackConfig,
    DevStackError,
)

RESOURCES = LocalResources(
    endpoint_url="http://127.0.0.1:5555",
    ingest_queue=QueueInfo("http://q/ingest", "arn:ingest", "ingest", 360, 10),
    rejected_queue=QueueInfo("http://q/rejected", "arn:rejected", "rejected", 30),
    bus_tap_queue=QueueInfo("http://q/tap", "arn:tap", "tap", 30),
    idempotency_table_name="table",
    event_bus_name="bus",
    event_bus_arn="arn:bus",
)
SANDBOX_URL = "http://127.0.0.1:3001/v1"


def env_for(user_env: dict[str, str]) -> dict[str, str]:
    return DevStack(DevStackConfig(user_env=user_env)).handler_env(RESOURCES, SANDBOX_URL)


def test_defaults_make_every_function_configured_against_local_services() -> None:
    env = env_for({})

    assert env["AWS_ENDPOINT_URL"] == RESOURCES.endpoint_url
    assert env["ORB_API_BASE_URL"] == SANDBOX_URL and env["ORB_API_KEY"] == DEV_ORB_API_KEY
    assert env["ALLOW_UNAUTHENTICATED"] == "true"
    assert env["ORB_WEBHOOK_SECRET"] == DEV_WEBHOOK_SECRET
    assert json.loads(env["PROPERTIES_MAPPING"]) == DEFAULT_PROPERTIES_MAPPING
    # The real settings classes accept what the stack provides.
    intake = IntakeSettings.from_env(env)
    assert intake.ingest_queue_url == "http://q/ingest" and intake.mapping.external_customer_id_field == "userId"
    assert IngestSettings.from_env(env).orb_api_base_url == SANDBOX_URL
    webhook = WebhookSettings.from_env(env)
    assert webhook.event_bus_name == "bus" and webhook.idempotency_table_name == "table"


def test_a_segment_credential_turns_authentication_on() -> None:
    env = env_for({"SEGMENT_AUTH_TOKEN": "tok", "ALLOW_UNAUTHENTICATED": "true"})
    assert env["SEGMENT_AUTH_TOKEN"] == "tok"
    assert env["ALLOW_UNAUTHENTICATED"] == "true"  # the user's explicit choice is kept
    assert env_for({"SEGMENT_SHARED_SECRET": "s"})["ALLOW_UNAUTHENTICATED"] == "false"


def test_user_mapping_and_secrets_win() -> None:
    env = env_for(
        {
            "EXTERNAL_CUSTOMER_ID_FIELD": "context.groupId",
            "PROPERTIES_MAPPING": '{"seats": "seat_count"}',
            "ORB_WEBHOOK_SECRET": "first,second",
            "EVENT_NAME_FIELD": "properties.kind",
        }
    )
    assert env["EXTERNAL_CUSTOMER_ID_FIELD"] == "context.groupId"
    assert env["PROPERTIES_MAPPING"] == '{"seats": "seat_count"}'
    assert env["ORB_WEBHOOK_SECRET"] == "first,second"
    assert env["EVENT_NAME_FIELD"] == "properties.kind"
    assert DevStack(DevStackConfig(user_env={"ORB_WEBHOOK_SECRET": "first,second"})).webhook_secret == "first"


def test_a_real_orb_needs_its_api_key() -> None:
    stack = DevStack(DevStackConfig(user_env={"ORB_API_BASE_URL": "https://api.withorb.com/v1", "ORB_API_KEY": "k"}))
    assert stack.uses_real_orb
    assert stack.handler_env(RESOURCES, "https://api.withorb.com/v1")["ORB_API_KEY"] == "k"

    with pytest.raises(DevStackError, match="ORB_API_KEY"):
        DevStack(DevStackConfig(user_env={"ORB_API_BASE_URL": "https://api.withorb.com/v1"})).start()
