"""A small client for Orb's backfill and search endpoints, for `orb-bridge backfill` (never deployed).

Per Orb's OpenAPI spec (https://docs.withorb.com/api-reference): ``POST /events/backfills``
(``NewBackfill``), ``GET /events/backfills`` (``Backfills``, cursor paginated),
``GET /events/backfills/{id}``, ``POST /events/backfills/{id}/close``,
``POST /events/backfills/{id}/revert``, ``POST /events/search`` (``EventSearchCriteria``: 1 to
500 ``event_ids``, optional ``timeframe_start``/``timeframe_end``) and ``POST /ingest?backfill_id=``.
It runs on an operator's machine, so unlike the Lambda client it retries itself: 429 (honouring
``Retry-After`` / ``retry-after-ms``; Orb did not process the request) always, 5xx and network
errors only where repeating the call cannot bill twice. Never ``/ingest?backfill_id=``: Orb
documents no deduplication of keys within a backfill, so an ingest whose answer is lost is
*uncertain* (``OrbApiError.uncertain``) and the caller reverts that backfill instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from orb_bridge_dev.deployment.orb_pacer import Pacer

MAX_SEARCH_IDS = 500
MAX_INGEST_EVENTS = 500
PENDING_STATUSES = frozenset({"pending", "pending_revert"})


class OrbApiError(RuntimeError):
    def __init__(self, status_code: int | None, message: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status_code}: {message}" if status_code is not None else message)
        self.status_code = status_code
        self.body = body

    @property
    def uncertain(self) -> bool:
        """Orb may have processed the request: no answer, a 5xx, 408 or 409. Any other 4xx is a
        refusal (Orb: a 4xx request's keys are "not marked as processed")."""
        return self.status_code is None or self.status_code >= 500 or self.status_code in (408, 409)


class Backfill(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    status: str
    created_at: datetime
    timeframe_start: datetime
    timeframe_end: datetime
    events_ingested: int = 0
    close_time: datetime | None = None
    reverted_at: datetime | None = None
    customer_id: str | None = None
    replace_existing_events: bool

    @property
    def pending(self) -> bool:
        return self.status in PENDING_STATUSES

    def closed(self, now: datetime) -> bool:
        """Closed, by a call or at its close_time: reflected, or still ``pending`` while Orb reflects
        it ("close_time ... If in the past, the time at which the backfill was closed")."""
        past = self.close_time is not None and self.close_time <= now
        return self.status == "reflected" or (self.status == "pending" and past)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Timeframes are [start, end): Orb refuses two pending backfills whose timeframes overlap."""
        return self.timeframe_start < end and start < self.timeframe_end


class OrbEvent(BaseModel):
    """An event as ``/events/search`` returns it (``id`` is the idempotency key)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    event_name: str
    timestamp: datetime
    properties: dict[str, Any] = {}
    customer_id: str | None = None
    external_customer_id: str | None = None
    deprecated: bool = False


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def retry_after_seconds(response: httpx.Response) -> float | None:
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


class OrbBackfillClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.Client | None = None,
        pacer: Pacer | None = None,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = http or httpx.Client(timeout=timeout_seconds, follow_redirects=False)
        self.pacer = pacer or Pacer(sleep=sleep)
        self.attempts = attempts
        self._sleep = sleep
        self.requests_made = 0
        self.rate_limited = 0

    def __repr__(self) -> str:  # never show the key
        return f"OrbBackfillClient({self.base_url!r})"

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        events: int = 0,
        idempotent: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One call, retried on 429 (never processed), and on 5xx and network errors if ``idempotent``."""
        last_error = "no attempt made"
        for attempt in range(self.attempts):
            self.pacer.acquire(events)
            self.requests_made += 1
            try:
                response = self._http.request(
                    method,
                    self.base_url + path,
                    json=json,
                    params=params,
                    headers={
                        "Authorization": f"Bearer {self._api_key}",
                        "Accept": "application/json",
                        **(headers or {}),
                    },
                )
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                if not idempotent:
                    break
                self._sleep(min(0.5 * 2**attempt, 8))
                continue
            if response.status_code >= 500 and not idempotent:
                raise OrbApiError(response.status_code, _problem(_json(response), response))
            if response.status_code == 429 or response.status_code >= 500:
                self.rate_limited += response.status_code == 429
                last_error = f"HTTP {response.status_code}"
                delay = retry_after_seconds(response)
                self._sleep(min(delay, 60) if delay is not None else min(0.5 * 2**attempt, 8))
                continue
            body = _json(response)
            if response.status_code >= 400:
                raise OrbApiError(response.status_code, _problem(body, response), body)
            return body
        raise OrbApiError(None, f"{method} {path} failed ({last_error})")

    # -- backfills ------------------------------------------------------------------------------
    @staticmethod
    def new_backfill_body(
        *,
        timeframe_start: datetime,
        timeframe_end: datetime,
        close_time: datetime,
        external_customer_id: str | None = None,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "timeframe_start": _iso(timeframe_start),
            "timeframe_end": _iso(timeframe_end),
            "close_time": _iso(close_time),
            # Never replace: Orb's default (true) would deprecate every existing event in the
            # timeframe, i.e. all the usage that did get through, and bill only what we resend.
            "replace_existing_events": False,
        }
        if external_customer_id:
            body["external_customer_id"] = external_customer_id
        elif customer_id:
            body["customer_id"] = customer_id
        return body

    def create_backfill(self, body: Mapping[str, Any], idempotency_key: str) -> Backfill:
        """``POST /events/backfills`` with an ``Idempotency-Key`` (Orb keeps it 48 hours): the same
        key and body sent again, after a lost answer or a kill, answers the same backfill."""
        return Backfill.model_validate(
            self._request("POST", "/events/backfills", json=dict(body), headers={"Idempotency-Key": idempotency_key})
        )

    def list_backfills(self, page_size: int = 100) -> Iterator[Backfill]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor:
                params["cursor"] = cursor
            page = self._request("GET", "/events/backfills", params=params)
            for item in page.get("data", []):
                yield Backfill.model_validate(item)
            metadata = page.get("pagination_metadata") or {}
            cursor = metadata.get("next_cursor")
            if not metadata.get("has_more") or not cursor:
                return

    def pending_backfills(self) -> list[Backfill]:
        return [backfill for backfill in self.list_backfills() if backfill.pending]

    def fetch_backfill(self, backfill_id: str) -> Backfill:
        return Backfill.model_validate(self._request("GET", f"/events/backfills/{backfill_id}"))

    def close_backfill(self, backfill_id: str) -> Backfill:
        # Retried: closing twice cannot bill twice (a second close is refused, see Backfiller).
        return Backfill.model_validate(self._request("POST", f"/events/backfills/{backfill_id}/close"))

    def revert_backfill(self, backfill_id: str) -> Backfill:
        return Backfill.model_validate(self._request("POST", f"/events/backfills/{backfill_id}/revert"))

    # -- events ---------------------------------------------------------------------------------
    def search_events(
        self, event_ids: Sequence[str], timeframe_start: datetime, timeframe_end: datetime
    ) -> dict[str, OrbEvent]:
        """The events Orb has under these idempotency keys (500 per request, as the spec allows)."""
        found: dict[str, OrbEvent] = {}
        for start in range(0, len(event_ids), MAX_SEARCH_IDS):
            body = {
                "event_ids": list(event_ids[start : start + MAX_SEARCH_IDS]),
                # Without timeframe_start Orb searches only the last week.
                "timeframe_start": _iso(timeframe_start),
                "timeframe_end": _iso(timeframe_end),
            }
            for item in self._request("POST", "/events/search", json=body).get("data", []):
                event = OrbEvent.model_validate(item)
                found[event.id] = event
        return found

    def ingest(self, events: Sequence[Mapping[str, Any]], backfill_id: str) -> Any:
        """One ``POST /ingest?backfill_id=``, retried only on a 429; Orb's answer. Raises
        OrbApiError if Orb refuses it (e.g. a 400) or if its outcome is unknown (``uncertain``)."""
        if len(events) > MAX_INGEST_EVENTS:
            raise ValueError(f"at most {MAX_INGEST_EVENTS} events per request")
        return self._request(
            "POST",
            "/ingest",
            json={"events": list(events)},
            params={"backfill_id": backfill_id},
            events=len(events),
            idempotent=False,
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text[:500]}


def _problem(body: Any, response: httpx.Response) -> str:
    if isinstance(body, Mapping):
        parts = [str(body[key]) for key in ("title", "detail") if body.get(key)]
        parts += [str(error) for error in body.get("validation_errors") or []][:5]
        if parts:
            return "; ".join(parts)
    return response.reason_phrase or "error"
