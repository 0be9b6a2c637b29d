"""Shared test fixtures and isolated AWS credentials (helpers live in ``tests/support``)."""

from __future__ import annotations

import os

import pytest

from tests.support.lambdas import FakeLambdaContext

# Never reach a real AWS account from tests, whatever the developer's shell has.
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SegmentOrbBridge")
os.environ.setdefault("POWERTOOLS_DEV", "false")


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
