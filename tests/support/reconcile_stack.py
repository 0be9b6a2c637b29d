"""A moto CloudFormation stack with what `orb-bridge reconcile` and `trace` read: the queues, the
audit bucket (output ``AuditBucketName``), the reconciler's checkpoint table (resource
``ReconcileCheckpointTable``) and the Orb parameters; and a way to run either command against it."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
import httpx

from tests.support.rejected_stack import STACK, TEMPLATE

REGION = "us-east-1"
RECONCILE_TEMPLATE: dict[str, Any] = json.loads(json.dumps(TEMPLATE))
RECONCILE_TEMPLATE["Parameters"].update(
    {
        "OrbApiKeySecretArn": {"Type": "String", "Default": ""},
        "ReconcileRequestsPerSecond": {"Type": "String", "Default": "2"},
    }
)
RECONCILE_TEMPLATE["Resources"].update(
    {
        "AuditBucket": {"Type": "AWS::S3::Bucket"},
        "ReconcileCheckpointTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            },
        },
    }
)
RECONCILE_TEMPLATE["Outputs"]["AuditBucketName"] = {"Value": {"Ref": "AuditBucket"}}


class Recorder:
    """Every HTTP request a command makes; those to ``orb_hosts`` go to ``orb``, others get a 500."""

    def __init__(self, orb: Callable[[httpx.Request], httpx.Response], orb_hosts: set[str]) -> None:
        self.orb, self.orb_hosts = orb, orb_hosts
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.orb(request) if request.url.host in self.orb_hosts else httpx.Response(500)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def create_reconcile_stack(**parameters: str) -> dict[str, str]:
    """The stack's outputs, plus ``ReconcileCheckpointTable`` (its physical name); inside mock_aws."""
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(RECONCILE_TEMPLATE),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )
    stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack["Outputs"]}
    table = cloudformation.describe_stack_resource(StackName=STACK, LogicalResourceId="ReconcileCheckpointTable")
    outputs["ReconcileCheckpointTable"] = table["StackResourceDetail"]["PhysicalResourceId"]
    return outputs


def run_command(
    main: Any,
    argv: list[str],
    now: datetime,
    http: httpx.Client,
    env: dict[str, str] | None = None,
    **options: Any,
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``main`` (reconcile's or trace's command module) on the stack."""
    args = main.build_parser().parse_args([*argv, "--stack", STACK, "--region", REGION])
    out, err = io.StringIO(), io.StringIO()
    code = main.run(
        args, {"ORB_API_KEY": "orb-key"} if env is None else env, out, err, now=lambda: now, http=http, **options
    )
    return code, out.getvalue(), err.getvalue()
