"""OrbIngestFunction: SQS (IngestQueue) -> Orb ``POST /ingest``, with partial batch responses.

The partial response is built here rather than with Powertools' ``BatchProcessor``: that model
handles one record at a time, while Orb takes up to 500 events per request, so the outcome of a
message is only known once its chunk (and any split of it) has been answered.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field

from orb_bridge import ingest, queues
from orb_bridge.errors import ConfigurationError
from orb_bridge.observability import logger, metrics


# Only the two fields ingest uses. Powertools' SqsModel validates every attribute of every
# record: about 12x slower (0.18 s vs 0.015 s for a 10,000-record batch on a dev machine, several
# times that on a small Lambda), time taken from the Orb requests' budget.
class _SqsRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    messageId: str  # noqa: N815 (SQS event field name)
    body: str
    receiptHandle: str = ""  # noqa: N815
    eventSourceARN: str = ""  # noqa: N815
    attributes: dict[str, Any] = Field(default_factory=dict)

    @property
    def receive_count(self) -> int:
        try:
            return int(self.attributes.get("ApproximateReceiveCount", 1))
        except (TypeError, ValueError):
            return 1


class _SqsEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    Records: list[_SqsRecord]  # noqa: N815


# The invocation's correlation id is Lambda's request id; lines about particular events carry
# their SQS message ids and idempotency keys (a batch holds up to 10,000 messages).
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = _SqsEvent.model_validate(event)
    messages = [ingest.SqsMessage(record.messageId, record.body) for record in batch.Records]
    logger.set_correlation_id(getattr(context, "aws_request_id", None))

    try:
        service = ingest.container_service()
    except ConfigurationError as exc:
        # Fail every message (never delete or dead-letter them as bad data) and say why.
        logger.error(f"configuration error: {exc}; every message left for SQS to redeliver")
        metrics.add_metric(name="EventsRetried", unit=MetricUnit.Count, value=len(messages))
        failed = [message.message_id for message in messages]
        _hold_back(batch.Records, set(failed), configuration_error=True)
        return _response(failed)

    report = service.ingest(messages, remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000)

    if report.configuration_error:
        logger.error("configuration error: " + report.configuration_error)
        ingest.forget_container_service()  # re-read the key (it may have been rotated) next time
    if report.failed_message_ids:
        _hold_back(batch.Records, set(report.failed_message_ids), configuration_error=bool(report.configuration_error))
    metrics.add_metric(name="EventsIngested", unit=MetricUnit.Count, value=report.events_ingested)
    metrics.add_metric(name="EventsRejectedByOrb", unit=MetricUnit.Count, value=report.events_rejected_by_orb)
    metrics.add_metric(name="EventsRetried", unit=MetricUnit.Count, value=len(report.failed_message_ids))
    if report.messages_rejected_at_ingest:
        metrics.add_metric(
            name="MessagesRejectedAtIngest", unit=MetricUnit.Count, value=report.messages_rejected_at_ingest
        )
    logger.info(
        "ingest batch done",
        extra={
            "messages": len(messages),
            "events_ingested": report.events_ingested,
            "events_rejected_by_orb": report.events_rejected_by_orb,
            "messages_rejected_at_ingest": report.messages_rejected_at_ingest,
            "messages_failed": len(report.failed_message_ids),
            "orb_requests": report.requests_made,
        },
    )
    return _response(report.failed_message_ids)


def _hold_back(records: list[_SqsRecord], failed: set[str], configuration_error: bool) -> None:
    """Delay the redelivery of the failed messages (see ``queues.hold_back``)."""
    receipts = [
        queues.Receipt(record.eventSourceARN, record.receiptHandle, record.receive_count)
        for record in records
        if record.messageId in failed and record.receiptHandle and record.eventSourceARN
    ]
    try:
        not_delayed = queues.hold_back(receipts, queues.backoff_base_seconds(configuration_error))
    except Exception:  # best effort: they reappear after the queue's visibility timeout anyway
        logger.exception("could not delay redelivery of failed messages")
        return
    if not_delayed:
        logger.warning("some failed messages could not be delayed", extra={"count": not_delayed})


def _response(failed_message_ids: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed_message_ids]}
