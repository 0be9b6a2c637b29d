"""Issue 11 end to end on the dev stack (moto's server + the Orb sandbox over loopback): rejected
events replayed by the console's redrive and by ``orb-bridge replay``, a replay killed halfway
and rerun, and late events backfilled, each event billed exactly once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orb_bridge_dev.commands import replay as replay_cmd
from orb_bridge_dev.commands.backfill import command as backfill_cmd
from orb_bridge_dev.devstack.local_functions import _reset_container_caches
from orb_bridge_dev.devstack.stack import DEV_ORB_API_KEY, DevStack, wait_until

pytestmark = pytest.mark.e2e

EVENTS = 1000
# Generous: the wait ends as soon as the condition holds (1,000 events take a few seconds).
SETTLE_SECONDS = 120


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def track(key: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "api_call",
        "userId": "cust_replay",
        "messageId": key,
        "timestamp": stamp(at),
        "properties": {"amount": 1},
    }


def queue_depth(stack: DevStack, url: str) -> int:
    attributes = stack.local_aws.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def visible(stack: DevStack, url: str) -> int:
    attributes = stack.local_aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def rejected_url(stack: DevStack) -> str:
    return stack.resources.rejected_queue.url


@pytest.fixture
def clean_rejected_queue(stack: DevStack) -> None:
    """Other tests leave records behind; these tests count the queue."""
    sqs = stack.local_aws.client("sqs")  # PurgeQueue: once a minute only
    while batch := sqs.receive_message(QueueUrl=rejected_url(stack), MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message_batch(
            QueueUrl=rejected_url(stack),
            Entries=[{"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]} for i, message in enumerate(batch)],
        )


@pytest.fixture
def broken_mapping(stack: DevStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Map the customer from a field Segment never sends; ``fix()`` restores the mapping."""
    monkeypatch.setenv("EXTERNAL_CUSTOMER_ID_FIELD", "context.traits.account_id")
    _reset_container_caches()

    def fix() -> None:
        monkeypatch.setenv("EXTERNAL_CUSTOMER_ID_FIELD", "userId")
        _reset_container_caches()

    yield fix
    fix()


def send_rejected_by_mapping(stack: DevStack, http: Any, prefix: str, count: int = EVENTS) -> list[str]:
    """Send ``count`` events through /segment while the mapping is broken: all rejected."""
    now = datetime.now(UTC)
    keys = [f"{prefix}-{i}" for i in range(count)]
    response = http.post(stack.segment_url, json=[track(key, now) for key in keys], timeout=60)
    assert response.status_code == 400, response.text  # every event rejected
    assert len(response.json()["rejected"]) == count
    assert wait_until(lambda: visible(stack, rejected_url(stack)) == count, timeout=30)
    return keys


def billed_exactly_once(stack: DevStack, keys: list[str]) -> bool:
    billed = stack.sandbox.billed_count_by_key()
    return all(billed.get(key) == 1 for key in keys)


def settled(stack: DevStack, keys: list[str]) -> bool:
    return billed_exactly_once(stack, keys) and queue_depth(stack, stack.resources.ingest_queue.url) == 0


