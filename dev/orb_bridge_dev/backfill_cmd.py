"""``orb-bridge backfill``: bill rejected events older than Orb's grace period, through Orb backfills.

For each planned backfill (``backfill_plan``): look every key up with ``/events/search`` over a
timeframe covering the events (Orb deduplicates keys only within the grace period, so a key
already in Orb would be billed twice: those are skipped and reported), create the backfill
(refusing to overlap a pending one, as Orb does), save its id, ingest the rest with
``?backfill_id=`` within a pacing budget, close it, and only then delete the records it billed.
Dry run by default: the plan, with what Orb already has.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from orb_bridge_dev import stack_target
from orb_bridge_dev.backfill_plan import DEFAULT_STATE_FILE, Group, StateFile, describe, plan_groups, same_event
from orb_bridge_dev.orb_backfill import MAX_INGEST_EVENTS, Backfill, OrbApiError, OrbBackfillClient, Pacer
from orb_bridge_dev.rejected_records import Entry, Filters, Progress, TargetError, delete, parse_since, release
from orb_bridge_dev.replay_cmd import plan as read_plan

# Records stay invisible while their backfill is created, filled and closed.
DEFAULT_HOLD_SECONDS = 3600
# Half Orb's live defaults (100 requests/s, 10,000 events/min): the live ingest keeps the other half.
DEFAULT_REQUESTS_PER_SECOND = 50.0
DEFAULT_EVENTS_PER_MINUTE = 5000.0
# Orb auto-closes a backfill at close_time (one day after creation if unset), reflecting whatever
# it holds. We set it deliberately: long enough to review a --no-close backfill or resume a killed
# run the next day, short enough that a forgotten one still lands in the current billing period.
DEFAULT_CLOSE_AFTER_HOURS = 24.0
# Keys are searched a day either side of the window: an event Orb holds under the same key with a
# slightly different timestamp (an earlier mapping) is still found.
SEARCH_MARGIN = timedelta(days=1)


@dataclass
class GroupResult:
    backfill_id: str | None = None
    ingested: list[str] = field(default_factory=list)
    already_in_orb: list[str] = field(default_factory=list)
    different_in_orb: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # key -> Orb's reason
    closed: bool = False
    deleted: int = 0


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


class Backfiller:
    def __init__(
        self, orb: OrbBackfillClient, state: StateFile, now: datetime, close_after: timedelta, close: bool
    ) -> None:
        self.orb, self.state, self.now, self.close_after, self.close = orb, state, now, close_after, close

    def look_up(self, group: Group) -> dict[str, bool]:
        """key -> whether the event Orb has under it is ours (absent keys are not listed)."""
        found = self.orb.search_events(
            sorted(group.events), group.start - SEARCH_MARGIN, min(group.end + SEARCH_MARGIN, self.now)
        )
        return {key: same_event(group.events[key], event) for key, event in found.items() if key in group.events}

    def open_backfill(self, group: Group, pending: list[Backfill]) -> Backfill:
        resumed_id = self.state.find(group)
        if resumed_id:
            backfill = self.orb.fetch_backfill(resumed_id)
            if backfill.pending:
                return backfill
            self.state.mark_closed(resumed_id)  # auto-closed or reverted meanwhile: start afresh
        clash = next((b for b in pending if b.overlaps(group.start, group.end)), None)
        if clash is not None:
            raise OrbApiError(
                None,
                f"pending backfill {clash.id} ({clash.timeframe_start.isoformat()} .. "
                f"{clash.timeframe_end.isoformat()}) overlaps {group.start.isoformat()} .. "
                f"{group.end.isoformat()}: close or revert it in Orb first",
            )
        external = group.scope[1] if group.scope and group.scope[0] == "external_customer_id" else None
        customer = group.scope[1] if group.scope and group.scope[0] == "customer_id" else None
        try:
            backfill = self.orb.create_backfill(
                timeframe_start=group.start,
                timeframe_end=group.end,
                close_time=self.now + self.close_after,
                external_customer_id=external,
                customer_id=customer,
            )
        except OrbApiError as exc:
            if exc.status_code is not None and exc.status_code < 500:
                raise
            # The answer was lost or a 5xx: it may exist anyway. Adopt it rather than collide with it.
            adopted = next(
                (
                    b
                    for b in self.orb.pending_backfills()
                    if b.timeframe_start == group.start
                    and b.timeframe_end == group.end
                    and not b.replace_existing_events
                ),
                None,
            )
            if adopted is None:
                raise
            backfill = adopted
        self.state.record(backfill.id, group, group.start, group.end)  # before any event is sent
        pending.append(backfill)
        return backfill

    def run_group(self, group: Group, pending: list[Backfill], progress: Progress) -> GroupResult:
        result = GroupResult()
        present = self.look_up(group)
        result.already_in_orb = sorted(key for key, same in present.items() if same)
        result.different_in_orb = sorted(key for key, same in present.items() if not same)
        to_send = [key for key in group.events if key not in present]
        resumed = self.state.find(group)
        if not to_send and not resumed:
            progress.advance(len(group.events))
            return result
        backfill = self.open_backfill(group, pending)
        result.backfill_id = backfill.id
        done = self.state.ingested(backfill.id)
        result.ingested = [key for key in to_send if key in done]
        remaining = [key for key in to_send if key not in done]
        progress.advance(len(group.events) - len(remaining))
        for start in range(0, len(remaining), MAX_INGEST_EVENTS):
            chunk = remaining[start : start + MAX_INGEST_EVENTS]
            self._ingest(group, backfill.id, chunk, result)
            progress.advance(len(chunk))
        if self.close:
            self.orb.close_backfill(backfill.id)
            self.state.mark_closed(backfill.id)
            result.closed = True
        return result

    def _ingest(self, group: Group, backfill_id: str, keys: list[str], result: GroupResult) -> None:
        try:
            self.orb.ingest([group.events[key].to_orb() for key in keys], backfill_id)
        except OrbApiError as exc:
            if exc.status_code not in (400, 413, 422):
                raise  # auth, not found, retries exhausted: stop; the state file lets a rerun resume
            if len(keys) == 1:
                result.refused[keys[0]] = str(exc)
                return
            middle = len(keys) // 2  # a whole-request refusal: isolate the refused events
            self._ingest(group, backfill_id, keys[:middle], result)
            self._ingest(group, backfill_id, keys[middle:], result)
            return
        self.state.add_ingested(backfill_id, keys)
        result.ingested.extend(keys)


def _billed_records(group: Group, result: GroupResult) -> list[Entry]:
    keys = set(result.ingested) | set(result.already_in_orb)
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
        filters = Filters(
            stages=frozenset(args.stage or ()),
            reason_contains=args.reason_contains,
            since=parse_since(args.since, moment) if args.since else None,
            customer=args.customer,
        )
        api_key = target.orb_api_key()
    except (TargetError, argparse.ArgumentTypeError) as exc:
        print(f"orb-bridge backfill: {exc}", file=err)
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
            f"{target.label}: {len(entries)} record(s) on the rejected queue, {len(selected)} selected, {late} older "
            f"than the grace period ({grace_hours:g} h)",
            file=out,
        )
        state = StateFile(args.state_file, f"{target.label} {target.rejected_queue_url}")
        backfiller = Backfiller(orb, state, moment, timedelta(hours=args.close_after_hours), close=not args.no_close)
        pending = orb.pending_backfills()
        if not args.yes:
            found = {index: backfiller.look_up(group) for index, group in enumerate(groups)}
            print("plan (replace_existing_events: false):", file=out)
            print("\n".join(describe(groups, found)) or "  nothing to backfill", file=out)
            for backfill in pending:
                print(
                    f"  pending in Orb: {backfill.id} {backfill.timeframe_start.isoformat()} .. "
                    f"{backfill.timeframe_end.isoformat()}",
                    file=out,
                )
            print("\ndry run: nothing changed. Run again with --yes to backfill.", file=out)
            return 0
        progress = Progress(sum(len(group.events) for group in groups), err, "backfilling")
        status = 0
        for group in groups:
            try:
                result = backfiller.run_group(group, pending, progress)
            except OrbApiError as exc:
                print(
                    f"\nbackfill for {group.scope_label} {group.start.isoformat()} .. {group.end.isoformat()}: {exc}"
                    f"\n  (saved in {args.state_file}: rerun to resume)",
                    file=out,
                )
                status = 1
                continue
            if result.closed or not result.backfill_id:
                billed = _billed_records(group, result)
                deleted.update(entry.message_id for entry in billed)
                result.deleted = len(billed) - len(delete(target.sqs, target.rejected_queue_url, billed))
            _report(group, result, out)
        progress.finish()
        return status
    finally:
        release(target.sqs, target.rejected_queue_url, [e for e in entries if e.message_id not in deleted])


def _report(group: Group, result: GroupResult, out: TextIO) -> None:
    where = f"backfill {result.backfill_id}" if result.backfill_id else "no backfill needed"
    state = "closed" if result.closed else ("left pending (--no-close)" if result.backfill_id else "")
    print(
        f"{group.scope_label} {group.start.isoformat()} .. {group.end.isoformat()}: {where} {state}".rstrip(), file=out
    )
    print(
        f"  ingested {len(result.ingested)}, already in Orb (skipped) {len(result.already_in_orb)}, "
        f"records deleted {result.deleted}",
        file=out,
    )
    for key in result.different_in_orb[:20]:
        print(f"  kept: {key} is in Orb with a different body (not resent: it would not be billed)", file=out)
    for key, reason in list(result.refused.items())[:20]:
        print(f"  kept: Orb refused {key}: {reason}", file=out)
    for entry in group.conflicts[:20]:
        print(f"  kept: record {entry.message_id} reuses a key of this backfill with a different event", file=out)


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, os.environ if env is None else env, sys.stdout, sys.stderr)
