"""Ingest throughput and memory: one invocation with a 10,000-record SQS event into the Orb
sandbox over loopback, beside the official SDK (500 events per call, sequential) and one
request per event (the SDK, one event per call; measured on a sample and extrapolated).

The sandbox runs in its own process, so its work does not compete with the code measured for
the GIL; it adds ``latency`` to every ingest request, a realistic round trip to Orb. Like Orb it
validates every event and deduplicates keys (about 6 ms of its own per 500-event request); unlike
Orb it serves requests one at a time under its GIL and closes every connection (Werkzeug's
server), which both paths pay alike. The default-budget row paces to the template's defaults
through a pacing table on moto's DynamoDB server (127.0.0.1).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from bench.common import (
    ROOT,
    FakeLambdaContext,
    InProcessSqs,
    isolate_aws_environment,
    load_handler,
    process_cpu_seconds,
)
from bench.ingest_archive import archive_on, audit_bucket, measure_batch
from bench.ingest_memory import memory
from bench.sandbox_process import API_KEY, sandbox_process, volume
from orb_bridge_dev.devstack import lambda_runtime

# Orb's request/event budget switched off: the figure is then our code and the network, not pacing.
NO_PACING = {"ORB_EVENTS_PER_MINUTE": "0", "ORB_REQUESTS_PER_SECOND": "0"}
REJECTED_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench-rejected"


def orb_events(count: int, run_id: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC) - timedelta(minutes=1)
    return [
        {
            "event_name": "api_request",
            "idempotency_key": f"{run_id}-{index:06d}",
            "timestamp": (now - timedelta(milliseconds=index))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "properties": {
                "endpoint": "/v1/search",
                "region": "eu-west-1",
                "billable": True,
                "duration_ms": index % 500,
            },
            "external_customer_id": f"customer_{index % 97}",
        }
        for index in range(count)
    ]


def segment_keyed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events keyed as intake keys Segment's: a random UUID each (``messageId``), which gzip
    cannot shrink as it does the bench's numbered keys: the archive's bytes per event as deployed."""
    return [{**event, "idempotency_key": str(uuid.uuid4())} for event in events]


def sqs_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A Lambda SQS event, as the event source mapping delivers it."""
    return lambda_runtime.sqs_event([json.dumps(event, separators=(",", ":")) for event in events], "bench-ingest")


def configure_ingest(base_url: str) -> Any:
    """Environment of the deployed function, pointed at the sandbox; returns the handler module."""
    isolate_aws_environment()
    os.environ.update(
        {
            "ORB_API_BASE_URL": base_url,
            "ORB_API_KEY": API_KEY,
            "REJECTED_QUEUE_URL": REJECTED_QUEUE_URL,
            "POWERTOOLS_SERVICE_NAME": "orb_ingest",
            **NO_PACING,
        }
    )
    module = load_handler("orb_ingest")
    from orb_bridge.aws import clients as aws

    InProcessSqs(aws.client("sqs"))  # rejections (none expected) never leave the process
    return module


def settle_garbage() -> None:
    """Collect the garbage earlier rounds left (10,000 events built per round) before a timed
    run, so that neither side is billed a full collection of the other's leftovers (timeit
    goes further and switches the collector off; here each side's own garbage still counts)."""
    gc.collect()


def run_handler(
    handler: Any, events: list[dict[str, Any]], peers: dict[str, int | None] | None = None
) -> dict[str, Any]:
    """One invocation, timed; ``peers``: processes (name -> pid) whose CPU during it is reported
    too (the Orb sandbox, moto's S3: on a 2-core machine their work shares the cores with ours)."""
    event = sqs_event(events)
    settle_garbage()
    peers = peers or {}
    peers_before = {name: process_cpu_seconds(pid) for name, pid in peers.items()}
    start, cpu_start = time.perf_counter(), time.process_time()
    response = handler.lambda_handler(event, FakeLambdaContext(timeout_seconds=900, function_name="orb_ingest"))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if response["batchItemFailures"]:
        raise RuntimeError(f"ingest reported {len(response['batchItemFailures'])} failures")
    peer_cpu = {}
    for name, pid in peers.items():
        before, after = peers_before[name], process_cpu_seconds(pid)
        peer_cpu[name] = after - before if before is not None and after is not None else None
    return {"seconds": elapsed, "cpu_seconds": cpu, "peer_cpu_seconds": peer_cpu}


