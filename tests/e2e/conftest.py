"""The dev stack, started in-process on free loopback ports, for the end-to-end tests.

Everything the tests touch is real: HTTP over 127.0.0.1 to the gateway, the real handlers,
moto's server for SQS / DynamoDB / EventBridge, the SQS poller and the Orb sandbox.
Package-scoped: moto's state is process-wide, so the stack must be gone before other test
packages use ``mock_aws``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from orb_bridge_dev.devstack.stack import DevStack, DevStackConfig

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="package")
def stack() -> Iterator[DevStack]:
    # user_env={}: the developer's shell settings (a real ORB_API_BASE_URL...) must not leak in.
    config = DevStackConfig(port=0, sandbox_port=0, local_visibility_timeout=1, user_env={})
    with DevStack(config) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client
