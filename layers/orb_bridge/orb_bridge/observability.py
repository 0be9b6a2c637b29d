"""Powertools Logger and Metrics shared by all functions.

The service name comes from ``POWERTOOLS_SERVICE_NAME`` (set per function by the template);
metrics go to one namespace so dashboards see the whole pipeline.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "SegmentOrbBridge")

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "orb-bridge"))
metrics = Metrics(namespace=METRICS_NAMESPACE)
