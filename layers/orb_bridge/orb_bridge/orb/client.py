"""A small httpx client for Orb's ``POST /ingest``, and the classification of its answers.

Not the orb-billing SDK: importing it adds about 0.5 s to every cold start, and its built-in
retries would fight our own retry model (SQS redelivery, see ``orb_bridge.ingest.service``).

Answers are classified by status *and* RFC 7807 ``type`` (Orb's error components, see
https://docs.withorb.com/reference/error-responses): a 404 ``url-not-found`` is our base URL
being wrong, a 404 ``resource-not-found`` is about the content; a 400
``request-validation-errors`` names invalid events, other 400s refuse the request as a whole.

One ``httpx.Client`` per container (``shared_http_client``): it is thread-safe, keeps its
connections alive across invocations, and unlike an ``AsyncClient`` is not tied to an event loop.
"""

from __future__ import annotations

import email.utils
import enum
import functools
import json
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from orb_bridge import __version__
from orb_bridge.orb.problems import Attribution, attribute

if TYPE_CHECKING:
    from orb_bridge.orb.models import OrbProblem

ERROR_TYPE_BASE = "https://docs.withorb.com/reference/error-responses#"
REQUEST_VALIDATION = ERROR_TYPE_BASE + "400-request-validation-errors"
URL_NOT_FOUND = ERROR_TYPE_BASE + "404-url-not-found"
RESOURCE_NOT_FOUND = ERROR_TYPE_BASE + "404-resource-not-found"
# Without Retry-After, a 429's events wait this long before they are offered again.
DEFAULT_RETRY_AFTER_SECONDS = 5.0
MAX_RETRY_AFTER_SECONDS = 12 * 3600.0

USER_AGENT = f"segment-orb-bridge/{__version__}"


class Outcome(enum.Enum):
    OK = "ok"  # 200; ``validation_failed`` should be empty, but a listed event is still honoured
    INVALID_EVENTS = "invalid_events"  # 400 request validation: ``attribution`` names what it can
    BAD_REQUEST = "bad_request"  # the request's content was refused as a whole (400/413/422...)
    RATE_LIMITED = "rate_limited"  # 429: stop sending, hold the events back ``retry_after`` s
    RETRYABLE = "retryable"  # 5xx, 408, 409 idempotency mismatch, network: SQS redelivers
    CONFIGURATION = "configuration"  # API key or base URL wrong: no request can succeed


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    status_code: int | None = None
    # idempotency_key -> Orb's validation errors (a 200 that lists failures)
    validation_failed: Mapping[str, list[str]] = field(default_factory=dict)
    # Why the request failed: Orb's problem details, or the transport error.
    errors: list[str] = field(default_factory=list)
    attribution: Attribution = field(default_factory=Attribution)
    retry_after_seconds: float | None = None
    problem_type: str | None = None
    response: Any = None  # a 200's JSON answer, as Orb wrote it (the audit archive keeps it)

    @property
    def error_summary(self) -> str:
        status = f"HTTP {self.status_code}" if self.status_code is not None else "no response"
        return f"{status}: {'; '.join(self.errors[:5])}" if self.errors else status


def classify(response: httpx.Response, sent_keys: Sequence[str] = ()) -> IngestResult:
    status = response.status_code
    if status == 200:
        # The usual answer, {"validation_failed": []} (Orb lists nothing in a 200), read without
        # the models: pydantic stays off ingest's cold start unless Orb says something else.
        body = _json(response)
        if isinstance(body, dict) and body.get("validation_failed", []) == []:
            return IngestResult(Outcome.OK, status, response=body)
        return _ok_with_failures(response, status, body)

    body = _json(response)
    problem = _problem(body, response)
    kind = problem.type if problem is not None else None
    errors = problem.describe() if problem is not None else _text(response)
    result = functools.partial(IngestResult, status_code=status, errors=errors, problem_type=kind)
    if status in (401, 403, 405) or (status == 404 and kind != RESOURCE_NOT_FOUND):
        # 404 url-not-found (or an untyped 404: not Orb's API answering) is a wrong base URL.
        return result(Outcome.CONFIGURATION)
    if status == 429:
        return result(Outcome.RATE_LIMITED, retry_after_seconds=retry_after(response.headers))
    if status == 400 and (kind == REQUEST_VALIDATION or kind is None):
        # An untyped 400 may still name events; with nothing attributable ingest splits it.
        return result(Outcome.INVALID_EVENTS, attribution=attribute(body, sent_keys))
    if status in (400, 404, 413, 422):
        # Other 400s (constraint violation...), resource-not-found, too large: split to isolate.
        return result(Outcome.BAD_REQUEST)
    # 5xx, 408, 409 (IdempotencyRequestMismatch: retryable per Orb), anything unexpected.
    return result(Outcome.RETRYABLE)


