"""The Orb webhook receiver: verify -> parse -> deduplicate -> hand on to EventBridge.

``WebhookReceiver`` takes the raw body bytes and the headers; ``receive_request`` takes the API
Gateway event (body decoding, settings, our own bugs included). Both return a ``WebhookResult``
whose ``Outcome`` the handler maps to an HTTP status (Orb redelivers anything but a 2xx):

- 200 forwarded, or a duplicate of a delivery already forwarded (acknowledged, handed on once);
- 401 signature/timestamp refused, 413 body too large: generic message, reason in the log;
- 400 authentic but not a usable webhook (no ``id``/``type``/``created_at``);
- 409 the same webhook id is being handled right now by another invocation. Not 200: the first
  attempt may still fail, and acknowledging the duplicate would then lose the webhook. Orb
  redelivers later and gets 200 (done) or, if the first attempt failed, forwards it itself;
- 503 EventBridge or the idempotency table failed: the id is not recorded as done (the
  exception escapes the idempotent function, so Powertools deletes the in-progress record)
  and Orb's redelivery forwards it;
- 500 the receiver is not configured (no secret): every request is refused; or our own bug.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)

from orb_bridge.aws import clients as aws
from orb_bridge.core import metric_names as names
from orb_bridge.core.errors import ConfigurationError
from orb_bridge.core.http_request import BodyError, BodyProblem, decode_http_body, header
from orb_bridge.core.observability import emit, emit_by, logger
from orb_bridge.webhooks.forwarder import EventBridgeForwarder, ForwardError
from orb_bridge.webhooks.models import InvalidWebhookPayload, OrbWebhook, parse_webhook
from orb_bridge.webhooks.settings import WebhookSettings
from orb_bridge.webhooks.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RejectionReason,
    WebhookVerificationError,
    verify,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

# Keep ids long enough to cover Orb's redelivery window (Orb does not publish it; a week is
# comfortably longer than common webhook retry schedules of up to 3 days).
IDEMPOTENCY_EXPIRY_SECONDS = 7 * 24 * 60 * 60
# Stable key prefix: renaming the function or the stack must not forget delivered ids.
IDEMPOTENCY_KEY_PREFIX = "orb-webhook"
INVALID_PAYLOAD_REASON = "invalid_payload"
NOT_CONFIGURED_REASON = "not_configured"


class Outcome(StrEnum):
    FORWARDED = "forwarded"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    TOO_LARGE = "too_large"
    INVALID_PAYLOAD = "invalid_payload"
    IN_PROGRESS = "in_progress"
    FORWARD_FAILED = "forward_failed"
    NOT_CONFIGURED = "not_configured"
    FAILED = "error"  # our own bug


# What the sender is told; precise reasons stay in the log.
GENERIC_REJECTION = "webhook signature verification failed"


@dataclass(frozen=True)
class WebhookResult:
    outcome: Outcome
    message: str
    webhook_id: str | None = None
    webhook_type: str | None = None
    errors: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.outcome.value, "message": self.message}
        if self.webhook_id is not None:
            body["id"] = self.webhook_id
        if self.errors:
            body["errors"] = list(self.errors)
        return body


def count_rejection(reason: str) -> None:
    # The total with the function's other metrics (so every invocation publishes one), and the
    # breakdown in its own EMF blob so that ``reason`` is a dimension of this metric only.
    emit_by(names.WEBHOOKS_REJECTED, 1, reason=reason)


def not_configured(message: str) -> WebhookResult:
    logger.error("Orb webhook receiver is not configured", extra={"error": message})
    count_rejection(NOT_CONFIGURED_REASON)
    # The caller may be anyone: the details are in the log only.
    return WebhookResult(Outcome.NOT_CONFIGURED, "webhook receiver is not configured; see the function's log")


class WebhookReceiver:
    def __init__(
        self,
        settings: WebhookSettings,
        *,
        forwarder: EventBridgeForwarder | None = None,
        dynamodb_client: Any | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.forwarder = forwarder or EventBridgeForwarder(settings.event_bus_name)
        self.clock = clock
        self.idempotency_config = IdempotencyConfig(
            event_key_jmespath="id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS,
            response_hook=_mark_duplicate,
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table_name,
            key_attr="id",
            expiry_attr="expiration",
            boto3_client=dynamodb_client if dynamodb_client is not None else aws.client("dynamodb"),
        )

        # ``delivery`` is the idempotency payload: just the id, so the (possibly large) body is not
        # deep-copied and hashed by Powertools.
        @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools' decorator is untyped
            data_keyword_argument="delivery",
            persistence_store=persistence,
            config=self.idempotency_config,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )
        def forward_once(*, delivery: dict[str, str], webhook: OrbWebhook, detail: str) -> dict[str, Any]:
            event_id = self.forwarder.forward(webhook, detail)
            return {"event_id": event_id, "duplicate": False}

        self._forward_once = forward_once

    def receive(
        self,
        raw_body: bytes,
        headers: Mapping[str, str] | None,
        lambda_context: Any | None = None,
    ) -> WebhookResult:
        settings = self.settings
        if len(raw_body) > settings.max_body_bytes:
            return self._reject(
                RejectionReason.BODY_TOO_LARGE,
                f"body is {len(raw_body)} bytes, limit {settings.max_body_bytes}",
                Outcome.TOO_LARGE,
                "webhook body too large",
            )
        try:
            verify(
                raw_body,
                header(headers, TIMESTAMP_HEADER),
                header(headers, SIGNATURE_HEADER),
                secrets=settings.secrets,
                tolerance_seconds=settings.tolerance_seconds,
                now=self.clock() if self.clock else None,
            )
        except WebhookVerificationError as exc:
            return self._reject(exc.reason, exc.detail)
        emit(names.WEBHOOKS_VERIFIED, 1)

        try:
            webhook, detail = parse_webhook(raw_body)
        except InvalidWebhookPayload as exc:
            logger.warning("authentic Orb webhook with an unusable payload", extra={"errors": exc.errors})
            count_rejection(INVALID_PAYLOAD_REASON)
            return WebhookResult(
                Outcome.INVALID_PAYLOAD, "webhook payload is not a usable Orb webhook", errors=tuple(exc.errors)
            )

        log = {"webhook_id": webhook.id, "webhook_type": webhook.type, "payload_style": webhook.style}
        if lambda_context is not None:
            # The in-progress record then expires with this invocation, so a timeout cannot block redelivery.
            self.idempotency_config.register_lambda_context(lambda_context)
        try:
            response = self._forward_once(delivery={"id": webhook.id}, webhook=webhook, detail=detail)
        except IdempotencyAlreadyInProgressError:
            logger.warning("same webhook id is in flight elsewhere; asking Orb to retry", extra=log)
            return WebhookResult(
                Outcome.IN_PROGRESS, "this webhook is already being processed; retry later", webhook.id, webhook.type
            )
        except ForwardError as exc:
            logger.error("could not hand the webhook on to EventBridge", extra={**log, "error": str(exc)})
            return WebhookResult(Outcome.FORWARD_FAILED, "could not hand the webhook on; retry later", webhook.id)
        except IdempotencyPersistenceLayerError as exc:
            logger.error("idempotency table unavailable", extra={**log, "error": str(exc)})
            return WebhookResult(Outcome.FORWARD_FAILED, "could not record the webhook; retry later", webhook.id)

        if response and response.get("duplicate"):
            emit(names.WEBHOOKS_DUPLICATE, 1)
            logger.info("duplicate delivery acknowledged, not forwarded again", extra=log)
            return WebhookResult(Outcome.DUPLICATE, "already received", webhook.id, webhook.type)
        emit(names.WEBHOOKS_FORWARDED, 1)
        logger.info("webhook forwarded", extra={**log, "event_id": (response or {}).get("event_id")})
        return WebhookResult(Outcome.FORWARDED, "received", webhook.id, webhook.type)

    def _reject(
        self,
        reason: RejectionReason,
        detail: str,
        outcome: Outcome = Outcome.REJECTED,
        message: str = GENERIC_REJECTION,
    ) -> WebhookResult:
        return _refused(reason, detail, outcome, message)


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools calls this only when it answers from a stored record, i.e. for a redelivery."""
    return {**(response or {}), "duplicate": True}


