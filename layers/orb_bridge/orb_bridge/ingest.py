"""Orb ingest: a batch of SQS messages (one OrbUsageEvent each) -> ``POST /ingest`` in chunks.

What happens to each message (nothing is ever silently dropped):

- done: Orb ingested its event, or it was written to the rejected queue with its reason
  (unreadable body, conflicting duplicate idempotency key, Orb's ``validation_failed``, or a
  400 that still hits the event once isolated by splitting the chunk);
- failed (reported in ``batchItemFailures``, so SQS redelivers it; after ``maxReceiveCount`` the
  queue's redrive keeps it in the rejected queue): Orb answered 429/408/409/5xx, timed out or
  was unreachable; the API key or base URL is wrong (401/403/404, a configuration error); the
  invocation ran short of time before sending it; or writing its rejection failed.

Resending is safe: Orb ingests an idempotency key at most once within its grace period.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from orb_bridge.config import IngestSettings
from orb_bridge.observability import logger
from orb_bridge.orb.client import OrbClient, Outcome, shared_http_client
from orb_bridge.queues import SqsQueue, rejection_record
from orb_bridge.usage_event import OrbUsageEvent

# Below this, a request is not worth starting even if the settings allow it.
MIN_REQUEST_TIMEOUT_SECONDS = 0.1


@dataclass(frozen=True)
class SqsMessage:
    message_id: str
    body: str


@dataclass
class IngestReport:
    failed_message_ids: list[str]
    events_ingested: int = 0
    events_rejected_by_orb: int = 0
    # Unreadable bodies and conflicting duplicates, kept in the rejected queue.
    messages_rejected_at_ingest: int = 0
    requests_made: int = 0
    # Set when Orb refused our credentials or the base URL is wrong.
    configuration_error: str | None = None


@dataclass
class _PendingEvent:
    """One unique event to send, and every SQS message that carries it."""

    event: OrbUsageEvent
    payload: dict[str, Any]
    body: str  # the first message's body, as sent by intake
    message_ids: list[str]

    def same_event_as(self, body: str, payload: dict[str, Any]) -> bool:
        # Intake serialises deterministically, so a redelivered duplicate has the same body; only
        # a differing body needs the (costlier) comparison of the events themselves.
        return body == self.body or _canonical(payload) == _canonical(self.payload)


@dataclass(frozen=True)
class _Rejection:
    body: str
    message_ids: tuple[str, ...]


@dataclass
class _ChunkResult:
    ingested: list[_PendingEvent] = field(default_factory=list)
    rejected_by_orb: list[_Rejection] = field(default_factory=list)
    failed: list[_PendingEvent] = field(default_factory=list)
    requests: int = 0
    configuration_error: str | None = None


class IngestService:
    def __init__(self, settings: IngestSettings, orb: OrbClient, rejected_queue: SqsQueue) -> None:
        self.settings = settings
        self.orb = orb
        self.rejected_queue = rejected_queue

    def ingest(self, messages: Sequence[SqsMessage], remaining_seconds: Callable[[], float]) -> IngestReport:
        """Send every message's event to Orb; ``remaining_seconds`` is the invocation's clock."""
        pending, rejections = self._collect(messages)
        report = IngestReport(
            failed_message_ids=[], messages_rejected_at_ingest=sum(len(r.message_ids) for r in rejections)
        )
        failed: set[str] = set()

        chunk_size = self.settings.max_events_per_request
        chunks = [pending[i : i + chunk_size] for i in range(0, len(pending), chunk_size)]
        stop = threading.Event()
        if chunks:
            workers = min(self.settings.max_concurrent_requests, len(chunks))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="orb-ingest") as pool:
                futures = [pool.submit(self._send_chunk, chunk, remaining_seconds, stop) for chunk in chunks]
                results = [future.result() for future in futures]
            for result in results:
                report.requests_made += result.requests
                report.events_ingested += len(result.ingested)
                report.events_rejected_by_orb += len(result.rejected_by_orb)
                rejections.extend(result.rejected_by_orb)
                for event in result.failed:
                    failed.update(event.message_ids)
                report.configuration_error = report.configuration_error or result.configuration_error

        failed.update(self._write_rejections(rejections))
        report.failed_message_ids = _in_order(messages, failed)
        return report

    # -- reading the batch --------------------------------------------------------------------

    def _collect(self, messages: Sequence[SqsMessage]) -> tuple[list[_PendingEvent], list[_Rejection]]:
        """Parse bodies and collapse duplicates so no request carries an idempotency key twice."""
        by_key: dict[str, _PendingEvent] = {}
        rejections: list[_Rejection] = []
        for message in messages:
            try:
                event = OrbUsageEvent.from_message_body(message.body)
            except ValidationError as exc:
                logger.warning(
                    "unreadable ingest message sent to the rejected queue",
                    extra={"message_id": message.message_id, "errors": _pydantic_errors(exc)},
                )
                rejections.append(
                    _Rejection(
                        rejection_record(
                            stage="ingest",
                            reason="message body is not a valid Orb usage event",
                            errors=_pydantic_errors(exc),
                            extra={"sqs_message_id": message.message_id, "message_body": message.body},
                        ),
                        (message.message_id,),
                    )
                )
                continue
            payload = event.to_orb()
            existing = by_key.get(event.idempotency_key)
            if existing is None:
                by_key[event.idempotency_key] = _PendingEvent(event, payload, message.body, [message.message_id])
            elif existing.same_event_as(message.body, payload):
                # Identical duplicate: one event in Orb; its messages succeed or fail together.
                existing.message_ids.append(message.message_id)
            else:
                # Orb would refuse the whole request; the first one seen is sent, this one is kept.
                logger.warning(
                    "conflicting duplicate idempotency key sent to the rejected queue",
                    extra={"message_id": message.message_id, "idempotency_key": event.idempotency_key},
                )
                rejections.append(
                    _Rejection(
                        rejection_record(
                            stage="ingest",
                            reason="conflicting duplicate: another message in the same batch has this "
                            "idempotency key with a different body",
                            errors=[f"idempotency_key {event.idempotency_key!r} also used by SQS message "
                                    f"{existing.message_ids[0]}"],
                            orb_event=payload,
                            extra={"sqs_message_id": message.message_id, "sent_event": existing.payload},
                        ),
                        (message.message_id,),
                    )
                )
        return list(by_key.values()), rejections

    # -- sending --------------------------------------------------------------------------------

    def _request_timeout(self, remaining_seconds: Callable[[], float]) -> float | None:
        """The timeout for a request started now, or None when there is no time to start one."""
        budget = remaining_seconds() - self.settings.safety_margin_seconds
        if budget < self.settings.request_timeout_seconds or budget < MIN_REQUEST_TIMEOUT_SECONDS:
            return None
        return min(self.settings.request_timeout_seconds, budget)

    def _send_chunk(
        self, chunk: list[_PendingEvent], remaining_seconds: Callable[[], float], stop: threading.Event
    ) -> _ChunkResult:
        result = _ChunkResult()
        self._send(chunk, remaining_seconds, stop, result)
        return result

    def _send(
        self,
        events: list[_PendingEvent],
        remaining_seconds: Callable[[], float],
        stop: threading.Event,
        result: _ChunkResult,
    ) -> None:
        if stop.is_set():
            result.failed.extend(events)
            return
        timeout = self._request_timeout(remaining_seconds)
        if timeout is None:
            logger.warning("too little time left in the invocation: events left for SQS to redeliver",
                           extra={"events": len(events)})
            result.failed.extend(events)
            return
        answer = self.orb.ingest([event.payload for event in events], timeout)
        result.requests += 1

        if answer.outcome is Outcome.OK:
            for event in events:
                errors = answer.validation_failed.get(event.event.idempotency_key)
                if errors is None:
                    result.ingested.append(event)
                else:
                    result.rejected_by_orb.append(
                        self._orb_rejection(event, "Orb refused the event (validation_failed)", errors)
                    )
            unknown = set(answer.validation_failed) - {event.event.idempotency_key for event in events}
            if unknown:
                logger.warning("Orb listed idempotency keys it was not sent", extra={"keys": sorted(unknown)[:20]})
        elif answer.outcome is Outcome.RETRYABLE:
            logger.warning("Orb ingest failed, SQS will redeliver", extra={"error": answer.error_summary, "events": len(events)})
            result.failed.extend(events)
        elif answer.outcome is Outcome.AUTH:
            # No request can succeed: stop sending, fail everything unsent, never reject as bad data.
            stop.set()
            result.configuration_error = (
                f"Orb refused the request ({answer.error_summary}): check the API key "
                "(ORB_API_KEY_SECRET_ARN) and ORB_API_BASE_URL"
            )
            result.failed.extend(events)
        elif len(events) == 1:  # BAD_REQUEST isolated to one event
            result.rejected_by_orb.append(
                self._orb_rejection(events[0], f"Orb refused the event ({answer.error_summary})", answer.errors)
            )
        else:  # BAD_REQUEST for several events: split to isolate the bad ones
            middle = len(events) // 2
            self._send(events[:middle], remaining_seconds, stop, result)
            self._send(events[middle:], remaining_seconds, stop, result)

    @staticmethod
    def _orb_rejection(event: _PendingEvent, reason: str, errors: Sequence[str]) -> _Rejection:
        logger.warning(
            "event refused by Orb sent to the rejected queue",
            extra={"idempotency_key": event.event.idempotency_key, "message_ids": event.message_ids, "errors": list(errors)},
        )
        return _Rejection(
            rejection_record(
                stage="orb", reason=reason, errors=errors, orb_event=event.payload,
                extra={"sqs_message_ids": event.message_ids},
            ),
            tuple(event.message_ids),
        )

    def _write_rejections(self, rejections: list[_Rejection]) -> set[str]:
        """Keep every rejection; return the message ids whose rejection could not be written."""
        if not rejections:
            return set()
        try:
            failures = self.rejected_queue.send_all([rejection.body for rejection in rejections])
        except Exception:  # e.g. no SQS client could be built: keep the messages in SQS instead
            logger.exception("could not write to the rejected queue: messages left for SQS to redeliver")
            return {message_id for rejection in rejections for message_id in rejection.message_ids}
        if failures:
            logger.error(
                "some rejections could not be written to the rejected queue: messages left for SQS to redeliver",
                extra={"failures": [f"{f.code}: {f.message}" for f in failures[:10]], "count": len(failures)},
            )
        return {message_id for failure in failures for message_id in rejections[failure.index].message_ids}


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _pydantic_errors(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _in_order(messages: Sequence[SqsMessage], failed: set[str]) -> list[str]:
    seen: set[str] = set()
    ordered = []
    for message in messages:
        if message.message_id in failed and message.message_id not in seen:
            seen.add(message.message_id)
            ordered.append(message.message_id)
    return ordered


# -- one service per container ----------------------------------------------------------------

_service: IngestService | None = None
_http: Any = None
_service_lock = threading.Lock()


def container_service() -> IngestService:
    """The service for this invocation (raises ConfigurationError).

    Settings, with the API key through its 300 s secret cache, are re-resolved at every
    invocation, so a rotated key takes effect in warm containers; the service is rebuilt only
    when they changed, around the container's one HTTP client.
    """
    global _service, _http
    settings = IngestSettings.from_env()
    with _service_lock:
        if _service is None or _service.settings != settings:
            if _http is None:
                _http = shared_http_client(max(32, settings.max_concurrent_requests))
            _service = IngestService(
                settings,
                OrbClient(settings.orb_api_base_url, settings.orb_api_key, _http),
                SqsQueue(settings.rejected_queue_url),
            )
        return _service


def forget_container_service() -> None:
    """Re-read settings and the API key secret (bypassing its cache) at the next request, e.g. after a 401."""
    global _service
    from orb_bridge.secrets import secret_cache

    with _service_lock:
        _service = None
    secret_cache.clear()
