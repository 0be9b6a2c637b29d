"""Orb's traffic as the drain bench sees it: when each request Orb accepted started, and the gaps."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any


def idle_gaps(sends: list[tuple[float, int]], events_per_minute: float) -> dict[str, float]:
    """The longest gap between accepted requests' starts, raw and beyond the budget's spacing."""
    starts = sorted(sends)
    gaps = [(b[0] - a[0], b[0] - a[0] - a[1] * 60 / events_per_minute) for a, b in itertools.pairwise(starts)]
    return {
        "max_gap_seconds": max((raw for raw, _ in gaps), default=0.0),
        "max_idle_gap_seconds": max((max(0.0, idle) for _, idle in gaps), default=0.0),
    }


_original_ingest_texts: Any = None


def record_orb_requests() -> list[tuple[float, int]]:
    """Wrap ``OrbClient.ingest_texts`` to note when each request Orb accepted started, and its size."""
    from orb_bridge.orb.client import OrbClient, Outcome

    global _original_ingest_texts
    original = _original_ingest_texts = OrbClient.ingest_texts
    sends: list[tuple[float, int]] = []
    lock = threading.Lock()

    def timed(self: Any, event_texts: Any, keys: Any, timeout_seconds: float) -> Any:
        started = time.monotonic()
        result = original(self, event_texts, keys, timeout_seconds)
        if result.outcome is Outcome.OK:
            with lock:
                sends.append((started, len(event_texts)))
        return result

    OrbClient.ingest_texts = timed  # type: ignore[method-assign]
    return sends


def stop_recording() -> None:
    from orb_bridge.orb.client import OrbClient

    global _original_ingest_texts
    if _original_ingest_texts is not None:
        OrbClient.ingest_texts = _original_ingest_texts  # type: ignore[method-assign]
        _original_ingest_texts = None
