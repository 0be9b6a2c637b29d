"""Orb's validation rules for ingested events, and the 400 bodies that report failures.

Orb's spec: a 200's ``validation_failed`` "will always be empty"; any invalid event makes the
whole request a 400 ``RequestValidationError`` whose ``validation_errors`` item shape is not
published. ``ERROR_BODY_VARIANTS`` are the shapes a client must be ready for (see ``error_body``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orb_bridge_dev.orb_sandbox.problems import parse_iso8601, problem

MAX_EVENTS_PER_REQUEST = 500
DEFAULT_GRACE_PERIOD = timedelta(hours=12)
# Orb's texts disagree (5 minutes in the ingest docs, 1 hour and 24 hours elsewhere): a setting,
# defaulting to the strictest.
DEFAULT_FUTURE_LIMIT = timedelta(minutes=5)
ERROR_BODY_VARIANTS = ("validation_failed", "objects", "strings", "opaque")
EVENT_FIELDS = frozenset(
    {"event_name", "idempotency_key", "timestamp", "properties", "customer_id", "external_customer_id"}
)


@dataclass
class IngestRules:
    """How the sandbox judges events and answers invalid ones (changeable while it runs)."""

    grace_period: timedelta = DEFAULT_GRACE_PERIOD
    future_limit: timedelta = DEFAULT_FUTURE_LIMIT
    # Whether the valid events of a request answered 400 are ingested anyway: Orb does not say,
    # so clients must handle both (default: not, the reading that loses events if assumed wrong).
    ingest_valid_events_on_400: bool = False
    error_body: str = "validation_failed"

    def __post_init__(self) -> None:
        if self.error_body not in ERROR_BODY_VARIANTS:
            raise ValueError(f"error_body must be one of {', '.join(ERROR_BODY_VARIANTS)}")


# The timestamp form clients send (``isoformat(timespec="milliseconds")`` with a ``Z``): ASCII digits
# only, which ``datetime.fromisoformat`` reads in C exactly as ``parse_iso8601`` would.
_CANONICAL_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_PROPERTY_TYPES = frozenset({str, int, float, bool})


def event_errors(
    event: dict[str, Any], now: datetime, rules: IngestRules, backfill: Any = None
) -> tuple[list[str], datetime | None]:
    """Orb's messages for what is wrong with one event (empty if valid), and its parsed time.

    ``backfill`` (a pending backfill) replaces the grace period by its window and customer scope.
    The usual event (plainly valid, see ``_plainly_valid_moment``) is judged by a fast path; any
    other by ``event_errors_by_full_rules``, which gives the same answer for every event (tested)."""
    if backfill is None:
        moment = _plainly_valid_moment(event, now, rules)
        if moment is not None:
            return [], moment
    return event_errors_by_full_rules(event, now, rules, backfill)


def _plainly_valid_moment(event: dict[str, Any], now: datetime, rules: IngestRules) -> datetime | None:
    """The time of an event valid by every rule, checked with exact types and a canonical
    timestamp; None when that cannot be decided this cheaply (not necessarily invalid)."""
    if not event.keys() <= EVENT_FIELDS:
        return None
    event_name = event.get("event_name")
    if type(event_name) is not str or not event_name.strip():
        return None
    customer_id, external_id = event.get("customer_id"), event.get("external_customer_id")
    customer = external_id if customer_id is None else customer_id
    if (customer_id is None) == (external_id is None) or type(customer) is not str or not customer:
        return None
    properties = event.get("properties")
    if type(properties) is not dict or not _PROPERTY_TYPES.issuperset(map(type, properties.values())):
        return None
    timestamp = event.get("timestamp")
    if type(timestamp) is not str or _CANONICAL_TIMESTAMP.fullmatch(timestamp) is None:
        return None
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:  # e.g. a 13th month: the full rules word the error
        return None
    if moment > now + rules.future_limit or moment < now - rules.grace_period:
        return None
    return moment


def event_errors_by_full_rules(
    event: dict[str, Any], now: datetime, rules: IngestRules, backfill: Any = None
) -> tuple[list[str], datetime | None]:
    """``event_errors`` by every rule, for any event (valid or not, any types)."""
    errors = [f"{name}: unknown field" for name in sorted(set(event) - EVENT_FIELDS)]
    event_name = event.get("event_name")
    if not isinstance(event_name, str) or not event_name.strip():
        errors.append("event_name: field required and must be a non-empty string")

    customer_id, external_id = event.get("customer_id"), event.get("external_customer_id")
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
    if moment is not None and isinstance(timestamp, str):
        errors.extend(_timing_errors(timestamp, moment, now, rules, backfill))
    if backfill is not None and not backfill.covers_customer(customer_id, external_id):
        errors.append(f"Backfill {backfill.id} is scoped to another customer")
    return errors, moment


def _timing_errors(timestamp: str, moment: datetime, now: datetime, rules: IngestRules, backfill: Any) -> list[str]:
    if moment > now + rules.future_limit:
        return [f"timestamp: {timestamp} is more than {_duration(rules.future_limit)} in the future"]
    if backfill is not None:
        if not backfill.timeframe_start <= moment < backfill.timeframe_end:
            return [f"timestamp: {timestamp} is outside the backfill's timeframe"]
        return []
    if moment < now - rules.grace_period:
        return [
            f"timestamp: {timestamp} is older than the grace period ({_duration(rules.grace_period)}); use a backfill"
        ]
    return []


def _duration(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes / 60:g} hours" if minutes >= 60 else f"{minutes:g} minutes"


def error_body(failures: dict[str, list[str]], event_count: int, variant: str) -> dict[str, Any]:
    """The 400 ``RequestValidationError`` for these failing keys, in one of Orb's possible shapes:

    ``validation_failed``: also a ``validation_failed`` list like the 200's; ``validation_errors``
    holds the messages (strings naming no key). ``objects``: ``validation_errors`` items are
    ``{"idempotency_key", "validation_errors"}``. ``strings``: items quote the key
    (``Event with idempotency_key 'k' is invalid: msg``). ``opaque``: items name no key."""
    count = len(failures)
    detail = (
        f"{count} of {event_count} events failed validation; none of this request's failing keys was marked processed."
    )
    body = problem("request_validation", detail)
    if variant == "validation_failed":
        body["validation_errors"] = [message for messages in failures.values() for message in messages]
        body["validation_failed"] = [
            {"idempotency_key": key, "validation_errors": messages} for key, messages in failures.items()
        ]
    elif variant == "objects":
        body["validation_errors"] = [
            {"idempotency_key": key, "validation_errors": messages} for key, messages in failures.items()
        ]
    elif variant == "strings":
        body["validation_errors"] = [
            f"Event with idempotency_key '{key}' is invalid: {message}"
            for key, messages in failures.items()
            for message in messages
        ]
    else:
        noun = "event" if count == 1 else "events"
        distinct = dict.fromkeys(message for messages in failures.values() for message in messages)
        body["validation_errors"] = [f"{count} {noun} failed validation", *distinct]
    return body
