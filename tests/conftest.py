"""Shared test fixtures: isolated AWS credentials and a loader for the Lambda handlers.

Each function's handler lives in ``functions/<name>/app.py``; they all are called ``app``, so
tests load them by path under a unique module name (``orb_bridge_dev.lambda_runtime``).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from orb_bridge_dev.lambda_runtime import LambdaContext, load_function, sqs_event  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

# Never reach a real AWS account from tests, whatever the developer's shell has.
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SegmentOrbBridge")
os.environ.setdefault("POWERTOOLS_DEV", "false")


def load_handler(function_name: str, fresh: bool = False) -> ModuleType:
    """Import ``functions/<function_name>/app.py`` as module ``<function_name>_app``."""
    return load_function(function_name, f"{function_name}_app", fresh=fresh)


class FakeLambdaContext(LambdaContext):
    """A Lambda context with a real remaining-time clock (timeout first, as tests use it)."""

    def __init__(self, timeout_seconds: float = 60.0, function_name: str = "test-function") -> None:
        super().__init__(function_name, timeout_seconds)


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(autouse=True)
def _fresh_secret_cache():
    """Secrets read from (moto's) Secrets Manager are cached per ARN for 300 s: not across tests."""
    from orb_bridge.secrets import secret_cache

    secret_cache.clear()
    yield
    secret_cache.clear()
