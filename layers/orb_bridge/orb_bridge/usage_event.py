"""The Orb usage event: what Track intake produces, the SQS message body, and what ingest sends.

One SQS message carries exactly one event serialised with ``to_message_body``; ingest reads it
back with ``from_message_body``. Field rules follow Orb's ingest API (see docs/facts.md#orb-ingest-request).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

PropertyValue = StrictBool | StrictInt | StrictFloat | StrictStr


class OrbUsageEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_name: Annotated[str, Field(min_length=1)]
    idempotency_key: Annotated[str, Field(min_length=1)]
    # ISO 8601 in UTC with a trailing Z, e.g. 2020-12-09T16:09:53.123456Z
    timestamp: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")]
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    external_customer_id: str | None = None
    customer_id: str | None = None

    @model_validator(mode="after")
    def _exactly_one_customer(self) -> OrbUsageEvent:
        if bool(self.external_customer_id) == bool(self.customer_id):
            raise ValueError("exactly one of customer_id / external_customer_id is required")
        return self

    def to_orb(self) -> dict[str, object]:
        """The JSON object Orb's /ingest expects (no nulls)."""
        return self.model_dump(exclude_none=True)

    def to_message_body(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_message_body(cls, body: str) -> OrbUsageEvent:
        return cls.model_validate_json(body)
