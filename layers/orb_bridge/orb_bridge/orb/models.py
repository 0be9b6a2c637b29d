"""Orb's answers to ``POST /ingest``, as far as the bridge relies on them (see docs/facts.md#orb-ingest-200-response).

Models are lenient on purpose (unknown fields ignored): Orb adds fields over time, and a
response we cannot fully read must never crash the function.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ValidationFailure(BaseModel):
    model_config = ConfigDict(extra="ignore")

    idempotency_key: str
    validation_errors: list[str] = Field(default_factory=list)


class IngestResponse(BaseModel):
    """HTTP 200: events listed in ``validation_failed`` were not ingested; all others were."""

    model_config = ConfigDict(extra="ignore")

    validation_failed: list[ValidationFailure] = Field(default_factory=list)


class OrbProblem(BaseModel):
    """An RFC 7807 error body; a 400 "Request validation error" also carries ``validation_errors``."""

    model_config = ConfigDict(extra="ignore")

    status: int | None = None
    title: str | None = None
    type: str | None = None
    detail: str | None = None
    validation_errors: list[object] = Field(default_factory=list)

    def describe(self) -> list[str]:
        """Human-readable lines for a rejected-queue record or a log line."""
        lines = [text for text in (self.title, self.detail) if text]
        lines.extend(str(error) for error in self.validation_errors)
        return lines
