"""Issue 20: `orb-bridge status --dev` on the running dev stack, with one rejected event.

The functions' metrics reach moto's CloudWatch (devstack/metrics_sink.py), the template's alarms
are evaluated on them (devstack/alarms.py), and status reads both as it would in AWS.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orb_bridge_dev.commands import status
from orb_bridge_dev.devstack.stack import DevStack, wait_until

pytestmark = pytest.mark.e2e


def drain_rejected(stack: DevStack) -> None:
    sqs = stack.local_aws.client("sqs")
    url = stack.resources.rejected_queue.url
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )


def status_of(stack: DevStack, *flags: str) -> tuple[int, str]:
    out = io.StringIO()
    code = status.main(["--dev", "--endpoint-url", stack.resources.endpoint_url, *flags], out=out)
    return code, out.getvalue()


def rejected_depth(stack: DevStack) -> int:
    attributes = stack.local_aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources.rejected_queue.url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_status_dev_shows_one_rejected_event_and_exits_1(stack: DevStack, http: Any) -> None:
    drain_rejected(stack)
    # Other tests on this stack rejected events too: the metric is counted from here.
    before = json.loads(status_of(stack, "--json")[1])["rejected_records_by_stage"].get("intake", 0)
    # An event without a customer id: intake rejects it onto the rejected queue.
    event = {
        "type": "track",
        "event": "api_call",
        "messageId": "status-rejected-1",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": {"amount": 1},
    }
    response = http.post(stack.segment_url, json=event)
    assert response.status_code == 400, response.text
    assert wait_until(lambda: rejected_depth(stack) == 1, timeout=30)
    states = stack.evaluate_alarms()
    assert [state for name, state in states.items() if name.endswith("-RejectedQueueAlarm")] == ["ALARM"]

    code, text = status_of(stack)
    assert code == 1, text
    assert "NEEDS ATTENTION" in text
    assert "rejected queue: 1 waiting" in text
    assert f"intake {before + 1:g}" in text  # RejectedRecordsWritten{stage=intake}, through moto's CloudWatch
    assert "RejectedQueueAlarm" in text

    code_json, document_text = status_of(stack, "--json")
    document = json.loads(document_text)
    assert code_json == 1
    assert document["verdict"] == "attention"
    assert document["queues"]["rejected"]["visible"] == 1
    assert document["rejected_records_by_stage"]["intake"] == before + 1
    assert any(name.endswith("RejectedQueueAlarm") for name in document["alarms_in_alarm"])

    # --records reads the record and releases it: still there for replay.
    code_records, records_text = status_of(stack, "--json", "--records")
    records = json.loads(records_text)["records"]
    assert code_records == 1 and [r["stage"] for r in records] == ["intake"]
    assert rejected_depth(stack) == 1

    drain_rejected(stack)
    code_after, text_after = status_of(stack)
    assert code_after == 0, text_after
    assert "all well" in text_after
