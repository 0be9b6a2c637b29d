"""The reconciler against the Orb sandbox (real HTTP on loopback) and moto's S3 and DynamoDB: an
archive whose events Orb lost, deprecated, amended, holds under another body or attributes to no
one is reported key by key in exactly those classes; no hour and pass is reported twice; a run
stopped halfway is resumed; sampling and the volume check catch what sampling skips."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from orb_bridge.core.metric_names import Metric
from orb_bridge.orb.reconcile_client import OrbReadClient
from orb_bridge.reconcile.archive_reader import READ_AHEAD
from orb_bridge.reconcile.service import Reconciler, RunSummary
from orb_bridge.reconcile.settings import ReconcileSettings
from orb_bridge_dev.orb_sandbox import OrbSandbox
from tests.support.audit_archive import write_archive_object

API_KEY = "reconcile-key"
BUCKET = "audit"
TABLE = "reconcile-checkpoints"
SENT = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)  # send-hour 10
LATER = SENT + timedelta(hours=20)  # first and final passes both due


def event(number: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "idempotency_key": f"evt-{number:05d}",
        "event_name": "api_call",
        "timestamp": (SENT - timedelta(minutes=20, milliseconds=number)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "properties": {"tokens": number, "model": "small", "cost": 0.25, "cached": False},
        "external_customer_id": f"user-{number % 7}",
    }
    body.update(overrides)
    return body


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield s3, dynamodb


@pytest.fixture
def sandbox() -> Iterator[OrbSandbox]:
    with OrbSandbox(api_key=API_KEY, seed=18, clock=lambda: SENT) as running:
        yield running


def settings(sandbox: OrbSandbox, **overrides: Any) -> ReconcileSettings:
    base = ReconcileSettings(
        orb_api_base_url=sandbox.base_url,
        orb_api_key=API_KEY,
        audit_bucket_name=BUCKET,
        checkpoint_table_name=TABLE,
        safety_margin_seconds=0,
    )
    return replace(base, **overrides)


class Run:
    """One reconciler run with recorded metrics and Orb calls; ``budget`` Orb searches before it
    runs out of time (a deterministic kill point)."""

    def __init__(self, sandbox: OrbSandbox, aws: tuple[Any, Any], budget: int | None = None, **overrides: Any):
        self.metrics: dict[str, float] = {}
        self.orb = OrbReadClient(sandbox.base_url, API_KEY, pace=lambda: None)
        s3, dynamodb = aws
        self.reconciler = Reconciler(
            settings(sandbox, **overrides), s3, dynamodb, self.orb, self._emit, LATER, self._seconds_left
        )
        self.budget = budget

    def _emit(self, metric: Metric, value: float) -> None:
        self.metrics[metric.name] = self.metrics.get(metric.name, 0) + value

    def _seconds_left(self) -> float:
        if self.budget is None:
            return 900.0
        return 900.0 if self.orb.calls["search"] < self.budget else -1.0

    def __call__(self) -> RunSummary:
        return self.reconciler.run()


def ingest_and_archive(sandbox: OrbSandbox, s3: Any, events: list[dict[str, Any]]) -> None:
    """What ingest does: send 500 at a time, archive each request Orb answered 200."""
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for number, start in enumerate(range(0, len(events), 500), start=1):
            chunk = events[start : start + 500]
            response = http.post("/ingest", json={"events": chunk})
            assert response.status_code == 200, response.text
            write_archive_object(s3, BUCKET, chunk, SENT, request_number=number, orb_response=response.json())


@pytest.fixture
def troubled_hour(sandbox: OrbSandbox, aws: tuple[Any, Any]) -> dict[str, set[str]]:
    """2,000 events in send-hour 10: 0.5% silently lost, two deprecated, two amended, one key
    first used by another source with another body, one naming a customer Orb does not know."""
    s3, _ = aws
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        other = event(7, properties={"tokens": 999})  # "another source" used our key first
        assert http.post("/ingest", json={"events": [other]}).status_code == 200
        sandbox.forget_customer("ghost")
        events = [event(n) for n in range(2000)]
        events[11]["external_customer_id"] = "ghost"
        sandbox.faults.lose_rate = 0.005
        ingest_and_archive(sandbox, s3, events)
        sandbox.faults.lose_rate = 0.0
        lost = set(sandbox.lost_keys())
        survivors = [e for e in events if e["idempotency_key"] not in lost | {"evt-00007", "evt-00011"}]
        deprecated = {e["idempotency_key"] for e in survivors[100:102]}
        amended = {e["idempotency_key"] for e in survivors[200:202]}
        for key in deprecated:
            assert http.put(f"/events/{key}/deprecate").status_code == 200
        for item in survivors[200:202]:
            body = {name: value for name, value in item.items() if name != "idempotency_key"}
            body["properties"] = {**body["properties"], "tokens": 0}
            assert http.put(f"/events/{item['idempotency_key']}", json=body).status_code == 200
    assert 3 <= len(lost) <= 25
    return {
        "not_found": lost | amended,
        "deprecated": deprecated,
        "different": {"evt-00007"},
        "unattributed": {"evt-00011"},
    }


def test_every_class_is_reported_with_exactly_its_keys(
    sandbox: OrbSandbox, aws: tuple[Any, Any], troubled_hour: dict[str, set[str]]
) -> None:
    run = Run(sandbox, aws)
    summary = run()
    assert summary.done == ["2026-03-02T10#first", "2026-03-02T10#final"] and summary.stopped is None
    for report in summary.reports:
        listed = {cls: set(keys) for cls, keys in report["not_present"].items()}
        assert listed == troubled_hour
        assert report["counts"]["present"] == 2000 - sum(len(keys) for keys in troubled_hour.values())
        assert report["sampled"] is False and report["checked_keys"] == 2000
    volume = summary.reports[1]["volume"]
    assert volume["shortfall"] == 0 and volume["orb_count"] >= volume["expected_at_least"]
    assert run.metrics["EventsNotFoundInOrb"] == 2 * len(troubled_hour["not_found"])
    assert run.metrics["EventsDeprecatedInOrb"] == 4 and run.metrics["EventsDifferentInOrb"] == 2
    assert run.metrics["EventsUnattributedInOrb"] == 2 and run.metrics["VolumeShortfall"] == 0
    assert run.orb.calls["search"] == 8  # 2,000 keys: 4 searches per pass
    s3, _ = aws
    reports = s3.list_objects_v2(Bucket=BUCKET, Prefix="reports/")["Contents"]
    assert sorted(item["Key"] for item in reports) == [
        "reports/sent_hour=2026-03-02T10/final.basis.json.gz",  # what its daily passes check
        "reports/sent_hour=2026-03-02T10/final.json",
        "reports/sent_hour=2026-03-02T10/first.json",
    ]

    again = Run(sandbox, aws)
    assert again().done == [] and again.orb.calls["search"] == 0  # no hour and pass twice


def test_a_run_stopped_halfway_is_resumed_by_the_next_without_repeating_a_batch(
    sandbox: OrbSandbox, aws: tuple[Any, Any], troubled_hour: dict[str, set[str]]
) -> None:
    stopped = Run(sandbox, aws, budget=2)
    assert stopped().stopped is not None and stopped.orb.calls["search"] == 2
    resumed = Run(sandbox, aws)
    summary = resumed()
    assert summary.done == ["2026-03-02T10#first", "2026-03-02T10#final"]
    assert resumed.orb.calls["search"] == 6  # the first pass's 2 remaining batches, then the final's 4
    assert {cls: set(keys) for cls, keys in summary.reports[0]["not_present"].items()} == troubled_hour
    assert summary.reports[0]["checked_keys"] == 2000


def test_a_run_out_of_time_while_reading_an_hour_stops_there_and_the_next_completes_it(
    sandbox: OrbSandbox, aws: tuple[Any, Any], troubled_hour: dict[str, set[str]]
) -> None:
    stopped = Run(sandbox, aws, budget=0)  # out of time before the first archive object is read through
    summary = stopped()
    assert summary.stopped == "out of time: the next run resumes" and summary.done == []
    # Both sources listed, then the first GET and at most READ_AHEAD - 1 more already under way.
    assert stopped.orb.calls["search"] == 0 and 3 <= stopped.reconciler.s3_requests <= 2 + READ_AHEAD
    s3, _ = aws
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="reports/")
    resumed = Run(sandbox, aws)
    assert resumed().done == ["2026-03-02T10#first", "2026-03-02T10#final"]


def test_a_report_written_before_the_kill_is_not_written_again(
    sandbox: OrbSandbox, aws: tuple[Any, Any], troubled_hour: dict[str, set[str]]
) -> None:
    first = Run(sandbox, aws, budget=4)  # the first pass completes; the final pass starts
    summary = first()
    assert summary.done == ["2026-03-02T10#first"]
    s3, dynamodb = aws
    # Killed between writing the final report and marking the pass done: the report exists already.
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "2026-03-02T10#first"}})
    again = Run(sandbox, aws)
    assert again().done == ["2026-03-02T10#first", "2026-03-02T10#final"]
    reports = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="reports/")["Contents"]]
    assert len([key for key in reports if key.endswith(".json")]) == 2


def test_above_the_full_check_limit_a_seeded_sample_is_checked_and_volume_catches_the_rest(
    sandbox: OrbSandbox, aws: tuple[Any, Any]
) -> None:
    s3, _ = aws
    sandbox.faults.lose_rate = 0.05
    ingest_and_archive(sandbox, s3, [event(n) for n in range(2000)])
    lost = set(sandbox.lost_keys())
    run = Run(sandbox, aws, full_check_events_per_hour=1000, sample_size=500)
    summary = run()
    first, final = summary.reports
    assert first["sampled"] and first["checked_keys"] == 500 and run.orb.calls["search"] == 2
    assert set(first["not_present"]["not_found"]) | set(final["not_present"]["not_found"]) <= lost
    missed = len(lost) - final["counts"]["not_found"]  # lost, but not in the final pass's sample
    assert missed > 0 and final["volume"]["shortfall"] == missed
    assert run.metrics["VolumeShortfall"] == missed
    resumed = Run(sandbox, aws, budget=0, full_check_events_per_hour=1000, sample_size=500)
    assert resumed().done == []  # both done: a resumed pass would draw the same sample (seeded by hour and pass)


def test_events_of_a_pending_backfill_wait_and_a_reverted_ones_are_expected_absent(
    sandbox: OrbSandbox, aws: tuple[Any, Any]
) -> None:
    s3, _ = aws
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        window = {"timeframe_start": "2026-03-01T00:00:00Z", "timeframe_end": "2026-03-01T01:00:00Z"}
        backfill = http.post("/events/backfills", json=window).json()
        old = [event(n, timestamp=f"2026-03-01T00:{n:02d}:00.000Z") for n in range(3)]
        assert http.post("/ingest", params={"backfill_id": backfill["id"]}, json={"events": old}).status_code == 200
        write_archive_object(s3, BUCKET, old, SENT, backfill_id=backfill["id"])
        waiting = Run(sandbox, aws)
        assert waiting().waiting == ["2026-03-02T10#first", "2026-03-02T10#final"]
        assert http.post(f"/events/backfills/{backfill['id']}/revert").status_code == 200
    summary = Run(sandbox, aws)()
    assert summary.reports[0]["reverted_backfill_events"] == 3 and summary.reports[0]["checked_keys"] == 0


def test_after_a_429_the_next_runs_wait_out_its_retry_after(
    sandbox: OrbSandbox, aws: tuple[Any, Any], troubled_hour: dict[str, set[str]]
) -> None:
    from orb_bridge.reconcile.checkpoint import CheckpointTable

    _, dynamodb = aws
    CheckpointTable(dynamodb, TABLE).set_not_before(LATER.timestamp() + 7)  # as a 429 with Retry-After: 7 leaves it
    waiting = Run(sandbox, aws)
    assert waiting().stopped == "waiting out Orb's Retry-After" and waiting.orb.calls["search"] == 0
