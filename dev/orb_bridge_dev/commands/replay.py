"""``orb-bridge replay``: put rejected events back on the ingest queue, once the cause is fixed.

Dry run by default: a table of what is on the rejected queue and what a replay would do. With
``--yes`` each replayable record's event goes to the ingest queue as a plain usage event (an
``intake`` record re-mapped with the stack's current mapping), and the record is deleted only
once its ``SendMessageBatch`` entry succeeded. Interrupted anywhere, a rerun is safe: a record
whose event was enqueued but which was not yet deleted is replayed again, and Orb ingests an
idempotency key at most once, so nothing is billed twice. Events older than Orb's grace period
are left for ``orb-bridge backfill``; records that cannot be replayed stay, with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from orb_bridge.aws.queues import SqsQueue
from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.rejected_plan import UNREADABLE, plan  # noqa: F401 (backfill and tests use them from here)
from orb_bridge_dev.deployment.rejected_records import Entry, Target, TargetError, delete, release
from orb_bridge_dev.deployment.rejected_summary import Progress, summary
from orb_bridge_dev.terminal import printable

# Long enough to send and delete tens of thousands of records; a killed run's records return after it.
DEFAULT_HOLD_SECONDS = 900


@dataclass
class ReplayReport:
    replayed: int = 0
    not_deleted: int = 0  # enqueued, but the record could not be deleted: a rerun replays it again (harmless)
    send_failed: int = 0  # could not be enqueued: the record stays
    deleted: set[str] = field(default_factory=set)  # message ids of records deleted


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orb-bridge replay",
        description="Replay rejected events through the ingest queue (dry run unless --yes).",
    )
    stack_target.add_arguments(parser, DEFAULT_HOLD_SECONDS)
    return parser


def replay(target: Target, selected: Sequence[Entry], progress: Progress, report: ReplayReport) -> ReplayReport:
    """Enqueue each replayable record's event, then delete that record; in batches of 10."""
    queue = SqsQueue(target.ingest_queue_url, client=target.sqs)
    to_replay = [entry for entry in selected if entry.action == "replay"]
    for start in range(0, len(to_replay), 10):
        batch = to_replay[start : start + 10]
        assert all(entry.event is not None for entry in batch)
        failures = queue.send_all([entry.event.to_message_body() for entry in batch])  # type: ignore[union-attr]
        failed = {failure.index for failure in failures}
        sent = [entry for index, entry in enumerate(batch) if index not in failed]
        report.send_failed += len(failed)
        # Only now, with its replacement safely on the ingest queue, may a record go.
        not_deleted = delete(target.sqs, target.rejected_queue_url, sent)
        report.not_deleted += len(not_deleted)
        report.deleted.update(entry.message_id for entry in sent if entry not in not_deleted)
        report.replayed += len(sent)
        progress.advance(len(batch))
    progress.finish()
    return report


def run(
    args: argparse.Namespace,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    session_factory: Callable[..., Any] | None = None,
    wait_seconds: int = 1,
) -> int:
    try:
        target = stack_target.resolve(args, env, session_factory)
        grace_hours = stack_target.grace_period_hours(args, env)
        moment = now()
        filters = stack_target.filters_from_args(args, moment)
    except (TargetError, argparse.ArgumentTypeError) as exc:
        print(f"orb-bridge replay: {printable(exc)}", file=err)
        return 2
    entries: list[Entry] = []
    sends = ("replay",) if args.yes else ()  # a dry run keeps no event in memory
    report = ReplayReport()
    try:
        entries, selected = plan(target, filters, moment, grace_hours, args.hold_seconds, wait_seconds, sends)
        print(
            f"{printable(target.label)}: {len(entries)} record(s) on the rejected queue, {len(selected)} selected "
            f"(grace period {grace_hours:g} h)",
            file=out,
        )
        if any(entry.stage == "intake" for entry in selected):
            print(f"mapping used for intake records: {stack_target.mapping_description(target.mapping())}", file=out)
        print(summary(selected, moment), file=out)
        if not args.yes:
            print("\ndry run: nothing changed. Run again with --yes to replay.", file=out)
            return 0
        replayable = sum(entry.action == "replay" for entry in selected)
        replay(target, selected, Progress(replayable, err, "replaying"), report)
        left = [entry for entry in selected if entry.action != "replay"]
        print(
            f"\nreplayed {report.replayed} event(s) to the ingest queue"
            + (f"; {report.send_failed} could not be enqueued (kept, rerun to retry)" if report.send_failed else "")
            + (
                f"; {report.not_deleted} enqueued but not deleted (a rerun replays them again, harmless)"
                if report.not_deleted
                else ""
            ),
            file=out,
        )
        backfill = sum(entry.action == "backfill" for entry in left)
        if backfill:
            print(f"{backfill} record(s) older than the grace period: run `orb-bridge backfill`", file=out)
        kept = sum(entry.action == "keep" for entry in left)
        if kept:
            print(f"{kept} record(s) cannot be replayed and stay on the rejected queue (see 'would' above)", file=out)
        return 0 if not report.send_failed else 1
    finally:
        # Everything not replayed is released at once; on an interruption the unfinished part
        # too (a record whose event was enqueued is simply replayed again by the rerun).
        release(target.sqs, target.rejected_queue_url, [e for e in entries if e.message_id not in report.deleted])


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, os.environ if env is None else env, sys.stdout, sys.stderr)
