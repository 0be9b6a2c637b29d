"""Checking the soak's outcome: what the Orb sandbox billed and what the rejected queue holds, against the plan."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from bench.soak_config import ORB_REFUSES, PROPERTIES_MAPPING, SoakReport
from bench.soak_traffic import Plan


def read_queue(sqs: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    empty_rounds = 0
    while empty_rounds < 2:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
            "Messages", []
        )
        if not messages:
            empty_rounds += 1
            continue
        empty_rounds = 0
        bodies += [message["Body"] for message in messages]
    return bodies


def check(stack: Any, plan: Plan, report: SoakReport) -> None:
    ingested = stack.sandbox.ingested_events()
    valid_keys = set(plan.valid)
    report.ingested = len(ingested)
    report.missing = len(valid_keys - ingested.keys())
    report.extra_keys = len(ingested.keys() - valid_keys)
    seqs = Counter(event.get("properties", {}).get("seq") for event in ingested.values())
    report.duplicates_billed = sum(count - 1 for count in seqs.values() if count > 1) + report.extra_keys
    for key, stored in ingested.items():
        source = plan.valid.get(key)
        if source is None:
            continue
        expected_properties = {
            orb: source["properties"][segment]
            for segment, orb in PROPERTIES_MAPPING.items()
            if segment in source["properties"]
        }
        if (
            stored.get("event_name") != source["event"]
            or stored.get("external_customer_id") != source["userId"]
            or stored.get("properties") != expected_properties
        ):
            report.content_mismatches += 1

    rejected = [
        json.loads(body) for body in read_queue(stack.local_aws.client("sqs"), stack.resources.rejected_queue.url)
    ]
    report.rejected_queue_messages = len(rejected)
    found_invalid: set[str] = set()
    orb_reasons: set[str] = set()
    for record in rejected:
        segment_event = record.get("segment_event") if isinstance(record, dict) else None
        message_id = (segment_event or {}).get("messageId") if isinstance(segment_event, dict) else None
        # A raw usage event (redriven after maxReceiveCount) or an Orb/ingest rejection of a valid one.
        key = message_id or record.get("idempotency_key") or (record.get("orb_event") or {}).get("idempotency_key")
        if key in plan.invalid:
            found_invalid.add(key)
            if not record.get("reason"):
                report.invalid_without_reason += 1
            # Orb's own words on the timestamp, not a bare status (a redriven message has none).
            if (
                plan.invalid[key] in ORB_REFUSES
                and record.get("stage") == "orb"
                and any("timestamp" in str(error) for error in record.get("errors") or [])
            ):
                orb_reasons.add(key)
        elif key in plan.valid:
            report.valid_on_rejected_queue += 1
    report.invalid_on_rejected_queue = len(found_invalid)
    report.refused_by_orb = sum(1 for kind in plan.invalid.values() if kind in ORB_REFUSES)
    report.refused_by_orb_kept_with_orbs_reason = len(orb_reasons)

    stats = stack.sandbox.stats()
    report.orb_requests = stats["ingest_requests"]
    report.orb_outcomes = stats["outcomes"]
    report.orb_duplicate_offers = stats["duplicates"]
    report.poller = {k: v for k, v in stack.poller.stats.snapshot().items() if k != "last_error"}

    if report.missing:
        report.failures.append(f"{report.missing} valid events never ingested")
    if report.duplicates_billed:
        report.failures.append(f"{report.duplicates_billed} duplicates billed")
    if report.content_mismatches:
        report.failures.append(f"{report.content_mismatches} ingested events differ from what was sent")
    if report.invalid_on_rejected_queue != len(plan.invalid):
        report.failures.append(
            f"{len(plan.invalid) - report.invalid_on_rejected_queue} invalid events missing from the rejected queue"
        )
    if report.refused_by_orb_kept_with_orbs_reason != report.refused_by_orb:
        report.failures.append(
            f"{report.refused_by_orb - report.refused_by_orb_kept_with_orbs_reason} events refused by Orb "
            "are not on the rejected queue with Orb's reason"
        )
    if report.invalid_without_reason:
        report.failures.append(f"{report.invalid_without_reason} rejected events without a reason")
    report.orb_rate_limited = stats["outcomes"].get("rejected_429", 0)
    report.orb_validation_400s = stats["outcomes"].get("rejected_400", 0)
    if report.valid_on_rejected_queue:
        report.failures.append(f"{report.valid_on_rejected_queue} valid events on the rejected queue")
    if stats["conflicting_duplicates"]:
        report.failures.append(f"{stats['conflicting_duplicates']} requests held one key twice with different bodies")
