"""An Orb look-alike HTTP server on loopback, for integration tests, the dev stack and benchmarks.

It implements the slice of Orb's API the bridge talks to, with Orb's observable behaviour
(see ``docs/facts.md``): ``POST /v1/ingest`` (Bearer auth, at most 500 events, per-event validation
reported in ``validation_failed``, each idempotency key ingested at most once, a request holding
one key twice with different bodies rejected whole), ``POST /v1/events/search``,
``GET /v1/events/volume`` and a minimal backfill lifecycle (``POST /v1/events/backfills``,
``POST /v1/events/backfills/{id}/close``, ``GET /v1/events/backfills/{id}``).

Where Orb's docs leave a choice open, the sandbox takes the stricter reading so that a bridge
which passes against it is safe against Orb: an event's own problems (missing or mistyped
fields, nested or null property values, both or neither customer id, timestamps outside the
grace period or over 5 minutes ahead) put that event in ``validation_failed`` with a 200; only
problems that make the request as a whole unreadable (not JSON, no ``events`` list, more than
500 events, an event that is not an object or has no string ``idempotency_key``, one key twice
with different bodies) answer 400.

Test hooks: ``script_ingest_responses`` answers the next ingest requests with canned responses;
``faults`` injects random 500s, 429s, latency, client timeouts and dropped connections (seeded
RNG). Faulted or scripted requests ingest nothing. ``send_webhook`` signs and POSTs webhooks
exactly as Orb does.

Standalone: ``python -m orb_bridge_dev.orb_sandbox --port 3001 --api-key K --error-500-rate 0.1``.
Stdlib only, apart from httpx for sending webhooks.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import json
import logging
import random
import re
import signal
import socket
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = [
    "FaultConfig",
    "MAX_EVENTS_PER_REQUEST",
    "OrbSandbox",
    "ScriptedResponse",
    "SentWebhook",
    "format_orb_timestamp",
    "main",
    "parse_iso8601",
    "sign_orb_webhook",
]

logger = logging.getLogger("orb_bridge_dev.orb_sandbox")

MAX_EVENTS_PER_REQUEST = 500
FUTURE_TOLERANCE = timedelta(minutes=5)
DEFAULT_GRACE_PERIOD = timedelta(hours=12)
SEARCH_DEFAULT_LOOKBACK = timedelta(days=7)
MAX_BACKFILL_WINDOW = timedelta(days=31)
MAX_BODY_BYTES = 20 * 1024 * 1024
_ERROR_DOCS = "https://docs.withorb.com/reference/error-responses"

_ISO8601 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


# --------------------------------------------------------------------------- configuration


@dataclass
class FaultConfig:
    """Random faults injected into ``POST /v1/ingest`` only; a faulted request ingests nothing.

    Rates are probabilities per request, drawn from the sandbox's seeded RNG with one draw per
    request (their sum should stay <= 1). Attributes may be changed while the server runs.
    """

    error_500_rate: float = 0.0
    error_429_rate: float = 0.0
    latency_seconds: float = 0.0
    # A "timeout" holds the request for ``timeout_seconds`` (past any sane client timeout),
    # then closes the connection without answering.
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    drop_connection_rate: float = 0.0
    # Sent as ``retry-after`` on injected 429s when set (seconds, may be fractional).
    retry_after_seconds: float | None = None


@dataclass
class ScriptedResponse:
    """A canned answer for one ingest request (the request is then not ingested).

    ``body=None`` means Orb's usual body for the status: ``{"validation_failed": []}`` for 200,
    an RFC 7807 problem otherwise. 5xx answers carry ``Transient-Error: true`` unless ``headers``
    says otherwise. ``drop_connection`` closes the socket (after ``delay_seconds``) without
    answering.
    """

    status: int = 200
    body: dict | None = None
    delay_seconds: float = 0.0
    drop_connection: bool = False
    headers: dict | None = None


@dataclass(frozen=True)
class SentWebhook:
    """A webhook the sandbox delivered: the raw body is kept so it can be redelivered as is."""

    id: str
    type: str
    url: str
    body: bytes
    headers: dict[str, str]
    status_code: int


# --------------------------------------------------------------------------- helpers (public)


def parse_iso8601(value: str) -> datetime:
    """Parse an ISO 8601 date-time as Orb reads it: no offset means UTC; any fraction length.

    Returns an aware UTC datetime; raises ValueError otherwise.
    """
    match = _ISO8601.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    parsed = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micros,
        tzinfo=timezone.utc,
    )
    if offset and offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        parsed = parsed - sign * delta
    return parsed


def _format_utc(moment: datetime) -> str:
    """Orb's wire format for event times: UTC with a ``Z``."""
    moment = moment.astimezone(timezone.utc)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def format_orb_timestamp(moment: datetime | None = None) -> str:
    """``X-Orb-Timestamp``: ISO 8601 UTC with milliseconds and no offset, e.g. 2024-03-27T15:42:29.551."""
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="milliseconds")


