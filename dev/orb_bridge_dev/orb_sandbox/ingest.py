"""``POST /v1/ingest``: scripted answers and faults first, then Orb's behaviour.

Orb: "Requests that return a 4xx HTTP status code ... contain at least one event with a
validation failure. An event with a validation failure can be re-sent ... with the original
idempotency key since that key is not marked as processed." So any invalid event makes the
whole request a 400, and its failing keys stay free; whether the request's valid events were
ingested is the ``ingest_valid_events_on_400`` switch.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orb_bridge_dev.orb_sandbox.problems import RequestError, canonical, default_body, invalid, parse_json_object
from orb_bridge_dev.orb_sandbox.state import SandboxState
from orb_bridge_dev.orb_sandbox.store import StoredEvent
from orb_bridge_dev.orb_sandbox.validation import MAX_EVENTS_PER_REQUEST, error_body, event_errors
from orb_bridge_dev.orb_sandbox.wsgi import Reply


def handle_ingest(sandbox: SandboxState, body: bytes, query: dict[str, str], authorized: bool) -> Reply:
    with sandbox.lock:
        sandbox.ingest_request_count += 1
        scripted = sandbox.scripted.pop(0) if sandbox.scripted else None
    if scripted is not None:
        sandbox.count("scripted")
        sandbox.sleep(scripted.delay_seconds)
        if scripted.drop_connection:
            return Reply.drop()
        headers = {"Transient-Error": "true"} if scripted.status >= 500 else {}
        headers.update(scripted.headers or {})
        reply = Reply.json(
            scripted.status, scripted.body if scripted.body is not None else default_body(scripted.status), headers
        )
        reply.scripted = True
        return reply

    hold = sandbox.ingest_hold
    if hold is not None and hold.release.is_set():  # released: requests are served as usual again
        hold = None
    if hold is not None and _held(sandbox, hold, body):
        return Reply.drop()
    exempt = hold is not None and hold.matches(_events_or_empty(body))
    faults = sandbox.faults
    sandbox.sleep(faults.latency_seconds)
    with sandbox.lock:
        fault = None if exempt else faults.draw(sandbox.rng)
    if fault is not None:
        sandbox.count(fault)
    if fault == "drop_connection":
        return Reply.drop()
    if fault == "timeout":
        sandbox.sleep(faults.timeout_seconds)
        return Reply.drop()
    if fault == "error_500":
        error = RequestError("internal", "Injected fault: internal server error.", {"Transient-Error": "true"})
        return Reply.problem(error)
    if fault == "error_429":
        retry = {} if faults.retry_after_seconds is None else {"retry-after": f"{faults.retry_after_seconds:g}"}
        return Reply.problem(RequestError("too_many_requests", "Injected fault: rate limit exceeded.", retry))

    if not authorized:
        sandbox.count("unauthorized")
        return Reply.problem(RequestError("authentication", "Missing or invalid API key."))
    try:
        result = _ingest(sandbox, body, query, rate_limited=not exempt)
    except RequestError as error:
        sandbox.count(f"rejected_{error.status}")
        return Reply.problem(error)
    sandbox.count("processed")
    if query.get("backfill_id"):
        with sandbox.lock:
            lost = faults.loses_backfill_answer(sandbox.rng)
        if lost:  # ingested, but the client never learns it
            sandbox.count("answer_lost")
            if faults.backfill_answer_lost_as == "500":
                return Reply.problem(
                    RequestError("internal", "Injected fault: answer lost.", {"Transient-Error": "true"})
                )
            return Reply.drop()
    return Reply.json(200, result)


def _events_or_empty(body: bytes) -> list:
    try:
        events = json.loads(body).get("events")
    except (ValueError, AttributeError):
        return []
    return events if isinstance(events, list) else []


def _held(sandbox: SandboxState, hold: Any, body: bytes) -> bool:
    """Block a matching request once part of the hold's keys is in Orb (see ``IngestHold``)."""
    if not hold.matches(_events_or_empty(body)):
        return False
    with sandbox.lock:
        if not any(sandbox.store.offered_by_key.get(key) for key in hold.keys):
            return False
        hold.held_requests += 1
    sandbox.count("held")
    hold.reached.set()
    while not hold.release.wait(0.05) and not sandbox.stopping:
        pass
    return True


