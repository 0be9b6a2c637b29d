"""Orb's backfill endpoints (``/v1/events/backfills``...), with the spec's rules:

- create: ``timeframe_start`` < ``timeframe_end``, at most 31 days apart; ``replace_existing_events``
  defaults to true; ``close_time`` defaults to one day after creation, when the backfill closes
  by itself; optional ``customer_id`` *or* ``external_customer_id`` scope. "You may not have
  multiple backfills in a pending or pending_revert state with overlapping timeframes": the
  sandbox reads that literally (whatever their customer scope) and answers 409
  ``ResourceConflict``, as the spec lists for the endpoint.
- close: the backfill's events become billed; with ``replace_existing_events`` the events it
  covers that were billed before are replaced (search shows them ``deprecated``). Orb reflects
  asynchronously: the backfill stays ``pending`` (``close_time`` in the past) for the sandbox's
  ``backfill_reflect_delay`` (default 0: ``reflected`` at once). A closed backfill takes no
  events and refuses a second close (400 ``ConstraintViolation``: the spec does not say close is
  idempotent).
- revert: undoes close (through ``pending_revert`` for the same delay), or ends a pending
  backfill that was never closed at once (``reverted``, its events dropped).
"""

from __future__ import annotations

import uuid
from typing import Any

from orb_bridge_dev.orb_sandbox.events import decode_cursor, page_limit, paginate
from orb_bridge_dev.orb_sandbox.problems import RequestError, invalid, optional_time, parse_json_object
from orb_bridge_dev.orb_sandbox.state import SandboxState
from orb_bridge_dev.orb_sandbox.store import DEFAULT_CLOSE_AFTER, MAX_BACKFILL_WINDOW, Backfill

NEW_BACKFILL_FIELDS = frozenset(
    {
        "timeframe_start",
        "timeframe_end",
        "replace_existing_events",
        "close_time",
        "customer_id",
        "external_customer_id",
        "deprecation_filter",
    }
)
_BLOCKING = ("pending", "pending_revert")


def create(sandbox: SandboxState, body: bytes, query: dict[str, str]) -> dict[str, Any]:
    payload = parse_json_object(body)
    unknown = sorted(set(payload) - NEW_BACKFILL_FIELDS)
    if unknown:
        raise invalid("Unknown backfill fields.", *(f"{name}: unknown field" for name in unknown))
    start = optional_time(payload.get("timeframe_start"), "timeframe_start")
    end = optional_time(payload.get("timeframe_end"), "timeframe_end")
    if start is None or end is None:
        raise invalid(
            "timeframe_start and timeframe_end are required.", "timeframe_start, timeframe_end: fields required"
        )
    if not start < end or end - start > MAX_BACKFILL_WINDOW:
        raise invalid(
            "The backfill window must be positive and at most 31 days.",
            "timeframe_end: window must be positive and at most 31 days",
        )
    replace = payload.get("replace_existing_events", True)
    if not isinstance(replace, bool):
        raise invalid("replace_existing_events must be a boolean.", "replace_existing_events: must be a boolean")
    scope: dict[str, Any] = {
        name: payload.get(name) for name in ("customer_id", "external_customer_id", "deprecation_filter")
    }
    for name, value in scope.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise invalid(f"{name} must be a non-empty string or null.", f"{name}: must be a non-empty string")
    if scope["customer_id"] is not None and scope["external_customer_id"] is not None:
        raise invalid(
            "Give customer_id or external_customer_id, not both.",
            "customer_id, external_customer_id: at most one may be given",
        )
    with sandbox.lock:
        now = sandbox.now()
        sandbox.store.settle(now)
        close_time = optional_time(payload.get("close_time"), "close_time") or now + DEFAULT_CLOSE_AFTER
        if close_time <= now:
            raise invalid("close_time must be in the future.", "close_time: must be in the future")
        for other in sandbox.store.backfills.values():
            if other.status in _BLOCKING and other.overlaps(start, end):
                raise RequestError(
                    "resource_conflict",
                    f"Backfill {other.id} ({other.status}) overlaps this timeframe; close or revert it first.",
                )
        backfill = Backfill(f"bf_{uuid.uuid4().hex[:16]}", now, start, end, close_time, replace, **scope)
        sandbox.store.backfills[backfill.id] = backfill
        return backfill.to_orb()


def list_backfills(sandbox: SandboxState, body: bytes, query: dict[str, str]) -> dict[str, Any]:
    limit, offset = page_limit(query), decode_cursor(query.get("cursor"))
    with sandbox.lock:
        sandbox.store.settle(sandbox.now())
        # Most recently created first (dicts keep insertion order).
        items = [backfill.to_orb() for backfill in reversed(sandbox.store.backfills.values())]
    return paginate(items, offset, limit)


def fetch(sandbox: SandboxState, body: bytes, query: dict[str, str], id: str) -> dict[str, Any]:
    with sandbox.lock:
        sandbox.store.settle(sandbox.now())
        return _find(sandbox, id).to_orb()


def close(sandbox: SandboxState, body: bytes, query: dict[str, str], id: str) -> dict[str, Any]:
    with sandbox.lock:
        now = sandbox.now()
        sandbox.store.settle(now)
        backfill = _find(sandbox, id)
        if not backfill.accepts_events:
            state = backfill.status if backfill.closed_at is None else f"{backfill.status}, closed"
            raise RequestError("constraint_violation", f"Backfill {id} is {state}; only an open one closes.")
        sandbox.store.close(backfill, now)
        sandbox.changed.notify_all()
        return backfill.to_orb()


def revert(sandbox: SandboxState, body: bytes, query: dict[str, str], id: str) -> dict[str, Any]:
    with sandbox.lock:
        now = sandbox.now()
        sandbox.store.settle(now)
        backfill = _find(sandbox, id)
        if backfill.status not in ("pending", "reflected"):
            raise RequestError("constraint_violation", f"Backfill {id} is already {backfill.status}.")
        sandbox.store.revert(backfill, now)
        sandbox.changed.notify_all()
        return backfill.to_orb()


def _find(sandbox: SandboxState, backfill_id: str) -> Backfill:
    backfill = sandbox.store.backfills.get(backfill_id)
    if backfill is None:
        raise RequestError("resource_not_found", f"No backfill with id {backfill_id!r}.")
    return backfill
