"""What Lambda gives a handler, for running the real handlers outside Lambda.

One place for the dev stack, the tests and the benchmarks: import ``functions/<name>/app.py``
as Lambda does (each function's module is called ``app``, so it gets a unique module name), and
a context object with a real remaining-time clock.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS_DIR = ROOT / "functions"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


class HandlerNotFound(RuntimeError):  # noqa: N818 (reads as what happened; the CLI names it)
    pass


def load_function(name: str, module_name: str | None = None, *, fresh: bool = True) -> ModuleType:
    """Import ``functions/<name>/app.py`` as ``module_name`` (default ``<name>_app``).

    ``fresh`` imports it anew (a new module: fresh per-container caches, like a new Lambda
    container); otherwise an already imported module of that name is reused.
    """
    module_name = module_name or f"{name}_app"
    if not fresh and module_name in sys.modules:
        return sys.modules[module_name]
    path = FUNCTIONS_DIR / name / "app.py"
    if not path.is_file():
        raise HandlerNotFound(f"no handler at {path}")
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class LambdaContext:
    """The parts of Lambda's context object handlers use, with a real remaining-time clock."""

    def __init__(
        self,
        function_name: str = "local",
        timeout_seconds: float = 60.0,
        memory_mb: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self.timeout_seconds = timeout_seconds
        # Injectable so tests can move time without sleeping (no timing luck on a loaded machine).
        self._clock = clock
        self._deadline = clock() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock()) * 1000))

    @property
    def timed_out(self) -> bool:
        return self._clock() > self._deadline


def sqs_event(bodies: list[str], queue_name: str = "IngestQueue", receive_count: int = 1, first_id: int = 0) -> dict:
    """A Lambda SQS event carrying ``bodies`` (message ids ``msg-00000``...), as the event source builds it."""
    return {
        "Records": [
            {
                "messageId": f"msg-{n:05d}",
                "receiptHandle": f"handle-{n}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": "1763715600000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1763715600001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{queue_name}",
                "awsRegion": REGION,
            }
            for n, body in enumerate(bodies, start=first_id)
        ]
    }
