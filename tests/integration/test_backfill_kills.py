"""`orb-bridge backfill` killed at every step and rerun, against the Orb sandbox over real HTTP.

The sandbox takes the costly readings: no deduplication of keys within a backfill, ingest answers
lost after the events were stored (dropped connections or 500s), and a closed backfill that stays
pending, its events hidden from search, for a while before it is reflected. The kill is
deterministic: the transport under the CLI's HTTP client raises at the Nth request, either before
sending it or after Orb answered it (the process died while Orb held the request); two more
named steps die just before and just after the records are deleted. Each scenario then reruns the
CLI until it reports success, and checks what the sandbox bills: every key exactly once, no
backfill left pending, nothing left on the queue or in the state file.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge_dev.commands.backfill import backfiller
from orb_bridge_dev.commands.backfill import command as backfill_cmd
from orb_bridge_dev.orb_sandbox import FaultConfig, OrbSandbox
from tests.support.rejected_stack import STACK, TEMPLATE, all_bodies, orb_event, send

API_KEY = "kill-test-key"
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REFLECT_DELAY = timedelta(seconds=6)  # a little over one poll (backfiller.POLL_SECONDS)
CUSTOMERS = {"cust_a": 4, "cust_b": 3}  # two per-customer backfills over the same hours
SEED = 7  # its draws lose the answers of several ingests of the first run
CHUNK = 2  # events per ingest request: several requests per backfill


class Killed(BaseException):
    """The process dies here (not an Exception: nothing in the CLI may catch it)."""


class Clock:
    """The sandbox's and the CLI's time; the CLI's sleeps advance it (no real waiting)."""

    def __init__(self) -> None:
        self._now, self._lock = START, threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


class KillingTransport(httpx.BaseTransport):
    """Real HTTP to the sandbox; dies at request ``kill_at`` (1-based), before sending it or after
    its answer arrived. The stack names Orb's real URL: requests are pointed at the sandbox here."""

    def __init__(self, port: int, kill_at: int | None = None, after: bool = False) -> None:
        self.port, self.kill_at, self.after = port, kill_at, after
        self.inner = httpx.HTTPTransport()
        self.steps: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "host"]
        forwarded = httpx.Request(request.method, url, headers=headers, content=request.read())
        self.steps.append(f"{request.method} {request.url.path}")
        here = len(self.steps)
        if here == self.kill_at and not self.after:
            raise Killed(f"before {self.steps[-1]}")
        try:
            response = self.inner.handle_request(forwarded)
        except httpx.TransportError:
            if here == self.kill_at:  # the answer was lost anyway: the process dies all the same
                raise Killed(f"after Orb took {self.steps[-1]}") from None
            raise
        if here == self.kill_at:
            response.read()
            raise Killed(f"after Orb answered {self.steps[-1]}")
        return response


class ReusedClients:
    """A boto3 session whose clients are made once per scenario world (making one costs ~0.3 s)."""

    def __init__(self) -> None:
        self.clients: dict[tuple[str, Any], Any] = {}
        self.session: Any = None

    def __call__(self, **options: Any) -> ReusedClients:
        self.session = self.session or boto3.Session(**options)
        return self

    def client(self, name: str, **options: Any) -> Any:
        key = (name, tuple(sorted(options.items())))
        if key not in self.clients:
            self.clients[key] = self.session.client(name, **options)
        return self.clients[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


@dataclass
class World:
    sandbox: OrbSandbox
    clock: Clock
    sqs: Any
    rejected_url: str
    state: Path
    keys: list[str]
    sessions: ReusedClients


@pytest.fixture(scope="module")
def sandbox_and_clock() -> Iterator[tuple[OrbSandbox, Clock]]:
    clock = Clock()
    faults = FaultConfig(backfill_answer_lost_rate=0.25)
    with OrbSandbox(
        api_key=API_KEY, clock=clock, faults=faults, seed=SEED, backfill_reflect_delay=REFLECT_DELAY
    ) as sandbox:
        assert sandbox.dedupe_within_backfill is False  # the costly reading
        yield sandbox, clock


@pytest.fixture(autouse=True)
def small_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backfiller, "MAX_INGEST_EVENTS", CHUNK)


def _stack() -> tuple[Any, str]:
    """The test stack without an OrbApiBaseUrl: the CLI uses Orb's own URL (the transport redirects)."""
    parameters: dict[str, Any] = dict(TEMPLATE["Parameters"])  # type: ignore[call-overload]
    parameters.pop("OrbApiBaseUrl")
    template = {**TEMPLATE, "Parameters": parameters}
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "PropertiesMapping", "ParameterValue": json.dumps({"amount": "amount"})}],
    )
    outputs = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    rejected_url = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "RejectedQueueUrl")
    return boto3.client("sqs", region_name="us-east-1"), rejected_url


@pytest.fixture
def world(sandbox_and_clock: tuple[OrbSandbox, Clock], tmp_path: Path) -> Iterator[World]:
    sandbox, clock = sandbox_and_clock
    with mock_aws():
        aws.reset_clients()
        sqs, rejected_url = _stack()
        yield World(sandbox, clock, sqs, rejected_url, tmp_path / "state.json", [], ReusedClients())
    aws.reset_clients()


