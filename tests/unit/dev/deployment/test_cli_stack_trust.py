"""The operator CLIs do not trust a stack's Orb settings (issue 22, item 4).

Whoever can update a stack chooses its parameters. Each test replays an attack with a moto stack
whose ``OrbApiBaseUrl`` or ``OrbApiKeySecretArn`` is evil, runs ``orb-bridge backfill`` (dry run
and ``--yes``) with every request recorded, and shows nothing leaves for the evil host and no
foreign secret is read; then that the legitimate setups still work.
"""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from orb_bridge.aws import clients as aws
from orb_bridge.aws.rejection_records import rejection_record
from orb_bridge_dev.commands import replay as replay_cmd
from orb_bridge_dev.commands.backfill import command as backfill_cmd
from orb_bridge_dev.deployment import target as stack_target
from orb_bridge_dev.deployment.rejected_records import TargetError
from tests.support.orb_backfill_fake import FakeOrb
from tests.support.rejected_stack import STACK, TEMPLATE, all_bodies, orb_event, send

NOW = datetime.now(UTC).replace(microsecond=0)
LATE = NOW - timedelta(hours=13)
ACCOUNT = "123456789012"  # moto's default account
TRUST_TEMPLATE: dict[str, Any] = json.loads(json.dumps(TEMPLATE))  # the test stack, plus the key's secret
TRUST_TEMPLATE["Parameters"]["OrbApiKeySecretArn"] = {"Type": "String", "Default": ""}


class Recorder:
    """Every request the CLI makes; those for Orb's fake are answered by it, others get a 200."""

    def __init__(self, orb: FakeOrb, orb_hosts: set[str]) -> None:
        self.orb, self.orb_hosts = orb, orb_hosts
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.orb(request) if request.url.host in self.orb_hosts else httpx.Response(200, json={"data": []})

    def hosts(self) -> set[str]:
        return {request.url.host for request in self.requests}

    def keys_sent(self) -> set[str]:
        return {request.headers.get("Authorization", "") for request in self.requests}


