"""The pydantic definition of an Orb usage event: the reference ``orb_bridge.orb.usage_event`` follows.

Imported only when needed: to read a message body (ingest), to validate a mapping from outside
(replay), and when a value is not one ``OrbUsageEvent``'s own checks accept at once, so that
every refusal is this model's ``ValidationError``, word for word. Intake's usual path never
imports pydantic (about 100 ms of a cold start). Field rules follow Orb's ingest API (see
docs/facts.md#orb-ingest-request).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

PropertyValue = StrictBool | StrictInt | StrictFloat | StrictStr


class OrbUsageEvent(BaseModel):  # the same name: a ValidationError's title names it
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
