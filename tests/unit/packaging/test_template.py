"""template.yaml's invariants, asserted by parsing it (cfn-lint and `sam build` run in `make template-check`).

The environment each function gets is resolved from the template and fed to the real settings
loaders of ``orb_bridge.core.config``, so a renamed variable or a missing setting fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from orb_bridge.core import config
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.core.observability import METRICS_NAMESPACE
from orb_bridge.ingest.settings import IngestSettings
from orb_bridge.intake.settings import IntakeSettings
from orb_bridge.intake.unauthenticated_store import KEY_PREFIX
from orb_bridge.webhooks.forwarder import EVENT_SOURCE
from orb_bridge.webhooks.settings import WebhookSettings
from orb_bridge_dev.devstack.template import (
    REPO_ROOT,
    TemplateError,
    function_environment,
    function_properties,
    load_template,
    parameter_values,
    resolve,
    resources_of_type,
    sqs_event_source,
)

FUNCTIONS = {
    "TrackIntakeFunction": "functions/track_intake/",
    "OrbIngestFunction": "functions/orb_ingest/",
    "OrbWebhookFunction": "functions/orb_webhook/",
    "OrbReconcileFunction": "functions/orb_reconcile/",
}
# Stand-ins for what CloudFormation returns for Ref/GetAtt of our resources.
REFS = {
    "IngestQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/IngestQueue",
    "RejectedQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/RejectedQueue",
    "IngestQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:IngestQueue",
    "RejectedQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:RejectedQueue",
    "IngestQueue.QueueName": "IngestQueue",
    "RejectedQueue.QueueName": "RejectedQueue",
    "WebhookIdempotencyTable": "segment-orb-bridge-WebhookIdempotencyTable-X",
    "WebhookIdempotencyTable.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/segment-orb-bridge-WebhookIdempotencyTable-X",
    "OrbWebhookEventBus": "segment-orb-bridge-orb-webhooks",
    "OrbWebhookEventBus.Arn": "arn:aws:events:us-east-1:123456789012:event-bus/segment-orb-bridge-orb-webhooks",
    "BridgeHttpApi": "a1b2c3d4e5",
    "OrbPacingTable": "segment-orb-bridge-OrbPacingTable-X",
    "OrbPacingTable.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/segment-orb-bridge-OrbPacingTable-X",
    "AuditBucket": "segment-orb-bridge-auditbucket-x",
    "ReconcileCheckpointTable": "segment-orb-bridge-ReconcileCheckpointTable-X",
    "ReconcileCheckpointTable.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/segment-orb-bridge-ReconcileCheckpointTable-X",
    "AuditBucket.Arn": "arn:aws:s3:::segment-orb-bridge-auditbucket-x",
}
AUDIT_PUT = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::segment-orb-bridge-auditbucket-x/ingest/*",
        }
    ]
}
SECRETS_POLICY = "AWSSecretsManagerGetSecretValuePolicy"
ORB_KEY_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orb/api-key-AbCdEf"


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


def resources(template: dict) -> dict:
    return template["Resources"]


def required_only(template: dict) -> dict[str, str]:
    """Parameter values of a deployment that sets only what is required."""
    return parameter_values(template, {"OrbApiKeySecretArn": ORB_KEY_ARN})


def parameter(template: dict, value: object) -> dict:
    """The parameter a property refers to with !Ref (properties tuned by users must be Parameters)."""
    assert isinstance(value, dict) and set(value) == {"Ref"}, f"{value!r} is not a !Ref to a Parameter"
    assert value["Ref"] in template["Parameters"], f"{value['Ref']} is not a Parameter"
    return template["Parameters"][value["Ref"]]


# --- the loader -----------------------------------------------------------------------------


def test_loader_reads_cloudformation_short_form_tags(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "AWSTemplateFormatVersion: 2010-09-09\n"
        "Conditions:\n  IsProd: !Equals [!Ref Env, prod]\n"
        "Resources:\n"
        "  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n"
        "      A: !GetAtt Other.Arn\n"
        "      B: !GetAtt [Other, QueueName]\n"
        "      C: !Sub 'https://${Api}.example/${!Literal}'\n"
        "      D: !If [IsProd, 1, !Ref AWS::NoValue]\n"
        "      E: !Not [!Condition IsProd]\n"
        "      F: !Join ['-', [a, !Ref Env]]\n"
    )
    loaded = load_template(path)
    props = loaded["Resources"]["Q"]["Properties"]
    assert loaded["AWSTemplateFormatVersion"] == "2010-09-09"  # not a datetime.date
    assert props["A"] == {"Fn::GetAtt": ["Other", "Arn"]}
    assert props["B"] == {"Fn::GetAtt": ["Other", "QueueName"]}
    assert props["D"] == {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]}
    assert props["E"] == {"Fn::Not": [{"Condition": "IsProd"}]}
    refs = {"Other.Arn": "arn:x", "Other.QueueName": "qn", "Api": "abc"}
    prod = resolve(props, loaded, parameters={"Env": "prod"}, refs=refs)
    dev = resolve(props, loaded, parameters={"Env": "dev"}, refs=refs)
    assert prod == {"A": "arn:x", "B": "qn", "C": "https://abc.example/${Literal}", "D": 1, "E": False, "F": "a-prod"}
    assert "D" not in dev and dev["E"] is True and dev["F"] == "a-dev"
    with pytest.raises(TemplateError, match="Missing"):
        resolve({"Ref": "Missing"}, loaded, parameters={})


def test_loader_rejects_a_file_that_is_not_a_template(tmp_path: Path) -> None:
    path = tmp_path / "not.yaml"
    path.write_text("just: data\n")
    with pytest.raises(TemplateError):
        load_template(path)


# --- globals, layer, functions ----------------------------------------------------------------


def test_globals_run_python313_on_arm64_with_the_layer_and_json_logs(template: dict) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    for name in FUNCTIONS:
        props = function_properties(template, name)
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["Layers"] == [{"Ref": "OrbBridgeLayer"}]
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["Handler"] == "app.lambda_handler"
        assert props["MemorySize"] >= 256
        env = function_environment(template, name, required_only(template), REFS)
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
        assert env["POWERTOOLS_SERVICE_NAME"]


def test_code_locations_exist(template: dict) -> None:
    layer = resources(template)["OrbBridgeLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/orb_bridge/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    # packaging/Makefile builds everything (python3.13 .pyc): a target per resource, with the layer's
    # wheels for the architecture packaging/lambda_arch.py reads from the template (test_lambda_arch).
    assert layer["Metadata"] == {"BuildMethod": "makefile", "ContextPath": "packaging", "BuildArchitecture": "arm64"}
    makefile = (REPO_ROOT / "packaging/Makefile").read_text()
    assert "\nLAMBDA_ARCH ?=\n" in makefile and 'lambda_arch.py" platform' in makefile
    for logical_id in ("OrbBridgeLayer", *FUNCTIONS):
        assert f"build-{logical_id}" in makefile, f"packaging/Makefile: no build-{logical_id} target"
        if logical_id != "OrbBridgeLayer":
            metadata = resources(template)[logical_id]["Metadata"]
            assert metadata["BuildMethod"] == "makefile" and metadata["ContextPath"] == "packaging"
    layer_dir = REPO_ROOT / "layers/orb_bridge"
    assert (layer_dir / "requirements.txt").is_file()
    assert (layer_dir / "orb_bridge/__init__.py").is_file()
    for name, code_uri in FUNCTIONS.items():
        assert function_properties(template, name)["CodeUri"] == code_uri
        assert (REPO_ROOT / code_uri / "app.py").is_file(), f"{name}: no {code_uri}app.py"


def test_layer_requirements_pin_what_pyproject_installs() -> None:
    pinned = {
        line.split("==")[0].strip().lower()
        for line in (REPO_ROOT / "layers/orb_bridge/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"aws-lambda-powertools", "httpx", "pydantic"} <= pinned
    assert "orb-billing" not in pinned  # tests/bench only: 0.5 s on every cold start


# --- HTTP API -------------------------------------------------------------------------------------


def http_routes(template: dict) -> dict[tuple[str, str], tuple[str, dict]]:
    routes = {}
    for name in FUNCTIONS:
        for event in function_properties(template, name).get("Events", {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                routes[(props["Method"], props["Path"])] = (name, props)
    return routes


def test_http_api_routes_use_payload_v2_on_one_api(template: dict) -> None:
    assert resources(template)["BridgeHttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    routes = http_routes(template)
    assert set(routes) == {("POST", "/segment"), ("POST", "/orb/webhook")}
    assert routes[("POST", "/segment")][0] == "TrackIntakeFunction"
    assert routes[("POST", "/orb/webhook")][0] == "OrbWebhookFunction"
    for _, props in routes.values():
        assert props["ApiId"] == {"Ref": "BridgeHttpApi"}
        assert props["PayloadFormatVersion"] == "2.0"


def test_intake_answers_within_segments_timeout(template: dict) -> None:
    # Segment gives up after 5-10 s and retries: a slower intake only produces duplicates.
    assert function_properties(template, "TrackIntakeFunction")["Timeout"] <= 10


def test_outputs_give_the_urls_to_paste(template: dict) -> None:
    outputs = resolve(template["Outputs"], template, refs=REFS)
    assert outputs["SegmentWebhookUrl"]["Value"] == "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/segment"
    assert outputs["OrbWebhookUrl"]["Value"] == "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/orb/webhook"
    assert outputs["IngestQueueUrl"]["Value"] == REFS["IngestQueue"]
    assert outputs["RejectedQueueUrl"]["Value"] == REFS["RejectedQueue"]
    assert outputs["OrbWebhookEventBusName"]["Value"] == REFS["OrbWebhookEventBus"]


# --- queues and the ingest event source ----------------------------------------------------------


def test_visibility_timeout_is_at_least_six_times_the_ingest_timeout(template: dict) -> None:
    ingest_timeout = function_properties(template, "OrbIngestFunction")["Timeout"]
    visibility = resources(template)["IngestQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * ingest_timeout


def test_ingest_timeout_leaves_room_for_an_orb_request_and_the_safety_margin(template: dict) -> None:
    settings = IngestSettings.from_env({"ORB_API_KEY": "k", "REJECTED_QUEUE_URL": "q"})
    ingest_timeout = function_properties(template, "OrbIngestFunction")["Timeout"]
    assert settings.request_timeout_seconds + settings.safety_margin_seconds < ingest_timeout


def test_ingest_queue_redrives_to_the_rejected_queue_after_max_receive_count(template: dict) -> None:
    queue = resources(template)["IngestQueue"]["Properties"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["RejectedQueue", "Arn"]}
    max_receive = parameter(template, redrive["maxReceiveCount"])
    assert max_receive["Type"] == "Number" and max_receive["MinValue"] >= 1 and max_receive["Default"] >= 3
    assert queue["SqsManagedSseEnabled"] is True


def test_rejected_queue_keeps_messages_14_days_longer_than_the_ingest_queue(template: dict) -> None:
    rejected = resources(template)["RejectedQueue"]["Properties"]
    ingest = resources(template)["IngestQueue"]["Properties"]
    assert rejected["MessageRetentionPeriod"] == 1209600
    assert rejected["SqsManagedSseEnabled"] is True
    # A redriven message keeps its original enqueue time: it must outlive the source queue.
    assert ingest["MessageRetentionPeriod"] < rejected["MessageRetentionPeriod"]


def test_alarm_fires_on_any_visible_rejected_message(template: dict) -> None:
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    (alarm,) = (
        a["Properties"]
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    )
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["RejectedQueue", "QueueName"]}}]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    with_topic = resolve(alarm, template, {**required_only(template), "AlarmTopicArn": topic}, REFS)
    assert with_topic["AlarmActions"] == [topic]
    assert "AlarmActions" not in resolve(alarm, template, required_only(template), REFS)


def test_ingest_event_source_batches_reports_item_failures_and_caps_concurrency(template: dict) -> None:
    source = sqs_event_source(template, "OrbIngestFunction")
    assert source["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    batch_size = parameter(template, source["BatchSize"])
    assert batch_size["Default"] == 2000 and batch_size["MaxValue"] <= 10000
    window = parameter(template, source["MaximumBatchingWindowInSeconds"])
    # Batches above 10 messages need a batching window of at least 1 s.
    assert window["MinValue"] >= 1 and window["MaxValue"] <= 300
    concurrency = parameter(template, source["ScalingConfig"]["MaximumConcurrency"])
    assert concurrency["MinValue"] == 2 and concurrency["MaxValue"] == 1000
    assert 2 <= concurrency["Default"] <= 1000


def test_parameter_defaults_satisfy_their_own_constraints(template: dict) -> None:
    for name, spec in template["Parameters"].items():
        if "Default" not in spec:
            continue
        default = spec["Default"]
        if "AllowedValues" in spec:
            assert default in spec["AllowedValues"], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], str(default)), name
        if spec["Type"] == "Number":
            assert spec.get("MinValue", default) <= default <= spec.get("MaxValue", default), name


def test_secret_arn_parameters_accept_secret_arns_only(template: dict) -> None:
    good = ORB_KEY_ARN
    for name in ("OrbApiKeySecretArn", "SegmentSharedSecretArn", "SegmentAuthTokenArn", "OrbWebhookSecretArn"):
        pattern = template["Parameters"][name]["AllowedPattern"]
        assert re.fullmatch(pattern, good), name
        assert not re.fullmatch(pattern, "plaintext-api-key-not-an-arn"), name  # a pasted secret value
    assert "Default" not in template["Parameters"]["OrbApiKeySecretArn"]  # required


# --- webhook resources -----------------------------------------------------------------------------


def test_idempotency_table_matches_powertools_layout(template: dict) -> None:
    table = resources(template)["WebhookIdempotencyTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_event_bus_is_archived_and_the_example_rule_is_disabled(template: dict) -> None:
    assert resources(template)["OrbWebhookEventBus"]["Type"] == "AWS::Events::EventBus"
    archive = resources(template)["OrbWebhookArchive"]
    assert archive["Type"] == "AWS::Events::Archive"
    assert archive["Properties"]["SourceArn"] == {"Fn::GetAtt": ["OrbWebhookEventBus", "Arn"]}
    parameter(template, archive["Properties"]["RetentionDays"])
    (rule,) = resources_of_type(template, "AWS::Events::Rule").values()
    props = rule["Properties"]
    assert props["State"] == "DISABLED"
    assert props["EventBusName"] == {"Ref": "OrbWebhookEventBus"}
    assert props["EventPattern"] == {"source": [EVENT_SOURCE], "detail-type": ["invoice.issued"]}
    assert props["Targets"]


# --- environment and IAM ----------------------------------------------------------------------------


def variables_read_by_config() -> set[str]:
    """Every environment variable name the settings modules read (secrets also as NAME_ARN)."""
    from orb_bridge.ingest import settings as ingest_settings
    from orb_bridge.intake import settings as intake_settings
    from orb_bridge.reconcile import settings as reconcile_settings
    from orb_bridge.webhooks import settings as webhook_settings

    modules = (config, intake_settings, ingest_settings, webhook_settings, reconcile_settings)
    source = "\n".join(Path(str(module.__file__)).read_text() for module in modules)
    names = set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', source))
    secrets = set(re.findall(r'resolve_secret\(\s*"([A-Z0-9_]+)"', source))
    return names | {f"{name}_ARN" for name in secrets}


def test_every_variable_the_template_sets_is_one_the_code_reads(template: dict) -> None:
    known = variables_read_by_config()
    assert {
        "INGEST_QUEUE_URL",
        "ORB_API_KEY_SECRET_ARN",
        "SEGMENT_SHARED_SECRET_ARN",
        "ORB_WEBHOOK_SECRET_ARN",
    } <= known
    for name in FUNCTIONS:
        for variable in function_environment(template, name, required_only(template), REFS):
            assert variable in known or variable.startswith(("POWERTOOLS_", "PYDANTIC_")), (
                f"{name}: {variable} is read by nothing"
            )


@pytest.fixture
def secret_arns():
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")

        def create(name: str, value: str) -> str:
            return client.create_secret(Name=name, SecretString=value)["ARN"]

        yield {
            "OrbApiKeySecretArn": create("test-template/orb-api-key", "orb-key"),
            "SegmentSharedSecretArn": create("test-template/segment-shared", "shared"),
            "SegmentAuthTokenArn": create("test-template/segment-token", "token"),
            "OrbWebhookSecretArn": create("test-template/orb-webhook", "dev-secret-a,dev-secret-b"),
        }


def test_deployed_environment_loads_every_function_s_settings(template: dict, secret_arns: dict) -> None:
    values = parameter_values(
        template,
        {
            **secret_arns,
            "ExternalCustomerIdField": "context.groupId",
            "PropertiesMapping": '{"amount": "amount_usd"}',
            "RequireBearerForBatches": "true",
            "OrbApiBaseUrl": "https://orb.example/v1/",
            "OrbWebhookToleranceSeconds": 120,
        },
    )
    intake = IntakeSettings.from_env(function_environment(template, "TrackIntakeFunction", values, REFS))
    assert intake.mapping.external_customer_id_field == "context.groupId"
    assert intake.mapping.properties_mapping == {"amount": "amount_usd"}
    assert (intake.shared_secrets, intake.auth_tokens) == (("shared",), ("token",))
    assert intake.require_bearer_for_batches and not intake.allow_unauthenticated
    assert (intake.ingest_queue_url, intake.rejected_queue_url) == (REFS["IngestQueue"], REFS["RejectedQueue"])

    ingest = IngestSettings.from_env(function_environment(template, "OrbIngestFunction", values, REFS))
    assert (ingest.orb_api_key, ingest.orb_api_base_url) == ("orb-key", "https://orb.example/v1")
    assert ingest.rejected_queue_url == REFS["RejectedQueue"]

    webhook = WebhookSettings.from_env(function_environment(template, "OrbWebhookFunction", values, REFS))
    assert webhook.secrets == ("dev-secret-a", "dev-secret-b")
    assert webhook.tolerance_seconds == 120
    assert webhook.event_bus_name == REFS["OrbWebhookEventBus"]
    assert webhook.idempotency_table_name == REFS["WebhookIdempotencyTable"]


def test_unset_optional_secrets_leave_empty_variables_and_fail_closed(template: dict, secret_arns: dict) -> None:
    values = parameter_values(template, {"OrbApiKeySecretArn": secret_arns["OrbApiKeySecretArn"]})
    intake_env = function_environment(template, "TrackIntakeFunction", values, REFS)
    assert intake_env["SEGMENT_SHARED_SECRET_ARN"] == "" and intake_env["SEGMENT_AUTH_TOKEN_ARN"] == ""
    assert intake_env["ALLOW_UNAUTHENTICATED"] == "false"
    with pytest.raises(ConfigurationError, match="no Segment authentication configured"):
        IntakeSettings.from_env(intake_env)
    webhook_env = function_environment(template, "OrbWebhookFunction", values, REFS)
    assert webhook_env["ORB_WEBHOOK_SECRET_ARN"] == ""
    with pytest.raises(ConfigurationError, match="no Orb webhook secret configured"):
        WebhookSettings.from_env(webhook_env)


def secret_policies(template: dict, function: str, values: dict) -> list[object]:
    policies = resolve(function_properties(template, function)["Policies"], template, values, REFS)
    return [p[SECRETS_POLICY]["SecretArn"] for p in policies if isinstance(p, dict) and SECRETS_POLICY in p]


def test_secret_read_access_only_for_configured_secrets(template: dict) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf"
    bare = parameter_values(template, {"OrbApiKeySecretArn": arn.format("orb")})
    full = parameter_values(
        template,
        {
            "OrbApiKeySecretArn": arn.format("orb"),
            "SegmentSharedSecretArn": arn.format("shared"),
            "SegmentAuthTokenArn": arn.format("token"),
            "OrbWebhookSecretArn": arn.format("webhook"),
        },
    )
    assert secret_policies(template, "TrackIntakeFunction", bare) == []
    assert secret_policies(template, "OrbWebhookFunction", bare) == []
    assert secret_policies(template, "OrbIngestFunction", bare) == [arn.format("orb")]
    assert secret_policies(template, "TrackIntakeFunction", full) == [arn.format("shared"), arn.format("token")]
    assert secret_policies(template, "OrbWebhookFunction", full) == [arn.format("webhook")]


def test_functions_may_reach_exactly_their_queues_table_and_bus(template: dict) -> None:
    values = required_only(template)

    def policies(function: str) -> list[dict]:
        resolved = resolve(function_properties(template, function)["Policies"], template, values, REFS)
        return [p for p in resolved if SECRETS_POLICY not in p]

    assert policies("TrackIntakeFunction") == [
        {"SQSSendMessagePolicy": {"QueueName": "IngestQueue"}},
        {"SQSSendMessagePolicy": {"QueueName": "RejectedQueue"}},
        # The hourly budget of stored unauthenticated bytes: a conditional ADD on its own items only.
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:UpdateItem"],
                    "Resource": REFS["WebhookIdempotencyTable.Arn"],
                    "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [KEY_PREFIX + "*"]}},
                }
            ]
        },
    ]
    assert policies("OrbIngestFunction") == [
        {"SQSSendMessagePolicy": {"QueueName": "RejectedQueue"}},
        # Re-sends messages deferred by pacing as delayed copies.
        {"SQSSendMessagePolicy": {"QueueName": "IngestQueue"}},
        # The audit archive: new objects under ingest/ only (no read, list or delete).
        AUDIT_PUT,
        # ChangeMessageVisibility on its own source queue, to hold back failed messages.
        {"SQSPollerPolicy": {"QueueName": "IngestQueue"}},
        # The shared pacing budget: read and conditionally update its item, nothing else.
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                    "Resource": REFS["OrbPacingTable.Arn"],
                }
            ]
        },
    ]
    assert policies("OrbWebhookFunction") == [
        # Least privilege: exactly what Powertools Idempotency calls (no Scan, Query or batch calls).
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Resource": REFS["WebhookIdempotencyTable.Arn"],
                    "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                }
            ]
        },
        {"EventBridgePutEventsPolicy": {"EventBusName": REFS["OrbWebhookEventBus"]}},
    ]


def test_alarm_fires_when_ingest_falls_an_hour_behind(template: dict) -> None:
    alarm = resources(template)["IngestBacklogAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["IngestQueue", "QueueName"]}}]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 3600


def test_ingest_is_paced_to_orbs_live_limits_by_default_through_the_table(template: dict, secret_arns: dict) -> None:
    values = parameter_values(template, secret_arns)
    env = function_environment(template, "OrbIngestFunction", values, REFS)
    settings = IngestSettings.from_env(env)
    assert (settings.requests_per_second, settings.events_per_minute) == (100, 10_000)
    assert settings.pacing_table_name == REFS["OrbPacingTable"]
    assert resources(template)["OrbPacingTable"]["Condition"] == "PacingEnabled"
    assert resolve({"Condition": "PacingEnabled"}, template, values, REFS)


def test_pacing_off_means_no_table_and_no_table_access(template: dict, secret_arns: dict) -> None:
    values = parameter_values(template, {**secret_arns, "OrbRequestsPerSecond": 0, "OrbEventsPerMinute": 0})
    assert not resolve({"Condition": "PacingEnabled"}, template, values, REFS)
    env = function_environment(template, "OrbIngestFunction", values, REFS)
    settings = IngestSettings.from_env(env)
    assert not settings.paced and settings.pacing_table_name == ""
    policies = resolve(function_properties(template, "OrbIngestFunction")["Policies"], template, values, REFS)
    assert not any("dynamodb" in str(p) for p in policies)


def test_alarm_fires_when_a_pending_event_is_half_way_to_orbs_grace_period(template: dict) -> None:
    alarm = resources(template)["OldestPendingEventAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("SegmentOrbBridge", "OldestPendingEventAgeSeconds")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "orb_ingest"}]
    assert alarm["Statistic"] == "Maximum" and alarm["Threshold"] == 6 * 3600
    env = function_properties(template, "OrbIngestFunction")["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "orb_ingest"


def test_ingest_re_maps_redriven_records_with_the_same_mapping_parameters_as_intake(template: dict) -> None:
    mapping = ("EVENT_NAME_FIELD", "EXTERNAL_CUSTOMER_ID_FIELD", "IDEMPOTENCY_KEY_FIELD", "PROPERTIES_MAPPING")
    intake = function_properties(template, "TrackIntakeFunction")["Environment"]["Variables"]
    ingest = function_properties(template, "OrbIngestFunction")["Environment"]["Variables"]
    assert {name: ingest.get(name) for name in mapping} == {name: intake[name] for name in mapping}
    assert ingest["ORB_GRACE_PERIOD_HOURS"] == {"Ref": "OrbGracePeriodHours"}
    assert template["Parameters"]["OrbGracePeriodHours"]["Default"] == 12


def test_a_failing_pacing_table_raises_an_alarm_and_ingest_knows_its_share(template: dict, secret_arns: dict) -> None:
    alarm = resources(template)["PacingTableAlarm"]
    assert alarm["Condition"] == "PacingEnabled"
    properties = alarm["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == ("SegmentOrbBridge", "PacingTableErrors")
    assert properties["Dimensions"] == [{"Name": "service", "Value": "orb_ingest"}]
    assert properties["Statistic"] == "Sum" and properties["Threshold"] == 0
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"
    values = parameter_values(template, secret_arns)
    env = function_environment(template, "OrbIngestFunction", values, REFS)
    assert (
        IngestSettings.from_env(env).ingest_max_concurrency == template["Parameters"]["IngestMaxConcurrency"]["Default"]
    )


def test_reconciler_runs_hourly_alone_without_retries_and_can_be_turned_off(template: dict) -> None:
    properties = function_properties(template, "OrbReconcileFunction")
    assert properties["ReservedConcurrentExecutions"] == 1 and properties["Timeout"] == 900
    schedule = properties["Events"]["Hourly"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["RetryPolicy"] == {"MaximumRetryAttempts": 0}
    assert template["Parameters"]["ReconcileSchedule"]["Default"] == "cron(10 * * * ? *)"
    for schedule_value, state in (("cron(10 * * * ? *)", "ENABLED"), ("off", "DISABLED")):
        values = parameter_values(template, {"ReconcileSchedule": schedule_value})
        resolved = resolve(schedule["Properties"], template, values, REFS)
        assert resolved["State"] == state and resolved["ScheduleExpression"].startswith("cron(")


def test_reconciler_loads_its_settings_and_reaches_only_the_archive_reports_and_checkpoints(
    template: dict, secret_arns: dict
) -> None:
    from orb_bridge.reconcile.settings import ReconcileSettings

    values = parameter_values(template, {"OrbApiKeySecretArn": secret_arns["OrbApiKeySecretArn"]})
    settings = ReconcileSettings.from_env(function_environment(template, "OrbReconcileFunction", values, REFS))
    assert (settings.audit_bucket_name, settings.checkpoint_table_name) == (
        REFS["AuditBucket"],
        REFS["ReconcileCheckpointTable"],
    )
    assert (settings.requests_per_second, settings.full_check_events_per_hour, settings.sample_size) == (
        2,
        100_000,
        10_000,
    )
    assert (settings.lookback_days, settings.exclusive_source) == (35, False)
    statements = [
        statement
        for policy in function_properties(template, "OrbReconcileFunction")["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
    ]
    actions = {tuple(statement["Action"]): statement["Resource"] for statement in statements}
    assert actions[("s3:PutObject",)] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${AuditBucket}/reports/*"}
    assert set(actions) == {
        ("s3:ListBucket",),
        ("s3:GetObject",),
        ("s3:PutObject",),
        ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchGetItem"),
    }


def test_reconciliation_alarm_fires_when_any_class_or_a_volume_shortfall_is_not_zero(template: dict) -> None:
    alarm = template["Resources"]["ReconciliationAlarm"]["Properties"]
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert names == {
        "EventsNotFoundInOrb",
        "EventsDeprecatedInOrb",
        "EventsDifferentInOrb",
        "EventsUnattributedInOrb",
        "VolumeShortfall",
    }
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    assert all(m["Id"] in expression["Expression"] for m in alarm["Metrics"] if "MetricStat" in m)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_unauthenticated_batches_store_10_mib_an_hour_counted_in_the_webhook_table(
    template: dict, secret_arns: dict
) -> None:
    assert template["Parameters"]["UnauthenticatedStoreBytesPerHour"]["Default"] == 10 * 1024 * 1024
    settings = IntakeSettings.from_env(
        function_environment(template, "TrackIntakeFunction", parameter_values(template, secret_arns), REFS)
    )
    assert settings.unauthenticated_store_bytes_per_hour == 10 * 1024 * 1024
    assert settings.unauthenticated_store_table_name == REFS["WebhookIdempotencyTable"]
    # The counters expire through the table's TTL attribute (orb_bridge.intake.unauthenticated_store sets it).
    ttl = resources(template)["WebhookIdempotencyTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiration", "Enabled": True}


def test_a_zero_budget_means_summaries_only_and_no_table_access(template: dict, secret_arns: dict) -> None:
    values = parameter_values(template, {**secret_arns, "UnauthenticatedStoreBytesPerHour": 0})
    env = function_environment(template, "TrackIntakeFunction", values, REFS)
    settings = IntakeSettings.from_env(env)
    assert settings.unauthenticated_store_bytes_per_hour == 0 and settings.unauthenticated_store_table_name == ""
    policies = resolve(function_properties(template, "TrackIntakeFunction")["Policies"], template, values, REFS)
    assert not any("Statement" in p for p in policies if isinstance(p, dict))


def test_alarm_fires_when_a_refused_batch_is_not_stored_whole(template: dict) -> None:
    alarm = resources(template)["UnauthenticatedEventsNotStoredAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("SegmentOrbBridge", "UnauthenticatedEventsNotStored")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "track_intake"}]
    assert alarm["Statistic"] == "Sum" and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == 0


def test_the_audit_archive_bucket_is_private_encrypted_versioned_tls_only_and_never_deleted(
    template: dict, secret_arns: dict
) -> None:
    bucket = resources(template)["AuditBucket"]
    assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"
    properties = bucket["Properties"]
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(properties["PublicAccessBlockConfiguration"]) == 4
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    retention, _markers = properties["LifecycleConfiguration"]["Rules"]
    assert parameter(template, retention["ExpirationInDays"])["Default"] == 400
    assert retention["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}

    policy = resources(template)["AuditBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "AuditBucket"}
    statements = {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}
    tls = statements["DenyInsecureTransport"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    deletes = statements["DenyDeletes"]
    assert (deletes["Effect"], deletes["Principal"], deletes["Action"]) == ("Deny", "*", "s3:DeleteObject*")

    values = parameter_values(template, secret_arns)
    env = function_environment(template, "OrbIngestFunction", values, REFS)
    assert IngestSettings.from_env(env).audit_bucket_name == REFS["AuditBucket"]
    assert template["Outputs"]["AuditBucketName"]["Value"] == {"Ref": "AuditBucket"}


def test_a_failing_archive_write_raises_an_alarm(template: dict) -> None:
    properties = resources(template)["ArchiveWriteAlarm"]["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == ("SegmentOrbBridge", "ArchiveWriteFailures")
    assert properties["Dimensions"] == [{"Name": "service", "Value": "orb_ingest"}]
    assert properties["Statistic"] == "Sum" and properties["Threshold"] == 0
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"
