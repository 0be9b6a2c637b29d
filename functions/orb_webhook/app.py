"""POST /orb/webhook (HTTP API, payload v2): Orb's outbound webhooks.

Thin adapter: take the raw body bytes (base64-decoded when API Gateway says so, never
re-serialised) and the headers, let ``WebhookReceiver`` verify, deduplicate and hand on to
EventBridge, and shape its result as an HTTP response.
"""

from __future__ import annotations

import json
from typing import Any

from orb_bridge.config import WebhookSettings
from orb_bridge.errors import ConfigurationError
from orb_bridge.http_request import BodyError, decode_http_body
from orb_bridge.observability import logger, metrics
from orb_bridge.webhooks.service import (
    GENERIC_REJECTION,
    Outcome,
    WebhookReceiver,
    WebhookResult,
    count_rejection,
    not_configured,
)
from orb_bridge.webhooks.signature import RejectionReason
from orb_bridge.aws import prewarm
prewarm("secretsmanager", "dynamodb", "events")  # INIT: the clients, built outside the handler; settings and secrets stay lazy


_current: WebhookReceiver | None = None


def _receiver(settings: WebhookSettings) -> WebhookReceiver:
    # Settings are re-read per request (the secret through its 300 s cache, so a rotated secret
    # is picked up); the receiver is rebuilt only when they changed, around the container's clients.
    global _current
    receiver = _current
    if receiver is None or receiver.settings != settings:
        receiver = _current = WebhookReceiver(settings)
    return receiver


def reset() -> None:
    """Forget the receiver and cached secrets (tests switch moto backends and environments)."""
    global _current
    from orb_bridge.secrets import secret_cache

    _current = None
    secret_cache.clear()


def _response(result: WebhookResult) -> dict[str, Any]:
    return {
        "statusCode": result.http_status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(result.body()),
    }


def _raw_body(event: dict[str, Any], max_body_bytes: int) -> bytes | WebhookResult:
    try:
        return decode_http_body(event.get("body"), bool(event.get("isBase64Encoded")), max_bytes=max_body_bytes)
    except BodyError as exc:
        if exc.status_code == 413:
            return _refused(RejectionReason.BODY_TOO_LARGE, exc.message, Outcome.TOO_LARGE)
        return _refused(RejectionReason.MALFORMED_BODY, exc.message, Outcome.REJECTED)


def _refused(reason: RejectionReason, detail: str, outcome: Outcome) -> WebhookResult:
    logger.warning("Orb webhook rejected", extra={"reason": reason.value, "detail": detail})
    count_rejection(reason.value)
    return WebhookResult(outcome, "webhook body too large" if outcome is Outcome.TOO_LARGE else GENERIC_REJECTION)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        settings = WebhookSettings.from_env()
    except ConfigurationError as exc:
        return _response(not_configured(str(exc)))
    raw = _raw_body(event, settings.max_body_bytes)
    if isinstance(raw, WebhookResult):
        return _response(raw)
    try:
        result = _receiver(settings).receive(raw, event.get("headers"), context)
    except Exception:  # our own bug: answer 500 so Orb redelivers, and keep the trace
        logger.exception("unexpected error while receiving an Orb webhook")
        return {
            "statusCode": 500,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"status": "error", "message": "internal error; retry later"}),
        }
    return _response(result)
