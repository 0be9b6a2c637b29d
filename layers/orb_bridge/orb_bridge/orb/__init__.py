"""Orb API client (httpx) and models of Orb's responses.

The pydantic models (``orb_bridge.orb.models``) are not imported here: the client reads Orb's
usual answer without them, so ingest's cold start does not pay for pydantic.
"""

from orb_bridge.orb.client import IngestResult, OrbClient, Outcome, classify, retry_after, shared_http_client
from orb_bridge.orb.problems import Attribution, attribute

__all__ = [
    "Attribution",
    "IngestResult",
    "OrbClient",
    "Outcome",
    "attribute",
    "classify",
    "retry_after",
    "shared_http_client",
]