def _fresh(world: World) -> None:
    """A new scenario: Orb forgets everything (same seed), a full queue, no state file."""
    world.sandbox.reset()
    world.sandbox.rng.seed(SEED)
    world.clock._now = START
    world.state.unlink(missing_ok=True)
    while batch := world.sqs.receive_message(QueueUrl=world.rejected_url, MaxNumberOfMessages=10).get("Messages"):
        for message in batch:
            world.sqs.delete_message(QueueUrl=world.rejected_url, ReceiptHandle=message["ReceiptHandle"])
    late = START - timedelta(hours=13)
    records, index = [], 0
    for customer, count in CUSTOMERS.items():
        for minute in range(count):
            records.append(
                rejection_record(
                    stage="orb",
                    reason="timestamp outside the grace period",
                    orb_event=orb_event(index, late + timedelta(minutes=minute), customer),
                )
            )
            index += 1
    send(world.sqs, world.rejected_url, records)
    world.keys = [f"msg-{i}" for i in range(index)]


def _run(world: World, transport: KillingTransport) -> tuple[int, str]:
    out = io.StringIO()
    args = backfill_cmd.build_parser().parse_args(
        [
            *("--stack", STACK, "--region", "us-east-1", "--state-file", str(world.state), "--yes"),
            *("--per-customer", "--requests-per-second", "0", "--events-per-minute", "0", "--hold-seconds", "60"),
        ]
    )
    code = backfill_cmd.run(
        args,
        {"ORB_API_KEY": API_KEY},
        out,
        io.StringIO(),
        now=world.clock,
        session_factory=world.sessions,
        http=httpx.Client(transport=transport),
        sleep=world.clock.sleep,
        wait_seconds=0,
    )
    return code, out.getvalue()


def _rerun_until_done(world: World) -> list[str]:
    outputs = []
    for _ in range(8):
        code, out = _run(world, KillingTransport(world.sandbox.port))
        outputs.append(out)
        if code == 0 and not all_bodies(world.sqs, world.rejected_url):
            break
    world.clock.sleep(REFLECT_DELAY.total_seconds())  # Orb reflects what was closed last ...
    code, out = _run(world, KillingTransport(world.sandbox.port))  # ... and a last run forgets it
    outputs.append(out)
    assert code == 0, out
    return outputs


def _check_billed_once(world: World, where: str, outputs: list[str]) -> None:
    context = f"{where}:\n" + "\n---\n".join(outputs)
    world.clock.sleep(REFLECT_DELAY.total_seconds())
    billed = world.sandbox.billed_count_by_key()
    assert billed == dict.fromkeys(world.keys, 1), context
    backfills = json.loads(httpx.get(f"{world.sandbox.base_url}/events/backfills", headers=_auth()).text)["data"]
    assert not [b for b in backfills if b["status"] in ("pending", "pending_revert")], context
    assert all_bodies(world.sqs, world.rejected_url) == [], context
    assert json.loads(world.state.read_text())["backfills"] == [], context


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def _clean_run_steps(world: World) -> list[str]:
    _fresh(world)
    transport = KillingTransport(world.sandbox.port)
    code, out = _run(world, transport)
    assert code in (0, 1), out
    return transport.steps


def test_the_faults_are_on_and_a_clean_run_bills_each_key_once(world: World) -> None:
    steps = _clean_run_steps(world)
    outputs = _rerun_until_done(world)
    _check_billed_once(world, "no kill", outputs)
    stats = world.sandbox.stats()
    # The run met lost answers after ingesting, and reverted those backfills rather than resend.
    assert stats["outcomes"].get("answer_lost", 0) >= 1, stats
    assert any(step.endswith("/revert") for step in steps), steps
    assert stats["billed_twice"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("after", [False, True], ids=["killed-before-sending", "killed-after-orb-answered"])
def test_killed_at_every_request_then_rerun_bills_each_key_exactly_once(world: World, after: bool) -> None:
    steps = _clean_run_steps(world)
    assert any("/ingest" in step for step in steps) and any(step.endswith("/close") for step in steps)
    for kill_at, step in enumerate(steps, start=1):
        _fresh(world)
        with pytest.raises(Killed):
            _run(world, KillingTransport(world.sandbox.port, kill_at, after))
        _check_billed_once(
            world, f"killed {'after' if after else 'before'} #{kill_at} {step}", _rerun_until_done(world)
        )


@pytest.mark.parametrize("when", ["before", "after"])
def test_killed_around_the_deletion_of_the_records_then_rerun(
    world: World, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    real_delete = backfill_cmd.delete

    def dying_delete(sqs: Any, url: str, entries: Any) -> Any:
        if when == "before":
            raise Killed("closed and saved, records not deleted yet")
        real_delete(sqs, url, entries)
        raise Killed("records deleted, not yet noted in the state file")

    _fresh(world)
    monkeypatch.setattr(backfill_cmd, "delete", dying_delete)
    with pytest.raises(Killed):
        _run(world, KillingTransport(world.sandbox.port))
    saved = json.loads(world.state.read_text())["backfills"]
    assert [entry["status"] for entry in saved if entry["status"] == "closed"]
    monkeypatch.setattr(backfill_cmd, "delete", real_delete)
    _check_billed_once(world, f"killed {when} deleting", _rerun_until_done(world))