def test_console_redrive_to_the_ingest_queue_replays_a_fixed_mapping(
    stack: DevStack, http: Any, clean_rejected_queue: None, broken_mapping: Any
) -> None:
    keys = send_rejected_by_mapping(stack, http, "console")
    broken_mapping()
    sqs = stack.local_aws.client("sqs")
    # The console's "Start DLQ redrive" to a custom destination (moto lacks StartMessageMoveTask):
    # every message moved as is, received then sent then deleted.
    moved = 0
    while batch := sqs.receive_message(QueueUrl=rejected_url(stack), MaxNumberOfMessages=10, VisibilityTimeout=60).get(
        "Messages", []
    ):
        sqs.send_message_batch(
            QueueUrl=stack.resources.ingest_queue.url,
            Entries=[{"Id": str(i), "MessageBody": message["Body"]} for i, message in enumerate(batch)],
        )
        sqs.delete_message_batch(
            QueueUrl=rejected_url(stack),
            Entries=[{"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]} for i, message in enumerate(batch)],
        )
        moved += len(batch)
    assert moved == EVENTS

    assert wait_until(lambda: settled(stack, keys), timeout=SETTLE_SECONDS)
    assert queue_depth(stack, rejected_url(stack)) == 0
    assert stack.sandbox.ingested_events()[keys[0]]["external_customer_id"] == "cust_replay"


def run_replay(stack: DevStack, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--dev", "--endpoint-url", stack.resources.endpoint_url, *extra])
    status = replay_cmd.run(args, {}, out, io.StringIO(), wait_seconds=0)
    return status, out.getvalue()


def test_orb_bridge_replay_yes_replays_a_fixed_mapping(
    stack: DevStack, http: Any, clean_rejected_queue: None, broken_mapping: Any
) -> None:
    keys = send_rejected_by_mapping(stack, http, "cli")
    broken_mapping()

    status, dry_run = run_replay(stack)
    assert status == 0 and "dry run: nothing changed" in dry_run
    assert wait_until(lambda: visible(stack, rejected_url(stack)) == EVENTS, timeout=10)  # released
    status, output = run_replay(stack, "--yes")

    assert status == 0, output
    assert f"replayed {EVENTS} event(s)" in output
    assert wait_until(lambda: settled(stack, keys), timeout=SETTLE_SECONDS)
    assert queue_depth(stack, rejected_url(stack)) == 0


def test_a_replay_killed_halfway_and_run_again_bills_nothing_twice(
    stack: DevStack, http: Any, clean_rejected_queue: None, broken_mapping: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = send_rejected_by_mapping(stack, http, "killed", count=400)
    broken_mapping()
    real_delete, real_release = replay_cmd.delete, replay_cmd.release
    deletes: list[int] = []

    class Killed(BaseException):
        """Stands for SIGKILL: nothing of the command runs after it."""

    def delete_then_die(sqs: Any, url: str, entries: Any) -> Any:
        if len(deletes) == 20:  # 200 records replayed and deleted; the 21st batch enqueued, not deleted
            raise Killed
        deletes.append(len(entries))
        return real_delete(sqs, url, entries)

    monkeypatch.setattr(replay_cmd, "delete", delete_then_die)
    monkeypatch.setattr(replay_cmd, "release", lambda *args: None)  # a killed process releases nothing
    with pytest.raises(Killed):
        run_replay(stack, "--yes", "--hold-seconds", "1")
    monkeypatch.setattr(replay_cmd, "delete", real_delete)
    monkeypatch.setattr(replay_cmd, "release", real_release)
    # The killed run's unfinished records come back after its hold (1 s); 10 of them were enqueued.
    assert wait_until(lambda: visible(stack, rejected_url(stack)) == 400 - 200, timeout=30)

    status, output = run_replay(stack, "--yes")

    assert status == 0, output
    assert "replayed 200 event(s)" in output
    assert wait_until(lambda: settled(stack, keys), timeout=SETTLE_SECONDS)
    assert queue_depth(stack, rejected_url(stack)) == 0
    # The batch in flight at the kill reached the ingest queue twice, Orb billed it once.
    assert sum(stack.sandbox.billed_count_by_key()[key] for key in keys) == 400


def test_late_events_refused_by_orb_are_routed_to_backfill_and_backfilled_once(
    stack: DevStack, http: Any, clean_rejected_queue: None, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    late_at = now - timedelta(hours=13)
    # An event already in Orb inside the window (put there by an earlier, closed backfill).
    seeded = _seed_existing_event(stack, http, late_at + timedelta(seconds=30))
    keys = [f"late-{i}" for i in range(50)]
    events = [track(key, late_at + timedelta(seconds=i)) for i, key in enumerate(keys)]
    response = http.post(stack.segment_url, json=events)
    assert response.status_code == 200, response.text

    # Orb refuses them; ingest routes them to the rejected queue, saying why and what to run.
    assert wait_until(lambda: visible(stack, rejected_url(stack)) == len(keys), timeout=SETTLE_SECONDS)
    records = [json.loads(body) for body in _peek(stack)]
    assert {record["stage"] for record in records} == {"orb"}
    assert all(record["reason"].startswith("outside Orb's grace period (12 h)") for record in records)
    assert all("orb-bridge backfill --dev" in record["hint"] for record in records)  # the dev stack names itself

    env = {"ORB_API_BASE_URL": stack.sandbox.base_url, "ORB_API_KEY": DEV_ORB_API_KEY}
    argv = [
        "backfill",
        "--dev",
        "--endpoint-url",
        stack.resources.endpoint_url,
        "--yes",
        "--state-file",
        str(tmp_path / "backfills.json"),
    ]
    out = io.StringIO()
    status = backfill_cmd.run(backfill_cmd.build_parser().parse_args(argv[1:]), env, out, io.StringIO(), wait_seconds=0)

    assert status == 0, out.getvalue()
    assert billed_exactly_once(stack, [*keys, seeded])
    events = stack.sandbox.ingested_events()
    assert events[seeded]["backfill_id"] != events[keys[0]]["backfill_id"]  # not replaced: still billed
    assert queue_depth(stack, rejected_url(stack)) == 0


def _peek(stack: DevStack) -> list[str]:
    from tests.support.rejected_stack import all_bodies

    return all_bodies(stack.local_aws.client("sqs"), rejected_url(stack))


def _seed_existing_event(stack: DevStack, http: Any, at: datetime) -> str:
    """Put one event 13 hours old into Orb the way Orb allows: a backfill, ingested, closed."""
    headers = {"Authorization": f"Bearer {DEV_ORB_API_KEY}"}
    base = stack.sandbox.base_url
    created = http.post(
        f"{base}/events/backfills",
        headers=headers,
        json={
            "timeframe_start": stamp(at - timedelta(minutes=1)),
            "timeframe_end": stamp(at + timedelta(minutes=1)),
            "replace_existing_events": False,
        },
    )
    assert created.status_code in (200, 201), created.text
    backfill_id = created.json()["id"]
    event = {
        "event_name": "api_call",
        "idempotency_key": "late-seeded",
        "external_customer_id": "cust_replay",
        "timestamp": stamp(at),
        "properties": {"amount": 7},
    }
    ingested = http.post(
        f"{base}/ingest", params={"backfill_id": backfill_id}, headers=headers, json={"events": [event]}
    )
    assert ingested.status_code == 200, ingested.text
    closed = http.post(f"{base}/events/backfills/{backfill_id}/close", headers=headers)
    assert closed.status_code == 200, closed.text
    return "late-seeded"