def sign_orb_webhook(secret: str, body: bytes, timestamp_header: str) -> str:
    """``X-Orb-Signature`` value: ``v1=`` + hex HMAC-SHA256 of ``v1:<timestamp>:<raw body>``."""
    signed = b"v1:" + timestamp_header.encode("utf-8") + b":" + body
    return "v1=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def _problem(status: int, title: str, detail: str, anchor: str, **extra: Any) -> dict:
    body = {"status": status, "title": title, "type": f"{_ERROR_DOCS}#{anchor}", "detail": detail}
    body.update(extra)
    return body


_DEFAULT_PROBLEMS = {
    400: ("Request validation error", "400-request-validation-errors"),
    401: ("Authentication error", "401-authentication-error"),
    404: ("Resource not found", "404-resource-not-found"),
    405: ("Method not allowed", "405-method-not-allowed"),
    408: ("Request timeout", "408-request-timeout"),
    409: ("Resource conflict", "409-resource-conflict"),
    413: ("Request too large", "413-request-too-large"),
    429: ("Too many requests", "429-too-many-requests"),
    500: ("Internal server error", "500-internal-server-error"),
    502: ("Bad gateway", "500-internal-server-error"),
    503: ("Service unavailable", "500-internal-server-error"),
    504: ("Gateway timeout", "500-internal-server-error"),
}


def _default_body(status: int) -> dict:
    if 200 <= status < 300:
        return {"validation_failed": []}
    title, anchor = _DEFAULT_PROBLEMS.get(status, ("Error", "error"))
    return _problem(status, title, f"Sandbox answered {status} ({title}).", anchor)


