"""Issue 18's end-to-end check on the dev stack: Track calls through /segment -> SQS -> ingest ->
the Orb sandbox, which silently loses 0.5% of them; a few are then deprecated and a few amended
through Orb's API, one key was first used by another source with another body, one event names a
customer Orb does not know. The dev stack's reconciler (the deployed ``Reconciler`` on the stack's
moto and sandbox) reports exactly those keys in their classes and nothing else, raises the alarm's
metrics, never reports an hour twice, and a run stopped halfway is resumed and completes.

Ingest writes the audit archive as deployed; the test clears what earlier tests on the shared stack
left there, so it reconciles exactly what it sent.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orb_bridge.reconcile.archive_reader import read_object
from orb_bridge_dev.devstack.stack import DEV_ORB_API_KEY, DevStack, wait_until
from orb_bridge_dev.devstack.template import load_template
from tests.support.audit_archive import forget_earlier_archives

pytestmark = pytest.mark.e2e

EVENTS = 1000
EVENTUALLY = 120.0


def track(message_id: str, user_id: str, amount: int, stamp: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "payment_confirmed",
        "userId": user_id,
        "messageId": message_id,
        "timestamp": stamp,
        "properties": {"amount": amount, "currency": "USD"},
    }


def alarm_metric_names() -> set[str]:
    """The metrics ReconciliationAlarm sums (from template.yaml)."""
    alarm = load_template()["Resources"]["ReconciliationAlarm"]["Properties"]
    return {item["MetricStat"]["Metric"]["MetricName"] for item in alarm["Metrics"] if "MetricStat" in item}


def test_the_dev_stack_reconciler_reports_exactly_what_orb_does_not_hold(stack: DevStack, http: httpx.Client) -> None:
    sandbox = stack.sandbox
    forget_earlier_archives(stack)
    orb = httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {DEV_ORB_API_KEY}"}, timeout=30)
    run = f"rec-{uuid.uuid4().hex[:8]}"
    ghost = f"{run}-ghost"
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    calls = [track(f"{run}-{n:05d}", f"{run}-cust-{n % 5}", n, stamp) for n in range(EVENTS)]
    calls[11]["userId"] = ghost
    sandbox.forget_customer(ghost)
    # "Another source" used one of our keys first, with another body (not through this bridge).
    other = {
        "idempotency_key": calls[7]["messageId"],
        "event_name": "payment_confirmed",
        "external_customer_id": calls[7]["userId"],
        "timestamp": stamp,
        "properties": {"amount": 999, "currency": "USD"},
    }
    assert orb.post("/ingest", json={"events": [other]}).status_code == 200

    keys = {call["messageId"] for call in calls}
    sandbox.store.accepted_requests = []
    sandbox.rng = random.Random(18)  # the losses are drawn once per event, in order: a fixed count
    sandbox.faults.lose_rate = 0.005
    try:
        for start in range(0, EVENTS, 100):
            assert http.post(stack.segment_url, json=calls[start : start + 100]).status_code == 200

        def all_answered() -> bool:
            sent = {
                event["idempotency_key"]
                for request in list(sandbox.store.accepted_requests)
                for event in request["events"]
            }
            return keys <= sent

        assert wait_until(all_answered, timeout=EVENTUALLY)
    finally:
        sandbox.faults.lose_rate = 0.0
    accepted, sandbox.store.accepted_requests = sandbox.store.accepted_requests, None
    lost = set(sandbox.lost_keys()) & keys
    assert lost and calls[7]["messageId"] not in lost and calls[11]["messageId"] not in lost, "seeded: a fixed draw"

    survivors = sorted(keys - lost - {calls[7]["messageId"], calls[11]["messageId"]})
    deprecated, amended = set(survivors[100:102]), set(survivors[200:202])
    for key in deprecated:
        assert orb.put(f"/events/{key}/deprecate").status_code == 200
    ingested = sandbox.ingested_events()
    for key in amended:
        event = ingested[key]
        body = {name: event[name] for name in ("event_name", "timestamp", "external_customer_id")}
        body["properties"] = {**event["properties"], "amount": -1}
        assert orb.put(f"/events/{key}", json=body).status_code == 200, key

    # Ingest archived every request Orb answered 200, as deployed: the hours and keys come from there.
    s3 = stack.local_aws.client("s3")
    bucket = stack.env["AUDIT_BUCKET_NAME"]
    listed_objects = s3.list_objects_v2(Bucket=bucket, Prefix="ingest/").get("Contents", [])
    sent_hours: Counter[str] = Counter()
    for item in listed_objects:
        header, archived = read_object(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read(), item["Key"])
        sent_hours[header["sent_at"][:13]] += len(archived)
    assert sum(sent_hours.values()) == len(
        {event["idempotency_key"] for request in accepted for event in request["events"]}
    )
    searches = sum(math.ceil(count / 500) for count in sent_hours.values())
    later = datetime.now(UTC) + timedelta(hours=3)  # every send-hour's first pass is due; no final pass yet

    # A run stopped after its first search (a deterministic kill point: out of time) ...
    stopped = stack._reconcile_loop(3600, clock=lambda: later, pace=lambda: None)
    stopped_left = lambda: 900.0 if stopped.orb.calls["search"] < 1 else -1.0  # noqa: E731
    assert stopped.run_once(seconds_left=stopped_left) == [] and stopped.orb.calls["search"] == 1

    # ... is resumed by the next, which completes without repeating that batch.
    loop = stack._reconcile_loop(3600, clock=lambda: later, pace=lambda: None)
    reports = loop.run_once()
    assert sorted(report["hour"] for report in reports) == sorted(sent_hours)
    assert {report["pass"] for report in reports} == {"first"}
    assert loop.orb.calls["search"] == searches - 1
    listed: dict[str, set[str]] = {}
    for report in reports:
        for cls, found in report["not_present"].items():
            listed.setdefault(cls, set()).update(found)
    assert listed == {
        "not_found": lost | amended,
        "deprecated": deprecated,
        "different": {calls[7]["messageId"]},
        "unattributed": {calls[11]["messageId"]},
    }
    assert sum(report["counts"]["present"] for report in reports) == EVENTS - sum(map(len, listed.values()))
    assert sum(report["checked_keys"] for report in reports) == EVENTS
    # The alarm's metrics are raised: ReconciliationAlarm sums these.
    raised = {name: loop.view.metrics.get(name, 0) for name in alarm_metric_names()}
    assert raised["EventsNotFoundInOrb"] == len(lost | amended) and raised["EventsDeprecatedInOrb"] == 2
    assert raised["EventsDifferentInOrb"] == 1 and raised["EventsUnattributedInOrb"] == 1
    assert "not found" in loop.view.summary() and "different 1" in loop.view.summary()

    # A second run reports no hour twice.
    again = stack._reconcile_loop(3600, clock=lambda: later, pace=lambda: None)
    assert again.run_once() == [] and again.orb.calls["search"] == 0
    report_keys = [
        item["Key"] for item in s3.list_objects_v2(Bucket=stack.env["AUDIT_BUCKET_NAME"], Prefix="reports/")["Contents"]
    ]
    assert sorted(report_keys) == sorted(f"reports/sent_hour={hour}/first.json" for hour in sent_hours)
    orb.close()
