"""One invocation's pacer: the shared pacing table until it fails, then the container's share
(why: ``orb_bridge.ingest.pacing``'s docstring)."""

from __future__ import annotations

import threading

from orb_bridge.core.observability import logger
from orb_bridge.ingest.pacing import Pacer, Slot


class TableOrLocal:
    """One invocation's pacer: the shared table until it fails, then the container's share.

    After a failure the rest of the invocation uses the local budget without asking the table
    again (a table timing out would otherwise cost every request its timeout); the next
    invocation tries the table first. ``table_errors`` counts the failures (the
    ``PacingTableErrors`` metric).
    """

    def __init__(self, table: Pacer, local: Pacer) -> None:
        self.table = table
        self.local = local
        self.table_errors = 0
        self._failed = threading.Event()
        self._lock = threading.Lock()

    def reserve(self, events: int, latest_start_seconds: float) -> Slot:
        if not self._failed.is_set():
            try:
                return self.table.reserve(events, latest_start_seconds)
            except Exception:
                self._table_failed("reserve")
        return self.local.reserve(events, latest_start_seconds)

    def hold_off(self, seconds: float) -> None:
        self.local.hold_off(seconds)  # also, should the table fail later in this container
        if not self._failed.is_set():
            try:
                self.table.hold_off(seconds)
            except Exception:
                self._table_failed("hold_off")

    def _table_failed(self, operation: str) -> None:
        with self._lock:
            self.table_errors += 1
        if not self._failed.is_set():
            self._failed.set()
            logger.exception(
                "the pacing table could not be used: this invocation paces by its container's share of the budget",
                extra={"operation": operation},
            )
