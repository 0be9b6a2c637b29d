"""``orb-bridge status (--stack NAME | --dev)``: the deployment on one screen.

The stack's outputs and the parameters that matter (mapping, pacing budget, grace period), queue
depths, rejected records per stage and webhook refusals per reason over the last 24 h (from the
metrics), the last successful ingest, alarms in ALARM and the last reconciliation when the
reconciler reports one. ``--json`` prints the same for machines; ``--records`` also reads the
rejected queue itself (held ``--hold-seconds``, then released: replay and backfill are not
disturbed beyond that hold). Exit codes: 0 all well, 1 needs attention, 2 cannot tell.
On ``--dev`` the template's alarms are evaluated first (moto never does; ``devstack/alarms.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from orb_bridge_dev.deployment import health as deployment_health
from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.rejected_plan import plan
from orb_bridge_dev.deployment.rejected_records import DEFAULT_GRACE_PERIOD_HOURS, Filters, Target, TargetError, release
from orb_bridge_dev.deployment.rejected_summary import summary
from orb_bridge_dev.terminal import printable

EXIT_CODES = {"ok": 0, "attention": 1, "unknown": 2}
# Short: the records come back for replay or backfill soon after even a killed run.
DEFAULT_HOLD_SECONDS = 30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orb-bridge status", description="The deployment on one screen.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", metavar="NAME", help="a deployed stack (CloudFormation stack name)")
    where.add_argument("--dev", action="store_true", help="the local dev stack (`make dev`)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    parser.add_argument("--profile", help="AWS profile (default: your AWS configuration)")
    parser.add_argument("--endpoint-url", help="with --dev: the moto address the dev stack prints")
    parser.add_argument("--json", action="store_true", help="print JSON (the same numbers)")
    parser.add_argument("--records", action="store_true", help="also read the rejected queue's records")
    parser.add_argument(
        "--hold-seconds",
        type=int,
        default=DEFAULT_HOLD_SECONDS,
        help=f"with --records: how long records stay invisible while read (default {DEFAULT_HOLD_SECONDS})",
    )
    parser.set_defaults(allow_orb_host=[], grace_period_hours=None)
    return parser


def _evaluate_dev_alarms(target: Target) -> None:
    from orb_bridge_dev.devstack import alarms
    from orb_bridge_dev.devstack.template import load_template

    queue_urls = {url.rsplit("/", 1)[-1]: url for url in (target.ingest_queue_url, target.rejected_queue_url)}
    refs = {
        "IngestQueue.QueueName": target.ingest_queue_url.rsplit("/", 1)[-1],
        "RejectedQueue.QueueName": target.rejected_queue_url.rsplit("/", 1)[-1],
    }
    stack = target.alarm_prefix.rstrip("-")
    alarms.evaluate(target.cloudwatch, target.sqs, queue_urls, alarms.template_alarms(load_template(), refs, stack))


def _records(target: Target, hold_seconds: int, grace_hours: float, now: datetime) -> list[Any]:
    """Every record's summary (no body, no event: bounded memory), each released at once."""
    entries: list[Any] = []
    try:
        entries, _ = plan(target, Filters(), now, grace_hours, hold_seconds, sends=())
    finally:
        release(target.sqs, target.rejected_queue_url, entries)
    return entries


def _grace_hours(parameters: Mapping[str, str]) -> float:
    try:
        return float(parameters.get("OrbGracePeriodHours", DEFAULT_GRACE_PERIOD_HOURS))
    except ValueError:
        return DEFAULT_GRACE_PERIOD_HOURS


def render(report: deployment_health.Health) -> str:
    verdict = {"ok": "all well", "attention": "NEEDS ATTENTION", "unknown": "UNKNOWN (could not read everything)"}
    lines = [f"{printable(report.label)}: {verdict[report.verdict]}", ""]
    for key, value in sorted(report.outputs.items()):
        lines.append(f"  {printable(key)}: {printable(value)}")
    for key, value in report.parameters.items():
        lines.append(f"  {key}: {printable(value)}")
    lines.append("")
    for name, queue in report.queues.items():
        lines.append(f"  {name} queue: {queue['visible']} waiting, {queue['in_flight']} in flight or held back")

    def counts(title: str, values: Mapping[str, float]) -> None:
        shown = ", ".join(f"{printable(key)} {value:g}" for key, value in sorted(values.items())) or "none"
        lines.append(f"  {title} (24 h): {shown}")

    counts("rejected records written by stage", report.rejected_records_by_stage)
    counts("webhooks refused by reason", report.webhooks_refused_by_reason)
    counts("Orb request errors by kind", report.orb_errors_by_kind)
    lines.append(f"  last successful ingest: {report.last_successful_ingest or 'none in 14 days'}")
    lines.append(f"  last reconciliation: {report.last_reconciliation or 'none recorded'}")
    alarms = ", ".join(printable(name) for name in report.alarms_in_alarm) or "none"
    lines.append(f"  alarms in ALARM: {alarms}")
    for part in report.unknown:
        lines.append(f"  could not read {printable(part)}")
    return "\n".join(lines)


def run(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, session_factory: Any = None) -> int:
    try:
        target = stack_target.resolve(args, env, session_factory)
    except TargetError as exc:
        print(f"orb-bridge status: {exc}", file=sys.stderr)
        return EXIT_CODES["unknown"]
    now = datetime.now(UTC)
    problems = []
    if args.dev and target.cloudwatch is not None:
        try:
            _evaluate_dev_alarms(target)
        except Exception as exc:  # the alarms then show their last state
            problems.append(f"dev alarm evaluation: {type(exc).__name__}")
    report = deployment_health.gather(target, now)
    report.unknown[:0] = problems
    entries = []
    if args.records:
        try:
            entries = _records(target, args.hold_seconds, _grace_hours(report.parameters), now)
        except Exception as exc:
            report.unknown.append(f"rejected records: {type(exc).__name__}")
    if args.json:
        document = report.as_dict()
        if args.records:
            document["records"] = [
                {"stage": e.stage, "reason": e.reason, "rejected_at": e.rejected_at.isoformat(), "action": e.action}
                for e in entries
            ]
        out.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        out.write(render(report) + "\n")
        if args.records:
            out.write("\n" + (summary(entries, now) if entries else "  the rejected queue is empty") + "\n")
    return EXIT_CODES[report.verdict]


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, os.environ, out or sys.stdout)
