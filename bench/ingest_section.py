"""Section 2 of ``make bench``: ingest throughput, with the audit archive on as deployed."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bench.common import markdown_table

# x the SDK path, pacing off, the audit archive on (it was 10-11x before the archive existed).
INGEST_TARGET = 9.0


def ingest_section(say: Callable[[str], None], missed: list[str], throughput: dict[str, Any]) -> None:
    h, s, e = throughput["handler"], throughput["sdk_batched"], throughput["sdk_per_event"]
    off = throughput["archive_off"]
    say(
        f"## 2. Ingest throughput: {throughput['records']:,} SQS records, Orb sandbox over loopback with "
        f"{throughput['latency_ms']:.0f} ms added per request, Orb budget pacing off "
        f"(`ORB_EVENTS_PER_MINUTE=0`, `ORB_REQUESTS_PER_SECOND=0`; median of {throughput['rounds']}); "
        "the audit archive on (`AUDIT_BUCKET_NAME` set, a bucket on moto's S3 server on 127.0.0.1: one "
        f"gzip PUT per Orb 200, {throughput['archive_puts_per_request']:g} PUT per Orb request counted)\n"
    )
    ingest_met = throughput["speedup_vs_sdk"] >= INGEST_TARGET
    if not ingest_met:
        missed.append("ingest vs SDK")
    budget = throughput["default_budget"]
    say(
        markdown_table(
            ["path", "wall s", "events/s", "Orb requests", "vs SDK"],
            [
                [
                    f"OrbIngest handler ({throughput['concurrency']} concurrent requests of 500), archive on",
                    f"{h['seconds']:.2f}",
                    f"{h['events_per_s']:,.0f}",
                    h["requests"],
                    f"{throughput['speedup_vs_sdk']:.1f}x (target >= {INGEST_TARGET:.0f}x: "
                    f"{'met' if ingest_met else 'MISSED'})",
                ],
                [
                    "the same handler, archive off (`AUDIT_BUCKET_NAME` unset), interleaved with the row above",
                    f"{off['seconds']:.2f}",
                    f"{throughput['records'] / off['seconds']:,.0f}",
                    h["requests"],
                    f"{off['speedup_vs_sdk']:.1f}x",
                ],
                [
                    "the same handler (archive on) paced to the template's default Orb budget "
                    f"({budget['requests_per_second']:g} requests/s, "
                    f"{budget['events_per_minute']:,.0f} events/min, pacing table on moto's "
                    "DynamoDB): the budget, not our code, sets the time; theoretical "
                    f"{throughput['default_budget_theoretical_seconds']:.1f} s (one request of 500 every "
                    f"{500 / (budget['events_per_minute'] / 60):g} s, no burst)",
                    f"{throughput['default_budget_seconds']:.2f}",
                    f"{throughput['records'] / throughput['default_budget_seconds']:,.0f}",
                    h["requests"],
                    f"{s['seconds'] / throughput['default_budget_seconds']:.2f}x",
                ],
                [
                    "official SDK `client.events.ingest`, 500 per call, sequential",
                    f"{s['seconds']:.2f}",
                    f"{s['events_per_s']:,.0f}",
                    s["requests"],
                    "1.0x",
                ],
                [
                    f"official SDK, one request per event (measured on {e['measured_events']}, extrapolated)",
                    f"{e['seconds']:,.0f}",
                    f"{e['events_per_s']:,.1f}",
                    f"{e['requests']:,}",
                    f"{s['seconds'] / e['seconds']:.3f}x",
                ],
            ],
        )
        + "\n"
    )
    say(cpu_paragraph(throughput) + "\n")


def cpu_paragraph(throughput: dict[str, Any]) -> str:
    """Where the CPU of one invocation went, by process: on a machine of few cores the Orb sandbox's
    and moto's work shares the cores with the handler's (on AWS they run on other machines)."""
    by = throughput.get("cpu_by_process") or {}
    on, off = by.get("archive_on") or {}, by.get("archive_off") or {}

    def seconds(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    names = {"handler": "the handler (this process)", "orb_sandbox": "the Orb sandbox", "moto_s3": "moto's S3"}
    parts = [f"{label} {seconds(on.get(name))} s on / {seconds(off.get(name))} s off" for name, label in names.items()]
    return (
        f"CPU per invocation, median, archive on / off, by process ({os.cpu_count()} cores here): "
        + "; ".join(parts)
        + ". The archive's time is its PUTs' work on both sides of the loopback: the handler's botocore calls and "
        "moto's server, one Python process serving them in turn on the cores the handler and the sandbox use."
    )
