"""Issue 19 on the dev stack: the sandbox silently loses some events; `orb-bridge reconcile --dev
--check` reports them; `--repair --yes`, killed at each step and rerun, restores them through live
ingest and nothing is billed twice (the sandbox counts); the next reconciliation is clean apart from
the amended event; `orb-bridge trace KEY --dev` answers for each kind of event."""

from __future__ import annotations

import io
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orb_bridge_dev.commands import trace
from orb_bridge_dev.commands.reconcile import command as reconcile
from orb_bridge_dev.devstack.stack import DEV_ORB_API_KEY, DevStack, wait_until
from tests.support.audit_archive import forget_earlier_archives

pytestmark = pytest.mark.e2e

EVENTS = 200
EVENTUALLY = 120.0


class KilledError(Exception):
    pass


def track(key: str, user: str, amount: int, stamp: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "payment_confirmed",
        "userId": user,
        "messageId": key,
        "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": {"amount": amount, "currency": "USD"},
    }


def cli(stack: DevStack, main: Any, argv: list[str], now: datetime, **options: Any) -> tuple[int, str, str]:
    env = {"ORB_API_BASE_URL": stack.sandbox.base_url, "ORB_API_KEY": DEV_ORB_API_KEY}
    args = main.build_parser().parse_args([*argv, "--dev", "--endpoint-url", stack.resources.endpoint_url])
    out, err = io.StringIO(), io.StringIO()
    code = main.run(args, env, out, err, now=lambda: now, **options)
    return code, out.getvalue(), err.getvalue()


def test_reconcile_repair_and_trace_on_the_dev_stack(stack: DevStack, http: httpx.Client) -> None:
    forget_earlier_archives(stack)  # the stack is shared: earlier tests' reports would be read as this hour's
    sandbox = stack.sandbox
    orb = httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {DEV_ORB_API_KEY}"}, timeout=30)
    run = f"rep-{uuid.uuid4().hex[:8]}"
    stamp = datetime.now(UTC)
    calls = [track(f"{run}-{n:04d}", f"{run}-cust-{n % 3}", n, stamp) for n in range(EVENTS)]
    keys = {call["messageId"] for call in calls}
    sandbox.rng = random.Random(19)
    sandbox.faults.lose_rate = 0.03
    try:
        assert http.post(stack.segment_url, json=calls).status_code == 200
        assert wait_until(lambda: keys <= set(sandbox.ingested_events()) | set(sandbox.lost_keys()), EVENTUALLY)
    finally:
        sandbox.faults.lose_rate = 0.0
    lost = set(sandbox.lost_keys()) & keys
    assert lost, "seeded: a fixed draw"
    survivors = sorted(keys - lost)
    deprecated, amended = survivors[0], survivors[1]
    assert orb.put(f"/events/{deprecated}/deprecate").status_code == 200
    event = sandbox.ingested_events()[amended]
    body = {name: event[name] for name in ("event_name", "timestamp", "external_customer_id")}
    assert (
        orb.put(f"/events/{amended}", json={**body, "properties": {**event["properties"], "amount": -1}}).status_code
        == 200
    )
    # Another test's keys may share the hour: only this run's are asserted.
    hour = stamp.strftime("%Y-%m-%dT%H")
    now = stamp + timedelta(minutes=1)

    code, out, err = cli(stack, reconcile, ["--check", "--hour", hour, "--json"], now)
    assert code == 0, err
    rows = {row["hour"]: row for row in json.loads(out)["hours"]}
    listed = {cls: set(found) & keys for cls, found in rows[hour]["not_present"].items()}
    assert listed["not_found"] == lost | {amended} and listed["deprecated"] == {deprecated}
    code, text, _ = cli(stack, reconcile, ["--hour", hour], now)
    assert hour in text and sorted(lost)[0] in text and "not_found:" in text and "lost by Orb, or amended" in text

    def verdict(key: str) -> str:
        code, out, err = cli(stack, trace, [key, "--json"], now, wait_seconds=0)
        assert code == 0, err
        return str(json.loads(out)["verdict"])

    assert "lost by Orb" in verdict(sorted(lost)[0])  # before the repair

    # A repair killed at each step, then rerun to the end: every step is a kill point once.
    before = sum(sandbox.billed_count_by_key()[key] for key in keys)
    kill_at = 0
    while True:

        def step(name: str, seen: list[str] = []) -> None:  # noqa: B006 (a fresh list per loop turn)
            seen.append(name)
            if len(seen) > kill_at:  # noqa: B023 (the loop's current kill point)
                raise KilledError(name)

        try:
            cli(stack, reconcile, ["--hour", hour, "--repair", "--yes"], now, step=step)
        except KilledError:
            kill_at += 1
            continue
        break
    assert kill_at >= 3  # archive, search, at least one send batch
    code, out, _ = cli(stack, reconcile, ["--hour", hour, "--repair", "--yes", "--json"], now)
    assert code == 0
    assert wait_until(lambda: all(sandbox.billed_count_by_key()[key] == 1 for key in lost), EVENTUALLY)
    billed = sandbox.billed_count_by_key()
    assert all(billed[key] <= 1 for key in keys), "nothing billed twice"
    assert sum(billed[key] for key in keys) == before + len(lost)

    # The next reconciliation of the hour: clean apart from the amended event.
    later = now + timedelta(minutes=5)
    code, out, err = cli(stack, reconcile, ["--check", "--hour", hour, "--json"], later)
    assert code == 0, err
    rows = {row["hour"]: row for row in json.loads(out)["hours"]}
    listed = {cls: set(found) & keys for cls, found in rows[hour]["not_present"].items()}
    assert listed.get("not_found") == {amended}

    # trace after the repair: ingested, repaired, deprecated, amended, never seen, rejected, refused.
    assert verdict(sorted(lost)[0]).startswith("ingested: Orb holds it")
    assert verdict(survivors[5]).startswith("ingested: Orb holds it")
    assert verdict(deprecated).startswith("ingested, then deprecated")
    assert "lost by Orb, or amended" in verdict(amended)
    assert verdict(f"{run}-never").startswith("never seen")
    rejected_key = f"{run}-nocustomer"
    no_customer = track(rejected_key, "x", 1, stamp)
    del no_customer["userId"]
    assert http.post(stack.segment_url, json=no_customer).status_code == 400
    assert "rejected: on the rejected queue (stage intake)" in verdict(rejected_key)
    refused_key = f"{run}-late"
    assert http.post(stack.segment_url, json=track(refused_key, "c", 1, stamp - timedelta(hours=13))).status_code == 200
    assert wait_until(lambda: "refused by Orb" in verdict(refused_key), EVENTUALLY)
    orb.close()
