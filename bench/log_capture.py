"""What a handler writes to CloudWatch Logs, counted in bytes (the cost model's log ingestion).

Lambda sends a function's stdout to CloudWatch Logs: Powertools' log lines and its metrics (EMF,
printed once per invocation). The template sets ``LogFormat: JSON``, ``ApplicationLogLevel``
INFO (parameter ``LogLevel``) and ``SystemLogLevel: WARN``, under which Lambda sends none of its
own START/REPORT lines (they are INFO system logs), so the handler's output at INFO is the whole of it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any


def log_bytes(call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()``'s result and the bytes it wrote to stdout at the template's log level (INFO)."""
    from orb_bridge.core.observability import logger

    handler = logger.registered_handler
    stream = io.StringIO()
    previous_level = logger.log_level
    previous_stream = handler.setStream(stream) if hasattr(handler, "setStream") else None
    logger.setLevel("INFO")
    try:
        with redirect_stdout(stream):
            result = call()
    finally:
        logger.setLevel(previous_level)
        if previous_stream is not None and hasattr(handler, "setStream"):
            handler.setStream(previous_stream)
    return result, len(stream.getvalue().encode("utf-8"))
