"""What the soak is told (``SoakConfig``, its kinds of invalid event) and what it reports (``SoakReport``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AUTH_TOKEN = "soak-bearer-token"
PROPERTIES_MAPPING = {"amount": "amount", "seq": "seq", "region": "region"}
INTAKE_REFUSES = ("missing userId", "nested property", "unparseable timestamp", "empty event name")
# Well-formed, so intake queues them; Orb's whole-request 400 refuses them (grace period 12 h,
# future limit 5 min: the sandbox's defaults, Orb's documented values).
ORB_REFUSES = ("stale timestamp", "future timestamp")
INVALID_KINDS = INTAKE_REFUSES + ORB_REFUSES
# The 400 body forms that name the failing events. The opaque form (naming nobody) is left out:
# its search by splitting needs many requests, which a rate limit answers with 429s (tested in
# tests/unit/ingest/test_ingest_orb_400.py, without a rate limit).
NAMING_ERROR_BODIES = ("validation_failed", "objects", "strings")


@dataclass
class SoakConfig:
    events: int = 10_000
    invalid_rate: float = 0.02
    resend_rate: float = 0.05
    single_rate: float = 0.05  # share of events sent one per request (classic Webhooks)
    max_batch: int = 400
    error_500_rate: float = 0.10
    error_429_rate: float = 0.05
    timeout_rate: float = 0.02
    drop_connection_rate: float = 0.01
    # Our client gives up after this; the sandbox's "timeout" holds the request a bit longer.
    orb_request_timeout: float = 1.0
    max_queue_depth: int = 1500
    senders: int = 3
    kill_one_invocation: bool = True
    # Orb's limits in the sandbox (429 + Retry-After above them). Two requests/s: a 400 and the
    # re-send that follows it at once, with other traffic, go over it (one request/s doubles the
    # soak's time: every re-sent batch waits).
    rate_limit_requests_per_second: float = 2.0
    rate_limit_events_per_minute: float = 12_000.0
    # Rotated every ``error_body_every`` Segment requests.
    error_bodies: tuple[str, ...] = NAMING_ERROR_BODIES
    error_body_every: int = 20
    ingest_valid_events_on_400: bool = False
    seed: int = 20261102
    drain_timeout: float = 600.0


@dataclass
class SoakReport:
    config: dict[str, Any]
    wall_seconds: float = 0.0
    send_seconds: float = 0.0
    valid_events: int = 0
    invalid_events: int = 0
    requests: int = 0
    requests_by_shape: dict[str, int] = field(default_factory=dict)
    resent_requests: int = 0
    resent_events: int = 0
    http_statuses: dict[str, int] = field(default_factory=dict)
    intake_retries: int = 0
    ingested: int = 0
    missing: int = 0
    extra_keys: int = 0
    duplicates_billed: int = 0
    content_mismatches: int = 0
    invalid_on_rejected_queue: int = 0
    invalid_without_reason: int = 0
    refused_by_orb: int = 0  # invalid events only Orb could refuse
    refused_by_orb_kept_with_orbs_reason: int = 0
    valid_on_rejected_queue: int = 0
    rejected_queue_messages: int = 0
    orb_requests: int = 0
    orb_outcomes: dict[str, int] = field(default_factory=dict)
    orb_duplicate_offers: int = 0
    orb_rate_limited: int = 0  # 429s from the sandbox's rate limits (not the injected ones)
    orb_validation_400s: int = 0
    poller: dict[str, Any] = field(default_factory=dict)
    killed_invocation: dict[str, Any] = field(default_factory=dict)
    reconciliation: dict[str, Any] = field(default_factory=dict)  # bench/soak_reconcile.py
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        r = self
        lines = [
            f"soak: {r.valid_events + r.invalid_events:,} Segment events ({r.valid_events:,} valid, "
            f"{r.invalid_events:,} invalid) in {r.requests:,} requests {r.requests_by_shape}, "
            f"{r.resent_requests:,} requests re-sent ({r.resent_events:,} events)",
            f"  wall time {r.wall_seconds:.1f} s (sending {r.send_seconds:.1f} s); HTTP {r.http_statuses}, "
            f"intake retries {r.intake_retries}",
            f"  Orb sandbox: {r.orb_requests:,} ingest requests, outcomes {r.orb_outcomes}, "
            f"keys offered again and deduplicated {r.orb_duplicate_offers:,}; 429s from its rate limits "
            f"{r.orb_rate_limited:,}, whole-request 400s {r.orb_validation_400s:,}",
            f"  poller: {r.poller}",
            f"  killed invocation: {r.killed_invocation}",
            f"  ingested {r.ingested:,} of {r.valid_events:,} valid; missing {r.missing}; extra keys {r.extra_keys}; "
            f"duplicates billed: {r.duplicates_billed}; content mismatches {r.content_mismatches}",
            f"  rejected queue: {r.rejected_queue_messages:,} messages; invalid events found "
            f"{r.invalid_on_rejected_queue:,} of {r.invalid_events:,} (without reason {r.invalid_without_reason}); "
            f"valid events there {r.valid_on_rejected_queue}; refused by Orb {r.refused_by_orb:,}, kept with Orb's "
            f"reason {r.refused_by_orb_kept_with_orbs_reason:,}",
            f"  reconciliation: {r.reconciliation}",
            "  RESULT: " + ("PASS" if r.ok else "FAIL: " + "; ".join(r.failures)),
        ]
        return "\n".join(lines)
