"""What a route of the sandbox reads and changes: the server's state, as a protocol.

The routes (``ingest``, ``events``, ``backfills``) take the running sandbox as an argument; typing it
with this protocol keeps them from importing ``server``, which imports them.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from orb_bridge_dev.orb_sandbox.faults import FaultConfig, IngestHold, RateLimiter, ScriptedResponse
from orb_bridge_dev.orb_sandbox.store import EventStore
from orb_bridge_dev.orb_sandbox.validation import IngestRules


class SandboxState(Protocol):
    rules: IngestRules
    faults: FaultConfig
    rate_limiter: RateLimiter
    rng: random.Random
    lock: threading.RLock
    changed: threading.Condition
    store: EventStore
    scripted: list[ScriptedResponse]
    ingest_hold: IngestHold | None
    ingest_request_count: int
    now: Callable[[], datetime]

    @property
    def stopping(self) -> bool: ...

    def count(self, outcome: str) -> None: ...

    def sleep(self, seconds: float) -> None: ...
