"""``PUT /v1/events/{event_id}`` (amend) and ``PUT /v1/events/{event_id}/deprecate``, as Orb's spec
describes them.

Amend: the event keeps its id and Orb bills the new body; the original is kept but ignored. Search
"does not return events that were amended", so an amended key disappears from search (the sandbox
keeps one event carrying the new body, billed and counted by volume, never returned by search).
The new body must keep the event's timestamp and customer, and the customer must be known to Orb.
Deprecate: the event is kept, search returns it with ``deprecated: true``, it is no longer billed.
Orb's per-customer limit (100 amendments or deprecations per 100 days) and billing-period rules
are not modelled.
"""

from __future__ import annotations

from typing import Any

from orb_bridge_dev.orb_sandbox.problems import RequestError, invalid, parse_json_object
from orb_bridge_dev.orb_sandbox.state import SandboxState
from orb_bridge_dev.orb_sandbox.store import StoredEvent
from orb_bridge_dev.orb_sandbox.validation import event_errors

AMENDED_FIELDS = frozenset({"customer_id", "external_customer_id", "event_name", "timestamp", "properties"})


def _current(sandbox: SandboxState, event_id: str) -> StoredEvent:
    """The event Orb bills under ``event_id`` (one at most: live keys deduplicate)."""
    sandbox.store.settle(sandbox.now())
    for event in sandbox.store.billed():
        if event.key == event_id:
            return event
    raise RequestError("resource_not_found", f"No event with id {event_id!r}.")


def amend(sandbox: SandboxState, body: bytes, query: dict[str, str], id: str) -> dict[str, Any]:
    payload = parse_json_object(body)
    unknown = sorted(set(payload) - AMENDED_FIELDS)
    if unknown:  # AmendedEvent: additionalProperties false (so no idempotency_key either)
        raise invalid("Unknown fields in the amended event.", *(f"{name}: unknown field" for name in unknown))
    with sandbox.lock:
        event = _current(sandbox, id)
        errors, moment = event_errors({**payload, "idempotency_key": id}, sandbox.now(), sandbox.rules)
        # Timing rules (grace period, future limit) do not apply: the timestamp must be the event's own.
        timing = f"timestamp: {payload.get('timestamp')} is "
        errors = [error for error in errors if not error.startswith(timing)]
        if moment is not None and moment != event.timestamp:
            errors.append("timestamp: must match the timestamp of the existing event")
        if (payload.get("customer_id"), payload.get("external_customer_id")) != (
            event.customer_id,
            event.external_customer_id,
        ):
            errors.append("customer: must match the customer of the existing event")
        if event.unattributed:
            errors.append("customer: must identify a customer in Orb")
        if errors:
            raise invalid(f"The amended event for {id!r} is invalid.", *errors)
        event.event_name = payload["event_name"]
        event.properties = dict(payload["properties"])
        event.amended = True
        sandbox.changed.notify_all()
    return {"amended": id}


def deprecate(sandbox: SandboxState, body: bytes, query: dict[str, str], id: str) -> dict[str, Any]:
    with sandbox.lock:
        sandbox.store.settle(sandbox.now())
        if any(event.key == id and event.deprecated for event in sandbox.store.visible()):
            return {"deprecated": id}  # by design idempotent
        event = _current(sandbox, id)
        if event.unattributed:
            raise RequestError("constraint_violation", f"Event {id!r} has no customer in Orb: it cannot be deprecated.")
        event.deprecated = True
        sandbox.changed.notify_all()
    return {"deprecated": id}
