"""Orb API client (httpx) and models of Orb's responses."""

from orb_bridge.orb.client import IngestResult, OrbClient, Outcome, classify, shared_http_client
from orb_bridge.orb.models import IngestResponse, OrbProblem, ValidationFailure

__all__ = [
    "IngestResponse",
    "IngestResult",
    "OrbClient",
    "OrbProblem",
    "Outcome",
    "ValidationFailure",
    "classify",
    "shared_http_client",
]
