"""Shared test fixtures: isolated AWS credentials and a loader for the Lambda handlers.

Each function's handler lives in ``functions/<name>/app.py``; they all are called ``app``, so
tests load them by path under a unique module name, exactly as Lambda would import the file.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
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
    module_name = f"{function_name}_app"
    if not fresh and module_name in sys.modules:
        return sys.modules[module_name]
    path = FUNCTIONS / function_name / "app.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader, f"no handler at {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class FakeLambdaContext:
    """A Lambda context with a real remaining-time clock."""

    def __init__(self, timeout_seconds: float = 60.0, function_name: str = "test-function") -> None:
        import time
        import uuid

        self._deadline = time.monotonic() + timeout_seconds
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 256
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
