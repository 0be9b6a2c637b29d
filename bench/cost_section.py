"""Section 6 of ``make bench``: cost per million events, from the figures the run measured."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from bench import cost
from bench.common import markdown_table
from orb_bridge.ingest.settings import ORB_MAX_EVENTS_PER_REQUEST

# In-region round trip of one SQS / DynamoDB / EventBridge call from Lambda: an assumption (typical
# published figures are 5-20 ms), used only by the cost model, never measured here.
AWS_CALL_SECONDS = 0.010
# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769
# The two stated rates (events/s) and the target at the higher one (issue 17).
TARGET_RATE = 1_000
RATES = (TARGET_RATE, 20)
COST_TARGET = 0.15  # USD per million events
# Concurrent Orb requests of one invocation (the default): a batch of up to 10,000 is one wave.
INGEST_CONCURRENCY = 20


def lambda_seconds(cpu_seconds: float, wall_seconds: float, memory_mb: int) -> float:
    """Local CPU time scaled to the function's CPU share, plus the time spent waiting."""
    share = min(1.0, memory_mb / FULL_VCPU_MB)
    return cpu_seconds / share + max(0.0, wall_seconds - cpu_seconds)


def cost_section(say: Callable[[str], None], missed: list[str], intake: Any, throughput: Any, verify: Any) -> None:
    """Lambda time scaled to each function's CPU share, SQS/EventBridge calls at an assumed latency."""
    facts = cost.template_facts()
    # Intake: measured CPU, scaled to the function's CPU share, plus the SQS round trips it waits on
    # (slices of SEND_CHUNK bodies on SEND_WORKERS threads, each slice sequential).
    slices = math.ceil(intake["events"] / intake["send_chunk"])
    waves = math.ceil(slices / intake["send_workers"])
    sqs_wait = waves * math.ceil(intake["send_chunk"] / 10) * AWS_CALL_SECONDS
    intake_batch_s = (
        lambda_seconds(intake["handler_batch_ms"] / 1000, intake["handler_batch_ms"] / 1000, facts.intake_memory_mb)
        + sqs_wait
    )
    intake_single_s = (
        lambda_seconds(intake["single_event_ms"] / 1000, intake["single_event_ms"] / 1000, facts.intake_memory_mb)
        + AWS_CALL_SECONDS
    )
    webhook_s = (
        lambda_seconds(verify["ours_us"] / 1e6, verify["ours_us"] / 1e6, facts.webhook_memory_mb) + 3 * AWS_CALL_SECONDS
    )
    say("## 6. Cost per million events on AWS (us-east-1 list prices, arm64)\n")
    say(
        f"Durations: local CPU time scaled to the function's CPU share ({facts.intake_memory_mb} MB of "
        f"{FULL_VCPU_MB} MB per vCPU), plus waiting; AWS API calls assumed at {AWS_CALL_SECONDS * 1000:.0f} ms each "
        "(not measured here; OrbIngest waits on 1 pacing write and 1 archive PUT per wave of concurrent Orb "
        "requests). Memory, batch sizes, retention from template.yaml: an OrbIngest invocation holds what arrives "
        f"within the batching window ({facts.ingest_batching_window_seconds} s), at most IngestBatchSize "
        f"({facts.ingest_batch_size:,}); each batch size below was run through ingest with the archive on (Orb "
        "sandbox, 100 ms latency) to count its PUTs, archive bytes and log bytes. Segment is assumed to send "
        "batches of 1,000 at both rates (at 20 events/s it may send smaller ones: intake then costs more, up to "
        "the classic table). The Orb budget must allow the rate (the default, 10,000 events/min, is 167 events/s): "
        "time spent waiting on pacing is not included, nor are idle SQS long polls.\n"
    )
    per_request = intake["events"]
    tables: list[tuple[str, list[tuple[str, float, str]], float | None]] = []
    for rate in RATES:
        batch = facts.ingest_batch_at(rate, bench_message_bytes())
        measured = next((m for m in throughput["archive_by_batch"] if m["events"] == batch), None)
        if measured is None:
            raise RuntimeError(f"no ingest run of {batch} events (the batch at {rate} events/s)")
        rows = usage_rows(facts, intake, intake_batch_s, per_request, batch, measured)
        rows += cost.archive_and_logs_per_million(
            facts=facts,
            ingest_batch_size=batch,
            puts_per_invocation=measured["puts"],
            archive_bytes_per_event=measured["compressed_bytes"] / batch,
            orb_requests_per_invocation=orb_requests(batch),
            ingest_log_bytes_per_invocation=measured["log_bytes"],
            intake_requests=1_000_000 / per_request,
            intake_log_bytes_per_request=intake["log_bytes_per_batch"],
        )
        title = (
            f"Segment batches of {per_request:,} events (Webhooks Actions batch mode) at {rate:,} events/s: "
            f"OrbIngest batches of {batch:,}"
        )
        tables.append((title, rows, COST_TARGET if rate == TARGET_RATE else None))
    classic_batch = facts.ingest_batch_at(TARGET_RATE, bench_message_bytes())
    classic_measured = next(m for m in throughput["archive_by_batch"] if m["events"] == classic_batch)
    classic = usage_rows(facts, intake, intake_single_s, 1, classic_batch, classic_measured)
    classic += cost.archive_and_logs_per_million(
        facts=facts,
        ingest_batch_size=classic_batch,
        puts_per_invocation=classic_measured["puts"],
        archive_bytes_per_event=classic_measured["compressed_bytes"] / classic_batch,
        orb_requests_per_invocation=orb_requests(classic_batch),
        ingest_log_bytes_per_invocation=classic_measured["log_bytes"],
        intake_requests=1_000_000,
        intake_log_bytes_per_request=intake["log_bytes_per_single"],
    )
    tables.append((f"one event per request (classic Webhooks) at {TARGET_RATE:,} events/s", classic, None))
    tables.append(
        (
            "per million Orb webhooks",
            cost.webhook_cost_per_million(facts=facts, webhook_seconds=webhook_s, webhook_bytes=verify["body_bytes"]),
            None,
        )
    )
    for title, rows, target in tables:
        total = sum(row[1] for row in rows)
        verdict = ""
        if target is not None:
            met = total <= target
            verdict = f" (target <= ${target:.2f}: {'met' if met else 'MISSED'})"
            if not met:
                missed.append(f"cost at {TARGET_RATE:,} events/s")
        say(f"**{title}: ${total:,.3f} per million{verdict}**\n")
        say(markdown_table(["item", "USD / million", "how"], [[r[0], f"{r[1]:.4f}", r[2]] for r in rows]) + "\n")
    say(rate_explanation(tables))


