"""Reading SQS queues of the dev stack without consuming them."""

from __future__ import annotations

import json
from typing import Any

from orb_bridge_dev.devstack.stack import DevStack


def queue_bodies(stack: DevStack, queue_url: str) -> list[dict[str, Any]]:
    """Every message body in a queue, without consuming them (visibility timeout 0)."""
    sqs = stack.local_aws.client("sqs")
    bodies: dict[str, dict[str, Any]] = {}
    for _ in range(5):  # moto returns at most 10 per call; a few rounds see them all
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            bodies[message["MessageId"]] = json.loads(message["Body"])
        if len(response.get("Messages", [])) < 10:
            break
    return list(bodies.values())
