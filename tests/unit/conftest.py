"""Fixtures shared by the unit tests."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws


@pytest.fixture
def rejected_queue():
    with mock_aws():
        aws.reset_clients()
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="rejected")["QueueUrl"]
        yield url
    aws.reset_clients()
