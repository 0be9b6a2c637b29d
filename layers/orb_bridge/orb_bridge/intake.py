"""Track intake: authenticate a Segment request, map its Track calls, queue them for Orb.

The service knows nothing of API Gateway: it takes headers and the exact body bytes and
returns a status code and a JSON-able body. Accepted events go to the ingest queue (one SQS
message per Orb event); rejected ones go to the rejected queue with their reason and the
original event. If SQS cannot take them, the answer is 503 so Segment retries: the
idempotency key makes the duplicates harmless downstream.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from orb_bridge.config import IntakeSettings
from orb_bridge.observability import logger, metrics
from orb_bridge.queues import SendFailure, SqsQueue, rejection_record
from orb_bridge.segment.auth import authenticate
from orb_bridge.segment.body import JSON_WHITESPACE, BodyError, SegmentBody, check_size, parse_segment_body
from orb_bridge.segment.mapping import map_elements
from orb_bridge.segment.models import MappedEvent

# Bodies per worker when a large batch is queued concurrently (10 SendMessageBatch entries each).
SEND_CHUNK = 100
SEND_WORKERS = 8
# A rejected-queue message must fit SQS even on queues still pinned to 256 KiB.
MAX_REJECTION_BYTES = 200 * 1024
EXCERPT_CHARS = 16 * 1024
# Enough detail in the log to debug a bad batch without flooding it.
MAX_LOGGED_REJECTIONS = 20


@dataclass(frozen=True)
class IntakeResponse:
    status_code: int
    body: dict[str, Any]


def _error(status_code: int, message: str) -> IntakeResponse:
    return IntakeResponse(status_code, {"message": message})


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


def _rejection_body(outcome: MappedEvent, element: Any) -> str:
    extra = {"index": outcome.index, "message_id": outcome.message_id}
    record = rejection_record(
        stage="intake", reason=outcome.error or "", errors=[outcome.error or ""], segment_event=element, extra=extra
    )
    if len(record) > MAX_REJECTION_BYTES:  # json.dumps escapes non-ASCII, so chars == bytes
        original = json.dumps(element, separators=(",", ":"), default=str)
        record = rejection_record(
            stage="intake",
            reason=outcome.error or "",
            errors=[outcome.error or ""],
            extra={**extra, "segment_event_bytes": len(original), "segment_event_excerpt": _excerpt(original)},
        )
    return record


def send_concurrently(queue: SqsQueue, bodies: Sequence[str], workers: int = SEND_WORKERS) -> list[SendFailure]:
    """``queue.send_all`` over slices in parallel: 4,000 events in sequence would outlast Segment's timeout."""
    if len(bodies) <= SEND_CHUNK or workers <= 1:
        return queue.send_all(bodies)
    from concurrent.futures import ThreadPoolExecutor  # only large batches need it

    _ = queue.client  # create the shared client before the threads need it
    starts = range(0, len(bodies), SEND_CHUNK)

    def send_slice(start: int) -> list[SendFailure]:
        failures = queue.send_all(bodies[start : start + SEND_CHUNK])
        return [dataclasses.replace(failure, index=start + failure.index) for failure in failures]

    with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
        return [failure for failures in pool.map(send_slice, starts) for failure in failures]


