"""``orb-bridge trace KEY``: where one event is now, from what can be read without disturbing the
pipeline.

- Orb: ``/events/search`` for the key (deprecated events included, amended ones never returned).
- The rejected queue: every record received with a short hold (``--hold-seconds``, default 30) and
  released at once, only the key's kept (``deployment.rejected_plan.find_key``).
- The archive: every object of the send-hours from the event's time (Orb's or the rejected record's,
  else ``--since`` ago) to the grace period after it: when it was sent, in which request, whether a
  repeat. Read one object at a time (bounded memory).
- The reports of those send-hours: how each pass classified it.
It never receives from the ingest queue (that would hide messages from ingest and count toward
dead-lettering): "not seen anywhere" may mean still queued, which the ingest logs can tell.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from orb_bridge.aws.archive import ArchiveFormatError
from orb_bridge.orb.reconcile_client import FoundEvent, OrbReadClient, OrbReadError
from orb_bridge.reconcile.archive_reader import SOURCES, fetch_object, hour_prefix
from orb_bridge.reconcile.classify import classify
from orb_bridge.reconcile.pacing import Pacer
from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.reconcile_reports import read_rows, strict_json
from orb_bridge_dev.deployment.rejected_plan import find_key
from orb_bridge_dev.deployment.rejected_records import Target, TargetError, parse_since
from orb_bridge_dev.terminal import printable

HOUR = timedelta(hours=1)
DEFAULT_HOLD_SECONDS = 30


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orb-bridge trace", description="Where one event (idempotency key) is now.")
    parser.add_argument("key", metavar="KEY", help="the event's idempotency key (Segment messageId by default)")
    stack_target.add_target_arguments(parser)
    parser.add_argument(
        "--since",
        default="48h",
        metavar="WHEN",
        help="if Orb and the rejected queue give no time: search the archive from WHEN (default 48h)",
    )
    parser.add_argument("--grace-period-hours", type=float, default=None, help="Orb's grace period (default 12)")
    parser.add_argument("--hold-seconds", type=int, default=DEFAULT_HOLD_SECONDS, help="rejected queue read hold")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _archive(target: Target, key: str, start: datetime, end: datetime) -> tuple[list[dict[str, Any]], list[str]]:
    """(each archived request holding the key, the unreadable objects met)."""
    found: list[dict[str, Any]] = []
    unreadable: list[str] = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        for source in SOURCES:
            pages = target.s3.get_paginator("list_objects_v2").paginate(
                Bucket=target.audit_bucket, Prefix=hour_prefix(source, hour)
            )
            for name in sorted(item["Key"] for page in pages for item in page.get("Contents", [])):
                try:
                    header, events = fetch_object(target.s3, target.audit_bucket, name)
                except ArchiveFormatError as exc:
                    unreadable.append(str(exc))
                    continue
                for archived in events:
                    if archived.key == key:
                        found.append(
                            {
                                "object": name,
                                "event": archived.event,
                                **{
                                    field: header.get(field)
                                    for field in (
                                        "sent_at",
                                        "source",
                                        "backfill_id",
                                        "function_request_id",
                                        "request_number",
                                        "possible_repeat",
                                        "archived_late",
                                    )
                                },
                            }
                        )
        hour += HOUR
    return found, unreadable


def trace(
    target: Target,
    key: str,
    orb: OrbReadClient,
    now: datetime,
    grace_hours: float,
    since: datetime,
    hold_seconds: int,
    wait_seconds: int = 1,
) -> dict[str, Any]:
    grace = timedelta(hours=grace_hours)
    records = find_key(target, key, now, grace_hours, hold_seconds, wait_seconds)
    times = [entry.event_time for entry in records if entry.event_time is not None]
    in_orb: list[FoundEvent] = orb.search([key], min([since - grace, *times]), now + HOUR)
    times += [moment for moment in (_time(event.timestamp) for event in in_orb) if moment is not None]
    start = min(times) if times else since
    archived, unreadable = (
        ([], [])
        if not target.audit_bucket
        else _archive(target, key, start, min(now, start + grace + 2 * HOUR) if times else now)
    )
    reports = []
    if target.audit_bucket:
        for row in read_rows(target, start, None):
            if row.hour in {str(item["sent_at"])[:13] for item in archived}:
                listed = [cls for cls, keys in row.listed.items() if key in keys]
                reports.append(
                    {
                        "hour": row.hour,
                        "passes": row.passes,
                        "latest": (row.latest or {}).get("pass"),
                        "class": listed[0] if listed else "present (or not sampled)",
                    }
                )
    verdict = _verdict(archived, records, in_orb)
    return {
        "key": key,
        "verdict": verdict,
        "orb": [vars(event) for event in in_orb],
        "rejected": [
            {
                "stage": e.stage,
                "reason": e.reason,
                "rejected_at": e.rejected_at.isoformat(),
                "would": e.action,
                "why": e.why,
            }
            for e in records
        ],
        "archive": archived,
        "archive_unreadable": unreadable,
        "reports": reports,
    }


def _time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _verdict(archived: list[dict[str, Any]], records: list[Any], in_orb: list[FoundEvent]) -> str:
    if archived:
        cls = classify(archived[0]["event"], in_orb)
        return {
            "present": "ingested: Orb holds it as sent, billed",
            "unattributed": "ingested, but Orb matched no customer: billed to no one",
            "different": "Orb holds another body under this key (another source used it)",
            "deprecated": "ingested, then deprecated in Orb: not billed",
            "not_found": "sent and accepted (200), but Orb holds nothing under the key: lost by Orb, or amended",
        }[cls]
    if records:
        stages = sorted({entry.stage for entry in records})
        what = "refused by Orb" if "orb" in stages else "rejected"
        return f"{what}: on the rejected queue (stage {', '.join(stages)})"
    if in_orb:
        return "in Orb but not in our archive: sent by another source, a backfill, or before the archive existed"
    return "never seen: not in Orb, the archive or the rejected queue (or still on the ingest queue: see ingest's logs)"


def run(
    args: argparse.Namespace,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    session_factory: Callable[..., Any] | None = None,
    http: Any = None,
    wait_seconds: int = 1,
) -> int:
    moment = now()
    try:
        since = parse_since(args.since, moment)
        target = stack_target.resolve(args, env, session_factory)
        grace_hours = stack_target.grace_period_hours(args, env)
        import httpx

        client = http if http is not None else httpx.Client()
        orb = OrbReadClient(target.orb_base_url, target.orb_api_key(), Pacer(2.0), http_client=client)
        result = trace(target, args.key, orb, moment, grace_hours, since, args.hold_seconds, wait_seconds)
    except (TargetError, argparse.ArgumentTypeError, OrbReadError) as exc:
        print(f"orb-bridge trace: {printable(exc)}", file=err)
        return 2
    if args.json:
        print(strict_json(result), file=out)
        return 0
    print(f"{printable(args.key)}: {result['verdict']}", file=out)
    for event in result["orb"]:
        state = "deprecated" if event["deprecated"] else "current"
        print(
            f"  Orb: {state} event {printable(event['event_name'])} at {printable(event['timestamp'])} customer "
            f"{printable(event['external_customer_id'] or event['customer_id'] or '-')}",
            file=out,
        )
    for item in result["archive"]:
        repeat = " (possible repeat)" if item["possible_repeat"] else ""
        print(
            f"  archive: sent {printable(item['sent_at'])} by {printable(item['source'])} request "
            f"{printable(item['function_request_id'])}#{printable(item['request_number'])}{repeat}: "
            f"{printable(item['object'])}",
            file=out,
        )
    for record in result["rejected"]:
        print(
            f"  rejected ({printable(record['stage'])}) at {printable(record['rejected_at'])}: "
            f"{printable(record['reason'])}; replay would {printable(record['would'])}",
            file=out,
        )
    for problem in result["archive_unreadable"]:
        print(f"  unreadable archive object: {printable(problem)}", file=out)
    for report in result["reports"]:
        print(
            f"  report {printable(report['hour'])} ({printable(report['latest'])}): {printable(report['class'])}",
            file=out,
        )
    return 0


def main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args, os.environ if env is None else env, sys.stdout, sys.stderr)
