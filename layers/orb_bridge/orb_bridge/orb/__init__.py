"""Orb API client (httpx) and models of Orb's responses."""

from orb_bridge.orb.client import IngestResult, OrbClient, Outcome, classify, retry_after, shared_http_client
from orb_bridge.orb.models import IngestResponse, OrbProblem, ValidationFailure
from orb_bridge.orb.problems import Attribution, attribute

__all__ = [
    "Attribution",
    "IngestResponse",
    "IngestResult",
    "OrbClient",
    "OrbProblem",
    "Outcome",
    "ValidationFailure",
    "attribute",
    "classify",
    "retry_after",
    "shared_http_client",
]
