"""POST /segment (HTTP API, payload v2): Segment Track calls -> ingest queue.

Thin adapter: read the API Gateway event, hand the exact body bytes to the intake service,
shape its answer. Bad requests get a 4xx with a specific message; our own failures a 5xx
without a stack trace (Segment retries 5xx).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from orb_bridge import intake
from orb_bridge.errors import ConfigurationError
from orb_bridge.observability import logger, metrics
from orb_bridge.http_request import BodyError, decode_http_body
from orb_bridge.aws import prewarm
prewarm("sqs", "secretsmanager")  # INIT: the clients, built outside the handler; settings and secrets stay lazy

JSON_HEADERS = {"content-type": "application/json"}


def _response(status_code: int, body: dict[str, Any]) -> dict[str, Any]:
    # Refused (4xx, the sender's problem) and failed (5xx, ours: Segment retries) requests are
    # counted, so every invocation publishes a metric and alarms can watch both.
    if status_code == 400 and body.get("rejected"):
        pass  # a body of only invalid events: counted as TrackRejected by the service
    elif 400 <= status_code < 500:
        metrics.add_metric(name="TrackRequestsRefused", unit=MetricUnit.Count, value=1)
    elif status_code >= 500:
        metrics.add_metric(name="TrackRequestsFailed", unit=MetricUnit.Count, value=1)
    return {"statusCode": status_code, "headers": dict(JSON_HEADERS), "body": json.dumps(body)}


def _request(event: Any) -> tuple[dict[str, Any], bytes]:
    if not isinstance(event, dict):
        raise BodyError(400, "not an API Gateway HTTP API event")
    headers = event.get("headers")
    if not isinstance(headers, dict):
        raise BodyError(400, "not an API Gateway HTTP API event: no headers")
    raw_body = decode_http_body(event.get("body"), event.get("isBase64Encoded", False))
    if not raw_body.strip():
        raise BodyError(400, "request body is empty")
    return headers, raw_body


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        headers, raw_body = _request(event)
    except BodyError as exc:
        logger.warning("bad request", extra={"reason": exc.message})
        return _response(exc.status_code, {"message": exc.message})
    try:
        service = intake.default_intake()
    except ConfigurationError as exc:
        # The caller may be anyone: the setting at fault is named in the log only.
        logger.error(f"configuration error: {exc}")
        return _response(500, {"message": "track intake is misconfigured; see the function's log"})
    try:
        result = service.handle(headers, raw_body)
    except Exception:  # a bug of ours: log it, answer a retryable 500 without internals
        logger.exception("unexpected error in track intake")
        return _response(500, {"message": "internal error; please retry"})
    return _response(result.status_code, result.body)
