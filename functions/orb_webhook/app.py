"""POST /orb/webhook (HTTP API, payload v2): Orb's outbound webhooks.

Thin adapter: ``receive_request`` takes the raw body bytes (base64-decoded when API Gateway says
so, never re-serialised) and the headers, verifies, deduplicates and hands on to EventBridge;
this module decides the HTTP status of each outcome (Orb redelivers anything but a 2xx).
"""

from __future__ import annotations

import json
from typing import Any

from orb_bridge.aws.clients import prewarm
from orb_bridge.core.observability import logger, metrics
from orb_bridge.webhooks.service import Outcome, receive_request

# INIT: the clients, built outside the handler; settings and secrets stay lazy (a bad setting never fails INIT).
prewarm("secretsmanager", "dynamodb", "events")

HTTP_STATUS = {
    Outcome.FORWARDED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.REJECTED: 401,
    Outcome.TOO_LARGE: 413,
    Outcome.INVALID_PAYLOAD: 400,
    Outcome.IN_PROGRESS: 409,
    Outcome.FORWARD_FAILED: 503,
    Outcome.NOT_CONFIGURED: 500,
    Outcome.FAILED: 500,
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = receive_request(event, context)
    return {
        "statusCode": HTTP_STATUS[result.outcome],
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(result.body()),
    }