class SecretReads:
    """A boto3 session factory that records every Secrets Manager call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, **kwargs: Any) -> boto3.session.Session:
        session = boto3.session.Session(**kwargs)
        session.events.register(
            "before-parameter-build.secrets-manager.*",
            lambda model, params, **_: self.calls.append((model.name, params.get("SecretId"))),
        )
        return session


@pytest.fixture
def moto():
    with mock_aws():
        aws.reset_clients()
        yield
    aws.reset_clients()


def make_stack(**parameters: str) -> tuple[Any, str]:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(TRUST_TEMPLATE),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )
    outputs = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    rejected_url = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "RejectedQueueUrl")
    sqs = boto3.client("sqs", region_name="us-east-1")
    send(
        sqs,
        rejected_url,
        [rejection_record(stage="orb", reason="late", orb_event=orb_event(i, LATE)) for i in range(3)],
    )
    return sqs, rejected_url


def backfill(
    recorder: Recorder, tmp_path: Any, env: dict[str, str], *argv: str, secrets: SecretReads | None = None
) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    args = backfill_cmd.build_parser().parse_args(
        ["--stack", STACK, "--region", "us-east-1", "--state-file", str(tmp_path / "state.json"), *argv]
    )
    code = backfill_cmd.run(
        args,
        env,
        out,
        err,
        now=lambda: NOW,
        session_factory=secrets,
        http=httpx.Client(transport=httpx.MockTransport(recorder)),
        sleep=lambda _: None,
        wait_seconds=0,
    )
    return code, out.getvalue() + err.getvalue()


EVIL_URLS = [
    ("https://evil.example/v1", "pass --allow-orb-host evil.example"),
    ("https://api.withorb.com.evil.example/v1", "is not Orb's API host"),
    ("http://127.0.0.1:9/v1", "is not Orb's API host"),  # passes the functions' rule, but not Orb
    ("http://evil.example#@localhost", "user info"),  # the rule's old bypass (item 7)
    ("http://evil.example/v1", "not this machine"),
    ("https://user@api.withorb.com/v1", "user info"),
]


@pytest.mark.parametrize(("url", "why"), EVIL_URLS)
def test_no_key_goes_to_a_url_the_stack_chose(moto, tmp_path, url: str, why: str) -> None:
    """The exported ORB_API_KEY, or the stack's own secret, never goes to the stack's URL."""
    secret_arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="orb-key", SecretString="secret-orb-key"
    )["ARN"]
    sqs, rejected_url = make_stack(OrbApiBaseUrl=url, OrbApiKeySecretArn=secret_arn)
    before = sorted(all_bodies(sqs, rejected_url))
    for mode, env in itertools.product([(), ("--yes",)], [{"ORB_API_KEY": "exported-orb-key"}, {}]):
        recorder, secrets = Recorder(FakeOrb(now=lambda: NOW), set()), SecretReads()
        code, output = backfill(recorder, tmp_path, env, *mode, secrets=secrets)
        assert code == 2 and why in output and "refusing to send it an Orb API key" in output
        assert recorder.requests == [] and secrets.calls == []
        assert "secret-orb-key" not in output and "exported-orb-key" not in output
    assert sorted(all_bodies(sqs, rejected_url)) == before and not (tmp_path / "state.json").exists()


@pytest.mark.parametrize(
    ("arn", "why"),
    [
        ("arn:aws:secretsmanager:us-east-1:210987654321:secret:db-password-AbCdEf", "account 210987654321"),
        (f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:db-password-AbCdEf", "region eu-west-1"),
        (f"arn:aws-cn:secretsmanager:us-east-1:{ACCOUNT}:secret:db-password-AbCdEf", "account"),
        (f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/db-password", "not a Secrets Manager secret ARN"),
        ("db-password", "not a Secrets Manager secret ARN"),
        # (XML cannot carry C0 controls, so a stack parameter cannot either; a bidi override it can)
        ("arn:aws:secretsmanager:us-east-1:\u202e210987654321:secret:x", "account \\u202e210987654321"),
    ],
)
def test_a_secret_outside_the_stacks_account_and_region_is_never_read(moto, tmp_path, arn: str, why: str) -> None:
    make_stack(OrbApiKeySecretArn=arn)
    recorder, secrets = Recorder(FakeOrb(now=lambda: NOW), {"api.withorb.com"}), SecretReads()
    code, output = backfill(recorder, tmp_path, {}, secrets=secrets)
    assert code == 2 and why in output and "set ORB_API_KEY instead" in output and "\u202e" not in output
    assert secrets.calls == [] and recorder.requests == []


def test_the_stacks_own_secret_goes_to_orb(moto, tmp_path) -> None:
    secret_arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="orb-key", SecretString="orb-key"
    )["ARN"]
    make_stack(OrbApiKeySecretArn=secret_arn)
    recorder, secrets = Recorder(FakeOrb(now=lambda: NOW), {"api.withorb.com"}), SecretReads()
    code, output = backfill(recorder, tmp_path, {}, "--yes", secrets=secrets)
    assert code == 0, output
    assert secrets.calls == [("GetSecretValue", secret_arn)]
    assert recorder.hosts() == {"api.withorb.com"} and recorder.keys_sent() == {"Bearer orb-key"}
    assert sorted(recorder.orb.billed()) == ["msg-0", "msg-1", "msg-2"]


def test_an_operator_named_host_is_accepted(moto, tmp_path) -> None:
    make_stack(OrbApiBaseUrl="https://orb-proxy.corp.example/v1")
    recorder = Recorder(FakeOrb(now=lambda: NOW), {"orb-proxy.corp.example"})
    code, output = backfill(
        recorder, tmp_path, {"ORB_API_KEY": "orb-key"}, "--allow-orb-host", "ORB-PROXY.corp.example"
    )
    assert code == 0 and "dry run: nothing changed" in output
    assert recorder.hosts() == {"orb-proxy.corp.example"} and recorder.keys_sent() == {"Bearer orb-key"}


def test_naming_a_host_does_not_lift_the_https_rule(moto, tmp_path) -> None:
    make_stack(OrbApiBaseUrl="http://orb-proxy.corp.example/v1")
    recorder = Recorder(FakeOrb(now=lambda: NOW), {"orb-proxy.corp.example"})
    code, output = backfill(
        recorder, tmp_path, {"ORB_API_KEY": "orb-key"}, "--allow-orb-host", "orb-proxy.corp.example"
    )
    assert code == 2 and "not this machine" in output and recorder.requests == []


def test_replay_does_not_need_orb_so_an_odd_orb_url_does_not_stop_it(moto) -> None:
    make_stack(OrbApiBaseUrl="https://evil.example/v1")
    out, err = io.StringIO(), io.StringIO()
    args = replay_cmd.build_parser().parse_args(["--stack", STACK, "--region", "us-east-1"])
    assert replay_cmd.run(args, {"ORB_API_KEY": "k"}, out, err, now=lambda: NOW, wait_seconds=0) == 0
    assert "3 record(s) on the rejected queue" in out.getvalue()


class FakeSqs:
    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # noqa: N803 (boto3's name)
        return {"QueueUrl": f"http://127.0.0.1:5000/000000000000/{QueueName}"}


class FakeSession:
    def __init__(self, **_: Any) -> None:
        pass

    def client(self, *_: Any, **__: Any) -> FakeSqs:
        return FakeSqs()


def test_dev_target_sends_keys_only_to_the_local_sandbox_or_the_operators_url(tmp_path, monkeypatch) -> None:
    from orb_bridge_dev.deployment import dev_stacks

    monkeypatch.setattr(dev_stacks, "DEV_STACKS_DIR", tmp_path)
    args = replay_cmd.build_parser().parse_args(["--dev"])
    dev_stacks.register(3000, "http://127.0.0.1:5000", "https://evil.example/v1")
    with pytest.raises(TargetError, match="is not on this machine"):
        stack_target.resolve(args, {}, FakeSession)
    dev_stacks.register(3000, "http://127.0.0.1:5000", "http://127.0.0.1:3001/v1")
    assert stack_target.resolve(args, {}, FakeSession).orb_base_url == "http://127.0.0.1:3001/v1"
    # The operator's own ORB_API_BASE_URL (a real Orb) is theirs to choose, within the rule.
    target = stack_target.resolve(args, {"ORB_API_BASE_URL": "https://api.withorb.com/v1/"}, FakeSession)
    assert target.orb_base_url == "https://api.withorb.com/v1"
    with pytest.raises(TargetError, match="user info"):
        stack_target.resolve(args, {"ORB_API_BASE_URL": "http://evil.example?@127.0.0.1"}, FakeSession)
