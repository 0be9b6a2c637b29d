"""``orb-bridge backfill``: bill rejected events older than Orb's grace period, through Orb backfills.

For each planned backfill (``backfill_plan``): look every key up with ``/events/search`` over a
timeframe covering the events (Orb deduplicates keys only within the grace period, so a key
already in Orb would be billed twice: those are skipped and reported), create the backfill
(refusing to overlap a pending one, as Orb does), ingest the rest with ``?backfill_id=`` within a
pacing budget, close it, and only then delete the records it billed. Each step is saved in the
state file before Orb is asked, and a backfill that may hold events the file does not list is
reverted and redone, never resumed (``backfiller``, ``backfill_state``).
Dry run by default: the plan, with what Orb already has.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from orb_bridge_dev.commands.backfill.archive import BackfillArchive
from orb_bridge_dev.commands.backfill.backfiller import Backfiller, GroupResult
from orb_bridge_dev.commands.backfill.orb_client import OrbApiError, OrbBackfillClient
from orb_bridge_dev.commands.backfill.plan import DEFAULT_STATE_FILE, Group, describe, plan_groups
from orb_bridge_dev.commands.backfill.state import StateFile, StateFileError
from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.orb_pacer import DEFAULT_EVENTS_PER_MINUTE, DEFAULT_REQUESTS_PER_SECOND, Pacer
from orb_bridge_dev.deployment.rejected_plan import plan as read_plan
from orb_bridge_dev.deployment.rejected_records import Entry, TargetError, delete, release
from orb_bridge_dev.deployment.rejected_summary import Progress
from orb_bridge_dev.terminal import printable

# Records stay invisible while their backfill is created, filled and closed.
DEFAULT_HOLD_SECONDS = 3600
# Orb auto-closes a backfill at close_time (one day after creation if unset), reflecting whatever
# it holds. We set it deliberately: long enough to review a --no-close backfill or resume a killed
# run the next day, short enough that a forgotten one still lands in the current billing period.
DEFAULT_CLOSE_AFTER_HOURS = 24.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orb-bridge backfill",
        description="Backfill rejected events older than Orb's grace period into Orb (dry run unless --yes).",
    )
    stack_target.add_arguments(parser, DEFAULT_HOLD_SECONDS)
    parser.add_argument(
        "--per-customer", action="store_true", help="one backfill per customer (default: account-wide backfills)"
    )
    parser.add_argument(
        "--no-close",
        action="store_true",
        help="leave the backfills pending for review in Orb; rerun without it to close them",
    )
    parser.add_argument(
        "--close-after-hours",
        type=float,
        default=DEFAULT_CLOSE_AFTER_HOURS,
        help=f"close_time: Orb auto-closes the backfill this long after creation "
        f"(default {DEFAULT_CLOSE_AFTER_HOURS:g})",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=Path(DEFAULT_STATE_FILE),
        help=f"where backfill ids are saved so a rerun resumes them (default {DEFAULT_STATE_FILE})",
    )
    parser.add_argument(
        "--requests-per-second",
        type=float,
        default=None,
        help=f"Orb request budget, 0 = none (default {DEFAULT_REQUESTS_PER_SECOND:g})",
    )
    parser.add_argument(
        "--events-per-minute",
        type=float,
        default=None,
        help=f"Orb event budget, 0 = none (default {DEFAULT_EVENTS_PER_MINUTE:g})",
    )
    return parser


def _billed_records(group: Group, result: GroupResult) -> list[Entry]:
    """Records of keys Orb certainly bills: in Orb already, or in a backfill of ours now closed."""
    keys = set(result.already_in_orb) | set(result.billed_before) | (set(result.ingested) if result.closed else set())
    return [entry for key in keys for entry in group.records.get(key, [])]


def run(
    args: argparse.Namespace,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    session_factory: Callable[..., Any] | None = None,
    http: Any = None,
    sleep: Callable[[float], None] | None = None,
    wait_seconds: int = 1,
) -> int:
    try:
        target = stack_target.resolve(args, env, session_factory)
        grace_hours = stack_target.grace_period_hours(args, env)
        moment = now()
        filters = stack_target.filters_from_args(args, moment)
        api_key = target.orb_api_key()
        state = StateFile(args.state_file, f"{target.label} {target.rejected_queue_url}")
    except (TargetError, StateFileError, argparse.ArgumentTypeError) as exc:
        print(f"orb-bridge backfill: {printable(exc)}", file=err)
        return 2
    pacer = Pacer(
        requests_per_second=args.requests_per_second
        if args.requests_per_second is not None
        else DEFAULT_REQUESTS_PER_SECOND,
        events_per_minute=args.events_per_minute if args.events_per_minute is not None else DEFAULT_EVENTS_PER_MINUTE,
        sleep=sleep or time.sleep,
    )
    orb = OrbBackfillClient(target.orb_base_url, api_key, http=http, pacer=pacer, sleep=sleep or time.sleep)
    entries, selected = read_plan(
        target, filters, moment, grace_hours, args.hold_seconds, wait_seconds, sends=("backfill",)
    )
    deleted: set[str] = set()
    try:
        groups = plan_groups(selected, args.per_customer)
        late = sum(len(records) for group in groups for records in group.records.values())
        print(
            f"{printable(target.label)}: {len(entries)} record(s) on the rejected queue, {len(selected)} selected, "
            f"{late} older "
            f"than the grace period ({grace_hours:g} h)",
            file=out,
        )
        archive = BackfillArchive(target.audit_bucket, target.s3) if target.audit_bucket else None
        backfiller = Backfiller(
            orb, state, now, timedelta(hours=args.close_after_hours), not args.no_close, sleep or time.sleep, archive
        )
        if not args.yes:
            _dry_run(backfiller, groups, state, out)
            return 0
        try:
            backfiller.prepare(groups, {entry.event.idempotency_key for entry in entries if entry.event})
        except OrbApiError as exc:
            if exc.status_code in REFUSED_KEY:
                raise  # said once, below: no backfill can go on
            print(f"settling the backfills saved in {args.state_file}: {printable(exc)}\n  (rerun to resume)", file=out)
            return 1
        progress = Progress(sum(len(group.events) for group in groups), err, "backfilling")
        status = 0
        for group in groups:
            try:
                result = backfiller.run_group(group, progress)
            except OrbApiError as exc:
                if exc.status_code in REFUSED_KEY:
                    raise
                print(
                    f"\nbackfill for {printable(group.scope_label)} {group.start.isoformat()} .. "
                    f"{group.end.isoformat()}: {printable(exc)}"
                    f"\n  (saved in {args.state_file}: rerun to resume)",
                    file=out,
                )
                status = 1
                continue
            billed = _billed_records(group, result)
            deleted.update(entry.message_id for entry in billed)
            failed = delete(target.sqs, target.rejected_queue_url, billed)
            result.deleted = len(billed) - len(failed)
            if not failed:
                backfiller.records_deleted({entry.event.idempotency_key for entry in billed if entry.event})
            _report(group, result, out)
        progress.finish()
        if archive is not None and archive.failures:
            # The events are in Orb's backfills; only the evidence is missing.
            print(f"audit archive: {len(archive.failures)} request(s) not archived (billed all the same):", file=out)
            for failure in archive.failures[:10]:
                print(f"  {failure}", file=out)
            status = 1
        return status
    except OrbApiError as exc:  # a look-up of the dry run or of a group's plan: a wrong key, say
        print(f"orb-bridge backfill: {orb_problem(exc)}", file=err)
        return 2 if exc.status_code in REFUSED_KEY else 1
    finally:
        release(target.sqs, target.rejected_queue_url, [e for e in entries if e.message_id not in deleted])


REFUSED_KEY = (401, 403)  # Orb refused the API key: every request will be refused alike


def orb_problem(exc: OrbApiError) -> str:
    """What Orb refused, and for a refused key what to check (never the key itself)."""
    if exc.status_code in REFUSED_KEY:
        return (
            f"Orb refused the API key ({printable(exc)}): check ORB_API_KEY, or the key in the stack's "
            "OrbApiKeySecretArn secret, is a key of this Orb account"
        )
    return f"Orb refused a request: {printable(exc)} (rerun to resume)"


def _dry_run(backfiller: Backfiller, groups: Sequence[Group], state: StateFile, out: TextIO) -> None:
    found = {index: backfiller.look_up(group) for index, group in enumerate(groups)}
    print("plan (replace_existing_events: false):", file=out)
    print("\n".join(map(printable, describe(groups, found))) or "  nothing to backfill", file=out)
    for backfill in backfiller.orb.pending_backfills():
        print(
            f"  pending in Orb: {printable(backfill.id)} {backfill.timeframe_start.isoformat()} .. "
            f"{backfill.timeframe_end.isoformat()}",
            file=out,
        )
    for saved in state.ours():
        if saved.uncertain:
            print(
                f"  saved backfill {printable(saved.backfill_id)}: an ingest's outcome is unknown; --yes reverts it and "
                "sends its events again in a fresh backfill",
                file=out,
            )
    print("\ndry run: nothing changed. Run again with --yes to backfill.", file=out)


def _report(group: Group, result: GroupResult, out: TextIO) -> None:
    where = f"backfill {printable(result.backfill_id)}" if result.backfill_id else "no backfill needed"
    state = "closed" if result.closed else ("left pending (--no-close)" if result.backfill_id else "")
    print(
        f"{printable(group.scope_label)} {group.start.isoformat()} .. {group.end.isoformat()}: {where} {state}".rstrip(),
        file=out,
    )
    print(
        f"  ingested {len(result.ingested)}, already in Orb (skipped) {len(result.already_in_orb)}, "
        f"records deleted {result.deleted}"
        + (f", billed by an earlier run's backfill {len(result.billed_before)}" if result.billed_before else ""),
        file=out,
    )
    for reverted in result.reverted:
        print(f"  reverted {printable(reverted)}: an ingest's answer was lost; its events were sent again", file=out)
    for key in result.different_in_orb[:20]:
        print(
            f"  kept: {printable(key)} is in Orb with a different body (not resent: it would not be billed)", file=out
        )
    for key, reason in list(result.refused.items())[:20]:
        print(f"  kept: Orb refused {printable(key)}: {printable(reason)}", file=out)
    for entry in group.conflicts[:20]:
        print(
            f"  kept: record {printable(entry.message_id)} reuses a key of this backfill with a different event",
            file=out,
        )


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, os.environ if env is None else env, sys.stdout, sys.stderr)
