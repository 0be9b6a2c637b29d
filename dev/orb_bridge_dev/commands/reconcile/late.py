"""``orb-bridge reconcile --repair --yes --late-to-rejected``: the not-found events past Orb's grace
period, written to the stack's rejected queue as records ``orb-bridge backfill`` bills.

Never without that flag: past the grace period Orb no longer deduplicates a key, and an *amended*
event also reads as not found, so a backfill would bill it a second time. A person checks the
listed keys in Orb first and then decides; the flag is that decision.

Each record is what ingest writes when Orb refuses an event (stage ``orb``, the event as
``orb_event``), with ``LATE_REASON``, so ``orb-bridge backfill --reason-contains`` selects exactly
these. A rerun of a killed run may write a record again: ``orb-bridge backfill`` sends one event
per key (``backfill.plan``) and skips a key Orb already holds, so nothing is billed twice.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orb_bridge.aws.queues import SqsQueue
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge.orb.usage_event import OrbUsageEvent
from orb_bridge_dev.deployment.rejected_records import Target

LATE_REASON = "not found in Orb past the grace period (orb-bridge reconcile --repair --late-to-rejected)"
SEND_BATCH = 10


@dataclass
class LateResult:
    written: list[str] = field(default_factory=list)
    write_failed: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # archived events that no longer read as usage events


def write_late(
    target: Target, events: Sequence[dict[str, Any]], step: Callable[[str], None] = lambda _name: None
) -> LateResult:
    """One rejected-queue record per event, ten at a time."""
    result = LateResult()
    queue = SqsQueue(target.rejected_queue_url, client=target.sqs)
    records: list[tuple[str, str]] = []
    for event in events:
        key = str(event.get("idempotency_key"))
        try:
            OrbUsageEvent.model_validate(event)
        except Exception:  # the archive is input: an event that no longer reads as one is listed, not written
            result.invalid.append(key)
            continue
        records.append((key, rejection_record(stage="orb", reason=LATE_REASON, orb_event=dict(event))))
    for start in range(0, len(records), SEND_BATCH):
        batch = records[start : start + SEND_BATCH]
        step(f"reject {start}")
        failed = {failure.index for failure in queue.send_all([body for _key, body in batch])}
        for index, (key, _body) in enumerate(batch):
            (result.write_failed if index in failed else result.written).append(key)
    return result


def target_arguments(stack: str | None, dev: str | None) -> str:
    """The ``--stack NAME`` / ``--dev [NAME]`` a printed command needs, shell-quoted."""
    if stack is not None:
        return f"--stack {shlex.quote(stack)}"
    return f"--dev {shlex.quote(dev)}" if dev else "--dev"


def commands(where: str) -> list[str]:
    """What an operator runs, in order, once they have decided those keys are truly lost."""
    return [
        f"orb-bridge reconcile {where} --repair --yes --late-to-rejected",
        f"orb-bridge backfill {where} --stage orb --reason-contains {shlex.quote('past the grace period')}",
        f"orb-bridge backfill {where} --stage orb --reason-contains {shlex.quote('past the grace period')} --yes",
    ]
