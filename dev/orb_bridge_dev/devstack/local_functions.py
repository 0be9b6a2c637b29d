"""The handlers as the dev stack runs them: loaded afresh, metrics muted, container caches reset."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from orb_bridge_dev.devstack import lambda_runtime
from orb_bridge_dev.devstack.env import DevStackError


def load_function(name: str, module_prefix: str = "orb_bridge_dev_fn") -> ModuleType:
    """Import ``functions/<name>/app.py`` afresh (a new module, hence fresh per-container caches)."""
    try:
        return lambda_runtime.load_function(name, f"{module_prefix}_{name}_app")
    except lambda_runtime.HandlerNotFound as exc:
        raise DevStackError(str(exc)) from None


def _without_metric_output(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Drop each invocation's metrics when POWERTOOLS_METRICS_DISABLED is set.

    Powertools (3.37) does not clear disabled metrics after an invocation, so they pile up and
    its 100-value overflow prints them anyway, in ever larger JSON blobs between the status lines.
    """
    from orb_bridge.core.observability import metrics

    def invoke(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        finally:
            if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
                metrics.clear_metrics()

    return invoke


def _reset_container_caches() -> None:
    """Forget clients and settings the layer caches per process (a new "container")."""
    from orb_bridge.aws import clients as aws

    aws.reset_clients()
    for module_name, function_name in (
        ("orb_bridge.intake.service", "reset"),
        ("orb_bridge.ingest.container", "forget_container_service"),
        ("orb_bridge.webhooks.service", "reset"),
    ):
        module = sys.modules.get(module_name)
        reset = getattr(module, function_name, None) if module else None
        if callable(reset):
            reset()
