"""A small httpx client for Orb's ``POST /ingest``, and the classification of its answers.

Not the orb-billing SDK: importing it adds about 0.5 s to every cold start, and its built-in
retries would fight our own retry model (SQS redelivery, see ``orb_bridge.ingest``).

One ``httpx.Client`` per container (``shared_http_client``): it is thread-safe, keeps its
connections alive across invocations, and unlike an ``AsyncClient`` is not tied to an event loop.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from orb_bridge import __version__
from orb_bridge.orb.models import IngestResponse, OrbProblem

# Orb marks these as worth retrying (docs/facts.md#orb-429-and-retries): rate limited, request timeout, conflict, 5xx.
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# The whole request was refused because of what it carries: split it to find the bad events.
BAD_REQUEST_STATUSES = frozenset({400, 413, 422})
AUTH_STATUSES = frozenset({401, 403})
# The base URL does not point at Orb's API: a deployment problem, like a wrong key.
MISCONFIGURED_STATUSES = frozenset({404, 405})

USER_AGENT = f"segment-orb-bridge/{__version__}"


class Outcome(enum.Enum):
    OK = "ok"  # 200; ``validation_failed`` may still list some events
    RETRYABLE = "retryable"  # nothing we can fix now; SQS redelivers
    BAD_REQUEST = "bad_request"  # the request's content was refused as a whole
    AUTH = "auth"  # the API key or base URL is wrong: no request can succeed


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    status_code: int | None = None
    # idempotency_key -> Orb's validation errors (outcome OK only)
    validation_failed: Mapping[str, list[str]] = field(default_factory=dict)
    # Why the request failed: Orb's problem details, or the transport error.
    errors: list[str] = field(default_factory=list)

    @property
    def error_summary(self) -> str:
        status = f"HTTP {self.status_code}" if self.status_code is not None else "no response"
        return f"{status}: {'; '.join(self.errors)}" if self.errors else status


def classify(response: httpx.Response) -> IngestResult:
    status = response.status_code
    if status == 200:
        try:
            parsed = IngestResponse.model_validate_json(response.content)
        except ValidationError:
            # Orb said 200 but we cannot tell which events failed validation; resending is safe
            # (Orb deduplicates by idempotency key), losing a rejection is not.
            return IngestResult(Outcome.RETRYABLE, status, errors=["unreadable 200 response body"])
        failed: dict[str, list[str]] = {}
        for failure in parsed.validation_failed:
            failed.setdefault(failure.idempotency_key, []).extend(failure.validation_errors)
        return IngestResult(Outcome.OK, status, validation_failed=failed)
    errors = _problem(response)
    if status in AUTH_STATUSES or status in MISCONFIGURED_STATUSES:
        return IngestResult(Outcome.AUTH, status, errors=errors)
    if status in BAD_REQUEST_STATUSES:
        return IngestResult(Outcome.BAD_REQUEST, status, errors=errors)
    # 5xx, 408/409/429, and any other unexpected answer: let SQS redeliver; after
    # maxReceiveCount the queue's redrive keeps the messages in the rejected queue.
    return IngestResult(Outcome.RETRYABLE, status, errors=errors)


def _problem(response: httpx.Response) -> list[str]:
    try:
        problem = OrbProblem.model_validate_json(response.content)
    except ValidationError:
        text = response.text.strip()
        return [text[:500]] if text else []
    return problem.describe()


class OrbClient:
    def __init__(self, base_url: str, api_key: str, http_client: httpx.Client | None = None) -> None:
        self.ingest_url = base_url.rstrip("/") + "/ingest"
        self._api_key = api_key
        self._http = http_client if http_client is not None else shared_http_client()

    def __repr__(self) -> str:  # never show the key
        return f"OrbClient({self.ingest_url!r})"

    def ingest(self, events: Sequence[Mapping[str, Any]], timeout_seconds: float) -> IngestResult:
        """Send one ``POST /ingest``; never raises for HTTP or network problems."""
        try:
            response = self._http.post(
                self.ingest_url,
                json={"events": list(events)},
                headers={"Authorization": f"Bearer {self._api_key}"},
                # Bounds connect, write, read and pool waits each; Orb's answers are small, so
                # the read bound is in practice the bound on the whole exchange.
                timeout=httpx.Timeout(timeout_seconds),
            )
        except httpx.TimeoutException as exc:
            return IngestResult(Outcome.RETRYABLE, errors=[f"timeout: {type(exc).__name__}"])
        except httpx.HTTPError as exc:  # connection refused/reset, protocol errors
            return IngestResult(Outcome.RETRYABLE, errors=[f"transport error: {type(exc).__name__}: {exc}"])
        return classify(response)


@functools.cache
def shared_http_client(max_connections: int = 32) -> httpx.Client:
    """The container's one HTTP client (created at first use, reused by every invocation)."""
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
    )