def _read_events(body: bytes) -> list[dict[str, Any]]:
    """Request-level checks: any failure refuses the request before any event is looked at."""
    payload = parse_json_object(body)
    events = payload.get("events")
    if not isinstance(events, list):
        raise invalid("Body must be an object with an `events` array.", "events: field required and must be an array")
    if set(payload) - {"events"}:
        raise invalid(
            "Unknown top-level fields.", *(f"{name}: unknown field" for name in sorted(set(payload) - {"events"}))
        )
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise invalid(
            f"At most {MAX_EVENTS_PER_REQUEST} events per request; got {len(events)}.",
            f"events: at most {MAX_EVENTS_PER_REQUEST} items allowed",
        )
    first_seen: dict[str, dict[str, Any]] = {}
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise invalid(f"events[{index}] must be an object.", f"events[{index}]: must be an object")
        key = event.get("idempotency_key")
        if not isinstance(key, str) or not key:
            raise invalid(
                f"events[{index}].idempotency_key must be a non-empty string.",
                f"events[{index}].idempotency_key: field required",
            )
        first = first_seen.setdefault(key, event)
        if first is not event and canonical(first) != canonical(event):  # compared only for a repeated key
            raise invalid(
                f"Idempotency key {key!r} appears more than once with different event bodies.",
                f"events[{index}].idempotency_key: duplicate key {key!r} with a different body",
            )
    return events


def _ingest(sandbox: SandboxState, body: bytes, query: dict[str, str], rate_limited: bool = True) -> dict[str, Any]:
    events = _read_events(body)
    debug = query.get("debug", "").lower() == "true"
    backfill_id = query.get("backfill_id") or None
    rules = sandbox.rules
    with sandbox.lock:
        now: datetime = sandbox.now()
        retry_after = sandbox.rate_limiter.admit(len(events), now) if rate_limited else None
        if retry_after is not None:
            raise RequestError(
                "too_many_requests", "Rate limit exceeded: slow down.", {"Retry-After": str(retry_after)}
            )
        sandbox.store.settle(now)
        backfill = None
        if backfill_id is not None:
            backfill = sandbox.store.backfills.get(backfill_id)
            if backfill is None:
                raise RequestError("resource_not_found", f"No backfill with id {backfill_id!r}.")
            if not backfill.accepts_events:
                state = backfill.status if backfill.closed_at is None else "closed"
                raise RequestError(
                    "constraint_violation", f"Backfill {backfill_id} is {state}: it no longer accepts events."
                )
        failures: dict[str, list[str]] = {}
        valid: list[StoredEvent] = []
        seen: set[str] = set()
        repeated: list[str] = []  # the same key and body again in this request: judged once
        for event in events:
            key = event["idempotency_key"]
            if key in seen:
                repeated.append(key)
                continue
            seen.add(key)
            errors, moment = event_errors(event, now, rules, backfill)
            if errors or moment is None:  # no errors means the timestamp was read
                failures[key] = errors
            else:
                valid.append(StoredEvent.from_event(event, moment, now, backfill_id))
        ingested: list[str] = []
        duplicate: list[str] = list(repeated)
        if not failures or rules.ingest_valid_events_on_400:
            store, faults, rng = sandbox.store, sandbox.faults, sandbox.rng
            store.duplicate_count += len(repeated)
            for stored in valid:
                if faults.loses_event(rng):
                    store.lost_keys.append(stored.key)
                    ingested.append(stored.key)  # the answer says ingested; Orb kept nothing
                    continue
                (ingested if store.admit(stored, backfill) else duplicate).append(stored.key)
            if ingested:
                sandbox.changed.notify_all()
    if failures:
        problem_body = error_body(failures, len(events), rules.error_body)
        extra = {
            name: value for name, value in problem_body.items() if name not in ("type", "status", "title", "detail")
        }
        raise RequestError("request_validation", problem_body["detail"], **extra)
    response: dict[str, Any] = {"validation_failed": []}
    if debug:
        response["debug"] = {"duplicate": duplicate, "ingested": ingested}
    accepted = sandbox.store.accepted_requests
    if accepted is not None:
        accepted.append({"sent_at": now, "events": events, "backfill_id": backfill_id, "orb_response": response})
    return response