def _ok_with_failures(response: httpx.Response, status: int, body: Any) -> IngestResult:
    from pydantic import ValidationError

    from orb_bridge.orb.models import IngestResponse

    try:
        parsed = IngestResponse.model_validate_json(response.content)
    except ValidationError:
        # Orb said 200 but we cannot tell which events failed validation; resending is safe
        # (Orb deduplicates by idempotency key), losing a rejection is not.
        return IngestResult(Outcome.RETRYABLE, status, errors=["unreadable 200 response body"])
    failed: dict[str, list[str]] = {}
    for failure in parsed.validation_failed:
        failed.setdefault(failure.idempotency_key, []).extend(failure.validation_errors)
    return IngestResult(Outcome.OK, status, validation_failed=failed, response=body)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or HTTP date), else a default."""
    raw_ms = headers.get("retry-after-ms")
    seconds: float | None = None
    if raw_ms:
        try:
            seconds = float(raw_ms) / 1000
        except ValueError:
            seconds = None
    raw = headers.get("retry-after")
    if seconds is None and raw:
        try:
            seconds = float(raw)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                seconds = parsed.timestamp() - (time.time() if now is None else now)
    if seconds is None or seconds != seconds:  # missing, unreadable or NaN
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _problem(body: Any, response: httpx.Response) -> OrbProblem | None:
    if not isinstance(body, dict):
        return None
    from pydantic import ValidationError  # an error answer: off the usual path

    from orb_bridge.orb.models import OrbProblem

    try:
        return OrbProblem.model_validate(body)
    except ValidationError:
        return None


def _text(response: httpx.Response) -> list[str]:
    text = response.text.strip()
    return [text[:500]] if text else []


class OrbClient:
    def __init__(self, base_url: str, api_key: str, http_client: httpx.Client | None = None) -> None:
        self.ingest_url = base_url.rstrip("/") + "/ingest"
        self._api_key = api_key
        self._http = http_client if http_client is not None else shared_http_client()

    def __repr__(self) -> str:  # never show the key
        return f"OrbClient({self.ingest_url!r})"

    def ingest(self, events: Sequence[Mapping[str, Any]], timeout_seconds: float) -> IngestResult:
        """Send one ``POST /ingest``; never raises for HTTP or network problems."""
        # ASCII (escapes for the rest): always encodable, whatever text an event holds.
        texts = [json.dumps(event, separators=(",", ":")) for event in events]
        return self.ingest_texts(texts, [str(event.get("idempotency_key", "")) for event in events], timeout_seconds)

    def ingest_texts(self, event_texts: Sequence[str], keys: Sequence[str], timeout_seconds: float) -> IngestResult:
        """``ingest`` for events already written as JSON (each one object, as Orb takes it), with
        their idempotency keys: ingest forwards message bodies as written, without re-encoding."""
        body = '{"events":[' + ",".join(event_texts) + "]}"
        try:
            response = self._http.post(
                self.ingest_url,
                content=body.encode("utf-8"),
                headers={"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"},
                # Bounds connect, write, read and pool waits each; Orb's answers are small, so
                # the read bound is in practice the bound on the whole exchange.
                timeout=httpx.Timeout(timeout_seconds),
            )
        except httpx.TimeoutException as exc:
            return IngestResult(Outcome.RETRYABLE, errors=[f"timeout: {type(exc).__name__}"])
        except httpx.HTTPError as exc:  # connection refused/reset, protocol errors
            return IngestResult(Outcome.RETRYABLE, errors=[f"transport error: {type(exc).__name__}: {exc}"])
        return classify(response, keys)


class _TransportPerScheme(httpx.BaseTransport):
    """httpx's own transport, built at the first request of each scheme.

    The TLS one loads the CA bundle (about 40 ms of a cold start), so a cold start pays for it
    only when it opens a TLS connection, as boto3 does; a loopback http Orb (the sandbox)
    never needs it. The plain one gets a context that trusts nothing: it never does TLS.
    """

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._transports: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def _transport(self, scheme: str) -> httpx.HTTPTransport:
        transport = self._transports.get(scheme)
        if transport is None:
            with self._lock:
                transport = self._transports.get(scheme)
                if transport is None:
                    verify: Any = True if scheme == "https" else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    transport = self._transports[scheme] = httpx.HTTPTransport(verify=verify, limits=self._limits)
        return transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport("https" if request.url.scheme == "https" else "http").handle_request(request)

    def close(self) -> None:
        for transport in list(self._transports.values()):
            transport.close()


@functools.cache
def shared_http_client(max_connections: int = 32) -> httpx.Client:
    """The container's one HTTP client (created at first use, reused by every invocation)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        limits=limits,
        follow_redirects=False,
        transport=_TransportPerScheme(limits),
    )
