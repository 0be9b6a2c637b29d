"""Orb's read side, as the reconciler uses it: ``POST /events/search``, ``GET /events/volume`` and
``GET /events/backfills/{id}``, over the container's one httpx client (``orb.client``).

Every call goes through ``pace`` first (the reconciler's request budget); a 429 raises
``OrbRateLimitedError`` with Orb's ``Retry-After`` so the run stops rather than pressing on; any other
failure raises ``OrbReadError``: the run saves its checkpoint and the next one resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from orb_bridge.orb.client import retry_after, shared_http_client

SEARCH_MAX_IDS = 500  # EventSearchCriteria.event_ids: 1 to 500
VOLUME_PAGE_LIMIT = 100  # /events/volume: limit 1 to 100 (one bucket per hour)


class OrbReadError(Exception):
    """Orb did not answer a read usefully (network, 5xx, unexpected body)."""


class OrbRateLimitedError(OrbReadError):
    def __init__(self, retry_after_seconds: float) -> None:
        super().__init__(f"Orb answered 429: retry after {retry_after_seconds:g} s")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class FoundEvent:
    """An event as search returns it (``id`` is the idempotency key)."""

    key: str
    event_name: str
    customer_id: str | None
    external_customer_id: str | None
    timestamp: str
    properties: dict[str, Any]
    deprecated: bool

    @classmethod
    def from_orb(cls, item: Any) -> FoundEvent:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise OrbReadError("a search result without an id")
        properties = item.get("properties")
        return cls(
            item["id"],
            str(item.get("event_name")),
            item.get("customer_id") if isinstance(item.get("customer_id"), str) else None,
            item.get("external_customer_id") if isinstance(item.get("external_customer_id"), str) else None,
            str(item.get("timestamp")),
            properties if isinstance(properties, dict) else {},
            item.get("deprecated") is True,
        )


def utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class OrbReadClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        pace: Callable[[], None],
        timeout_seconds: float = 10.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._pace = pace
        self._timeout = timeout_seconds
        self._http = http_client if http_client is not None else shared_http_client()
        self.calls: dict[str, int] = {"search": 0, "volume": 0, "backfill": 0}

    def __repr__(self) -> str:  # never show the key
        return f"OrbReadClient({self._base!r})"

    def _request(self, kind: str, method: str, path: str, **kwargs: Any) -> Any:
        self._pace()
        self.calls[kind] += 1
        try:
            response = self._http.request(
                method,
                self._base + path,
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=httpx.Timeout(self._timeout),
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise OrbReadError(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code == 429:
            raise OrbRateLimitedError(retry_after(response.headers))
        if response.status_code != 200:
            raise OrbReadError(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError:
            raise OrbReadError(f"{method} {path}: the answer is not JSON") from None

    def search(self, keys: Sequence[str], start: datetime, end: datetime) -> list[FoundEvent]:
        """Every event Orb returns under these keys (amended ones excepted) with a timestamp in
        [start, end)."""
        if not 1 <= len(keys) <= SEARCH_MAX_IDS:
            raise ValueError(f"search takes 1 to {SEARCH_MAX_IDS} keys, got {len(keys)}")
        body = {"event_ids": list(keys), "timeframe_start": utc_text(start), "timeframe_end": utc_text(end)}
        answer = self._request("search", "POST", "/events/search", json=body)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise OrbReadError("search answered without a data list")
        return [FoundEvent.from_orb(item) for item in data]

    def volume(self, start: datetime, end: datetime) -> dict[str, int]:
        """Orb's hourly event counts for the whole account: hour start (UTC text) -> count."""
        counts: dict[str, int] = {}
        params: dict[str, Any] = {
            "timeframe_start": utc_text(start),
            "timeframe_end": utc_text(end),
            "limit": VOLUME_PAGE_LIMIT,
        }
        while True:
            answer = self._request("volume", "GET", "/events/volume", params=params)
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, list):
                raise OrbReadError("volume answered without a data list")
            for bucket in data:
                if isinstance(bucket, dict) and isinstance(bucket.get("count"), int):
                    counts[str(bucket.get("timeframe_start"))] = bucket["count"]
            cursor = (answer.get("pagination_metadata") or {}).get("next_cursor")
            if not cursor:
                return counts
            params["cursor"] = cursor

    def backfill_status(self, backfill_id: str) -> str:
        answer = self._request("backfill", "GET", f"/events/backfills/{backfill_id}")
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, str):
            raise OrbReadError(f"backfill {backfill_id} answered without a status")
        return status
