"""Powertools Logger and Metrics shared by all functions, and what keeps logs safe.

The service name comes from ``POWERTOOLS_SERVICE_NAME`` (set per function by the template, read
by ``config.ObservabilitySettings``);
metrics go to one namespace so dashboards see the whole pipeline.

Secrets never reach the logs at any level: Lambda sets the root logger to the function's
``LogLevel``, and at DEBUG botocore logs whole responses (Secrets Manager's hold the secret)
and urllib3/httpx their requests, so those libraries' loggers are capped at WARNING.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from orb_bridge.core.config import ObservabilitySettings
from orb_bridge.core.errors import MAX_ECHO_CHARS, clip, quote  # noqa: F401 (part of this module's interface)
from orb_bridge.core.metric_names import Metric

_names = ObservabilitySettings.from_env()
METRICS_NAMESPACE = _names.metrics_namespace

# Libraries that log request or response bodies and headers at DEBUG or INFO.
CHATTY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "httpcore", "aws_lambda_powertools.utilities")


def cap_library_loggers(level: int = logging.WARNING) -> None:
    for name in CHATTY_LOGGERS:
        library_logger = logging.getLogger(name)
        if library_logger.level < level:  # NOTSET (0) would inherit the root's DEBUG
            library_logger.setLevel(level)


cap_library_loggers()

logger = Logger(service=_names.service_name)
metrics = Metrics(namespace=METRICS_NAMESPACE)


def emit(metric: Metric, value: float) -> None:
    """Add ``value`` to ``metric`` (one of ``orb_bridge.core.metric_names``), published at the invocation's end."""
    metrics.add_metric(name=metric.name, unit=metric.unit, value=value)


def emit_by(metric: Metric, value: float, **dimensions: str) -> None:
    """``metric`` split by its ``by`` dimensions (values from ``dimensions``), in its own EMF
    blob so they split this metric only; its total too when the registry says so."""
    if metric.with_total:
        emit(metric, value)
    unit = MetricUnit(metric.unit)
    with single_metric(name=metric.name, unit=unit, value=value, namespace=METRICS_NAMESPACE) as one:
        for key in metric.by:
            one.add_dimension(name=key, value=dimensions[key])
