"""Loading the Lambda handlers and faking their context, for tests.

Each function's handler lives in ``functions/<name>/app.py``; they all are called ``app``, so
tests load them by path under a unique module name (``orb_bridge_dev.devstack.lambda_runtime``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from orb_bridge_dev.devstack.lambda_runtime import LambdaContext, load_function, sqs_event  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parent.parent.parent
EVENTS = ROOT / "events"


def load_handler(function_name: str, fresh: bool = False) -> ModuleType:
    """Import ``functions/<function_name>/app.py`` as module ``<function_name>_app``."""
    return load_function(function_name, f"{function_name}_app", fresh=fresh)


class FakeLambdaContext(LambdaContext):
    """A Lambda context with a remaining-time clock (real unless a test passes its own)."""

    def __init__(
        self,
        timeout_seconds: float = 60.0,
        function_name: str = "test-function",
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(function_name, timeout_seconds, clock=clock or time.monotonic)
