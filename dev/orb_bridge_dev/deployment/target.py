"""Which deployment `orb-bridge replay` / `backfill` act on: a deployed stack or the local dev stack.

``--stack NAME`` reads the queue URLs from the stack's outputs (``IngestQueueUrl``,
``RejectedQueueUrl``) and the mapping and Orb settings from its parameters, with the usual AWS
credential chain (``--profile``, ``--region``, environment, SSO...). ``--dev`` talks to the dev
stack's moto server: ``orb-bridge dev`` writes its addresses to ``.orb-bridge-dev.json`` at the
repository's root while it runs (``--endpoint-url`` or ``AWS_ENDPOINT_URL`` override it).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orb_bridge.core.config import DEFAULT_ORB_API_BASE_URL, MappingSettings
from orb_bridge_dev.deployment.rejected_records import DEFAULT_GRACE_PERIOD_HOURS, STAGE_CHOICES, Target, TargetError

DEV_ORB_BASE_URL = "http://127.0.0.1:3001/v1"
# Written by `orb-bridge dev` while it runs, removed when it stops: what `--dev` talks to.
DEV_STACK_FILE = Path(__file__).resolve().parents[3] / ".orb-bridge-dev.json"
# Stack parameter -> the environment variable the functions read it as.
MAPPING_PARAMETERS = {
    "EventNameField": "EVENT_NAME_FIELD",
    "ExternalCustomerIdField": "EXTERNAL_CUSTOMER_ID_FIELD",
    "IdempotencyKeyField": "IDEMPOTENCY_KEY_FIELD",
    "PropertiesMapping": "PROPERTIES_MAPPING",
}


def add_arguments(parser: argparse.ArgumentParser, hold_seconds: int) -> None:
    where = parser.add_argument_group("where").add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", metavar="NAME", help="a deployed stack (CloudFormation stack name)")
    where.add_argument("--dev", action="store_true", help="the local dev stack (`make dev`)")
    aws = parser.add_argument_group("AWS")
    aws.add_argument("--region", help="AWS region (default: your AWS configuration)")
    aws.add_argument("--profile", help="AWS profile (default: your AWS configuration)")
    aws.add_argument(
        "--endpoint-url", help="with --dev: the moto address the dev stack prints (default $AWS_ENDPOINT_URL)"
    )
    filters = parser.add_argument_group("which records")
    filters.add_argument(
        "--stage",
        action="append",
        choices=STAGE_CHOICES,
        help="only this stage (repeatable); 'redriven' = moved by the queue's redrive",
    )
    filters.add_argument("--reason-contains", default="", metavar="TEXT", help="reason contains TEXT (any case)")
    filters.add_argument("--since", metavar="WHEN", help="rejected at or after WHEN: 2h, 3d or an ISO 8601 time")
    filters.add_argument("--customer", default="", metavar="ID", help="only this (external) customer id")
    parser.add_argument("--yes", action="store_true", help="act (default: dry run, nothing changes)")
    parser.add_argument(
        "--grace-period-hours",
        type=float,
        default=None,
        help=f"Orb's grace period for your account (default $ORB_GRACE_PERIOD_HOURS or {DEFAULT_GRACE_PERIOD_HOURS:g})",
    )
    parser.add_argument(
        "--hold-seconds",
        type=int,
        default=hold_seconds,
        help=f"how long records stay invisible to others during a run (default {hold_seconds})",
    )


def grace_period_hours(args: argparse.Namespace, env: Mapping[str, str]) -> float:
    if args.grace_period_hours is not None:
        return args.grace_period_hours
    raw = env.get("ORB_GRACE_PERIOD_HOURS", "").strip()
    try:
        return float(raw) if raw else DEFAULT_GRACE_PERIOD_HOURS
    except ValueError:
        raise TargetError(f"ORB_GRACE_PERIOD_HOURS must be a number of hours, got {raw!r}") from None


def resolve(
    args: argparse.Namespace, env: Mapping[str, str], session_factory: Callable[..., Any] | None = None
) -> Target:
    import boto3

    session_factory = session_factory or boto3.session.Session
    if args.dev:
        return _dev_target(args, env, session_factory)
    return _stack_target(args, env, session_factory)


def _dev_target(args: argparse.Namespace, env: Mapping[str, str], session_factory: Callable[..., Any]) -> Target:
    from orb_bridge_dev.devstack.env import map_settings_env
    from orb_bridge_dev.devstack.local_aws import INGEST_QUEUE, REGION, REJECTED_QUEUE
    from orb_bridge_dev.devstack.stack import DEV_ORB_API_KEY
    from orb_bridge_dev.devstack.template import PSEUDO_PARAMETERS

    running = read_dev_stack_file()
    endpoint = (args.endpoint_url or env.get("AWS_ENDPOINT_URL", "") or running.get("aws_endpoint_url", "")).strip()
    if not endpoint:
        raise TargetError(
            "--dev: no dev stack running (start it with `make dev`), or pass --endpoint-url "
            "http://127.0.0.1:PORT (its 'AWS' banner line) or set AWS_ENDPOINT_URL"
        )
    session = session_factory(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    sqs = session.client("sqs", endpoint_url=endpoint)
    stack = PSEUDO_PARAMETERS["AWS::StackName"]
    try:
        ingest, rejected = (
            sqs.get_queue_url(QueueName=f"{stack}-{name}")["QueueUrl"] for name in (INGEST_QUEUE, REJECTED_QUEUE)
        )
    except Exception as exc:
        raise TargetError(
            f"no dev stack queues at {endpoint} ({type(exc).__name__}): is `orb-bridge dev` running?"
        ) from None
    local_orb = not env.get("ORB_API_BASE_URL", "").strip()
    return Target(
        label=f"dev stack at {endpoint}",
        sqs=sqs,
        ingest_queue_url=ingest,
        rejected_queue_url=rejected,
        mapping=functools.cache(lambda: MappingSettings.from_env(map_settings_env(env))),
        orb_base_url=(
            (running.get("orb_api_base_url") or DEV_ORB_BASE_URL) if local_orb else env["ORB_API_BASE_URL"].strip()
        ),
        orb_api_key=lambda: DEV_ORB_API_KEY if local_orb else _api_key_from_env(env),
    )


def write_dev_stack_file(aws_endpoint_url: str, orb_api_base_url: str, path: Path | None = None) -> None:
    running = {"aws_endpoint_url": aws_endpoint_url, "orb_api_base_url": orb_api_base_url, "pid": os.getpid()}
    (path or DEV_STACK_FILE).write_text(json.dumps(running) + "\n")


def remove_dev_stack_file(path: Path | None = None) -> None:
    path = path or DEV_STACK_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():  # never another stack's file
            path.unlink()
    except (OSError, ValueError):
        pass


def read_dev_stack_file(path: Path | None = None) -> dict[str, str]:
    """The running dev stack's addresses, or {} (none, or its process is gone)."""
    try:
        running = json.loads((path or DEV_STACK_FILE).read_text())
        os.kill(int(running["pid"]), 0)  # signal 0: only checks the process exists
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {key: str(value) for key, value in running.items() if key != "pid"}


