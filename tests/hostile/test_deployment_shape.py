"""Findings 1, 4 and 9 at deploy time: the template's Rules, throttling, reserved concurrency,
least privilege, TLS-only queues, https-only Orb URL and access logs; and the settings' own
refusal of http:// Orb URLs."""

from __future__ import annotations

import re

import pytest

from orb_bridge.core.errors import ConfigurationError
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge_dev.devstack.template import NO_VALUE, load_template, parameter_values, resolve

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:segment-AbCdEf"
ORB_KEY_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orb-AbCdEf"


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


def rule_holds(template: dict, overrides: dict) -> bool:
    """Evaluate the Rules as CloudFormation does before deploying: a rule whose condition holds
    must have every assertion true."""
    values = parameter_values(template, {"OrbApiKeySecretArn": ORB_KEY_ARN, **overrides})
    for rule in template["Rules"].values():
        if resolve(rule["RuleCondition"], template, values) and not all(
            resolve(item["Assert"], template, values) for item in rule["Assertions"]
        ):
            return False
    return True


def test_a_shared_secret_alone_is_refused_at_deploy_time_unless_batches_are_covered(template: dict) -> None:
    assert not rule_holds(template, {"SegmentSharedSecretArn": SECRET_ARN})
    for confirmation in ("batching-off", "x-segment-signature", "insecure-accept-first-event-signature"):
        assert rule_holds(template, {"SegmentSharedSecretArn": SECRET_ARN, "SegmentSharedSecretOnly": confirmation})
    assert rule_holds(template, {"SegmentSharedSecretArn": SECRET_ARN, "SegmentAuthTokenArn": SECRET_ARN})
    assert rule_holds(template, {"SegmentAuthTokenArn": SECRET_ARN})


def test_the_insecure_opt_out_is_explicit(template: dict) -> None:
    env = template["Resources"]["TrackIntakeFunction"]["Properties"]["Environment"]["Variables"]
    values = parameter_values(template, {"OrbApiKeySecretArn": ORB_KEY_ARN})
    assert resolve(env["ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES"], template, values) == "false"
    values = parameter_values(
        template,
        {"OrbApiKeySecretArn": ORB_KEY_ARN, "SegmentSharedSecretOnly": "insecure-accept-first-event-signature"},
    )
    assert resolve(env["ALLOW_FIRST_EVENT_SIGNATURE_FOR_BATCHES"], template, values) == "true"


def test_the_http_api_is_throttled_and_access_logged(template: dict) -> None:
    api = template["Resources"]["BridgeHttpApi"]["Properties"]
    parameters = template["Parameters"]
    assert api["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    assert (parameters["ApiThrottlingRateLimit"]["Default"], parameters["ApiThrottlingBurstLimit"]["Default"]) == (
        100,
        200,
    )
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogs", "Arn"]}
    assert "header" not in api["AccessLogSettings"]["Format"].lower()  # never the credentials
    assert template["Resources"]["HttpApiAccessLogs"]["Properties"]["RetentionInDays"] == {
        "Ref": "AccessLogRetentionDays"
    }


def test_reserved_concurrency_is_unset_by_default_and_ingest_never_below_its_event_source(template: dict) -> None:
    values = parameter_values(template, {"OrbApiKeySecretArn": ORB_KEY_ARN})
    functions = ("TrackIntakeFunction", "OrbIngestFunction", "OrbWebhookFunction")
    for name in functions:
        reserved = template["Resources"][name]["Properties"]["ReservedConcurrentExecutions"]
        assert resolve(reserved, template, values) is NO_VALUE, name
    values = parameter_values(
        template,
        {
            "OrbApiKeySecretArn": ORB_KEY_ARN,
            "ReserveIngestConcurrency": "true",
            "IngestMaxConcurrency": 7,
            "TrackIntakeReservedConcurrency": 20,
        },
    )
    reserved = {
        name: resolve(template["Resources"][name]["Properties"]["ReservedConcurrentExecutions"], template, values)
        for name in functions
    }
    assert {name: str(value) for name, value in reserved.items() if value is not NO_VALUE} == {
        "TrackIntakeFunction": "20",
        "OrbIngestFunction": "7",
    }


def test_queues_deny_every_call_without_tls(template: dict) -> None:
    resources = template["Resources"]
    denied: set[str] = set()
    for resource in resources.values():
        if resource["Type"] != "AWS::SQS::QueuePolicy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}:
                assert statement["Action"] == "sqs:*" and statement["Principal"] == "*"
                denied |= {queue["Ref"] for queue in resource["Properties"]["Queues"]}
    queues = {name for name, resource in resources.items() if resource["Type"] == "AWS::SQS::Queue"}
    assert denied == queues


def test_the_orb_api_base_url_is_https_only(template: dict) -> None:
    pattern = template["Parameters"]["OrbApiBaseUrl"]["AllowedPattern"]
    assert re.fullmatch(pattern, "https://api.withorb.com/v1") and not re.fullmatch(
        pattern, "http://api.withorb.com/v1"
    )
    env = {"ORB_API_KEY": "k", "REJECTED_QUEUE_URL": "q"}
    for refused in (
        "http://api.withorb.com/v1",
        "ftp://x",
        "api.withorb.com",
        "http://127.0.0.1.evil.com/v1",
        "http://localhost@evil.com/v1",
    ):
        with pytest.raises(ConfigurationError, match="must be an https:// URL"):
            IngestSettings.from_env({**env, "ORB_API_BASE_URL": refused})
    for allowed in ("https://api.withorb.com/v1", "http://127.0.0.1:3001/v1", "http://localhost:3001/v1"):
        assert IngestSettings.from_env({**env, "ORB_API_BASE_URL": allowed}).orb_api_base_url == allowed


def test_every_checkov_suppression_carries_a_reason(template: dict) -> None:
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]) and len(skip["comment"]) > 30, name
