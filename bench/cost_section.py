"""Section 6 of ``make bench``: cost per million events, from the figures the run measured."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench import cost
from bench.common import markdown_table

# In-region round trip of one SQS / DynamoDB / EventBridge call from Lambda: an assumption (typical
# published figures are 5-20 ms), used only by the cost model, never measured here.
AWS_CALL_SECONDS = 0.010
# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769


def lambda_seconds(cpu_seconds: float, wall_seconds: float, memory_mb: int) -> float:
    """Local CPU time scaled to the function's CPU share, plus the time spent waiting."""
    share = min(1.0, memory_mb / FULL_VCPU_MB)
    return cpu_seconds / share + max(0.0, wall_seconds - cpu_seconds)


def cost_section(say: Callable[[str], None], intake: Any, throughput: Any, verify: Any) -> None:
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
    handler = throughput["handler"]
    ingest_s = lambda_seconds(handler["cpu_seconds"], handler["seconds"], facts.ingest_memory_mb)
    ingest_per_event = ingest_s / throughput["records"]
    webhook_s = (
        lambda_seconds(verify["ours_us"] / 1e6, verify["ours_us"] / 1e6, facts.webhook_memory_mb) + 3 * AWS_CALL_SECONDS
    )
    say("## 6. Cost per million events on AWS (us-east-1 list prices, arm64)\n")
    say(
        f"Durations: local CPU time scaled to the function's CPU share ({facts.intake_memory_mb} MB of "
        f"{FULL_VCPU_MB} MB per vCPU), plus waiting; AWS API calls assumed at {AWS_CALL_SECONDS * 1000:.0f} ms each "
        f"(not measured here). Memory, batch size from template.yaml (IngestBatchSize {facts.ingest_batch_size:,}; "
        "ingest time per event from the 10,000-record run with 100 ms Orb latency). CloudWatch Logs and "
        "idle SQS long polls are not included.\n"
    )
    for title, rows in (
        (
            "Segment batches of 1,000 events (Webhooks Actions batch mode)",
            cost.usage_cost_per_million(
                facts=facts,
                events_per_segment_request=intake["events"],
                segment_request_bytes=intake["body_bytes"],
                intake_seconds_per_request=intake_batch_s,
                sqs_message_bytes=int(intake["sqs_message_bytes"]),
                ingest_seconds_per_event=ingest_per_event,
            ),
        ),
        (
            "one event per request (classic Webhooks)",
            cost.usage_cost_per_million(
                facts=facts,
                events_per_segment_request=1,
                segment_request_bytes=intake["body_bytes"] // intake["events"],
                intake_seconds_per_request=intake_single_s,
                sqs_message_bytes=int(intake["sqs_message_bytes"]),
                ingest_seconds_per_event=ingest_per_event,
            ),
        ),
        (
            "per million Orb webhooks",
            cost.webhook_cost_per_million(facts=facts, webhook_seconds=webhook_s, webhook_bytes=verify["body_bytes"]),
        ),
    ):
        total = sum(row[1] for row in rows)
        say(f"**{title}: ${total:,.2f} per million**\n")
        say(markdown_table(["item", "USD / million", "how"], [[r[0], f"{r[1]:.4f}", r[2]] for r in rows]) + "\n")
