"""``orb-bridge rejected``: list the records on the rejected queue, one line each or in full.

It changes nothing. SQS has no "peek", so the records are received with a short hold
(``--hold-seconds``, default 30) and released at once when the listing is done; a ``replay`` or
``backfill`` started meanwhile sees them again within that hold at the latest (a killed listing's
records simply reappear when it expires). Same filters as ``replay``; ``--full`` prints each
record as it is on the queue (the Segment or Orb event it keeps, the reason, the errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.rejected_plan import plan
from orb_bridge_dev.deployment.rejected_records import (
    DEFAULT_GRACE_PERIOD_HOURS,
    Entry,
    TargetError,
    release,
)
from orb_bridge_dev.terminal import printable

# Short: a listing must not keep `replay` from records for long (they come back after this at worst).
DEFAULT_HOLD_SECONDS = 30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orb-bridge rejected",
        description="List the rejected records (nothing changes; `orb-bridge replay` acts on them).",
    )
    stack_target.add_target_arguments(parser)
    stack_target.add_filter_arguments(parser)
    parser.add_argument("--full", action="store_true", help="print each record in full, not one line each")
    parser.add_argument(
        "--grace-period-hours",
        type=float,
        default=None,
        help=f"Orb's grace period, for what replay would do (default $ORB_GRACE_PERIOD_HOURS or "
        f"{DEFAULT_GRACE_PERIOD_HOURS:g})",
    )
    parser.add_argument(
        "--hold-seconds",
        type=int,
        default=DEFAULT_HOLD_SECONDS,
        help=f"how long records stay invisible to others while listed (default {DEFAULT_HOLD_SECONDS})",
    )
    return parser


def line(entry: Entry) -> str:
    """rejected at, stage, event name, customer, what replay would do, reason: escaped."""
    return printable(
        f"{entry.rejected_at.strftime('%Y-%m-%dT%H:%M:%SZ')}  {entry.stage:<8}  {entry.event_name}  "
        f"customer {entry.customer}  would {entry.action}  reason: {entry.reason}"
    )


def full(entry: Entry) -> str:
    """The record as it is on the queue, indented JSON (or the raw body), each line escaped."""
    try:
        text = json.dumps(json.loads(entry.body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        text = entry.body or "(empty body)"
    return "\n".join(f"  {printable(row)}" for row in text.splitlines())


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
        print(f"orb-bridge rejected: {printable(exc)}", file=err)
        return 2
    entries: list[Entry] = []
    try:
        entries, selected = plan(
            target, filters, moment, grace_hours, args.hold_seconds, wait_seconds, sends=(), keep_bodies=args.full
        )
        print(
            f"{printable(target.label)}: {len(entries)} record(s) on the rejected queue, {len(selected)} selected",
            file=out,
        )
        for entry in sorted(selected, key=lambda entry: entry.rejected_at):
            print(line(entry), file=out)
            if args.full:
                print(full(entry), file=out)
        if selected and not args.full:
            print("(--full prints the records; `orb-bridge replay` replays them)", file=out)
        return 0
    finally:
        release(target.sqs, target.rejected_queue_url, entries)  # a listing leaves every record as it was


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, os.environ if env is None else env, sys.stdout, sys.stderr)
