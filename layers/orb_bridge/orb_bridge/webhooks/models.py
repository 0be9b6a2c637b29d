"""The Orb webhook payload, read only after its signature has been verified.

Only what the receiver relies on is required: ``id`` (deduplication key), ``type`` (EventBridge
DetailType, routing) and ``created_at``. Everything else passes through untouched, so both payload
styles (``payload_style`` absent or ``"expanded"``, and ``"standard"``) and webhook types Orb adds
later are accepted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from orb_bridge.errors import clip
from orb_bridge.http_request import MAX_JSON_DEPTH, json_depth_exceeds

EXPANDED = "expanded"
# EventBridge limits DetailType to 128 characters; a longer type could never be handed on.
MAX_TYPE_LENGTH = 128
MAX_ID_LENGTH = 256


class InvalidWebhookPayload(ValueError):  # noqa: N818 (reads as what was received, like Orb's docs)
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class OrbWebhook(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH)]
    type: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TYPE_LENGTH)]
    created_at: datetime
    # Not restricted to the two known styles: a new style must not turn every delivery into a 400.
    payload_style: StrictStr | None = None

    @property
    def style(self) -> str:
        return self.payload_style or EXPANDED

    @property
    def created_at_utc(self) -> datetime:
        moment = self.created_at
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
    if json_depth_exceeds(document):
        raise InvalidWebhookPayload([f"body is nested more than {MAX_JSON_DEPTH} levels deep"])
    if not isinstance(document, dict):
        raise InvalidWebhookPayload([f"body must be a JSON object, got {type(document).__name__}"])
    try:
        webhook = OrbWebhook.model_validate(document)
    except ValidationError as exc:
        raise InvalidWebhookPayload(
            [
                clip(f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}", 256)
                for error in exc.errors(include_url=False, include_input=False)[:10]
            ]
        ) from None
    except RecursionError:  # defensive: the depth check above keeps pydantic well within the stack
        raise InvalidWebhookPayload([f"body is nested more than {MAX_JSON_DEPTH} levels deep"]) from None
    return webhook, text