def run_sdk(base_url: str, events: list[dict[str, Any]], per_call: int) -> dict[str, Any]:
    from orb import Orb

    client = Orb(api_key=API_KEY, base_url=base_url)
    settle_garbage()
    start = time.perf_counter()
    calls = 0
    for index in range(0, len(events), per_call):
        # Plain dicts of the SDK's Event shape (a TypedDict to type checkers).
        client.events.ingest(events=cast(Any, events[index : index + per_call]))
        calls += 1
    elapsed = time.perf_counter() - start
    client.close()
    return {"seconds": elapsed, "requests": calls}


def run(
    records: int = 10_000,
    rounds: int = 3,
    latency: float = 0.1,
    per_event_sample: int = 50,
    archive_batches: Sequence[int] = (),
) -> dict[str, Any]:
    """The handler runs with the audit archive on (a bucket on moto's S3 server), as deployed, and
    beside it with the archive off; ``archive_batches``: invocation sizes whose PUTs, archive
    bytes and log bytes the cost model needs (one untimed invocation each)."""
    from bench.common import median
    from orb_bridge.ingest import container as ingest_container

    handler_seconds, handler_cpu, sdk_seconds, single_seconds, unarchived_seconds = [], [], [], [], []
    cpu_on: list[dict[str, float | None]] = []
    cpu_off: list[dict[str, float | None]] = []
    handler_requests = sdk_requests = 0
    with sandbox_process(latency_seconds=latency) as sandbox, audit_bucket() as bucket:
        base_url = sandbox.base_url
        peers = {"orb_sandbox": sandbox.pid, "moto_s3": bucket.server_pid}
        handler = configure_ingest(base_url)
        # Warm up once (imports, connection pool, secrets) so every round measures the same thing.
        run_handler(handler, orb_events(10, f"warm-{uuid.uuid4().hex[:8]}"))
        run_sdk(base_url, orb_events(10, f"warm-{uuid.uuid4().hex[:8]}"), 500)
        before = volume(base_url)
        objects_before = bucket.contents().objects
        for _ in range(rounds):
            archive_on(True)
            events = orb_events(records, f"h-{uuid.uuid4().hex[:8]}")
            measured = run_handler(handler, events, peers)
            handler_seconds.append(measured["seconds"])
            handler_cpu.append(measured["cpu_seconds"])
            cpu_on.append({"handler": measured["cpu_seconds"], **measured["peer_cpu_seconds"]})
            archive_on(False)
            unarchived = run_handler(handler, orb_events(records, f"n-{uuid.uuid4().hex[:8]}"), peers)
            unarchived_seconds.append(unarchived["seconds"])
            cpu_off.append({"handler": unarchived["cpu_seconds"], **unarchived["peer_cpu_seconds"]})
            archive_on(True)
            events = orb_events(records, f"s-{uuid.uuid4().hex[:8]}")
            sdk = run_sdk(base_url, events, 500)
            sdk_seconds.append(sdk["seconds"])
            sdk_requests = sdk["requests"]
            sample = orb_events(per_event_sample, f"e-{uuid.uuid4().hex[:8]}")
            single_seconds.append(run_sdk(base_url, sample, 1)["seconds"])
        archive_objects = bucket.contents().objects - objects_before
        by_batch = [measure_batch(handler, bucket, segment_keyed(orb_events(size, "a"))) for size in archive_batches]
        settings = ingest_container.container_service().settings
        # The same run with the template's default Orb budget: there, pacing sets the time.
        with default_budget_pacing():
            ingest_container.forget_container_service()
            default_budget = run_handler(handler, orb_events(records, f"d-{uuid.uuid4().hex[:8]}"))
            paced = ingest_container.container_service().settings
        ingest_container.forget_container_service()
        ingested = volume(base_url) - before
        handler_requests = -(-records // settings.max_events_per_request)
        concurrency = settings.max_concurrent_requests
    expected = rounds * (3 * records + per_event_sample) + records + sum(archive_batches)
    if ingested != expected:
        raise RuntimeError(f"the sandbox ingested {ingested} events, expected {expected}")
    if archive_objects != rounds * handler_requests:
        raise RuntimeError(f"{archive_objects} archive objects for {rounds * handler_requests} Orb 200s")
    handler_s = median(handler_seconds)
    sdk_s = median(sdk_seconds)
    single_s = median(single_seconds) * records / per_event_sample
    return {
        "records": records,
        "latency_ms": latency * 1000,
        "rounds": rounds,
        "concurrency": concurrency,
        "handler": {
            "seconds": handler_s,
            "cpu_seconds": median(handler_cpu),
            "events_per_s": records / handler_s,
            "requests": handler_requests,
        },
        "sdk_batched": {"seconds": sdk_s, "events_per_s": records / sdk_s, "requests": sdk_requests},
        "sdk_per_event": {
            "seconds": single_s,
            "events_per_s": records / single_s,
            "requests": records,
            "measured_events": per_event_sample,
        },
        "speedup_vs_sdk": sdk_s / handler_s,
        "archive_off": {"seconds": median(unarchived_seconds), "speedup_vs_sdk": sdk_s / median(unarchived_seconds)},
        # CPU seconds per invocation by process (median; None where /proc is not readable).
        "cpu_by_process": {"archive_on": median_by_name(cpu_on), "archive_off": median_by_name(cpu_off)},
        "archive_puts_per_request": archive_objects / (rounds * handler_requests),
        "archive_by_batch": by_batch,
        "default_budget_seconds": default_budget["seconds"],
        # Pacing spaces requests exactly (no burst): the first at once, then one per
        # chunk / events-per-second, so this is the least time the budget allows.
        "default_budget_theoretical_seconds": (handler_requests - 1)
        * settings.max_events_per_request
        / (paced.events_per_minute / 60)
        + latency,
        "default_budget": {
            "requests_per_second": paced.requests_per_second,
            "events_per_minute": paced.events_per_minute,
        },
    }


def median_by_name(runs: list[dict[str, float | None]]) -> dict[str, float | None]:
    from bench.common import median

    names = runs[0].keys() if runs else ()
    values = {name: [run[name] for run in runs] for name in names}
    return {name: None if None in got else median([v for v in got if v is not None]) for name, got in values.items()}


@contextmanager
def default_budget_pacing() -> Iterator[None]:
    """Pacing on at the template's defaults (OrbRequestsPerSecond 100, OrbEventsPerMinute 10,000),
    with its pacing table on moto's server on 127.0.0.1, as the deployed function has it."""
    from orb_bridge.aws import clients as aws
    from orb_bridge_dev.devstack.moto_server import MotoServerProcess

    moto = MotoServerProcess()
    moto.start()
    saved = dict(os.environ)
    try:
        host, port = moto.get_host_and_port()
        os.environ.update(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": f"http://{host}:{port}",
                "ORB_REQUESTS_PER_SECOND": str(template_default("OrbRequestsPerSecond")),
                "ORB_EVENTS_PER_MINUTE": str(template_default("OrbEventsPerMinute")),
                "ORB_PACING_TABLE_NAME": "bench-ingest-pacing",
            }
        )
        aws.reset_clients()
        aws.client("dynamodb").create_table(
            TableName="bench-ingest-pacing",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.reset_clients()
        InProcessSqs(aws.client("sqs"))  # as configure_ingest left it
        moto.stop()


def template_default(parameter: str) -> Any:
    from orb_bridge_dev.devstack.template import load_template

    return load_template(ROOT / "template.yaml")["Parameters"][parameter]["Default"]


if __name__ == "__main__":
    if "--memory" not in sys.argv:
        print(json.dumps(run(rounds=1), indent=2))
    print(json.dumps(memory(), indent=2))
