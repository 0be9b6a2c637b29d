"""``POST /v1/events/search`` and ``GET /v1/events/volume`` as Orb's spec describes them,
and the cursor pagination Orb's list endpoints share."""

from __future__ import annotations

import base64
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from orb_bridge_dev.orb_sandbox.problems import format_utc, invalid, optional_time, parse_json_object
from orb_bridge_dev.orb_sandbox.state import SandboxState

SEARCH_MAX_IDS = 500  # EventSearchCriteria.event_ids: minItems 1, maxItems 500
SEARCH_DEFAULT_LOOKBACK = timedelta(days=7)  # "If not specified, the one week ago is used."
SEARCH_FIELDS = frozenset({"event_ids", "timeframe_start", "timeframe_end"})
HOUR = timedelta(hours=1)


def search(sandbox: SandboxState, body: bytes, query: dict[str, str]) -> dict[str, Any]:
    payload = parse_json_object(body)
    unknown = sorted(set(payload) - SEARCH_FIELDS)
    if unknown:
        raise invalid("Unknown search criteria.", *(f"{name}: unknown field" for name in unknown))
    event_ids = payload.get("event_ids")
    if not isinstance(event_ids, list) or not all(isinstance(item, str) for item in event_ids):
        raise invalid(
            "event_ids must be an array of strings.", "event_ids: field required and must be an array of strings"
        )
    if not 1 <= len(event_ids) <= SEARCH_MAX_IDS:
        raise invalid(
            f"event_ids must hold 1 to {SEARCH_MAX_IDS} ids; got {len(event_ids)}.",
            f"event_ids: between 1 and {SEARCH_MAX_IDS} items required",
        )
    with sandbox.lock:
        now = sandbox.now()
        sandbox.store.settle(now)
        # Each bound defaults on its own: start to a week before now, end to now.
        start = optional_time(payload.get("timeframe_start"), "timeframe_start") or now - SEARCH_DEFAULT_LOOKBACK
        end = optional_time(payload.get("timeframe_end"), "timeframe_end") or now
        by_key: dict[str, list] = {}
        for event in sandbox.store.searchable_under(set(event_ids)):
            if start <= event.timestamp < end:
                by_key.setdefault(event.key, []).append(event)
        # Case-sensitive ids, in the order asked, each once.
        data = [event.to_orb() for key in dict.fromkeys(event_ids) for event in by_key.get(key, [])]
    return {"data": data}


def volume(sandbox: SandboxState, body: bytes, query: dict[str, str]) -> dict[str, Any]:
    start = optional_time(query.get("timeframe_start"), "timeframe_start")
    if start is None:
        raise invalid("timeframe_start is required.", "timeframe_start: field required")
    limit = page_limit(query)
    offset = decode_cursor(query.get("cursor"))
    with sandbox.lock:
        now = sandbox.now()
        sandbox.store.settle(now)
        end = optional_time(query.get("timeframe_end"), "timeframe_end") or now
        # Not hour-aligned bounds take in the whole hour they fall in (spec).
        first, last = floor_hour(start), _ceil_hour(end)
        counts: Counter[datetime] = Counter(
            floor_hour(event.timestamp) for event in sandbox.store.billed() if first <= event.timestamp < last
        )
    buckets = [
        {"timeframe_start": format_utc(hour), "timeframe_end": format_utc(hour + HOUR), "count": counts[hour]}
        for hour in sorted(counts)
    ]  # only hours holding events, oldest first
    return paginate(buckets, offset, limit)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


# ---- pagination (limit 1..100, default 20; opaque cursor) -------------------------------------


def page_limit(query: dict[str, str]) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return 20
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise invalid("limit must be an integer from 1 to 100.", "limit: between 1 and 100")
    return limit


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
        if not text.startswith("offset:"):
            raise ValueError(cursor)
        return int(text.removeprefix("offset:"))
    except ValueError:
        raise invalid("cursor is not one this API returned.", "cursor: invalid") from None


def paginate(items: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    page = items[offset : offset + limit]
    has_more = offset + limit < len(items)
    cursor = base64.urlsafe_b64encode(f"offset:{offset + limit}".encode("ascii")).decode("ascii") if has_more else None
    return {"data": page, "pagination_metadata": {"has_more": has_more, "next_cursor": cursor}}
