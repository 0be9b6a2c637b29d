"""Section 8 of ``make bench``: the reconciler over archived events against the Orb sandbox, and what
reconciling costs over an archived hour's life."""

from __future__ import annotations

import sys

from bench import reconcile_bench
from bench.common import markdown_table
from bench.cost import template_facts
from bench.reconcile_lifetime import MB_PER_VCPU, S3_GET_LATENCY_SECONDS, lifetime

# Issue 18's targets, per million archived events and per pass.
MAX_SEARCHES_PER_MILLION = 2_000
MAX_TIME_RATIO = 1.2
MAX_COST_PER_MILLION = 0.02
# The template's defaults (ReconcileFullCheckEventsPerHour, ReconcileSampleSize, ReconcileLookbackDays).
FULL_CHECK, SAMPLE, LOOKBACK_DAYS, DAILY_SAMPLE = 100_000, 10_000, 35, 1_000


def reconcile_section(say, missed: list[str], events: int, requests_per_second: float) -> None:
    """``events`` archived events over 10 send-hours (at most 100,000 per hour: each looked up in
    full), first passes only (each key looked up once), paced at ``requests_per_second``; the cost
    is at the deployed 2 requests/s."""
    print(f"reconciling {events:,} archived events ...", file=sys.stderr, flush=True)
    r = reconcile_bench.run(events=events, hours=10, requests_per_second=requests_per_second)
    say(
        f"## 8. Reconciling the audit archive: {r['events']:,} archived events over {r['send_hours']} send-hours, "
        f"first passes ({r['passes']} reports), paced at {r['requests_per_second']:g} requests/s\n"
    )
    say(
        "The archive is written to moto's S3 in-process (objects of 500 events) and the events put straight "
        "into the sandbox's store; the reconciler runs as deployed over HTTP to the sandbox. Time is compared "
        "with the pacing bound at the rate it ran at (`--reconcile-rate`: faster than the deployed 2 requests/s "
        "lets a million run in minutes, `--reconcile-events 1000000 --reconcile-rate 25`); cost is at the deployed "
        f"2 requests/s (Lambda bills the paced waiting) and {r['memory_mb']} MB (`OrbReconcileFunction`'s "
        "MemorySize).\n"
    )
    searches_ok = r["searches_per_million_per_pass"] <= MAX_SEARCHES_PER_MILLION
    time_ok = r["ratio"] <= MAX_TIME_RATIO
    cost_ok = r["cost_per_million_per_pass"] <= MAX_COST_PER_MILLION
    present_ok = r["checked"] == r["events"] * r["passes"] // r["send_hours"] and not any(r["not_present"].values())
    for ok, name in (
        (searches_ok, "reconcile searches"),
        (time_ok, "reconcile time"),
        (cost_ok, "reconcile cost"),
        (present_ok, "reconcile found"),
    ):
        if not ok:
            missed.append(name)
    costs = ", ".join(f"{name} ${value:.4f}" for name, value in r["cost_per_million"].items())
    rows = [
        [
            "searches per million events per pass (searches; volume calls)",
            f"{r['searches_per_million_per_pass']:,.0f} ({r['searches']:,}; {r['volume_calls']:,})",
            f"<= {MAX_SEARCHES_PER_MILLION:,}: {'met' if searches_ok else 'MISSED'}",
        ],
        [
            f"seconds (pacing bound: Orb calls / {r['requests_per_second']:g} per s)",
            f"{r['seconds']:.1f} ({r['ratio']:.2f}x of {r['pacing_bound_seconds']:.1f})",
            f"<= {MAX_TIME_RATIO}x: {'met' if time_ok else 'MISSED'}",
        ],
        [
            "cost per million events per pass at 2 requests/s",
            f"${r['cost_per_million_per_pass']:.4f} ({costs}; {r['deployed_seconds']:,.0f} s paced)",
            f"<= ${MAX_COST_PER_MILLION}: {'met' if cost_ok else 'MISSED'}",
        ],
        [
            "S3 requests (lists, gets, report puts); DynamoDB requests",
            f"{r['s3_requests']:,}; {r['dynamodb_requests']}",
            "",
        ],
        [
            "keys checked; not present (by metric)",
            f"{r['checked']:,}; {r['not_present']}",
            f"all present: {'met' if present_ok else 'MISSED'}",
        ],
        [
            "seconds to write the archive and fill the sandbox; reading + choosing per archive object",
            f"{r['generate_seconds']:.1f}; {r['read_seconds_per_object'] * 1000:.1f} ms",
            "",
        ],
        [
            "peak RSS of the bench process (after the fill; at the end)",
            f"{r['peak_rss_mb_after_fill']:,.0f} MB; {r['peak_rss_mb']:,.0f} MB",
            "moto's S3 and the sandbox hold the archive and Orb's copy",
        ],
    ]
    say(markdown_table(["measure", "value", "target"], rows) + "\n")
    lifetime_table(say, r["read_seconds_per_object"])


def lifetime_table(say, read_seconds_per_object: float) -> None:
    facts = template_facts()
    say(
        f"### What an archived hour costs over its life ({2 + LOOKBACK_DAYS} passes: first, final and "
        f"{LOOKBACK_DAYS} daily re-checks), at 2 requests/s and {facts.reconcile_memory_mb} MB\n"
    )
    say(
        "Modelled from this run (bench/reconcile_lifetime.py): the first and final passes read every object of the hour "
        f"({read_seconds_per_object * 1000:.1f} ms of CPU each here, x {MB_PER_VCPU / facts.reconcile_memory_mb:.1f} "
        f"at {facts.reconcile_memory_mb} MB's share of a vCPU, + {S3_GET_LATENCY_SECONDS * 1000:.0f} ms assumed for "
        "each S3 GET) and look up every key, or a sample of 10,000 above "
        "100,000 events per hour; a daily pass reads only the final pass's basis (1 GET) and looks up "
        f"{DAILY_SAMPLE:,} of its keys. A day holds 24 hourly runs of at most {facts.reconcile_timeout_seconds} s. "
        "The target ($0.02 per million) is per pass.\n"
    )
    rows = []
    for label, events_per_second in (
        ("20 events/s", 20.0),
        ("1,000 events/s", 1000.0),
        ("100,000 events/hour (the full-check threshold)", FULL_CHECK / 3600),
    ):
        life = lifetime(
            events_per_second=events_per_second,
            full_check_events_per_hour=FULL_CHECK,
            sample_size=SAMPLE,
            lookback_days=LOOKBACK_DAYS,
            requests_per_second=2.0,
            read_seconds_per_object=read_seconds_per_object,
            memory_mb=facts.reconcile_memory_mb,
            timeout_seconds=facts.reconcile_timeout_seconds,
            daily_sample_size=DAILY_SAMPLE,
        )
        rows.append(
            [
                f"{label}: {'sampled' if life.sampled else 'full checks'}",
                f"${life.per_pass_per_million:.4f}",
                f"${life.lifetime_per_million:.4f}",
                f"{life.daily_seconds_per_day:,.0f} s",
                f"{life.seconds_needed_per_day:,.0f} of {life.seconds_available_per_day:,.0f} s: "
                f"{'fits' if life.fits_in_a_day else 'does NOT fit'}",
            ]
        )
    headers = [
        "rate",
        "per million per pass",
        "per million over its life",
        "a day's daily passes",
        "a day's passes in a day's runs",
    ]
    say(markdown_table(headers, rows) + "\n")
