"""``orb-bridge reconcile --repair``: re-send what the reports found missing, where that cannot bill
anything twice.

Only keys classified ``not_found`` are candidates. Each is looked up in its send-hour's archive (the
event exactly as Orb accepted it) and again in Orb (``/events/search``, paced with the budget
``orb-bridge backfill`` spends: ``deployment.orb_pacer``); one Orb holds by now is skipped. Then:

- within Orb's grace period (with ``GRACE_MARGIN`` to spare): sent to the stack's ingest queue as a
  usage-event message, exactly as intake sends it, so ingest sends it to Orb and archives it again.
  Orb deduplicates an idempotency key within the grace period, so an *amended* event (which also
  reads as not found) is not billed again, and nor is one a killed repair already sent.
- past it: never re-sent. Orb no longer deduplicates the key, and an amended event would be billed
  twice: they are listed for a person to decide (``orb-bridge backfill``).

Interrupt-safe: the repair keeps no state. A rerun reads the same reports, asks Orb again, and
re-sends only what Orb still lacks; whatever a killed run sent twice, Orb ingests once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orb_bridge.aws.queues import SqsQueue
from orb_bridge.orb.reconcile_client import SEARCH_MAX_IDS, OrbReadClient
from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge.reconcile.archive_reader import ArchiveReader, parse_hour
from orb_bridge.reconcile.classify import NOT_FOUND, classify, parse_timestamp
from orb_bridge_dev.deployment.reconcile_reports import HourRow
from orb_bridge_dev.deployment.rejected_records import Target, late_cutoff

MILLISECOND = timedelta(milliseconds=1)
SEND_BATCH = 10  # SendMessageBatch's limit


@dataclass
class RepairPlan:
    resend: list[dict[str, Any]] = field(default_factory=list)  # events, as archived
    past_grace: list[dict[str, Any]] = field(default_factory=list)
    now_present: list[str] = field(default_factory=list)  # Orb holds them by now (another run repaired them)
    not_archived: list[str] = field(default_factory=list)  # listed, but not in the hour's archive
    truncated_hours: list[str] = field(default_factory=list)  # reports that list fewer keys than they count
    invalid: list[str] = field(default_factory=list)  # archived events that no longer read as usage events
    unreadable_archive: list[str] = field(default_factory=list)  # archive objects not in the format, with why


@dataclass
class RepairResult:
    sent: list[str] = field(default_factory=list)
    send_failed: list[str] = field(default_factory=list)


def plan_repair(
    target: Target,
    rows: Sequence[HourRow],
    orb: OrbReadClient,
    now: datetime,
    grace_hours: float,
    step: Callable[[str], None] = lambda _name: None,
) -> RepairPlan:
    """What a repair would do, hour by hour (``step`` names each step: the tests' kill points)."""
    plan = RepairPlan()
    reader = ArchiveReader(target.s3, target.audit_bucket)
    cutoff = late_cutoff(now, grace_hours)
    for row in rows:
        wanted = set(row.listed.get(NOT_FOUND, []))
        if row.counts[NOT_FOUND] > len(wanted):
            plan.truncated_hours.append(row.hour)
        if not wanted:
            continue
        step(f"archive {row.hour}")
        hour = reader.hour(parse_hour(row.hour))
        plan.unreadable_archive += hour.unreadable
        archived = {item.key: item.event for item in hour.events if item.key in wanted}
        plan.not_archived += sorted(wanted - set(archived))
        keys = sorted(archived)
        for start in range(0, len(keys), SEARCH_MAX_IDS):
            batch = keys[start : start + SEARCH_MAX_IDS]
            step(f"search {row.hour} {start}")
            missing = _still_missing(orb, [archived[key] for key in batch])
            for key in batch:
                if key not in missing:
                    plan.now_present.append(key)
                    continue
                event = archived[key]
                moment = parse_timestamp(str(event.get("timestamp")))
                (plan.resend if moment is not None and moment >= cutoff else plan.past_grace).append(event)
    return plan


def _still_missing(orb: OrbReadClient, events: list[dict[str, Any]]) -> set[str]:
    moments = [moment for event in events if (moment := parse_timestamp(str(event["timestamp"])))]
    found: dict[str, list[Any]] = {}
    if moments:
        for match in orb.search(
            [str(event["idempotency_key"]) for event in events], min(moments), max(moments) + MILLISECOND
        ):
            found.setdefault(match.key, []).append(match)
    return {
        str(e["idempotency_key"]) for e in events if classify(e, found.get(str(e["idempotency_key"]), [])) == NOT_FOUND
    }


def resend(target: Target, plan: RepairPlan, step: Callable[[str], None] = lambda _name: None) -> RepairResult:
    """Each event to the ingest queue as intake sends it, ten at a time."""
    result = RepairResult()
    queue = SqsQueue(target.ingest_queue_url, client=target.sqs)
    bodies: list[tuple[str, str]] = []
    for event in plan.resend:
        try:
            bodies.append((str(event["idempotency_key"]), OrbUsageEvent.model_validate(event).to_message_body()))
        except Exception:  # the archive is input: an event that no longer reads as one is listed, not sent
            plan.invalid.append(str(event.get("idempotency_key")))
    for start in range(0, len(bodies), SEND_BATCH):
        batch = bodies[start : start + SEND_BATCH]
        step(f"send {start}")
        failed = {failure.index for failure in queue.send_all([body for _key, body in batch])}
        for index, (key, _body) in enumerate(batch):
            (result.send_failed if index in failed else result.sent).append(key)
    return result
