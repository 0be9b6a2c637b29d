"""POST /segment (HTTP API, payload v2): Segment Track calls -> ingest queue.

Thin adapter: ``intake.receive`` reads the API Gateway event, authenticates, maps and queues;
this module decides the HTTP status of each outcome. Bad requests get a 4xx with a specific
message (final for Segment); our own failures a 5xx without a stack trace (Segment retries 5xx).
"""

from __future__ import annotations

import json
from typing import Any

from orb_bridge.aws.clients import prewarm
from orb_bridge.core.observability import logger, metrics
from orb_bridge.intake import service as intake
from orb_bridge.intake.service import IntakeOutcome

# INIT: the clients, built outside the handler; settings and secrets stay lazy (a bad setting never fails INIT).
prewarm("sqs", "secretsmanager")

HTTP_STATUS = {
    IntakeOutcome.ACCEPTED: 200,
    IntakeOutcome.NOTHING_VALID: 400,
    IntakeOutcome.MALFORMED: 400,
    IntakeOutcome.TOO_LARGE: 413,
    IntakeOutcome.UNAUTHORIZED: 401,
    IntakeOutcome.NOT_QUEUED: 503,
    IntakeOutcome.NOT_CONFIGURED: 500,
    IntakeOutcome.FAILED: 500,
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    result = intake.receive(event)
    return {
        "statusCode": HTTP_STATUS[result.outcome],
        "headers": {"content-type": "application/json"},
        "body": json.dumps(result.body),
    }
