"""The embedded AWS mirrors template.yaml: queues with redrive, the idempotency table, the bus."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from orb_bridge_dev.devstack.local_aws import LocalAws, LocalResources
from orb_bridge_dev.devstack.template import TemplateError, load_template


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    local = LocalAws(load_template(), local_visibility_timeout=3)
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def resources(aws: LocalAws) -> LocalResources:
    assert aws.resources is not None
    return aws.resources


def test_ingest_queue_redrives_to_the_rejected_queue_as_the_template_says(
    aws: LocalAws, resources: LocalResources
) -> None:
    template = load_template()
    max_receive_count = int(template["Parameters"]["MaxReceiveCount"]["Default"])
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=resources.ingest_queue.url, AttributeNames=["All"])[
        "Attributes"
    ]

    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == resources.rejected_queue.arn
    assert int(policy["maxReceiveCount"]) == max_receive_count == resources.ingest_queue.max_receive_count
    # Short locally so retries are visible; the template's value is kept for reference.
    assert attributes["VisibilityTimeout"] == "3"
    assert (
        resources.ingest_queue.template_visibility_timeout
        == template["Resources"]["IngestQueue"]["Properties"]["VisibilityTimeout"]
    )
    assert attributes["MessageRetentionPeriod"] == str(
        template["Resources"]["IngestQueue"]["Properties"]["MessageRetentionPeriod"]
    )


def test_rejected_queue_keeps_messages_as_long_as_the_template_says(aws: LocalAws, resources: LocalResources) -> None:
    template = load_template()
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=resources.rejected_queue.url, AttributeNames=["MessageRetentionPeriod"]
    )["Attributes"]
    assert attributes["MessageRetentionPeriod"] == str(
        template["Resources"]["RejectedQueue"]["Properties"]["MessageRetentionPeriod"]
    )


def test_idempotency_table_has_key_id_and_ttl_on_expiration(aws: LocalAws, resources: LocalResources) -> None:
    dynamodb = aws.client("dynamodb")
    table = dynamodb.describe_table(TableName=resources.idempotency_table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    ttl = dynamodb.describe_time_to_live(TableName=resources.idempotency_table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expiration"


def test_events_on_the_bus_reach_the_bus_tap_queue(aws: LocalAws, resources: LocalResources) -> None:
    assert resources.event_bus_name.endswith("-orb-webhooks")  # !Sub ${AWS::StackName}-orb-webhooks resolved
    aws.client("events").put_events(
        Entries=[
            {
                "EventBusName": resources.event_bus_name,
                "Source": "orb",
                "DetailType": "invoice.issued",
                "Detail": json.dumps({"id": "w1"}),
            }
        ]
    )
    (message,) = aws.client("sqs").receive_message(QueueUrl=resources.bus_tap_queue.url)["Messages"]
    event = json.loads(message["Body"])
    assert event["detail-type"] == "invoice.issued" and event["detail"] == {"id": "w1"}


def test_a_template_without_the_redrive_policy_is_refused() -> None:
    template = load_template()
    del template["Resources"]["IngestQueue"]["Properties"]["RedrivePolicy"]
    local = LocalAws(template)
    with pytest.raises(TemplateError, match="RedrivePolicy"):
        local.start()
    assert not local.running  # stopped on failure


def test_the_audit_bucket_is_created_versioned_as_the_template_says(aws: LocalAws, resources: LocalResources) -> None:
    s3 = aws.client("s3")
    assert resources.audit_bucket_name
    assert s3.get_bucket_versioning(Bucket=resources.audit_bucket_name)["Status"] == "Enabled"
    s3.put_object(Bucket=resources.audit_bucket_name, Key="ingest/x", Body=b"1", IfNoneMatch="*")
    with pytest.raises(Exception, match="PreconditionFailed"):
        s3.put_object(Bucket=resources.audit_bucket_name, Key="ingest/x", Body=b"2", IfNoneMatch="*")
