"""The functions' metrics on the dev stack: their EMF output put into moto's CloudWatch.

In Lambda, CloudWatch reads the EMF JSON that Powertools prints. Here the printed blobs of a
handler the dev stack runs are caught (Powertools' ``print``, in its metric modules only, and only
on a thread running a wrapped handler) and sent with ``PutMetricData`` to moto, so the dashboard's
metrics, the alarms (``devstack/alarms.py``) and ``orb-bridge status --dev`` read what AWS would.
All three functions share one process and one Powertools ``Metrics``, so the ``service``
dimension is set to the function's own (its template ``POWERTOOLS_SERVICE_NAME``).
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from orb_bridge.core.metric_names import SERVICE

# Powertools modules that print EMF (cloudwatch.py: flush_metrics; base.py: single_metric).
EMF_MODULES = (
    "aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch",
    "aws_lambda_powertools.metrics.base",
)


def _modules() -> list[ModuleType]:
    import importlib

    return [importlib.import_module(name) for name in EMF_MODULES]


def metric_data(blob: dict[str, Any], service: str) -> dict[str, list[dict[str, Any]]]:
    """``PutMetricData`` entries by namespace for one EMF blob (empty if it is not one)."""
    directive = blob.get("_aws")
    if not isinstance(directive, dict):
        return {}
    timestamp = datetime.fromtimestamp(int(directive.get("Timestamp", 0)) / 1000, UTC)
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for group in directive.get("CloudWatchMetrics", []):
        entries = by_namespace.setdefault(str(group.get("Namespace")), [])
        for dimension_set in group.get("Dimensions", [[]]):
            dimensions = [
                {"Name": key, "Value": service if key == SERVICE else str(blob.get(key, ""))} for key in dimension_set
            ]
            for metric in group.get("Metrics", []):
                values = blob.get(metric["Name"])
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, int | float):
                        entries.append(
                            {
                                "MetricName": metric["Name"],
                                "Dimensions": dimensions,
                                "Value": float(value),
                                "Unit": metric.get("Unit", "None"),
                                "Timestamp": timestamp,
                            }
                        )
    return by_namespace


class CloudWatchSink:
    """Catches the EMF blobs of wrapped handlers and puts them into ``cloudwatch`` (moto)."""

    def __init__(self, cloudwatch: Any, on_error: Callable[[str], None] | None = None) -> None:
        self.cloudwatch = cloudwatch
        self.on_error = on_error or (lambda message: None)
        self._running = threading.local()
        self._installed: list[ModuleType] = []

    def install(self) -> CloudWatchSink:
        for module in _modules():
            setattr(module, "print", self._print)  # noqa: B010 (shadows the builtin in that module only)
            self._installed.append(module)
        return self

    def uninstall(self) -> None:
        for module in self._installed:
            vars(module).pop("print", None)
        self._installed.clear()

    def wrap(self, handler: Callable[[Any, Any], Any], service: str) -> Callable[[Any, Any], Any]:
        def invoke(event: Any, context: Any) -> Any:
            self._running.service = service
            try:
                return handler(event, context)
            finally:
                self._running.service = None

        return invoke

    def _print(self, *args: Any, **kwargs: Any) -> None:
        service = getattr(self._running, "service", None)
        if service is None or len(args) != 1 or not isinstance(args[0], str):
            builtins.print(*args, **kwargs)
            return
        try:
            blob = json.loads(args[0])
        except ValueError:
            builtins.print(*args, **kwargs)
            return
        self.publish(blob if isinstance(blob, dict) else {}, service)

    def publish(self, blob: dict[str, Any], service: str) -> None:
        for namespace, entries in metric_data(blob, service).items():
            for start in range(0, len(entries), 500):  # PutMetricData's limit per call (1,000) and then some
                try:
                    self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=entries[start : start + 500])
                except Exception as exc:  # the dev stack keeps running; say so once per failure
                    self.on_error(f"could not put metrics into the dev stack's CloudWatch: {type(exc).__name__}")
