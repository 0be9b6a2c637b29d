"""The client-side budget of the Orb calls an operator's commands make: `orb-bridge backfill`'s
and `orb-bridge reconcile --repair`'s (one pacer, one set of defaults: the two spend one budget,
half Orb's live defaults of 100 requests/s and 10,000 events/min; live ingest keeps the other half)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_REQUESTS_PER_SECOND = 50.0
DEFAULT_EVENTS_PER_MINUTE = 5000.0


@dataclass
class Pacer:
    """Client-side budget: at most ``requests_per_second`` requests and ``events_per_minute`` events.

    Two token buckets refilled continuously; ``clock``/``sleep`` are injectable for tests.
    """

    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    events_per_minute: float = DEFAULT_EVENTS_PER_MINUTE
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _request_tokens: float = field(default=-1.0, repr=False)
    _event_tokens: float = field(default=-1.0, repr=False)
    _last: float | None = field(default=None, repr=False)

    def acquire(self, events: int) -> None:
        if self._last is None:
            self._last = self.clock()
            self._request_tokens = max(1.0, self.requests_per_second)
            self._event_tokens = max(float(events), self.events_per_minute)
        while True:
            now = self.clock()
            elapsed, self._last = now - self._last, now
            if self.requests_per_second > 0:
                self._request_tokens = min(
                    max(1.0, self.requests_per_second), self._request_tokens + elapsed * self.requests_per_second
                )
            if self.events_per_minute > 0:
                self._event_tokens = min(
                    max(float(events), self.events_per_minute),
                    self._event_tokens + elapsed * self.events_per_minute / 60,
                )
            wait = 0.0
            if self.requests_per_second > 0 and self._request_tokens < 1:
                wait = (1 - self._request_tokens) / self.requests_per_second
            if self.events_per_minute > 0 and self._event_tokens < events:
                wait = max(wait, (events - self._event_tokens) * 60 / self.events_per_minute)
            if wait <= 0:
                self._request_tokens -= 1
                self._event_tokens -= events
                return
            self.sleep(wait)
