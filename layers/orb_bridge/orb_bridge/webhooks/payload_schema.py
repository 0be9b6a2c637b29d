"""The pydantic definition of an Orb webhook's envelope: the reference ``models.OrbWebhook`` follows.

Imported only for a payload ``models`` does not accept at once (its refusals are this model's
errors, word for word); a usual delivery never imports pydantic (about 100 ms of a cold start).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from orb_bridge.webhooks.limits import MAX_ID_LENGTH, MAX_TYPE_LENGTH


class OrbWebhook(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH)]
    type: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TYPE_LENGTH)]
    created_at: datetime
    # Not restricted to the two known styles: a new style must not turn every delivery into a 400.
    payload_style: StrictStr | None = None
