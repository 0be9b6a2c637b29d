"""Keeping refused, unauthenticated batches on the rejected queue, within an hourly byte budget.

A batch signed over its first event only is refused (401, which Segment treats as final), and
kept so that a misconfigured deployment loses no usage unseen. Anyone holding one captured
``X-Signature`` can send such batches, though, so what they store is bounded, for all
containers together: each hour (UTC) has a budget of bytes, counted in one DynamoDB item per
hour (``id`` = ``KEY_PREFIX`` + the hour, expired by the table's TTL attribute ``expiration``).
A batch's records are stored only if their whole size still fits: one conditional ``ADD``
(``stored_bytes + size <= budget``) makes the check and the spending one atomic step, so
concurrent containers never spend more than the budget between them. Beyond it the caller keeps
a one-record summary instead.

Fail closed: when the table cannot be reached (or is not configured), nothing is spent and the
caller keeps only the summary, so an outage can never turn into an unbounded flood.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from orb_bridge.aws import clients as aws
from orb_bridge.aws.rejection_records import RECORD_EXCERPT_CHARS, rejection_record
from orb_bridge.core.observability import logger

# Distinct from the webhook idempotency records sharing the table (Powertools keys them by
# "<function name>.<handler>#<hash>"); the template's IAM condition allows only this prefix.
KEY_PREFIX = "track-intake#unauthenticated-stored-bytes#"
# An hour's item outlives its hour a little, then the table's TTL removes it.
TTL_AFTER_HOUR_SECONDS = 3600
# Events of a refused batch kept whole go in records of about this size.
UNAUTHENTICATED_RECORD_BYTES = 150 * 1024
# Beyond the budget, the one summary record carries this much of the body.
SUMMARY_EXCERPT_BYTES = 1024
SIGNATURE_ONLY_BATCH_REASON = (
    "unauthenticated: a batch whose X-Signature covers only its first event; configure the Bearer "
    "token (or X-Segment-Signature) in Segment. Check these events came from Segment before replaying them"
)


@dataclass(frozen=True)
class Spend:
    """Whether a batch may be stored whole; if not, why (for the summary record)."""

    granted: bool
    reason: str = ""


class UnauthenticatedStoreBudget:
    def __init__(
        self,
        table_name: str,
        bytes_per_hour: int,
        client: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self.bytes_per_hour = bytes_per_hour
        self._client = client
        self.clock = clock

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws.client("dynamodb")

    def spend(self, size: int) -> Spend:
        """Spend ``size`` bytes of this hour's budget, all of them or none."""
        if self.bytes_per_hour <= 0:
            return Spend(False, "storing unauthenticated batches is off (UnauthenticatedStoreBytesPerHour is 0)")
        if size > self.bytes_per_hour:
            return Spend(False, f"larger than the hourly budget of {self.bytes_per_hour} bytes")
        if not self.table_name:
            logger.error("no table for the unauthenticated storage budget: keeping a summary only")
            return Spend(False, "no budget table configured (fail closed)")
        now = int(self.clock())
        hour_start = now - now % 3600
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"id": {"S": KEY_PREFIX + time.strftime("%Y-%m-%dT%H", time.gmtime(hour_start))}},
                UpdateExpression="ADD stored_bytes :size SET expiration = :expiration",
                ConditionExpression="attribute_not_exists(stored_bytes) OR stored_bytes <= :room",
                ExpressionAttributeValues={
                    ":size": {"N": str(size)},
                    ":room": {"N": str(self.bytes_per_hour - size)},
                    ":expiration": {"N": str(hour_start + 3600 + TTL_AFTER_HOUR_SECONDS)},
                },
            )
        except Exception as exc:
            if _condition_failed(exc):
                return Spend(False, f"this hour's budget of {self.bytes_per_hour} bytes is spent")
            logger.error(
                "could not read the unauthenticated storage budget: keeping a summary only",
                extra={"error": type(exc).__name__},
            )
            return Spend(False, "the budget table could not be read (fail closed)")
        return Spend(True)


def _condition_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class KeptBatch:
    """The rejected-queue records for a refused batch, and what they leave out."""

    records: list[str]
    why_not_stored: str = ""  # empty: kept whole (or, for an unreadable body, as its excerpt)
    events_not_stored: int = 0  # an unreadable body counts as one: its events cannot be counted


def keep_refused_batch(
    raw_body: bytes, elements: Sequence[Any] | None, problem: str, budget: UnauthenticatedStoreBudget
) -> KeptBatch:
    """The records that keep a refused batch (``elements``; None when the body did not parse,
    ``problem`` saying why): whole within the budget, else one summary record."""
    if elements is None:
        excerpt = raw_body[:RECORD_EXCERPT_CHARS].decode("utf-8", "replace")
        records = [
            rejection_record(
                stage="intake",
                reason=SIGNATURE_ONLY_BATCH_REASON,
                errors=[problem],
                replayable=False,
                extra={"body_bytes": len(raw_body), "body_excerpt": excerpt},
            )
        ]
    else:
        groups = _element_groups(elements)
        records = [
            rejection_record(
                stage="intake",
                reason=SIGNATURE_ONLY_BATCH_REASON,
                replayable=False,
                extra={"segment_events": group, "part": number, "parts": len(groups)},
            )
            for number, group in enumerate(groups, start=1)
        ]
    spend = budget.spend(sum(len(record.encode("utf-8")) for record in records))
    if spend.granted:
        return KeptBatch(records)
    event_count = len(elements) if elements is not None else None
    extra: dict[str, Any] = {
        "stored": "summary only",
        "body_bytes": len(raw_body),
        "body_excerpt": raw_body[:SUMMARY_EXCERPT_BYTES].decode("utf-8", "replace"),
    }
    if event_count is not None:
        extra["event_count"] = event_count
    summary = rejection_record(
        stage="intake",
        reason=SIGNATURE_ONLY_BATCH_REASON,
        errors=[f"not stored whole: {spend.reason}", *([problem] if problem else [])],
        replayable=False,
        extra=extra,
    )
    return KeptBatch([summary], spend.reason, event_count or 1)


def _element_groups(elements: Sequence[Any], budget: int = UNAUTHENTICATED_RECORD_BYTES) -> list[list[Any]]:
    """Consecutive elements in groups of about ``budget`` serialised bytes (whole elements only)."""
    groups: list[list[Any]] = []
    size = 0
    for element in elements:
        element_size = len(json.dumps(element, separators=(",", ":"), default=str))
        if groups and size + element_size <= budget:
            groups[-1].append(element)
            size += element_size
        else:
            groups.append([element])
            size = element_size
    return groups
