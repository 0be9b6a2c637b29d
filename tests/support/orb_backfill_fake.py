"""An Orb fake for unit tests (an httpx.MockTransport handler): ingest, search and backfills.

Follows Orb's OpenAPI spec (https://docs.withorb.com/api-reference) where the CLI depends on it:
an idempotency key is ingested at most once; events older than the grace period are refused
(the whole request, 400 RequestValidationError) unless sent with the ``backfill_id`` of a pending
backfill whose timeframe [start, end) and customer scope cover them; ``replace_existing_events``
defaults to true and, on close, deprecates the events already in the timeframe; two pending
backfills may not overlap; search needs 1 to 500 ``event_ids`` and defaults to the last week.
Events of a backfill become visible (searchable, billed) when it is closed; reverting a backfill
drops its events. The Orb sandbox (real HTTP) has the fuller model: these tests need no sockets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

VALIDATION = "https://docs.withorb.com/reference/error-responses#400-request-validation-errors"
CONSTRAINT = "https://docs.withorb.com/reference/error-responses#400-constraint-violation"
CONFLICT = "https://docs.withorb.com/reference/error-responses#409-resource-conflict"
NEW_BACKFILL_FIELDS = {
    "replace_existing_events",
    "timeframe_start",
    "timeframe_end",
    "close_time",
    "customer_id",
    "external_customer_id",
    "deprecation_filter",
}


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _problem(status: int, kind: str, detail: str, errors: list[Any] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"type": kind, "status": status, "title": "error", "detail": detail}
    if kind == VALIDATION:
        body["validation_errors"] = errors or [detail]
    return httpx.Response(status, json=body)


class FakeOrb:
    def __init__(self, now: Callable[[], datetime], api_key: str = "orb-key", grace_hours: float = 12) -> None:
        self.now, self.api_key, self.grace = now, api_key, timedelta(hours=grace_hours)
        self.events: dict[str, dict[str, Any]] = {}  # key -> event (+ "backfill_id", "deprecated")
        self.backfills: dict[str, dict[str, Any]] = {}
        self.ingest_calls: list[tuple[str | None, list[str]]] = []
        self.duplicate_keys_sent = 0
        self.fail_next: list[httpx.Response] = []  # answers to give before the real ones
        self.refuse_keys: set[str] = set()  # events refused by validation wherever they are sent
        self.kill_at_ingest_call: int | None = None  # raise KeyboardInterrupt at this /ingest call (1-based)
        # ... after Orb took that call's events: killed while Orb held the request
        self.kill_after_ingesting = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    # -- views for assertions -------------------------------------------------------------------
    def billed(self) -> dict[str, dict[str, Any]]:
        """Events that count: ingested live or through a closed backfill, not deprecated."""
        return {key: event for key, event in self.events.items() if self._visible(event) and not event["deprecated"]}

    def _visible(self, event: dict[str, Any]) -> bool:
        backfill = self.backfills.get(event.get("backfill_id") or "")
        return backfill is None or backfill["status"] == "reflected"

    # -- HTTP -----------------------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return httpx.Response(
                401,
                json={
                    "type": "https://docs.withorb.com/reference/error-responses#401-authentication-error",
                    "status": 401,
                    "title": "Unauthorized",
                },
            )
        if self.fail_next:
            return self.fail_next.pop(0)
        path, method = request.url.path.removeprefix("/v1"), request.method
        body = json.loads(request.content) if request.content else {}
        if (method, path) == ("POST", "/ingest"):
            return self._ingest(body, request.url.params.get("backfill_id"))
        if (method, path) == ("POST", "/events/search"):
            return self._search(body)
        if (method, path) == ("POST", "/events/backfills"):
            return self._create(body)
        if (method, path) == ("GET", "/events/backfills"):
            return self._list(int(request.url.params.get("limit", 20)), request.url.params.get("cursor"))
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[:2] == ["events", "backfills"] and parts[2] in self.backfills:
            if method == "GET" and len(parts) == 3:
                return httpx.Response(200, json=self._public(self.backfills[parts[2]]))
            if method == "POST" and parts[3:] == ["close"]:
                return self._close(self.backfills[parts[2]])
            if method == "POST" and parts[3:] == ["revert"]:
                return self._revert(self.backfills[parts[2]])
        return _problem(404, "https://docs.withorb.com/reference/error-responses#404-resource-not-found", path)

    def _ingest(self, body: dict[str, Any], backfill_id: str | None) -> httpx.Response:
        events = body["events"]
        keys = [event["idempotency_key"] for event in events]
        call = len(self.ingest_calls) + 1
        if self.kill_at_ingest_call == call and not self.kill_after_ingesting:
            raise KeyboardInterrupt("killed while ingesting")
        self.ingest_calls.append((backfill_id, keys))
        answer = self._take(events, backfill_id)
        if self.kill_at_ingest_call == call:
            raise KeyboardInterrupt("killed while Orb held the request")
        return answer

    def _take(self, events: list[dict[str, Any]], backfill_id: str | None) -> httpx.Response:
        backfill = self.backfills.get(backfill_id) if backfill_id else None
        if backfill_id and (backfill is None or backfill["status"] != "pending"):
            return _problem(400, VALIDATION, f"backfill {backfill_id} is not pending")
        errors = []
        for event in events:
            moment = _time(event["timestamp"])
            if event["idempotency_key"] in self.refuse_keys:
                errors.append({"idempotency_key": event["idempotency_key"], "validation_errors": ["refused"]})
            elif backfill is not None:
                covered = backfill["timeframe_start"] <= moment < backfill["timeframe_end"]
                scope = backfill["external_customer_id"]
                if not covered or (scope and event.get("external_customer_id") != scope):
                    errors.append(
                        {"idempotency_key": event["idempotency_key"], "validation_errors": ["outside the backfill"]}
                    )
            elif moment < self.now() - self.grace:
                errors.append(
                    {
                        "idempotency_key": event["idempotency_key"],
                        "validation_errors": ["timestamp is outside the grace period"],
                    }
                )
        if errors:
            return _problem(400, VALIDATION, "Request validation error", errors)
        for event in events:
            if event["idempotency_key"] in self.events:
                self.duplicate_keys_sent += 1
                continue
            self.events[event["idempotency_key"]] = {**event, "backfill_id": backfill_id, "deprecated": False}
        return httpx.Response(200, json={"validation_failed": []})

    def _search(self, body: dict[str, Any]) -> httpx.Response:
        ids = body.get("event_ids")
        if (
            set(body) - {"event_ids", "timeframe_start", "timeframe_end"}
            or not isinstance(ids, list)
            or not 1 <= len(ids) <= 500
        ):
            return _problem(400, VALIDATION, "event_ids must hold 1 to 500 ids")
        start = _time(body["timeframe_start"]) if body.get("timeframe_start") else self.now() - timedelta(days=7)
        end = _time(body["timeframe_end"]) if body.get("timeframe_end") else self.now()
        data = []
        for key in ids:
            event = self.events.get(key)
            if event and self._visible(event) and start <= _time(event["timestamp"]) < end:
                data.append(
                    {
                        "id": key,
                        "event_name": event["event_name"],
                        "timestamp": event["timestamp"],
                        "properties": event.get("properties", {}),
                        "customer_id": event.get("customer_id"),
                        "external_customer_id": event.get("external_customer_id"),
                        "deprecated": event["deprecated"],
                    }
                )
        return httpx.Response(200, json={"data": data})

    def _create(self, body: dict[str, Any]) -> httpx.Response:
        if set(body) - NEW_BACKFILL_FIELDS or "timeframe_start" not in body or "timeframe_end" not in body:
            return _problem(400, VALIDATION, "invalid NewBackfill")
        start, end = _time(body["timeframe_start"]), _time(body["timeframe_end"])
        if not start < end or end - start > timedelta(days=31):
            return _problem(400, VALIDATION, "a backfill's timeframe is at most 31 days")
        for other in self.backfills.values():
            if (
                other["status"] in ("pending", "pending_revert")
                and other["timeframe_start"] < end
                and start < other["timeframe_end"]
            ):
                return _problem(409, CONFLICT, f"overlaps pending backfill {other['id']}")
        created = self.now()
        backfill = {
            "id": f"bf_{len(self.backfills) + 1}",
            "status": "pending",
            "created_at": created,
            "timeframe_start": start,
            "timeframe_end": end,
            "events_ingested": 0,
            "close_time": _time(body["close_time"]) if body.get("close_time") else created + timedelta(days=1),
            "reverted_at": None,
            "customer_id": body.get("customer_id"),
            "external_customer_id": body.get("external_customer_id"),
            "replace_existing_events": body.get("replace_existing_events", True),
        }
        self.backfills[backfill["id"]] = backfill
        return httpx.Response(200, json=self._public(backfill))

    def _close(self, backfill: dict[str, Any]) -> httpx.Response:
        if backfill["status"] != "pending":
            return _problem(400, CONSTRAINT, "backfill is not pending")
        if backfill["replace_existing_events"]:
            for event in self.events.values():
                if (
                    event.get("backfill_id") != backfill["id"]
                    and backfill["timeframe_start"] <= _time(event["timestamp"]) < backfill["timeframe_end"]
                ):
                    event["deprecated"] = True
        backfill["status"], backfill["close_time"] = "reflected", self.now()
        return httpx.Response(200, json=self._public(backfill))

    def _revert(self, backfill: dict[str, Any]) -> httpx.Response:
        if backfill["status"] not in ("pending", "reflected"):
            return _problem(400, CONSTRAINT, "backfill is already reverted")
        self.events = {k: e for k, e in self.events.items() if e.get("backfill_id") != backfill["id"]}
        for event in self.events.values():  # what its close replaced counts again
            event["deprecated"] = False
        backfill["status"], backfill["reverted_at"] = "reverted", self.now()
        return httpx.Response(200, json=self._public(backfill))

    def _list(self, limit: int, cursor: str | None) -> httpx.Response:
        ordered = sorted(self.backfills.values(), key=lambda b: b["id"], reverse=True)
        start = int(cursor) if cursor else 0
        page = ordered[start : start + limit]
        more = start + limit < len(ordered)
        return httpx.Response(
            200,
            json={
                "data": [self._public(b) for b in page],
                "pagination_metadata": {"has_more": more, "next_cursor": str(start + limit) if more else None},
            },
        )

    def _public(self, backfill: dict[str, Any]) -> dict[str, Any]:
        events = sum(1 for event in self.events.values() if event.get("backfill_id") == backfill["id"])
        return {
            "id": backfill["id"],
            "status": backfill["status"],
            "created_at": _iso(backfill["created_at"]),
            "timeframe_start": _iso(backfill["timeframe_start"]),
            "timeframe_end": _iso(backfill["timeframe_end"]),
            "events_ingested": events,
            "close_time": _iso(backfill["close_time"]),
            "reverted_at": _iso(backfill["reverted_at"]),
            "customer_id": backfill["customer_id"],
            "replace_existing_events": backfill["replace_existing_events"],
            "deprecation_filter": None,
        }
