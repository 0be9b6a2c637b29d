"""The dev stack's reconciler loop: harmless on an empty archive, and a send-hour still open is
previewed only once its archive has not changed for a whole round, once per change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orb_bridge.reconcile.settings import ReconcileSettings
from orb_bridge_dev.devstack.reconcile_loop import DevReconcileLoop
from orb_bridge_dev.orb_sandbox import OrbSandbox
from tests.support.audit_archive import write_archive_object

KEY = "loop-key"
NOW = datetime(2026, 3, 2, 10, 40, tzinfo=UTC)


def event(key: str) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "event_name": "api_call",
        "timestamp": "2026-03-02T10:30:00.000Z",
        "properties": {"tokens": 1},
        "external_customer_id": "cust",
    }


@pytest.fixture
def loop() -> Iterator[tuple[DevReconcileLoop, Any, OrbSandbox]]:
    with mock_aws(), OrbSandbox(api_key=KEY, clock=lambda: NOW) as sandbox:
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3.create_bucket(Bucket="audit")
        dynamodb.create_table(
            TableName="checkpoints",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        settings = ReconcileSettings(
            orb_api_base_url=sandbox.base_url,
            orb_api_key=KEY,
            audit_bucket_name="audit",
            checkpoint_table_name="checkpoints",
            safety_margin_seconds=0,
        )
        yield DevReconcileLoop(settings, s3, dynamodb, 1, clock=lambda: NOW, pace=lambda: None), s3, sandbox


def test_an_empty_archive_makes_a_round_do_nothing(loop: tuple[DevReconcileLoop, Any, OrbSandbox]) -> None:
    reconciler, s3, _ = loop
    assert reconciler.run_once() == [] and reconciler.run_once() == []
    assert sum(reconciler.orb.calls.values()) == 0
    assert "Contents" not in s3.list_objects_v2(Bucket="audit")
    assert reconciler.view.summary() == "reconcile: no archived hour checked yet"


def test_an_open_hour_is_previewed_once_quiet_and_again_only_after_it_changes(
    loop: tuple[DevReconcileLoop, Any, OrbSandbox],
) -> None:
    reconciler, s3, _ = loop
    write_archive_object(s3, "audit", [event("a")], NOW - timedelta(minutes=5), request_number=1)
    assert reconciler.run_once() == []  # just seen: it may still be growing
    (report,) = reconciler.run_once()  # unchanged for a round: previewed
    assert report["pass"].startswith("dev-") and report["not_present"] == {"not_found": ["a"]}
    assert report["volume"] is None  # the hour is open: no volume check
    assert reconciler.run_once() == []  # nothing new: not again
    assert "not found 1 [a]" in reconciler.view.summary()

    write_archive_object(s3, "audit", [event("b")], NOW - timedelta(minutes=1), request_number=2)
    assert reconciler.run_once() == []
    later = NOW + timedelta(seconds=30)
    reconciler.clock = lambda: later
    (again,) = reconciler.run_once()
    assert again["checked_keys"] == 2 and again["pass"] != report["pass"]
