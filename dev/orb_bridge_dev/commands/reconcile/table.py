"""What ``orb-bridge reconcile`` prints: the per-hour table, the keys per class with what each class
means, and the repair's plan or outcome. Every text read from the reports or the archive is escaped."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TextIO

from orb_bridge.reconcile.archive_reader import parse_hour
from orb_bridge.reconcile.classify import DEPRECATED, DIFFERENT, NOT_FOUND, PRESENT, UNATTRIBUTED
from orb_bridge_dev.commands.reconcile import late
from orb_bridge_dev.commands.reconcile.repair import RepairPlan, RepairResult
from orb_bridge_dev.deployment.reconcile_reports import HourRow
from orb_bridge_dev.terminal import printable

MEANING = {
    NOT_FOUND: "Orb holds nothing under the key: lost by Orb, or amended (search hides amended events); "
    "--repair re-sends those within the grace period",
    DEPRECATED: "deprecated in Orb (by hand or a backfill's replace): not billed; left alone, "
    "deprecating was someone's decision",
    DIFFERENT: "Orb holds another body under our key (another source used it first): left alone, "
    "find who sent it before billing ours",
    UNATTRIBUTED: "held, but Orb matched no customer: billed to no one until the customer exists in Orb; "
    "left alone, create or fix the customer",
}
COLUMNS = (
    "send-hour",
    "archived",
    "present",
    "not found",
    "deprecated",
    "different",
    "unattributed",
    "volume",
    "passes",
)


def check_hour_text(text: str) -> None:
    try:
        parse_hour(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hour: expected YYYY-MM-DDTHH (UTC), got {text!r}") from None


def _volume(row: HourRow) -> str:
    volume = row.volume
    if volume is None:
        return "-"
    return f"{printable(volume.get('orb_count'))}/{printable(volume.get('expected_at_least'))}"


def print_text(document: dict[str, Any], rows: Sequence[HourRow], args: argparse.Namespace, out: TextIO) -> None:
    print(f"{printable(document['target'])}: grace period {document['grace_period_hours']:g} h", file=out)
    checked = document.get("check")
    if checked is not None:
        ran = ", ".join(printable(item) for item in checked["reports"]) or "none due"
        print(f"check: passes run now: {ran}; Orb calls {printable(checked['orb_calls'])}", file=out)
        if checked["waiting"]:
            print(f"check: waiting for a backfill to settle: {printable(', '.join(checked['waiting']))}", file=out)
        if checked["stopped"]:
            print(f"check: stopped early: {printable(checked['stopped'])}", file=out)
    if not rows:
        print("no reconciliation report in that range", file=out)
    else:
        table = [COLUMNS]
        for row in rows:
            counts = row.counts
            table.append(
                (
                    printable(row.hour),
                    str(row.archived),
                    str(counts[PRESENT]),
                    str(counts[NOT_FOUND]),
                    str(counts[DEPRECATED]),
                    str(counts[DIFFERENT]),
                    str(counts[UNATTRIBUTED]),
                    _volume(row),
                    printable(",".join(row.passes)),
                )
            )
        widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
        for line in table:
            print(
                "  ".join(
                    cell.rjust(width) if i else cell.ljust(width)
                    for i, (cell, width) in enumerate(zip(line, widths, strict=True))
                ),
                file=out,
            )
    _print_keys(rows, args.keys, out)
    if "repair" in document:
        _print_repair(document["repair"], out)


def _print_keys(rows: Sequence[HourRow], limit: int, out: TextIO) -> None:
    shown: set[str] = set()
    for row in rows:
        for cls, keys in sorted(row.listed.items()):
            if not keys:
                continue
            shown.add(cls)
            more = f" (+{len(keys) - limit} more: --json)" if len(keys) > limit else ""
            print(f"{printable(row.hour)} {cls}: {printable(' '.join(keys[:limit]))}{more}", file=out)
        if row.unreadable:
            print(f"{printable(row.hour)}: unreadable report(s): {printable(' '.join(row.unreadable))}", file=out)
    for cls in sorted(shown):
        print(f"  {cls}: {MEANING[cls]}", file=out)


def repair_json(plan: RepairPlan, outcome: RepairResult | None, acted: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "dry_run": not acted,
        "resend": [str(event.get("idempotency_key")) for event in plan.resend],
        "past_grace_period": [str(event.get("idempotency_key")) for event in plan.past_grace],
        "now_in_orb": plan.now_present,
        "not_archived": plan.not_archived,
        "reports_listing_fewer_keys_than_counted": plan.truncated_hours,
        "unreadable_archive_objects": plan.unreadable_archive,
    }
    if outcome is not None:
        document["sent"] = outcome.sent
        document["send_failed"] = outcome.send_failed
        document["invalid"] = plan.invalid
    return document


def late_json(written: late.LateResult | None, asked: bool, where: str) -> dict[str, Any]:
    """What became of the events past the grace period; the commands that bill them, if a person so decides."""
    document: dict[str, Any] = {"asked": asked, "commands": late.commands(where)}
    if written is not None:
        document.update(written=written.written, write_failed=written.write_failed, invalid=written.invalid)
    return document


def _print_late(repair: dict[str, Any], out: TextIO) -> None:
    keys, moved = repair["past_grace_period"], repair["late_to_rejected"]
    listing = f"  past the grace period: {printable(' '.join(keys))}"
    if "written" in moved:
        print(
            f"repair: wrote {len(moved['written'])} of them to the rejected queue as records "
            "`orb-bridge backfill` bills; next, review and run:",
            file=out,
        )
        print(listing, file=out)
        for command in moved["commands"][1:]:
            print(f"  {printable(command)}", file=out)
        if moved["write_failed"]:
            print(f"repair: {len(moved['write_failed'])} could not be written: rerun", file=out)
        if moved["invalid"]:
            print(f"repair: not usage events any more, not written: {printable(' '.join(moved['invalid']))}", file=out)
        return
    print(
        f"repair: {len(keys)} event(s) past the grace period, NOT re-sent: Orb no longer deduplicates their keys, "
        "and an amended event also reads as not found, so billing it again would bill it twice. Check each "
        "in Orb; if they are truly lost, a person decides to bill them with:",
        file=out,
    )
    print(listing, file=out)
    for command in moved["commands"]:
        print(f"  {printable(command)}", file=out)
    if moved["asked"] and repair["dry_run"]:
        print("  (--late-to-rejected writes nothing without --yes)", file=out)


def _print_repair(repair: dict[str, Any], out: TextIO) -> None:
    print("", file=out)
    if repair["now_in_orb"]:
        print(f"repair: {len(repair['now_in_orb'])} not-found event(s) Orb holds by now: nothing to do", file=out)
    if repair["dry_run"]:
        print(
            f"repair: would re-send {len(repair['resend'])} event(s) within the grace period through ingest", file=out
        )
        for key in repair["resend"]:
            print(f"  {printable(key)}", file=out)
    else:
        print(
            f"repair: re-sent {len(repair['sent'])} event(s) to the ingest queue (Orb deduplicates their keys)",
            file=out,
        )
        if repair["send_failed"]:
            print(f"repair: {len(repair['send_failed'])} could not be enqueued: rerun", file=out)
        if repair["invalid"]:
            print(f"repair: not usage events any more, not sent: {printable(' '.join(repair['invalid']))}", file=out)
    if repair["past_grace_period"]:
        _print_late(repair, out)
    if repair["not_archived"]:
        print(
            f"repair: listed but not in the archive (not sent): {printable(' '.join(repair['not_archived']))}", file=out
        )
    for problem in repair["unreadable_archive_objects"]:
        print(f"repair: unreadable archive object (its events not considered): {printable(problem)}", file=out)
    if repair["reports_listing_fewer_keys_than_counted"]:
        hours = " ".join(repair["reports_listing_fewer_keys_than_counted"])
        print(f"repair: these hours' reports list only some of their not-found keys: {printable(hours)}", file=out)
    if repair["dry_run"]:
        print("\ndry run: nothing sent. Run again with --repair --yes to re-send.", file=out)
