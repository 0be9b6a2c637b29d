"""The settings the dev stack gives the handlers: local defaults, the user's settings win."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.intake.settings import IntakeSettings
from orb_bridge.webhooks.settings import WebhookSettings
from orb_bridge_dev import cli
from orb_bridge_dev.devstack.local_aws import LocalResources, QueueInfo
from orb_bridge_dev.devstack.stack import (
    DEFAULT_PROPERTIES_MAPPING,
    DEV_ORB_API_KEY,
    DEV_WEBHOOK_SECRET,
    DevStack,
    DevStackConfig,
    DevStackError,
)
from orb_bridge_dev.orb_sandbox import OrbSandbox

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


@pytest.fixture
def stand_in_orb() -> Iterator[OrbSandbox]:
    """Another loopback sandbox, on its own port, standing in for a real Orb account."""
    with OrbSandbox(api_key="real-account-key") as running:
        yield running


@pytest.mark.parametrize("allow_unauthenticated", [None, "true"])
def test_a_real_orb_without_a_segment_credential_refuses_to_start(
    stand_in_orb: OrbSandbox, allow_unauthenticated: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_env = {"ORB_API_BASE_URL": stand_in_orb.base_url, "ORB_API_KEY": "real-account-key"}
    if allow_unauthenticated is not None:
        user_env["ALLOW_UNAUTHENTICATED"] = allow_unauthenticated  # no way around it
    stack = DevStack(DevStackConfig(port=0, moto_port=0, user_env=user_env))
    monkeypatch.setattr("orb_bridge_dev.devstack.stack.LocalAws", lambda *_, **__: pytest.fail("AWS was started"))

    with pytest.raises(DevStackError, match="set SEGMENT_AUTH_TOKEN \\(or SEGMENT_SHARED_SECRET\\)"):
        stack.start()
    # Refused before anything listened: nothing could take a Track call, nothing reached "Orb".
    assert stack.gateway is None
    assert stand_in_orb.ingest_request_count == 0


@pytest.mark.parametrize("credential", ["SEGMENT_AUTH_TOKEN", "SEGMENT_SHARED_SECRET"])
def test_a_real_orb_with_a_segment_credential_enforces_it(credential: str) -> None:
    user_env = {"ORB_API_BASE_URL": "https://api.withorb.com/v1", "ORB_API_KEY": "k", credential: "s3cret"}
    stack = DevStack(DevStackConfig(user_env=user_env))

    stack.check_settings()
    env = stack.handler_env(RESOURCES, "https://api.withorb.com/v1")
    assert env[credential] == "s3cret" and env["ALLOW_UNAUTHENTICATED"] == "false"
    assert IntakeSettings.from_env(env).allow_unauthenticated is False


def test_the_local_sandbox_needs_no_segment_credential() -> None:
    DevStack(DevStackConfig(user_env={})).check_settings()


def test_orb_bridge_dev_says_which_variable_to_set(
    stand_in_orb: OrbSandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SEGMENT_AUTH_TOKEN", "SEGMENT_SHARED_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ORB_API_BASE_URL", stand_in_orb.base_url)
    monkeypatch.setenv("ORB_API_KEY", "real-account-key")
    previous_sigterm = signal.getsignal(signal.SIGTERM)  # run_dev installs its own handler
    try:
        code = cli.main(["dev", "--port", "0", "--no-test-webhook"])
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)

    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("orb-bridge dev: cannot start:")
    assert "SEGMENT_AUTH_TOKEN" in error and "unset ORB_API_BASE_URL" in error
    assert "real-account-key" not in error  # never print a secret
    assert stand_in_orb.ingest_request_count == 0
