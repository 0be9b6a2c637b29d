"""A segment-orb-bridge-shaped CloudFormation stack in moto (queues, outputs, mapping parameters)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import boto3

STACK = "orb-bridge-test"
TEMPLATE = {
    "Parameters": {
        "EventNameField": {"Type": "String", "Default": "event"},
        "ExternalCustomerIdField": {"Type": "String", "Default": "userId"},
        "IdempotencyKeyField": {"Type": "String", "Default": "messageId"},
        "PropertiesMapping": {"Type": "String", "Default": "{}"},
        "OrbApiBaseUrl": {"Type": "String", "Default": "https://api.withorb.com/v1"},
    },
    "Resources": {"IngestQueue": {"Type": "AWS::SQS::Queue"}, "RejectedQueue": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {
        "IngestQueueUrl": {"Value": {"Ref": "IngestQueue"}},
        "RejectedQueueUrl": {"Value": {"Ref": "RejectedQueue"}},
    },
}


def create_stack(properties_mapping: Mapping[str, str]) -> tuple[Any, str, str]:
    """(sqs client, ingest queue URL, rejected queue URL); call inside mock_aws."""
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": "PropertiesMapping", "ParameterValue": json.dumps(dict(properties_mapping))}],
    )
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    }
    return boto3.client("sqs", region_name="us-east-1"), outputs["IngestQueueUrl"], outputs["RejectedQueueUrl"]


def update_mapping(properties_mapping: Mapping[str, str]) -> None:
    boto3.client("cloudformation", region_name="us-east-1").update_stack(
        StackName=STACK,
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": "PropertiesMapping", "ParameterValue": json.dumps(dict(properties_mapping))}],
    )


def segment_event(index: int, at: datetime, customer: str = "cust_1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "payment_confirmed",
        "userId": customer,
        "messageId": f"msg-{index}",
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "properties": {"amount": index, **extra},
    }


def orb_event(index: int, at: datetime, customer: str = "cust_1") -> dict[str, Any]:
    return {
        "event_name": "payment_confirmed",
        "idempotency_key": f"msg-{index}",
        "external_customer_id": customer,
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "properties": {"amount": index},
    }


def all_bodies(sqs: Any, url: str) -> list[str]:
    """Every message body, leaving them on the queue (received, then released)."""
    seen: dict[str, dict[str, Any]] = {}
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", []):
        seen.update({m["MessageId"]: m for m in batch})
    messages = list(seen.values())
    for start in range(0, len(messages), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[start : start + 10])
            ],
        )
    return [m["Body"] for m in messages]


def send(sqs: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])],
        )


HOUR = timedelta(hours=1)
