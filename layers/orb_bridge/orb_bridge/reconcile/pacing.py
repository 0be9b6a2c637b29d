"""The reconciler's own request budget: one Orb call per ``1 / requests_per_second`` seconds.

One invocation at a time (reserved concurrency 1), so a local pacer is the whole budget; no shared
table as ingest needs. The clock and sleep are injectable so tests never wait on real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    def __init__(
        self,
        requests_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / requests_per_second
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self.waited_seconds = 0.0

    def __call__(self) -> None:
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            self.waited_seconds += self._next - now
            now = self._next
        self._next = now + self._interval