class TrackIntake:
    def __init__(
        self,
        settings: IntakeSettings,
        ingest_queue: SqsQueue | None = None,
        rejected_queue: SqsQueue | None = None,
        send_workers: int = SEND_WORKERS,
    ) -> None:
        self.settings = settings
        self.ingest_queue = ingest_queue or SqsQueue(settings.ingest_queue_url)
        self.rejected_queue = rejected_queue or SqsQueue(settings.rejected_queue_url)
        self.send_workers = send_workers

    def handle(self, headers: Mapping[str, Any] | None, raw_body: bytes) -> IntakeResponse:
        settings = self.settings
        try:
            check_size(raw_body, settings.max_body_bytes)
        except BodyError as exc:
            logger.warning("request refused", extra={"status": exc.status_code, "reason": exc.message})
            return _error(exc.status_code, exc.message)

        # Parsed before authenticating: the batch rule needs the body's shape. A parse error
        # is reported only to authenticated callers.
        body: SegmentBody | None = None
        body_error: BodyError | None = None
        try:
            body = parse_segment_body(
                raw_body, max_body_bytes=settings.max_body_bytes, max_batch_events=settings.max_batch_events
            )
        except BodyError as exc:
            body_error = exc

        is_array = body.shape == "array" if body else raw_body.lstrip(JSON_WHITESPACE.encode()).startswith(b"[")
        auth = authenticate(
            headers,
            raw_body,
            shared_secret=settings.shared_secret,
            auth_token=settings.auth_token,
            allow_unauthenticated=settings.allow_unauthenticated,
            require_bearer_for_batches=settings.require_bearer_for_batches,
            is_batch=body.is_batch if body else is_array,
            is_array=is_array,
        )
        if not auth.ok:
            logger.warning("request not authenticated", extra={"reason": auth.detail})
            return _error(401, "unauthorized")

        if body_error is not None:
            logger.warning("request body refused", extra={"status": body_error.status_code, "reason": body_error.message})
            self._keep_malformed_body(raw_body, body_error)
            return _error(body_error.status_code, body_error.message)

        assert body is not None  # parse_segment_body either returned or raised
        return self._process(body)

    def _process(self, body: SegmentBody) -> IntakeResponse:
        outcomes = map_elements(body.elements, self.settings.mapping)
        if len(outcomes) == 1 and outcomes[0].message_id:
            logger.set_correlation_id(outcomes[0].message_id)

        accepted = [outcome for outcome in outcomes if outcome.orb_event is not None]
        rejected = [outcome for outcome in outcomes if outcome.error is not None]
        skipped = len(outcomes) - len(accepted) - len(rejected)

        ingest_failures = send_concurrently(
            self.ingest_queue, [o.orb_event.to_message_body() for o in accepted if o.orb_event], self.send_workers
        )
        rejected_failures = send_concurrently(
            self.rejected_queue, [_rejection_body(o, body.elements[o.index]) for o in rejected], self.send_workers
        )
        for outcome in rejected[:MAX_LOGGED_REJECTIONS]:
            logger.info(
                "event rejected", extra={"index": outcome.index, "message_id": outcome.message_id, "reason": outcome.error}
            )
        if ingest_failures or rejected_failures:
            failure = (ingest_failures or rejected_failures)[0]
            logger.error(
                "could not queue events",
                extra={
                    "ingest_failures": len(ingest_failures),
                    "rejected_queue_failures": len(rejected_failures),
                    "first_failure": {"code": failure.code, "message": failure.message},
                },
            )
            return _error(503, "could not queue the events; please retry")

        metrics.add_metric(name="TrackAccepted", unit=MetricUnit.Count, value=len(accepted))
        metrics.add_metric(name="TrackSkipped", unit=MetricUnit.Count, value=skipped)
        metrics.add_metric(name="TrackRejected", unit=MetricUnit.Count, value=len(rejected))
        logger.info(
            "request processed",
            extra={"shape": body.shape, "events": len(outcomes), "accepted": len(accepted), "skipped": skipped,
                   "rejected": len(rejected)},
        )
        response: dict[str, Any] = {
            "accepted": len(accepted),
            "skipped": skipped,
            "rejected": [{"index": o.index, "messageId": o.message_id, "error": o.error} for o in rejected],
        }
        if not accepted and not skipped:
            response["message"] = "no valid events in the request"
            return IntakeResponse(400, response)
        return IntakeResponse(200, response)

    def _keep_malformed_body(self, raw_body: bytes, error: BodyError) -> None:
        """Best effort: an authenticated sender's unusable body goes to the rejected queue too."""
        record = rejection_record(
            stage="intake",
            reason=error.message,
            errors=[error.message],
            extra={"body_bytes": len(raw_body), "body_excerpt": _excerpt(raw_body.decode("utf-8", "replace"))},
        )
        failures = self.rejected_queue.send_all([record])
        if failures:
            logger.error("could not keep the refused body", extra={"code": failures[0].code})


@functools.cache
def default_intake() -> TrackIntake:
    """Built at the first request (a ConfigurationError is raised each time until fixed)."""
    return TrackIntake(IntakeSettings.from_env())


def reset() -> None:
    default_intake.cache_clear()