def _stack_target(args: argparse.Namespace, env: Mapping[str, str], session_factory: Callable[..., Any]) -> Target:
    session = session_factory(profile_name=args.profile, region_name=args.region)
    try:
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
    except Exception as exc:
        raise TargetError(f"cannot read stack {args.stack!r}: {exc}") from None
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    parameters = {item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])}
    missing = [name for name in ("IngestQueueUrl", "RejectedQueueUrl") if not outputs.get(name)]
    if missing:
        raise TargetError(f"stack {args.stack!r} has no output {', '.join(missing)}: is it a segment-orb-bridge stack?")
    mapping_env = {variable: parameters[name] for name, variable in MAPPING_PARAMETERS.items() if parameters.get(name)}

    def api_key() -> str:
        if env.get("ORB_API_KEY", "").strip():
            return env["ORB_API_KEY"].strip()
        arn = parameters.get("OrbApiKeySecretArn", "")
        if not arn:
            raise TargetError("set ORB_API_KEY: the stack has no OrbApiKeySecretArn parameter")
        try:
            return session.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"].strip()
        except Exception as exc:
            raise TargetError(
                f"cannot read the Orb API key from the stack's secret ({type(exc).__name__}); set ORB_API_KEY instead"
            ) from None

    return Target(
        label=f"stack {args.stack}",
        sqs=session.client("sqs"),
        ingest_queue_url=outputs["IngestQueueUrl"],
        rejected_queue_url=outputs["RejectedQueueUrl"],
        mapping=functools.cache(lambda: MappingSettings.from_env(mapping_env)),
        orb_base_url=(parameters.get("OrbApiBaseUrl") or DEFAULT_ORB_API_BASE_URL).rstrip("/"),
        orb_api_key=api_key,
    )


def _api_key_from_env(env: Mapping[str, str]) -> str:
    key = env.get("ORB_API_KEY", "").strip()
    if not key:
        raise TargetError("ORB_API_BASE_URL is set (real Orb): set ORB_API_KEY too")
    return key


def mapping_description(settings: MappingSettings) -> str:
    return (
        f"EVENT_NAME_FIELD={settings.event_name_field} EXTERNAL_CUSTOMER_ID_FIELD="
        f"{settings.external_customer_id_field} IDEMPOTENCY_KEY_FIELD={settings.idempotency_key_field} "
        f"PROPERTIES_MAPPING={json.dumps(dict(settings.properties_mapping))}"
    )