def usage_rows(
    facts: cost.TemplateFacts,
    intake: Any,
    intake_seconds: float,
    events_per_request: int,
    batch: int,
    measured: dict[str, Any],
) -> list[tuple[str, float, str]]:
    waves = -(-orb_requests(batch) // INGEST_CONCURRENCY)
    ingest_s = (
        lambda_seconds(measured["cpu_seconds"], measured["seconds"], facts.ingest_memory_mb)
        + (cost.PACING_WRITES_PER_ORB_REQUEST + 1) * waves * AWS_CALL_SECONDS  # + 1 archive PUT
    )
    return cost.usage_cost_per_million(
        facts=facts,
        events_per_segment_request=events_per_request,
        segment_request_bytes=intake["body_bytes"] * events_per_request // intake["events"],
        intake_seconds_per_request=intake_seconds,
        sqs_message_bytes=int(intake["sqs_message_bytes"]),
        ingest_batch_size=batch,
        ingest_seconds_per_invocation=ingest_s,
    )


def rate_explanation(tables: list[tuple[str, list[tuple[str, float, str]], float | None]]) -> str:
    """Why the low rate costs more: the per-invocation items, spread over fewer events."""
    (_, high, _), (_, low, _) = tables[0], tables[1]
    high_by, low_by = dict((r[0], r[1]) for r in high), dict((r[0], r[1]) for r in low)
    grown = sorted(((low_by[k] - high_by[k], k) for k in low_by if k in high_by), reverse=True)
    top = "; ".join(f"{name} +${delta:.4f}" for delta, name in grown[:4] if delta > 0.00005)
    return (
        f"At {RATES[1]} events/s a {facts_window()}-second window holds far fewer events than IngestBatchSize, so "
        "every per-invocation and per-request item (the Lambda request, one archive PUT per Orb request of fewer "
        f"than 500 events, the pacing writes, each invocation's log lines and metrics) is spread over fewer events: "
        f"{sum(r[1] for r in low) - sum(r[1] for r in high):+.3f} USD per million over {RATES[0]:,} events/s ({top}). "
        "A longer IngestBatchingWindowSeconds brings it down, at the price of latency to Orb.\n"
    )


def facts_window() -> int:
    return cost.template_facts().ingest_batching_window_seconds


def orb_requests(batch: int) -> int:
    return -(-batch // ORB_MAX_EVENTS_PER_REQUEST)


def bench_message_bytes() -> int:
    """Bytes of one SQS message of the ingest bench's events (the 6 MB payload bound of a batch)."""
    from bench.ingest import orb_events

    return len(json.dumps(orb_events(1, "size")[0], separators=(",", ":")).encode())


def ingest_batches() -> list[int]:
    """The OrbIngest batch sizes of the stated rates (the ingest bench runs each once, for the cost model)."""
    facts = cost.template_facts()
    return sorted({facts.ingest_batch_at(rate, bench_message_bytes()) for rate in RATES})
