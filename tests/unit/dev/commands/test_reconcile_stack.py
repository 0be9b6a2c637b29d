"""`orb-bridge reconcile` and `orb-bridge trace` with ``--stack``: a moto CloudFormation stack with
the outputs and parameters they read (AuditBucketName, the ReconcileCheckpointTable resource,
OrbApiBaseUrl, OrbApiKeySecretArn, ReconcileRequestsPerSecond). They work against it, and the
stack-trust rules hold before any Orb call: the key never goes to a host the stack chose, and a
secret outside the stack's account and region is never read."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge_dev.commands import trace
from orb_bridge_dev.commands.reconcile import command as reconcile
from tests.support.audit_archive import write_archive_object
from tests.support.orb_backfill_fake import FakeOrb
from tests.support.reconcile_stack import REGION, Recorder, create_reconcile_stack, run_command
from tests.unit.dev.deployment.test_cli_stack_trust import ACCOUNT, EVIL_URLS, SecretReads

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR = NOW - timedelta(hours=3)
HOUR_TEXT = HOUR.strftime("%Y-%m-%dT%H")


@pytest.fixture
def moto():
    with mock_aws():
        aws.reset_clients()
        yield
    aws.reset_clients()


def event(key: str) -> dict[str, Any]:
    return {
        "event_name": "payment_confirmed",
        "idempotency_key": key,
        "external_customer_id": "cust_1",
        "timestamp": (HOUR + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "properties": {"amount": 1},
    }


def archived_and_lost(bucket: str, orb: FakeOrb) -> None:
    """k-held: archived and in Orb; k-lost: archived (Orb answered 200), not in Orb."""
    write_archive_object(boto3.client("s3", region_name=REGION), bucket, [event("k-held"), event("k-lost")], HOUR)
    orb.events["k-held"] = {**event("k-held"), "customer_id": "orb_cust_1", "backfill_id": None, "deprecated": False}


def own_secret(value: str = "orb-key") -> str:
    return boto3.client("secretsmanager", region_name=REGION).create_secret(Name="orb-key", SecretString=value)["ARN"]


def test_check_uses_the_stacks_bucket_and_checkpoint_table_and_its_own_secret(moto) -> None:
    secret_arn = own_secret()
    stack = create_reconcile_stack(OrbApiKeySecretArn=secret_arn)
    orb = FakeOrb(now=lambda: NOW)
    archived_and_lost(stack["AuditBucketName"], orb)
    recorder, secrets = Recorder(orb, {"api.withorb.com"}), SecretReads()

    code, out, err = run_command(
        reconcile,
        ["--check", "--hour", HOUR_TEXT, "--json"],
        NOW,
        recorder.client(),
        env={},
        pace=lambda: None,
        session_factory=secrets,
    )
    assert code == 0, err
    document = json.loads(out)
    (row,) = document["hours"]
    assert (
        row["hour"] == HOUR_TEXT and row["counts"]["present"] == 1 and row["not_present"] == {"not_found": ["k-lost"]}
    )
    assert secrets.calls == [("GetSecretValue", secret_arn)]
    assert {r.url.host for r in recorder.requests} == {"api.withorb.com"}
    assert {r.headers["Authorization"] for r in recorder.requests} == {"Bearer orb-key"}
    # the checkpoints are in the stack's table, found through describe_stack_resource
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=stack["ReconcileCheckpointTable"])["Items"]
    assert items


def test_trace_on_the_stack(moto) -> None:
    stack = create_reconcile_stack()
    orb = FakeOrb(now=lambda: NOW)
    archived_and_lost(stack["AuditBucketName"], orb)
    recorder = Recorder(orb, {"api.withorb.com"})
    code, out, err = run_command(trace, ["k-held"], NOW, recorder.client(), wait_seconds=0)
    assert code == 0, err
    assert out.startswith("k-held: ingested: Orb holds it as sent") and "archive: sent" in out
    code, out, err = run_command(trace, ["k-lost"], NOW, recorder.client(), wait_seconds=0)
    assert code == 0 and "holds nothing under the key" in out


def test_repair_on_the_stack_plans_from_its_reports(moto) -> None:
    stack = create_reconcile_stack()
    orb = FakeOrb(now=lambda: NOW)
    archived_and_lost(stack["AuditBucketName"], orb)
    recorder = Recorder(orb, {"api.withorb.com"})
    run_command(reconcile, ["--check", "--hour", HOUR_TEXT], NOW, recorder.client(), pace=lambda: None)
    code, out, err = run_command(reconcile, ["--repair", "--json"], NOW, recorder.client(), pace=lambda: None)
    assert code == 0, err
    assert json.loads(out)["repair"]["resend"] == ["k-lost"]


@pytest.mark.parametrize(("url", "why"), EVIL_URLS)
def test_no_key_goes_to_a_url_the_stack_chose(moto, url: str, why: str) -> None:
    stack = create_reconcile_stack(OrbApiBaseUrl=url, OrbApiKeySecretArn=own_secret("secret-orb-key"))
    archived_and_lost(stack["AuditBucketName"], FakeOrb(now=lambda: NOW))
    commands: list[tuple[Any, list[str], dict[str, Any]]] = [
        (reconcile, ["--check"], {"pace": lambda: None}),
        (reconcile, ["--check", "--hour", HOUR_TEXT], {"pace": lambda: None}),
        (reconcile, ["--repair", "--since", "1d"], {"pace": lambda: None}),
        (reconcile, ["--repair", "--yes"], {"pace": lambda: None}),
        (trace, ["k-lost"], {"wait_seconds": 0}),
    ]
    for (main, argv, options), env in itertools.product(commands, [{"ORB_API_KEY": "exported-orb-key"}, {}]):
        recorder, secrets = Recorder(FakeOrb(now=lambda: NOW), set()), SecretReads()
        code, out, err = run_command(main, argv, NOW, recorder.client(), env=env, session_factory=secrets, **options)
        assert code == 2, (argv, out, err)
        assert why in err and "refusing to send it an Orb API key" in err
        assert recorder.requests == [] and secrets.calls == []
        assert "secret-orb-key" not in out + err and "exported-orb-key" not in out + err
    # the checkpoint table is untouched: --check refused before the reconciler ran
    assert not boto3.client("dynamodb", region_name=REGION).scan(TableName=stack["ReconcileCheckpointTable"])["Items"]


def test_the_table_alone_needs_no_orb_so_an_odd_url_does_not_stop_it(moto) -> None:
    create_reconcile_stack(OrbApiBaseUrl="https://evil.example/v1")
    recorder = Recorder(FakeOrb(now=lambda: NOW), set())
    code, out, _err = run_command(reconcile, [], NOW, recorder.client(), env={})
    assert code == 0 and "no reconciliation report" in out and recorder.requests == []


@pytest.mark.parametrize(
    ("arn", "why"),
    [
        ("arn:aws:secretsmanager:us-east-1:210987654321:secret:db-password-AbCdEf", "account 210987654321"),
        (f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:db-password-AbCdEf", "region eu-west-1"),
        (f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/db-password", "not a Secrets Manager secret ARN"),
    ],
)
@pytest.mark.parametrize("main", [reconcile, trace])
def test_a_secret_outside_the_stacks_account_and_region_is_never_read(moto, arn: str, why: str, main: Any) -> None:
    create_reconcile_stack(OrbApiKeySecretArn=arn)
    recorder, secrets = Recorder(FakeOrb(now=lambda: NOW), {"api.withorb.com"}), SecretReads()
    argv, options = (["--check"], {"pace": lambda: None}) if main is reconcile else (["k-1"], {"wait_seconds": 0})
    code, _out, err = run_command(main, argv, NOW, recorder.client(), env={}, session_factory=secrets, **options)
    assert code == 2 and why in err and "set ORB_API_KEY instead" in err
    assert secrets.calls == [] and recorder.requests == []


@pytest.mark.parametrize("rate", ["0", "-1", "1e9", "nan", "fast"])
def test_a_stack_cannot_choose_a_pace_above_orbs_limit(moto, rate: str) -> None:
    create_reconcile_stack(ReconcileRequestsPerSecond=rate)
    recorder = Recorder(FakeOrb(now=lambda: NOW), {"api.withorb.com"})
    code, _out, err = run_command(reconcile, ["--check"], NOW, recorder.client(), pace=lambda: None)
    assert code == 2 and "ReconcileRequestsPerSecond must be in (0, 50]" in err and recorder.requests == []
