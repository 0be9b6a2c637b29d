"""The Orb webhook payload, read only after its signature has been verified.

Only what the receiver relies on is required: ``id`` (deduplication key), ``type`` (EventBridge
DetailType, routing) and ``created_at``. Everything else passes through untouched, so both payload
styles (``payload_style`` absent or ``"expanded"``, and ``"standard"``) and webhook types Orb adds
later are accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orb_bridge.core.errors import clip
from orb_bridge.core.http_request import MAX_JSON_DEPTH, json_depth_exceeds
from orb_bridge.orb.usage_event import is_utf8_text
from orb_bridge.webhooks.limits import MAX_ID_LENGTH, MAX_TYPE_LENGTH

EXPANDED = "expanded"


class InvalidWebhookPayload(ValueError):  # noqa: N818 (reads as what was received, like Orb's docs)
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


# ISO 8601 as Orb writes ``created_at``, on which pydantic and fromisoformat agree; other forms
# (epoch numbers, other layouts pydantic reads) go to the model in ``payload_schema``.
_PLAIN_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_FIELDS = ("id", "type", "created_at", "payload_style")


@dataclass(frozen=True)
class OrbWebhook:
    """The envelope (``payload_schema.OrbWebhook``'s fields); everything else is ``model_extra``."""

    id: str
    type: str
    created_at: datetime
    payload_style: str | None = None
    model_extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def style(self) -> str:
        return self.payload_style or EXPANDED

    @property
    def created_at_utc(self) -> datetime:
        moment = self.created_at
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _plain_webhook(document: dict[str, Any]) -> OrbWebhook | None:
    """The webhook when its envelope is of the plain kinds checked here, else None (ask the model)."""
    webhook_id, webhook_type, created_at = document.get("id"), document.get("type"), document.get("created_at")
    style = document.get("payload_style")
    if not (
        is_utf8_text(webhook_id)
        and 1 <= len(webhook_id) <= MAX_ID_LENGTH
        and is_utf8_text(webhook_type)
        and 1 <= len(webhook_type) <= MAX_TYPE_LENGTH
        and (style is None or is_utf8_text(style))
    ):
        return None
    if type(created_at) is not str or not _PLAIN_TIME.fullmatch(created_at):
        return None
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return None
    extra = {key: value for key, value in document.items() if key not in _FIELDS}
    return OrbWebhook(webhook_id, webhook_type, moment, style, extra)


def _validated(document: dict[str, Any]) -> OrbWebhook:
    from pydantic import ValidationError  # only for a payload the plain checks did not accept

    from orb_bridge.webhooks.payload_schema import OrbWebhook as Model

    try:
        model = Model.model_validate(document)
    except ValidationError as exc:
        raise InvalidWebhookPayload(
            [
                clip(f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}", 256)
                for error in exc.errors(include_url=False, include_input=False)[:10]
            ]
        ) from None
    return OrbWebhook(model.id, model.type, model.created_at, model.payload_style, dict(model.model_extra or {}))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_webhook(raw_body: bytes) -> tuple[OrbWebhook, str]:
    """Parse a verified body. Returns the model and the body as text (the exact JSON to hand on).

    Raises ``InvalidWebhookPayload`` with readable errors when the body is not UTF-8 JSON, not an
    object, or lacks a usable ``id``, ``type`` or ``created_at``.
    """
    try:
        text = raw_body.decode("utf-8")
        document: Any = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidWebhookPayload(["body is not UTF-8"]) from None
    except json.JSONDecodeError as exc:
        raise InvalidWebhookPayload([f"body is not JSON: {exc.msg} at position {exc.pos}"]) from None
    except ValueError as exc:  # NaN / Infinity: not JSON, and EventBridge would refuse the detail
        raise InvalidWebhookPayload([f"body is not JSON: {str(exc)[:120]}"]) from None
    except RecursionError:
        raise InvalidWebhookPayload([f"body is nested more than {MAX_JSON_DEPTH} levels deep"]) from None
    if json_depth_exceeds(raw_body):
        raise InvalidWebhookPayload([f"body is nested more than {MAX_JSON_DEPTH} levels deep"])
    if not isinstance(document, dict):
        raise InvalidWebhookPayload([f"body must be a JSON object, got {type(document).__name__}"])
    try:
        webhook = _plain_webhook(document) or _validated(document)
    except RecursionError:  # defensive: the depth check above keeps pydantic well within the stack
        raise InvalidWebhookPayload([f"body is nested more than {MAX_JSON_DEPTH} levels deep"]) from None
    return webhook, text