# -- one receiver per container -----------------------------------------------------------------

_current: WebhookReceiver | None = None


def container_receiver(settings: WebhookSettings) -> WebhookReceiver:
    """The receiver for these settings. Settings are re-read per request (the secret through its
    300 s cache, so a rotated secret is picked up); the receiver is rebuilt only when they changed,
    around the container's clients."""
    global _current
    receiver = _current
    if receiver is None or receiver.settings != settings:
        receiver = _current = WebhookReceiver(settings)
    return receiver


def reset() -> None:
    """Forget the receiver and cached secrets (tests switch moto backends and environments)."""
    global _current
    from orb_bridge.aws.secrets import secret_cache

    _current = None
    secret_cache.clear()


def receive_request(event: Any, context: Any | None = None) -> WebhookResult:
    """One API Gateway (HTTP API, payload v2) request's result; never raises."""
    try:
        settings = WebhookSettings.from_env()
    except ConfigurationError as exc:
        return not_configured(str(exc))
    event = event if isinstance(event, dict) else {}
    try:
        raw_body = decode_http_body(
            event.get("body"), bool(event.get("isBase64Encoded")), max_bytes=settings.max_body_bytes
        )
    except BodyError as exc:  # unauthenticated bytes: the sender is told no more than for a bad signature
        if exc.problem is BodyProblem.TOO_LARGE:
            return _refused(RejectionReason.BODY_TOO_LARGE, exc.message, Outcome.TOO_LARGE, "webhook body too large")
        return _refused(RejectionReason.MALFORMED_BODY, exc.message, Outcome.REJECTED, GENERIC_REJECTION)
    try:
        return container_receiver(settings).receive(raw_body, event.get("headers"), context)
    except Exception:  # our own bug: Orb redelivers after a 5xx; the trace stays in the log
        logger.exception("unexpected error while receiving an Orb webhook")
        return WebhookResult(Outcome.FAILED, "internal error; retry later")


def _refused(reason: RejectionReason, detail: str, outcome: Outcome, message: str) -> WebhookResult:
    logger.warning("Orb webhook rejected", extra={"reason": reason.value, "detail": detail})
    count_rejection(reason.value)
    return WebhookResult(outcome, message)
