"""`orb-bridge backfill` archives what Orb accepted into its backfills, under backfill/ (issue 17)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.archive import read_archive
from tests.support import rejected_stack
from tests.support.orb_backfill_fake import FakeOrb
from tests.support.rejected_stack import STACK, send
from tests.unit.dev.commands.test_backfill_cli import NOW, late_records, run


@pytest.fixture
def stack_with_archive(monkeypatch):
    template = json.loads(json.dumps(rejected_stack.TEMPLATE))
    template["Resources"]["AuditBucket"] = {"Type": "AWS::S3::Bucket"}
    template["Outputs"]["AuditBucketName"] = {"Value": {"Ref": "AuditBucket"}}
    monkeypatch.setattr(rejected_stack, "TEMPLATE", template)
    with mock_aws():
        aws.reset_clients()
        sqs, _, rejected_url = rejected_stack.create_stack({})
        outputs = boto3.client("cloudformation", region_name="us-east-1").describe_stacks(StackName=STACK)
        bucket = {o["OutputKey"]: o["OutputValue"] for o in outputs["Stacks"][0]["Outputs"]}["AuditBucketName"]
        yield sqs, rejected_url, bucket
    aws.reset_clients()


def test_a_backfill_archives_each_accepted_request_under_its_backfill_id(stack_with_archive, tmp_path):
    sqs, rejected_url, bucket = stack_with_archive
    send(sqs, rejected_url, late_records(12))
    orb = FakeOrb(now=lambda: NOW)

    code, out = run(orb, tmp_path / "state.json", "--yes")

    assert code == 0, out
    (backfill,) = orb.backfills.values()
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys and all(key.startswith("backfill/sent_hour=") and f"/{backfill['id']}-" in key for key in keys)
    archived = {}
    for key in keys:
        head, events = read_archive(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert head["source"] == "backfill" and head["backfill_id"] == backfill["id"]
        assert head["events"] == len(events) and head["function_request_id"].startswith("backfill-")
        archived.update({event["idempotency_key"]: event for event in events})
    assert sorted(archived) == sorted(orb.billed())  # exactly what Orb took, once
    assert len(keys) == len(orb.ingest_calls)
