"""OrbIngestFunction: SQS (IngestQueue) -> Orb ``POST /ingest``, with partial batch responses.

The partial response is built in ``orb_bridge.ingest.batch`` rather than with Powertools'
``BatchProcessor``: that model handles one record at a time, while Orb takes up to 500 events
per request, so the outcome of a message is only known once its chunk has been answered.
"""

from __future__ import annotations

from typing import Any

from orb_bridge.aws.clients import prewarm
from orb_bridge.core.observability import logger, metrics
from orb_bridge.ingest import batch as ingest_batch

# INIT: the clients, built outside the handler; settings and secrets stay lazy (a bad setting never fails INIT).
prewarm("secretsmanager")


# The invocation's correlation id is Lambda's request id; lines about particular events carry
# their SQS message ids and idempotency keys (a batch holds up to 10,000 messages).
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.set_correlation_id(getattr(context, "aws_request_id", None))
    return ingest_batch.handle(event, context)
