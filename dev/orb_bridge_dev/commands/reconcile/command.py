"""``orb-bridge reconcile``: the reconciler's reports hour by hour; ``--check`` runs a reconciliation
now (``check``); ``--repair`` re-sends what Orb lost, where that cannot bill twice (``repair``).

Dry run by default, like ``replay`` and ``backfill``: ``--repair`` alone shows what it would do.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from orb_bridge.orb.reconcile_client import OrbReadClient, OrbReadError
from orb_bridge_dev.commands.reconcile import check, late, repair, table
from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.orb_pacer import Pacer
from orb_bridge_dev.deployment.reconcile_reports import read_rows, strict_json
from orb_bridge_dev.deployment.rejected_records import TargetError, parse_since
from orb_bridge_dev.terminal import printable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orb-bridge reconcile",
        description="The reconciliation reports hour by hour; --check runs one now; --repair re-sends lost events.",
    )
    stack_target.add_target_arguments(parser)
    parser.add_argument("--since", default="48h", metavar="WHEN", help="send-hours from WHEN: 48h, 3d or ISO 8601")
    parser.add_argument("--hour", metavar="YYYY-MM-DDTHH", help="only this send-hour (UTC)")
    parser.add_argument("--check", action="store_true", help="run a reconciliation now (the deployed code)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--keys", type=int, default=20, metavar="N", help="keys shown per hour and class (default 20)")
    parser.add_argument("--repair", action="store_true", help="re-send not-found events within the grace period")
    parser.add_argument("--yes", action="store_true", help="with --repair: act (default: dry run)")
    parser.add_argument(
        "--late-to-rejected",
        action="store_true",
        help="with --repair --yes: also write the events past the grace period to the rejected queue, for "
        "`orb-bridge backfill` (a person's decision: an amended event also reads as not found and would be billed twice)",
    )
    parser.add_argument(
        "--grace-period-hours",
        type=float,
        default=None,
        help="Orb's grace period for your account (default $ORB_GRACE_PERIOD_HOURS or 12)",
    )
    return parser


def run(
    args: argparse.Namespace,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    session_factory: Callable[..., Any] | None = None,
    http: Any = None,
    pace: Callable[[], None] | None = None,
    step: Callable[[str], None] = lambda _name: None,
) -> int:
    moment = now()
    try:
        if args.hour is not None:
            table.check_hour_text(args.hour)
        if args.late_to_rejected and not args.repair:
            raise argparse.ArgumentTypeError("--late-to-rejected goes with --repair (and acts only with --yes)")
        since = parse_since(args.since, moment)
        target = stack_target.resolve(args, env, session_factory)
        grace_hours = stack_target.grace_period_hours(args, env)
        document: dict[str, Any] = {"target": target.label, "grace_period_hours": grace_hours}
        if args.check:
            result = check.run_check(target, grace_hours, moment, args.hour, http, pace)
            document["check"] = {
                "reports": [f"{r['hour']}#{r['pass']}" for r in result.reports],
                "waiting": result.waiting,
                "stopped": result.stopped,
                "orb_calls": result.orb_calls,
            }
        rows = read_rows(target, since, args.hour)
        document["hours"] = [row.as_json() for row in rows]
        if args.repair:
            orb = OrbReadClient(
                target.orb_base_url,
                target.orb_api_key(),
                pace or _shared_pace(),
                http_client=http if http is not None else _client(),
            )
            plan = repair.plan_repair(target, rows, orb, moment, grace_hours, step)
            outcome = repair.resend(target, plan, step) if args.yes else None
            written = late.write_late(target, plan.past_grace, step) if args.yes and args.late_to_rejected else None
            document["repair"] = table.repair_json(plan, outcome, args.yes)
            document["repair"]["late_to_rejected"] = table.late_json(
                written, args.late_to_rejected, late.target_arguments(args.stack, args.dev)
            )
    except (TargetError, argparse.ArgumentTypeError, OrbReadError) as exc:
        print(f"orb-bridge reconcile: {printable(exc)}", file=err)
        return 2
    if args.json:
        print(strict_json(document), file=out)
    else:
        table.print_text(document, rows, args, out)
    repaired = document.get("repair", {})
    return 1 if repaired.get("send_failed") or repaired.get("late_to_rejected", {}).get("write_failed") else 0


def _shared_pace() -> Callable[[], None]:
    pacer = Pacer()  # the budget `orb-bridge backfill` spends: deployment.orb_pacer
    return lambda: pacer.acquire(0)


def _client() -> Any:
    import httpx

    return httpx.Client()


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, os.environ if env is None else env, sys.stdout, sys.stderr)