class _RequestError(Exception):
    """Ends request handling with an RFC 7807 answer."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra

    def body(self) -> dict:
        title, anchor = _DEFAULT_PROBLEMS.get(self.status, ("Error", "error"))
        extra = dict(self.extra)
        if self.status == 400:
            extra.setdefault("validation_errors", [self.detail])
        return _problem(self.status, title, self.detail, anchor, **extra)


def _reject_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- the sandbox


class OrbSandbox:
    """An Orb-like HTTP API on loopback (see the module docstring). Thread-safe."""

    def __init__(
        self,
        api_key: str = "sandbox-key",
        host: str = "127.0.0.1",
        port: int = 0,
        grace_period: timedelta = DEFAULT_GRACE_PERIOD,
        webhook_secret: str | None = None,
        faults: FaultConfig | None = None,
        seed: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self._requested_port = port
        self.grace_period = grace_period
        self.webhook_secret = webhook_secret
        self.faults = faults if faults is not None else FaultConfig()
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None
        self._init_state()

    def _init_state(self) -> None:
        self._events: dict[str, dict] = {}
        self._scripted: list[ScriptedResponse] = []
        self._backfills: dict[str, dict] = {}
        self._sent_webhooks: list[SentWebhook] = []
        self.ingest_request_count = 0
        self.ingest_outcomes: Counter[str] = Counter()
        self._offered_by_key: Counter[str] = Counter()
        self.duplicate_count = 0
        self.conflicting_duplicates: list[dict] = []

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> OrbSandbox:
        if self._server is not None:
            return self
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning("Orb sandbox bound to non-loopback host %s", self.host)
        self._stopping.clear()
        server = _SandboxServer((self.host, self._requested_port), _SandboxHandler)
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"orb-sandbox-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on latency or timeout faults
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> OrbSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("Orb sandbox is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ----------------------------------------------------------------- test hooks and state

    def script_ingest_responses(self, responses: Iterable[ScriptedResponse]) -> None:
        """Answer the next ingest requests with these, in order, instead of processing them."""
        with self._lock:
            self._scripted.extend(responses)

    @property
    def pending_scripted_responses(self) -> int:
        with self._lock:
            return len(self._scripted)

    def ingested_events(self) -> dict[str, dict]:
        """idempotency_key -> stored event (a copy)."""
        with self._lock:
            return copy.deepcopy(self._events)

    @property
    def ingested_count(self) -> int:
        with self._lock:
            return len(self._events)

    @property
    def ingest_attempts_by_key(self) -> Counter[str]:
        """How many times each key arrived in a valid event of a processed request (>= 1 if ingested)."""
        with self._lock:
            return Counter(self._offered_by_key)

    def stats(self) -> dict[str, Any]:
        """Counters for progress displays, benchmarks and soak tests."""
        with self._lock:
            return {
                "ingest_requests": self.ingest_request_count,
                "ingested": len(self._events),
                "duplicates": self.duplicate_count,
                "conflicting_duplicates": len(self.conflicting_duplicates),
                "outcomes": dict(self.ingest_outcomes),
                "webhooks_sent": len(self._sent_webhooks),
            }

    def wait_for_ingested(self, keys: Iterable[str], timeout: float = 10.0) -> bool:
        """Block until every key is ingested (True) or ``timeout`` passes (False)."""
        wanted = set(keys)
        with self._changed:
            return self._changed.wait_for(lambda: wanted <= self._events.keys(), timeout=timeout)

    def reset(self) -> None:
        """Forget ingested events, counters, scripted responses, backfills and sent webhooks.

        Keeps the configuration (api key, grace period, secret, faults)."""
        with self._lock:
            self._init_state()
            self._changed.notify_all()

    # ----------------------------------------------------------------- request dispatch

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8"), self.api_key.encode("utf-8"))

    def _draw_fault(self) -> str | None:
        faults = self.faults
        with self._lock:
            draw = self._rng.random()
        threshold = 0.0
        for name, rate in (
            ("drop_connection", faults.drop_connection_rate),
            ("timeout", faults.timeout_rate),
            ("error_500", faults.error_500_rate),
            ("error_429", faults.error_429_rate),
        ):
            threshold += max(rate, 0.0)
            if draw < threshold:
                return name
        return None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> _Reply:
        split = urlsplit(raw_path)
        path = split.path.rstrip("/") or "/"
        query = {name: values[-1] for name, values in parse_qs(split.query, keep_blank_values=True).items()}
        if path == "/v1/ingest":
            if method != "POST":
                return _Reply.json(405, _default_body(405))
            return self._handle_ingest(headers, body, query)
        routes = {
            ("POST", "/v1/events/search"): self._search,
            ("GET", "/v1/events/volume"): self._volume,
            ("POST", "/v1/events/backfills"): self._create_backfill,
        }
        handler = routes.get((method, path))
        backfill_match = re.fullmatch(r"/v1/events/backfills/([^/]+)(/close)?", path)
        if handler is None and backfill_match is None:
            known_paths = {p for _, p in routes}
            status = 405 if path in known_paths else 404
            if status == 404:  # Orb's "URL not found", distinct from a missing resource
                return _Reply.json(404, _problem(404, "URL not found", f"No route for {method} {path}.",
                                                 "404-url-not-found"))
            return _Reply.json(405, _RequestError(405, f"{method} not allowed on {path}.").body())
        if not self._authorized(headers.get("Authorization")):
            return _Reply.json(401, _RequestError(401, "Missing or invalid API key.").body())
        try:
            if handler is not None:
                return _Reply.json(200, handler(body, query))
            backfill_id, close = backfill_match.group(1), backfill_match.group(2)
            if close and method == "POST":
                return _Reply.json(200, self._close_backfill(backfill_id))
            if not close and method == "GET":
                return _Reply.json(200, self._get_backfill(backfill_id))
            raise _RequestError(405, f"{method} not allowed on {path}.")
        except _RequestError as error:
            return _Reply.json(error.status, error.body())

    # ----------------------------------------------------------------- /ingest

    def _handle_ingest(self, headers: Any, body: bytes, query: dict[str, str]) -> _Reply:
        with self._lock:
            self.ingest_request_count += 1
            scripted = self._scripted.pop(0) if self._scripted else None
        if scripted is not None:
            self._count("scripted")
            self._sleep(scripted.delay_seconds)
            if scripted.drop_connection:
                return _Reply.drop()
            reply_headers = {"Transient-Error": "true"} if scripted.status >= 500 else {}
            reply_headers.update(scripted.headers or {})
            reply_body = scripted.body if scripted.body is not None else _default_body(scripted.status)
            return _Reply.json(scripted.status, reply_body, reply_headers)

        faults = self.faults
        self._sleep(faults.latency_seconds)
        fault = self._draw_fault()
        if fault is not None:
            self._count(fault)
        if fault == "drop_connection":
            return _Reply.drop()
        if fault == "timeout":
            self._sleep(faults.timeout_seconds)
            return _Reply.drop()
        if fault == "error_500":
            return _Reply.json(
                500, _RequestError(500, "Injected fault: internal server error.").body(),
                {"Transient-Error": "true"},
            )
        if fault == "error_429":
            extra = {} if faults.retry_after_seconds is None else {"retry-after": f"{faults.retry_after_seconds:g}"}
            return _Reply.json(429, _RequestError(429, "Injected fault: rate limit exceeded.").body(), extra)

        if not self._authorized(headers.get("Authorization")):
            self._count("unauthorized")
            return _Reply.json(401, _RequestError(401, "Missing or invalid API key.").body())
        try:
            result = self._ingest(body, query)
        except _RequestError as error:
            self._count(f"rejected_{error.status}")
            return _Reply.json(error.status, error.body())
        self._count("processed")
        return _Reply.json(200, result)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.ingest_outcomes[outcome] += 1

    def _ingest(self, body: bytes, query: dict[str, str]) -> dict:
        payload = _parse_json_object(body)
        events = payload.get("events")
        if not isinstance(events, list):
            raise _RequestError(400, "Body must be an object with an `events` array.",
                                validation_errors=["events: field required and must be an array"])
        if len(events) > MAX_EVENTS_PER_REQUEST:
            raise _RequestError(
                400, f"At most {MAX_EVENTS_PER_REQUEST} events per request; got {len(events)}.",
                validation_errors=[f"events: at most {MAX_EVENTS_PER_REQUEST} items allowed"],
            )
        debug = query.get("debug", "").lower() == "true"
        backfill_id = query.get("backfill_id") or None
        now = datetime.now(timezone.utc)

        # Request-level checks first: nothing is ingested if any fails.
        first_seen: dict[str, str] = {}
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                raise _RequestError(400, f"events[{index}] must be an object.",
                                    validation_errors=[f"events[{index}]: must be an object"])
            key = event.get("idempotency_key")
            if not isinstance(key, str) or not key:
                raise _RequestError(400, f"events[{index}].idempotency_key must be a non-empty string.",
                                    validation_errors=[f"events[{index}].idempotency_key: field required"])
            canonical = _canonical(event)
            if key in first_seen and first_seen[key] != canonical:
                raise _RequestError(
                    400, f"Idempotency key {key!r} appears more than once with different event bodies.",
                    validation_errors=[f"events[{index}].idempotency_key: duplicate key {key!r} with a different body"],
                )
            first_seen.setdefault(key, canonical)

        with self._lock:
            backfill = None
            if backfill_id is not None:
                backfill = self._backfills.get(backfill_id)
                if backfill is None:
                    raise _RequestError(404, f"No backfill with id {backfill_id!r}.")
                if backfill["status"] != "pending":
                    raise _RequestError(400, f"Backfill {backfill_id!r} is {backfill['status']}, not pending.")
            validation_failed: list[dict] = []
            ingested: list[str] = []
            duplicate: list[str] = []
            done_in_request: set[str] = set()
            for event in events:
                key = event["idempotency_key"]
                if key in done_in_request:
                    duplicate.append(key)
                    self.duplicate_count += 1
                    continue
                done_in_request.add(key)
                errors, stored = self._validate_event(event, now, backfill)
                if errors:
                    validation_failed.append({"idempotency_key": key, "validation_errors": errors})
                    continue
                self._offered_by_key[key] += 1
                existing = self._events.get(key)
                if existing is not None:
                    duplicate.append(key)
                    self.duplicate_count += 1
                    if _content(existing) != _content(stored):
                        self.conflicting_duplicates.append({"idempotency_key": key, "stored": existing, "offered": stored})
                    continue
                stored["ingested_at"] = _format_utc(now)
                stored["backfill_id"] = backfill_id
                self._events[key] = stored
                ingested.append(key)
            if ingested:
                self._changed.notify_all()
        response: dict[str, Any] = {"validation_failed": validation_failed}
        if debug:
            response["debug"] = {"duplicate": duplicate, "ingested": ingested}
        return response

    def _validate_event(self, event: dict, now: datetime, backfill: dict | None) -> tuple[list[str], dict]:
        errors: list[str] = []
        known = {"event_name", "idempotency_key", "timestamp", "properties", "customer_id", "external_customer_id"}
        for name in sorted(set(event) - known):
            errors.append(f"{name}: unknown field")
        event_name = event.get("event_name")
        if not isinstance(event_name, str) or not event_name.strip():
            errors.append("event_name: field required and must be a non-empty string")

        customer_id = event.get("customer_id")
        external_id = event.get("external_customer_id")
        for name, value in (("customer_id", customer_id), ("external_customer_id", external_id)):
            if value is not None and (not isinstance(value, str) or not value):
                errors.append(f"{name}: must be a non-empty string")
        if (customer_id is None) == (external_id is None):
            errors.append("Exactly one of customer_id and external_customer_id must be specified")

        properties = event.get("properties")
        if not isinstance(properties, dict):
            errors.append("properties: field required and must be an object")
        else:
            for name, value in properties.items():
                if value is None:
                    errors.append(f"properties.{name}: null values are not allowed")
                elif isinstance(value, (dict, list)):
                    errors.append(f"properties.{name}: nested values are not allowed (numeric, boolean or string only)")
                elif not isinstance(value, (str, int, float, bool)):
                    errors.append(f"properties.{name}: must be numeric, boolean or string")

        timestamp = event.get("timestamp")
        moment: datetime | None = None
        if not isinstance(timestamp, str):
            errors.append("timestamp: field required and must be an ISO 8601 string")
        else:
            try:
                moment = parse_iso8601(timestamp)
            except ValueError:
                errors.append(f"timestamp: {timestamp!r} is not a valid ISO 8601 date-time")
        if moment is not None:
            if moment > now + FUTURE_TOLERANCE:
                errors.append(f"timestamp: {timestamp} is more than 5 minutes in the future")
            elif backfill is not None:
                start = parse_iso8601(backfill["timeframe_start"])
                end = parse_iso8601(backfill["timeframe_end"])
                if not start <= moment < end:
                    errors.append(f"timestamp: {timestamp} is outside the backfill's timeframe "
                                  f"[{backfill['timeframe_start']}, {backfill['timeframe_end']})")
            elif moment < now - self.grace_period:
                errors.append(
                    f"timestamp: {timestamp} is older than the grace period "
                    f"({self.grace_period.total_seconds() / 3600:g} hours); use a backfill"
                )
        stored = {
            "id": event.get("idempotency_key"),
            "idempotency_key": event.get("idempotency_key"),
            "event_name": event_name,
            "customer_id": customer_id,
            "external_customer_id": external_id,
            "properties": copy.deepcopy(properties) if isinstance(properties, dict) else {},
            "timestamp": _format_utc(moment) if moment is not None else None,
            "deprecated": False,
        }
        return errors, stored

    # ----------------------------------------------------------------- /events/search, /events/volume

    def _search(self, body: bytes, query: dict[str, str]) -> dict:
        payload = _parse_json_object(body)
        event_ids = payload.get("event_ids")
        if not isinstance(event_ids, list) or not all(isinstance(item, str) for item in event_ids):
            raise _RequestError(400, "event_ids must be an array of strings.",
                                validation_errors=["event_ids: field required and must be an array of strings"])
        end = _optional_time(payload.get("timeframe_end"), "timeframe_end") or datetime.now(timezone.utc)
        start = _optional_time(payload.get("timeframe_start"), "timeframe_start") or end - SEARCH_DEFAULT_LOOKBACK
        with self._lock:
            found = [self._events[key] for key in dict.fromkeys(event_ids) if key in self._events]
            data = [
                {name: copy.deepcopy(event[name]) for name in
                 ("id", "customer_id", "external_customer_id", "event_name", "properties", "timestamp", "deprecated")}
                for event in found
                if start <= parse_iso8601(event["timestamp"]) < end
            ]
        return {"data": data}

    def _volume(self, body: bytes, query: dict[str, str]) -> dict:
        start = _optional_time(query.get("timeframe_start"), "timeframe_start")
        if start is None:
            raise _RequestError(400, "timeframe_start is required.",
                                validation_errors=["timeframe_start: field required"])
        end = _optional_time(query.get("timeframe_end"), "timeframe_end") or datetime.now(timezone.utc)
        counts: Counter[datetime] = Counter()
        with self._lock:
            for event in self._events.values():
                moment = parse_iso8601(event["timestamp"])
                if start <= moment < end:
                    counts[moment.replace(minute=0, second=0, microsecond=0)] += 1
        # Hourly buckets, only those holding events, oldest first.
        data = [
            {"count": counts[hour], "timeframe_start": _format_utc(hour),
             "timeframe_end": _format_utc(hour + timedelta(hours=1))}
            for hour in sorted(counts)
        ]
        return {"data": data, "pagination_metadata": {"has_more": False, "next_cursor": None}}

    # ----------------------------------------------------------------- backfills (minimal)

    def _create_backfill(self, body: bytes, query: dict[str, str]) -> dict:
        payload = _parse_json_object(body)
        start = _optional_time(payload.get("timeframe_start"), "timeframe_start")
        end = _optional_time(payload.get("timeframe_end"), "timeframe_end")
        if start is None or end is None:
            raise _RequestError(400, "timeframe_start and timeframe_end are required.",
                                validation_errors=["timeframe_start, timeframe_end: fields required"])
        if not start < end or end - start > MAX_BACKFILL_WINDOW:
            raise _RequestError(400, "The backfill window must be positive and at most 31 days.",
                                validation_errors=["timeframe_end: window must be positive and at most 31 days"])
        now = _format_utc(datetime.now(timezone.utc))
        backfill = {
            "id": f"bf_{uuid.uuid4().hex[:16]}",
            "status": "pending",
            "created_at": now,
            "timeframe_start": _format_utc(start),
            "timeframe_end": _format_utc(end),
            "events_ingested": 0,
            "close_time": None,
            "reverted_at": None,
            "customer_id": payload.get("customer_id"),
            "deprecation_filter": payload.get("deprecation_filter"),
            "replace_existing_events": bool(payload.get("replace_existing_events", False)),
        }
        with self._lock:
            self._backfills[backfill["id"]] = backfill
        return copy.deepcopy(backfill)

    def _get_backfill(self, backfill_id: str) -> dict:
        with self._lock:
            backfill = self._backfills.get(backfill_id)
            if backfill is None:
                raise _RequestError(404, f"No backfill with id {backfill_id!r}.")
            result = copy.deepcopy(backfill)
            result["events_ingested"] = sum(1 for e in self._events.values() if e.get("backfill_id") == backfill_id)
            return result

    def _close_backfill(self, backfill_id: str) -> dict:
        with self._lock:
            backfill = self._backfills.get(backfill_id)
            if backfill is None:
                raise _RequestError(404, f"No backfill with id {backfill_id!r}.")
            # The sandbox reflects a closed backfill at once.
            backfill["status"] = "reflected"
            backfill["close_time"] = _format_utc(datetime.now(timezone.utc))
        return self._get_backfill(backfill_id)

    # ----------------------------------------------------------------- webhooks

    def build_webhook_body(self, type: str = "resource_event.test", payload: dict | None = None,
                           *, payload_style: str | None = "expanded") -> dict:
        """An Orb-style webhook body; ``payload`` is merged over the generated top-level fields."""
        now = datetime.now(timezone.utc)
        body: dict[str, Any] = {
            "id": uuid.uuid4().hex[:20],
            "created_at": now.replace(microsecond=0, tzinfo=None).isoformat() + "Z",
            "type": type,
            "properties": {},
        }
        if payload_style is not None:
            body["payload_style"] = payload_style
        body.update(_resource_for(type))
        if type == "resource_event.test":
            body["properties"] = {"message": "A test webhook from the Orb sandbox"}
        for name, value in (payload or {}).items():
            body[name] = value
        return body

    def send_webhook(
        self,
        url: str,
        type: str = "resource_event.test",
        payload: dict | None = None,
        *,
        timestamp: datetime | None = None,
        payload_style: str | None = "expanded",
        secret: str | None = None,
        timeout: float = 10.0,
    ) -> httpx.Response:
        """Build, sign (as Orb does) and POST a webhook; returns the receiver's response.

        ``timestamp`` overrides the signing time (to test the receiver's tolerance); ``secret``
        overrides the configured one (to test a wrong signature)."""
        body = self.build_webhook_body(type, payload, payload_style=payload_style)
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
        return self._deliver(url, body["id"], type, raw, timestamp=timestamp, secret=secret, timeout=timeout)

    def redeliver_webhook(self, webhook_id: str | None = None, url: str | None = None, *,
                          timestamp: datetime | None = None, timeout: float = 10.0) -> httpx.Response:
        """Deliver an already sent webhook again (same body, same ``id``, fresh signature), as
        Orb's at-least-once delivery does. Defaults to the last one sent, to the same URL."""
        with self._lock:
            candidates = [w for w in self._sent_webhooks if webhook_id is None or w.id == webhook_id]
        if not candidates:
            raise LookupError(f"no sent webhook {webhook_id!r} to redeliver")
        original = candidates[-1]
        return self._deliver(url or original.url, original.id, original.type, original.body,
                             timestamp=timestamp, secret=None, timeout=timeout)

    redeliver = redeliver_webhook

    def sent_webhooks(self) -> list[SentWebhook]:
        with self._lock:
            return list(self._sent_webhooks)

    def _deliver(self, url: str, webhook_id: str, type: str, raw: bytes, *, timestamp: datetime | None,
                 secret: str | None, timeout: float) -> httpx.Response:
        key = secret if secret is not None else self.webhook_secret
        if not key:
            raise ValueError("OrbSandbox needs webhook_secret to sign webhooks")
        stamp = format_orb_timestamp(timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Orb-Webhooks (sandbox)",
            "X-Orb-Timestamp": stamp,
            "X-Orb-Signature": sign_orb_webhook(key, raw, stamp),
        }
        with self._lock:
            if self._http is None:
                self._http = httpx.Client()
            client = self._http
        response = client.post(url, content=raw, headers=headers, timeout=timeout)
        with self._lock:
            self._sent_webhooks.append(SentWebhook(webhook_id, type, url, raw, headers, response.status_code))
        return response


def _content(event: dict) -> tuple:
    return (event["event_name"], event["customer_id"], event["external_customer_id"],
            _canonical(event["properties"]), event["timestamp"])


def _resource_for(type: str) -> dict:
    """A plausible resource object for the webhook type's resource (Orb's "expanded" style)."""
    resource = type.split(".", 1)[0]
    customer = {
        "id": "cus_sandbox0001", "external_customer_id": "user-sandbox-1", "name": "Sandbox Customer",
        "email": "billing@example.com", "currency": "USD", "balance": "0.00", "timezone": "Etc/UTC",
        "created_at": "2024-01-01T00:00:00Z", "metadata": {},
    }
    if resource == "customer":
        return {"customer": customer}
    if resource == "subscription":
        return {"subscription": {
            "id": "sub_sandbox0001", "customer": customer, "status": "active",
            "plan": {"id": "plan_sandbox0001", "name": "Usage plan", "external_plan_id": "usage"},
            "start_date": "2024-01-01T00:00:00Z", "end_date": None, "metadata": {},
        }}
    if resource == "invoice":
        return {"invoice": {
            "id": "inv_sandbox0001", "customer": customer, "status": "issued", "currency": "USD",
            "amount_due": "42.00", "total": "42.00", "invoice_number": "SANDBOX-0001",
            "invoice_date": "2024-02-01T00:00:00Z", "due_date": "2024-02-15T00:00:00Z", "metadata": {},
        }}
    if resource == "credit_note":
        return {"credit_note": {
            "id": "cn_sandbox0001", "customer": customer, "total": "10.00",
            "credit_note_number": "SANDBOX-CN-0001", "reason": "Duplicate", "type": "refund",
        }}
    if resource == "backfill":
        return {"backfill": {"id": "bf_sandbox0001", "status": "reflected", "events_ingested": 0}}
    return {}


def _parse_json_object(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_reject_json_constant) if body else None
    except (UnicodeDecodeError, ValueError) as error:
        raise _RequestError(400, f"Body is not valid JSON: {error}.",
                            validation_errors=["body: not valid JSON"]) from None
    if not isinstance(payload, dict):
        raise _RequestError(400, "Body must be a JSON object.", validation_errors=["body: must be an object"])
    return payload


def _optional_time(value: Any, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_iso8601(value)
    except ValueError:
        raise _RequestError(400, f"{name} must be an ISO 8601 date-time.",
                            validation_errors=[f"{name}: not an ISO 8601 date-time"]) from None


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False

    @classmethod
    def json(cls, status: int, body: dict, headers: dict | None = None) -> _Reply:
        content_type = "application/json" if status < 400 else "application/problem+json"
        if status >= 400 and not {"status", "title"} <= body.keys():
            content_type = "application/json"
        merged = {"Content-Type": content_type}
        merged.update({str(k): str(v) for k, v in (headers or {}).items()})
        return cls(status, json.dumps(body).encode("utf-8"), merged)

    @classmethod
    def drop(cls) -> _Reply:
        return cls(drop_connection=True)


class _SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: OrbSandbox


class _SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients with connection pools expect
    server: _SandboxServer
    server_version = "OrbSandbox/1.0"

    def _dispatch(self, method: str) -> None:
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            status = 413 if length > MAX_BODY_BYTES else 400
            self._write(_Reply.json(status, _RequestError(status, "Bad or too large Content-Length.").body()))
            return
        body = self.rfile.read(length) if length else b""
        try:
            reply = self.server.sandbox.handle(method, self.path, self.headers, body)
        except Exception:  # the sandbox's own bug: answer 500 like a server would, and say so
            logger.exception("Orb sandbox failed on %s %s", method, self.path)
            reply = _Reply.json(500, _RequestError(500, "Sandbox internal error.").body(), {"Transient-Error": "true"})
        if reply.drop_connection:
            self.close_connection = True
            return
        self._write(reply)

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and delayed ACKs add ~40 ms to keep-alive requests.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _write(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            # Headers and body in one write (one TCP segment for small answers).
            self._headers_buffer.append(b"\r\n" + reply.body)
            self.flush_headers()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s - %s", self.address_string(), format % args)


# --------------------------------------------------------------------------- standalone


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orb_bridge_dev.orb_sandbox",
                                     description="Run the Orb sandbox (an Orb-like API on loopback).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--grace-period-hours", type=float, default=12.0)
    parser.add_argument("--error-500-rate", type=float, default=0.0)
    parser.add_argument("--error-429-rate", type=float, default=0.0)
    parser.add_argument("--latency-seconds", type=float, default=0.0)
    parser.add_argument("--timeout-rate", type=float, default=0.0)
    parser.add_argument("--timeout-seconds", type=float, default=30.0)
    parser.add_argument("--drop-connection-rate", type=float, default=0.0)
    parser.add_argument("--retry-after-seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    return parser


def sandbox_from_args(args: argparse.Namespace) -> OrbSandbox:
    faults = FaultConfig(
        error_500_rate=args.error_500_rate, error_429_rate=args.error_429_rate,
        latency_seconds=args.latency_seconds, timeout_rate=args.timeout_rate,
        timeout_seconds=args.timeout_seconds, drop_connection_rate=args.drop_connection_rate,
        retry_after_seconds=args.retry_after_seconds,
    )
    return OrbSandbox(api_key=args.api_key, host=args.host, port=args.port,
                      grace_period=timedelta(hours=args.grace_period_hours),
                      webhook_secret=args.webhook_secret, faults=faults, seed=args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    sandbox = sandbox_from_args(args)
    stop = threading.Event()
    try:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    except ValueError:  # not the main thread: Ctrl-C / stop() of the caller ends it instead
        pass
    sandbox.start()
    print(f"Orb sandbox listening on {sandbox.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stats = sandbox.stats()
        sandbox.stop()
        print(f"Orb sandbox stopped: {json.dumps(stats)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
