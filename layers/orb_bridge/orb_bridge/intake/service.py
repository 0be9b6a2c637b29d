"""Track intake: authenticate a Segment request, map its Track calls, queue them for Orb.

``TrackIntake`` takes headers and the exact body bytes and returns an ``IntakeResult``: an
``IntakeOutcome`` and a JSON-able body (the handler maps outcomes to HTTP statuses); ``receive``
does the same for an API Gateway event, including the outcomes of a bad event, a
misconfiguration and our own bugs. Accepted events go to the ingest queue (one SQS
message per Orb event); rejected ones go to the rejected queue with their reason and the
original event. If SQS cannot take them, the answer is 503 so Segment retries: the
idempotency key makes the duplicates harmless downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orb_bridge.aws.queues import SEND_WORKERS, SqsQueue, send_concurrently
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.core import metric_names as names
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.core.http_request import BodyError, BodyProblem, read_request
from orb_bridge.core.observability import emit, emit_by, logger
from orb_bridge.intake.rejections import excerpt, rejected_listing, rejection_body
from orb_bridge.intake.settings import IntakeSettings
from orb_bridge.intake.unauthenticated_store import UnauthenticatedStoreBudget, keep_refused_batch
from orb_bridge.segment.auth import authenticate
from orb_bridge.segment.body import SegmentBody, check_size, parse_segment_body
from orb_bridge.segment.mapping import map_elements

# Enough detail in the log to debug a bad batch without flooding it.
MAX_LOGGED_REJECTIONS = 20


class IntakeOutcome(StrEnum):
    ACCEPTED = "accepted"  # queued (some events may have been rejected)
    NOTHING_VALID = "nothing_valid"  # every event was rejected
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    NOT_QUEUED = "not_queued"  # SQS would not take the events: Segment should retry
    NOT_CONFIGURED = "not_configured"
    FAILED = "failed"  # our own bug


# Counted so that alarms can watch refused requests (the sender's problem) and failed ones (ours).
REFUSED = {IntakeOutcome.MALFORMED, IntakeOutcome.TOO_LARGE, IntakeOutcome.UNAUTHORIZED}
FAILED = {IntakeOutcome.NOT_QUEUED, IntakeOutcome.NOT_CONFIGURED, IntakeOutcome.FAILED}


def count_written(records: int) -> None:
    """Records intake wrote to the rejected queue (the ``intake`` stage)."""
    if records > 0:
        emit_by(names.INTAKE_REJECTED_RECORDS_WRITTEN, records, stage="intake")


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    body: dict[str, Any]


def _error(outcome: IntakeOutcome, message: str) -> IntakeResult:
    return IntakeResult(outcome, {"message": message})


def _body_refused(error: BodyError) -> IntakeResult:
    too_large = error.problem is BodyProblem.TOO_LARGE
    return _error(IntakeOutcome.TOO_LARGE if too_large else IntakeOutcome.MALFORMED, error.message)


class TrackIntake:
    def __init__(
        self,
        settings: IntakeSettings,
        ingest_queue: SqsQueue | None = None,
        rejected_queue: SqsQueue | None = None,
        send_workers: int = SEND_WORKERS,
        store_budget: UnauthenticatedStoreBudget | None = None,
    ) -> None:
        self.settings = settings
        self.ingest_queue = ingest_queue or SqsQueue(settings.ingest_queue_url)
        self.rejected_queue = rejected_queue or SqsQueue(settings.rejected_queue_url)
        self.send_workers = send_workers
        self.store_budget = store_budget or UnauthenticatedStoreBudget(
            settings.unauthenticated_store_table_name, settings.unauthenticated_store_bytes_per_hour
        )

    def handle(self, headers: Mapping[str, Any] | None, raw_body: bytes) -> IntakeResult:
        settings = self.settings
        try:
            check_size(raw_body, settings.max_body_bytes)
        except BodyError as exc:
            logger.warning("request refused", extra={"problem": exc.problem.value, "reason": exc.message})
            return _body_refused(exc)

        # Authenticated from the headers and the raw bytes alone: nobody's body is parsed before.
        auth = authenticate(
            headers,
            raw_body,
            shared_secrets=settings.shared_secrets,
            auth_tokens=settings.auth_tokens,
            allow_unauthenticated=settings.allow_unauthenticated,
            allow_first_event_signature_for_batches=settings.allow_first_event_signature_for_batches,
        )
        if auth.first_event_only:
            return self._refuse_signature_only_batch(raw_body)
        if not auth.ok:
            logger.warning("request not authenticated", extra={"reason": auth.detail})
            return _error(IntakeOutcome.UNAUTHORIZED, "unauthorized")

        try:
            body = parse_segment_body(
                raw_body, max_body_bytes=settings.max_body_bytes, max_batch_events=settings.max_batch_events
            )
        except BodyError as exc:
            logger.warning("request body refused", extra={"problem": exc.problem.value, "reason": exc.message})
            self._keep_malformed_body(raw_body, exc)
            return _body_refused(exc)
        if settings.require_bearer_for_batches and body.is_batch and auth.detail != "bearer":
            logger.warning(
                "request not authenticated", extra={"reason": "batch request without the required Bearer token"}
            )
            return _error(IntakeOutcome.UNAUTHORIZED, "unauthorized")
        return self._process(body)

    def _refuse_signature_only_batch(self, raw_body: bytes) -> IntakeResult:
        """401, counted and alarmed; the batch is kept, marked unauthenticated and not replayable,
        so a deployment still batching with only the shared secret loses no usage unseen.

        Kept whole only within the hourly budget shared by every container (a captured signature
        could otherwise fill the queue at the API's rate); beyond it, or when the budget cannot be
        read, one summary record stands for the batch.
        """
        emit(names.SIGNATURE_ONLY_BATCHES_REFUSED, 1)
        logger.warning(
            "request not authenticated", extra={"reason": "batch whose X-Signature covers only its first event"}
        )
        settings = self.settings
        try:
            parsed = parse_segment_body(
                raw_body, max_body_bytes=settings.max_body_bytes, max_batch_events=settings.max_batch_events
            )
        except BodyError as exc:
            kept = keep_refused_batch(raw_body, None, exc.message, self.store_budget)
        else:
            kept = keep_refused_batch(raw_body, parsed.elements, "", self.store_budget)
        if kept.why_not_stored:
            emit(names.UNAUTHENTICATED_EVENTS_NOT_STORED, kept.events_not_stored)
            logger.warning(
                "refused batch not stored whole",
                extra={"reason": kept.why_not_stored, "events_not_stored": kept.events_not_stored},
            )
        records = kept.records
        failures = self.rejected_queue.send_all(records)
        count_written(len(records) - len(failures))
        if failures:
            logger.error("could not keep the refused batch", extra={"code": failures[0].code, "records": len(records)})
        return _error(IntakeOutcome.UNAUTHORIZED, "unauthorized")

    def _process(self, body: SegmentBody) -> IntakeResult:
        outcomes = map_elements(body.elements, self.settings.mapping, body.text_lengths)
        if len(outcomes) == 1 and outcomes[0].message_id:
            logger.set_correlation_id(outcomes[0].message_id)

        accepted = [outcome for outcome in outcomes if outcome.orb_event is not None]
        rejected = [outcome for outcome in outcomes if outcome.error is not None]
        skipped = len(outcomes) - len(accepted) - len(rejected)

        ingest_failures = send_concurrently(
            self.ingest_queue, [o.orb_event.to_message_body() for o in accepted if o.orb_event], self.send_workers
        )
        rejected_failures = send_concurrently(
            self.rejected_queue, [rejection_body(o, body.elements[o.index]) for o in rejected], self.send_workers
        )
        count_written(len(rejected) - len(rejected_failures))
        for outcome in rejected[:MAX_LOGGED_REJECTIONS]:
            logger.info(
                "event rejected",
                extra={"index": outcome.index, "message_id": outcome.message_id, "reason": outcome.error},
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
            return _error(IntakeOutcome.NOT_QUEUED, "could not queue the events; please retry")

        emit(names.TRACK_ACCEPTED, len(accepted))
        emit(names.TRACK_SKIPPED, skipped)
        emit(names.TRACK_REJECTED, len(rejected))
        logger.info(
            "request processed",
            extra={
                "shape": body.shape,
                "events": len(outcomes),
                "accepted": len(accepted),
                "skipped": skipped,
                "rejected": len(rejected),
            },
        )
        listing, omitted = rejected_listing(rejected)
        response: dict[str, Any] = {"accepted": len(accepted), "skipped": skipped, "rejected": listing}
        if omitted:
            response["rejected_omitted"] = omitted
        if not accepted and not skipped:
            response["message"] = "no valid events in the request"
            return IntakeResult(IntakeOutcome.NOTHING_VALID, response)
        return IntakeResult(IntakeOutcome.ACCEPTED, response)

    def _keep_malformed_body(self, raw_body: bytes, error: BodyError) -> None:
        """Best effort: an authenticated sender's unusable body goes to the rejected queue too."""
        record = rejection_record(
            stage="intake",
            reason=error.message,
            errors=[error.message],
            extra={"body_bytes": len(raw_body), "body_excerpt": excerpt(raw_body.decode("utf-8", "replace"))},
        )
        failures = self.rejected_queue.send_all([record])
        count_written(1 - len(failures))
        if failures:
            logger.error("could not keep the refused body", extra={"code": failures[0].code})


_service: TrackIntake | None = None


def default_intake() -> TrackIntake:
    """The service for this request (raises ConfigurationError until the deployment is fixed).

    Settings, with the Segment secret and token through their 300 s cache, are re-resolved at
    every request, so a rotated credential takes effect in warm containers; the service is
    rebuilt only when they changed, and the SQS client is the container's (``orb_bridge.aws.clients``).
    """
    global _service
    settings = IntakeSettings.from_env()
    service = _service
    if service is None or service.settings != settings:
        service = _service = TrackIntake(settings)
    return service


def receive(event: Any) -> IntakeResult:
    """One API Gateway request's result; never raises (a bug of ours is the FAILED outcome)."""
    try:
        headers, raw_body = read_request(event)
        if not raw_body.strip():
            raise BodyError(BodyProblem.MALFORMED, "request body is empty")
    except BodyError as exc:
        logger.warning("bad request", extra={"reason": exc.message})
        result = _body_refused(exc)
    else:
        result = _handle(headers, raw_body)
    if result.outcome in REFUSED:
        emit(names.TRACK_REQUESTS_REFUSED, 1)
    elif result.outcome in FAILED:
        emit(names.TRACK_REQUESTS_FAILED, 1)
    return result


def _handle(headers: dict[str, Any], raw_body: bytes) -> IntakeResult:
    try:
        service = default_intake()
    except ConfigurationError as exc:
        # The caller may be anyone: the setting at fault is named in the log only.
        logger.error(f"configuration error: {exc}")
        return _error(IntakeOutcome.NOT_CONFIGURED, "track intake is misconfigured; see the function's log")
    try:
        return service.handle(headers, raw_body)
    except Exception:  # a bug of ours: log it, answer a retryable error without internals
        logger.exception("unexpected error in track intake")
        return _error(IntakeOutcome.FAILED, "internal error; please retry")


def reset() -> None:
    """Forget the service and cached secrets (tests switch environments)."""
    global _service
    from orb_bridge.aws.secrets import secret_cache

    _service = None
    secret_cache.clear()
