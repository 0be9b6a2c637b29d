"""Cost per million events on AWS at list prices (us-east-1), from measured durations.

Durations come from the benchmarks; memory sizes, batch size and the like from template.yaml,
so the estimate follows the configuration. Every figure is itemised with what it assumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT

# List prices, us-east-1 (arm64 Lambda; on-demand DynamoDB after the November 2024 price cut).
LAMBDA_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
HTTP_API_REQUEST = 1.00 / 1e6  # per 512 KB chunk of request
SQS_REQUEST = 0.40 / 1e6  # per 64 KB chunk of payload
DYNAMODB_WRITE_UNIT = 0.625 / 1e6  # on-demand, per WRU (1 KB)
# orb_bridge.ingest.pacing: one conditional UpdateItem on the budget item per Orb request (the
# common case; a writer racing another container occasionally needs a second).
PACING_WRITES_PER_ORB_REQUEST = 1
DYNAMODB_READ_UNIT = 0.125 / 1e6  # on-demand, per RRU (4 KB strongly consistent)
EVENTBRIDGE_EVENT = 1.00 / 1e6  # custom events, per 64 KB chunk
# S3 Standard, us-east-1 (https://aws.amazon.com/s3/pricing/): PUT, COPY, POST, LIST requests
# $0.005 per 1,000; storage $0.023 per GB-month (first 50 TB). Lifecycle expiration is free.
S3_PUT = 0.005 / 1000
S3_GB_MONTH = 0.023
# CloudWatch Logs, standard class, us-east-1 (https://aws.amazon.com/cloudwatch/pricing/):
# ingestion $0.50 per GB, storage $0.03 per GB-month (billed compressed; counted here uncompressed).
LOGS_INGESTED_GB = 0.50
LOGS_STORED_GB_MONTH = 0.03
GB = 1024**3  # AWS bills storage and log data by the binary gigabyte
DAYS_PER_MONTH = 365 / 12
# Lambda hands an event source mapping's batch over at 6 MB of payload, whatever the batch size.
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024

HTTP_API_CHUNK = 512 * 1024
SQS_CHUNK = 64 * 1024


def _template_loader():
    import yaml

    class CfnLoader(yaml.SafeLoader):
        pass

    def any_tag(loader, suffix, node):  # !Ref X -> {"Ref": "X"}, !GetAtt ... -> {"GetAtt": ...}
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {suffix: value}

    CfnLoader.add_multi_constructor("!", any_tag)
    return CfnLoader


@dataclass(frozen=True)
class TemplateFacts:
    intake_memory_mb: int
    ingest_memory_mb: int
    webhook_memory_mb: int
    reconcile_memory_mb: int
    reconcile_timeout_seconds: int
    ingest_batch_size: int
    ingest_batching_window_seconds: int
    ingest_timeout_seconds: int
    audit_retention_days: int

    def ingest_batch_at(self, events_per_second: float, message_bytes: int) -> int:
        """Events per OrbIngest invocation at a steady rate: the event source hands a batch over
        when the batching window ends, the batch is full, or it holds 6 MB, whichever comes first."""
        by_window = max(1, int(events_per_second * self.ingest_batching_window_seconds))
        return min(self.ingest_batch_size, by_window, LAMBDA_PAYLOAD_BYTES // max(1, message_bytes))


def template_facts(path: Path = ROOT / "template.yaml") -> TemplateFacts:
    import yaml

    template = yaml.load(path.read_text(), Loader=_template_loader())  # noqa: S506 (a SafeLoader subclass)
    parameters = template.get("Parameters", {})
    globals_ = template.get("Globals", {}).get("Function", {})
    resources = template["Resources"]

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Ref" in value:
            return parameters[value["Ref"]]["Default"]
        return value

    def prop(function: str, name: str, default: Any) -> Any:
        properties = resources[function].get("Properties", {})
        return resolve(properties.get(name, globals_.get(name, default)))

    ingest_events = resources["OrbIngestFunction"]["Properties"]["Events"]
    sqs_event = next(e for e in ingest_events.values() if e.get("Type") == "SQS")
    return TemplateFacts(
        intake_memory_mb=int(prop("TrackIntakeFunction", "MemorySize", 128)),
        ingest_memory_mb=int(prop("OrbIngestFunction", "MemorySize", 128)),
        webhook_memory_mb=int(prop("OrbWebhookFunction", "MemorySize", 128)),
        reconcile_memory_mb=int(prop("OrbReconcileFunction", "MemorySize", 128)),
        reconcile_timeout_seconds=int(prop("OrbReconcileFunction", "Timeout", 3)),
        ingest_batch_size=int(resolve(sqs_event["Properties"].get("BatchSize", 10))),
        ingest_batching_window_seconds=int(resolve(sqs_event["Properties"].get("MaximumBatchingWindowInSeconds", 0))),
        audit_retention_days=int(parameters["AuditRetentionDays"]["Default"]),
        ingest_timeout_seconds=int(prop("OrbIngestFunction", "Timeout", 3)),
    )


def _lambda(seconds: float, memory_mb: int) -> float:
    # Lambda bills duration rounded up to the millisecond.
    return math.ceil(seconds * 1000) / 1000 * memory_mb / 1024 * LAMBDA_GB_SECOND + LAMBDA_REQUEST


def usage_cost_per_million(
    *,
    facts: TemplateFacts,
    events_per_segment_request: int,
    segment_request_bytes: int,
    intake_seconds_per_request: float,
    sqs_message_bytes: int,
    ingest_batch_size: int,
    ingest_seconds_per_invocation: float,
) -> list[tuple[str, float, str]]:
    """Itemised (item, USD per million usage events, how) for Segment Track events, OrbIngest
    invoked with ``ingest_batch_size`` events (the rate sets it: ``TemplateFacts.ingest_batch_at``)."""
    million = 1_000_000
    requests = million / events_per_segment_request
    http_chunks = max(1, math.ceil(segment_request_bytes / HTTP_API_CHUNK))
    # SendMessageBatch carries at most 10 entries, and never spans two Segment requests.
    send_batches = million / min(events_per_segment_request, 10)
    batch_bytes = min(events_per_segment_request, 10) * sqs_message_bytes
    sqs_chunks = max(1, math.ceil(batch_bytes / SQS_CHUNK))
    invocations = million / ingest_batch_size
    ingest_seconds = ingest_seconds_per_invocation
    return [
        (
            "HTTP API requests",
            requests * http_chunks * HTTP_API_REQUEST,
            f"{requests:,.0f} requests x {http_chunks} x 512 KB chunk(s)",
        ),
        (
            "Lambda TrackIntake",
            requests * _lambda(intake_seconds_per_request, facts.intake_memory_mb),
            f"{requests:,.0f} invocations x {intake_seconds_per_request * 1000:,.1f} ms at {facts.intake_memory_mb} MB",
        ),
        (
            "SQS SendMessageBatch",
            send_batches * sqs_chunks * SQS_REQUEST,
            f"{send_batches:,.0f} batches x {sqs_chunks} x 64 KB chunk(s)",
        ),
        (
            "SQS receive + delete (event source)",
            2 * (million / 10) * sqs_chunks * SQS_REQUEST,
            "100,000 ReceiveMessage (10 per call) + 100,000 DeleteMessageBatch; idle long polls not included",
        ),
        (
            "Lambda OrbIngest",
            invocations * _lambda(ingest_seconds, facts.ingest_memory_mb),
            f"{invocations:,.0f} invocations of {ingest_batch_size:,} events x {ingest_seconds * 1000:,.0f} ms at {facts.ingest_memory_mb} MB",
        ),
        ("EventBridge", 0.0, "not used on the usage path"),
    ]


def archive_and_logs_per_million(
    *,
    facts: TemplateFacts,
    ingest_batch_size: int,
    puts_per_invocation: float,
    archive_bytes_per_event: float,
    orb_requests_per_invocation: int,
    ingest_log_bytes_per_invocation: float,
    intake_requests: float,
    intake_log_bytes_per_request: float,
) -> list[tuple[str, float, str]]:
    """Itemised (item, USD per million usage events, how): the audit archive (one PUT per Orb 200,
    kept ``AuditRetentionDays``), the pacing table's writes and CloudWatch Logs."""
    million = 1_000_000
    invocations = million / ingest_batch_size
    puts = invocations * puts_per_invocation
    months = facts.audit_retention_days / DAYS_PER_MONTH
    stored_gb = million * archive_bytes_per_event / GB
    orb_requests = invocations * orb_requests_per_invocation
    log_gb = (invocations * ingest_log_bytes_per_invocation + intake_requests * intake_log_bytes_per_request) / GB
    return [
        (
            "S3 PUT (audit archive)",
            puts * S3_PUT,
            f"{puts:,.0f} PUTs: {puts_per_invocation:g} per invocation of {ingest_batch_size:,} events, one per Orb 200 "
            "(counted in the bench run)",
        ),
        (
            f"S3 storage, {facts.audit_retention_days} days",
            stored_gb * S3_GB_MONTH * months,
            f"{archive_bytes_per_event:.1f} gzip bytes per event (measured) = {stored_gb * 1024:,.1f} MB x "
            f"{months:.1f} months",
        ),
        (
            "DynamoDB pacing table",
            orb_requests * PACING_WRITES_PER_ORB_REQUEST * DYNAMODB_WRITE_UNIT,
            f"{orb_requests:,.0f} Orb requests x {PACING_WRITES_PER_ORB_REQUEST} conditional UpdateItem "
            "(one budget item), 1 WRU each",
        ),
        (
            "CloudWatch Logs",
            log_gb * (LOGS_INGESTED_GB + LOGS_STORED_GB_MONTH * months),
            f"{ingest_log_bytes_per_invocation:,.0f} bytes per OrbIngest invocation, "
            f"{intake_log_bytes_per_request:,.0f} per TrackIntake request (measured at INFO: log lines + EMF "
            f"metrics), ingested, stored {months:.1f} months",
        ),
    ]


def webhook_cost_per_million(
    *, facts: TemplateFacts, webhook_seconds: float, webhook_bytes: int
) -> list[tuple[str, float, str]]:
    """Itemised (item, USD per million Orb webhooks delivered once each)."""
    million = 1_000_000
    chunks = max(1, math.ceil(webhook_bytes / SQS_CHUNK))
    # Powertools Idempotency: a conditional PutItem (in progress) then an UpdateItem (completed);
    # each record is under 1 KB, so one WRU each. No reads on a first delivery.
    return [
        ("HTTP API requests", million * HTTP_API_REQUEST, "1 request per webhook"),
        (
            "Lambda OrbWebhook",
            million * _lambda(webhook_seconds, facts.webhook_memory_mb),
            f"{webhook_seconds * 1000:,.1f} ms at {facts.webhook_memory_mb} MB",
        ),
        ("DynamoDB writes", million * 2 * DYNAMODB_WRITE_UNIT, "PutItem + UpdateItem, 1 WRU each"),
        ("EventBridge PutEvents", million * chunks * EVENTBRIDGE_EVENT, f"1 event x {chunks} x 64 KB chunk(s)"),
    ]
