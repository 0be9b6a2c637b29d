"""Which deployment `orb-bridge replay` / `backfill` act on: a deployed stack or the local dev stack.

``--stack NAME`` reads the queue URLs from the stack's outputs (``IngestQueueUrl``,
``RejectedQueueUrl``) and the mapping and Orb settings from its parameters, with the usual AWS
credential chain (``--profile``, ``--region``, environment, SSO...). ``--dev`` talks to the dev
stack's moto server: ``orb-bridge dev`` registers its addresses under ``.orb-bridge-dev/`` at the
repository's root while it runs (``dev_stacks``: one file per stack; ``--port N`` or ``--dev NAME``
chooses when several run; ``--endpoint-url`` or ``AWS_ENDPOINT_URL`` override them).

A stack's parameters are input, not instructions: whoever can update the stack chooses them, and
the Orb API key is sent to ``OrbApiBaseUrl``. So the key (the stack's secret, or an exported
``ORB_API_KEY``) is only ever sent to a URL that passes the functions' rule (``orb_bridge.orb.base_url``)
and whose host is Orb's API (api.withorb.com) or one the operator names with ``--allow-orb-host``;
and ``OrbApiKeySecretArn`` must be a secret of the stack's own account and region (otherwise any
secret the operator can read could be sent). Both are checked before the key is read, so a
refused stack sends nothing anywhere, dry run included.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from orb_bridge.core.config import MappingSettings
from orb_bridge.orb.base_url import (
    DEFAULT_ORB_API_BASE_URL,
    LOOPBACK_HOSTS,
    ORB_API_HOST,
)
from orb_bridge_dev.deployment import dev_stacks
from orb_bridge_dev.deployment.rejected_records import (
    DEFAULT_GRACE_PERIOD_HOURS,
    STAGE_CHOICES,
    Filters,
    Target,
    TargetError,
    parse_since,
)
from orb_bridge_dev.deployment.stack_trust import check_secret_arn, checked_url
from orb_bridge_dev.terminal import printable

DEV_ORB_BASE_URL = "http://127.0.0.1:3001/v1"
# Stack parameter -> the environment variable the functions read it as.
MAPPING_PARAMETERS = {
    "EventNameField": "EVENT_NAME_FIELD",
    "ExternalCustomerIdField": "EXTERNAL_CUSTOMER_ID_FIELD",
    "IdempotencyKeyField": "IDEMPOTENCY_KEY_FIELD",
    "PropertiesMapping": "PROPERTIES_MAPPING",
}


def add_arguments(parser: argparse.ArgumentParser, hold_seconds: int) -> None:
    add_target_arguments(parser)
    add_filter_arguments(parser)
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


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """--stack NAME | --dev [NAME] [--port N], and the AWS and Orb options that go with them."""
    group = parser.add_argument_group("where")
    where = group.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", metavar="NAME", help="a deployed stack (CloudFormation stack name)")
    where.add_argument(
        "--dev",
        nargs="?",
        const="",
        default=None,
        metavar="NAME",
        help="the local dev stack (`make dev`); NAME (its `--name`) when several run",
    )
    group.add_argument(
        "--port", type=int, default=None, metavar="N", help="with --dev: the dev stack whose --port is N"
    )
    aws = parser.add_argument_group("AWS")
    aws.add_argument("--region", help="AWS region (default: your AWS configuration)")
    aws.add_argument("--profile", help="AWS profile (default: your AWS configuration)")
    aws.add_argument(
        "--endpoint-url", help="with --dev: the moto address the dev stack prints (default $AWS_ENDPOINT_URL)"
    )
    parser.add_argument_group("Orb").add_argument(
        "--allow-orb-host",
        action="append",
        default=[],
        metavar="HOST",
        help=f"with --stack: the stack's OrbApiBaseUrl may name this host (repeatable; default: only {ORB_API_HOST}, "
        "the only host the Orb API key is sent to otherwise)",
    )


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
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


def filters_from_args(args: argparse.Namespace, now: datetime) -> Filters:
    """The records ``add_filter_arguments``' options select (raises ArgumentTypeError on a bad --since)."""
    return Filters(
        stages=frozenset(args.stage or ()),
        reason_contains=args.reason_contains,
        since=parse_since(args.since, now) if args.since else None,
        customer=args.customer,
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
    if args.dev is not None:
        return _dev_target(args, env, session_factory)
    if getattr(args, "port", None) is not None:
        raise TargetError("--port chooses a dev stack: use it with --dev")
    return _stack_target(args, env, session_factory)


def _dev_target(args: argparse.Namespace, env: Mapping[str, str], session_factory: Callable[..., Any]) -> Target:
    from orb_bridge_dev.deployment.health import dev_parameters
    from orb_bridge_dev.devstack.env import map_settings_env
    from orb_bridge_dev.devstack.local_aws import AUDIT_BUCKET, INGEST_QUEUE, REGION, REJECTED_QUEUE
    from orb_bridge_dev.devstack.stack import DEV_ORB_API_KEY
    from orb_bridge_dev.devstack.template import PSEUDO_PARAMETERS

    explicit = (args.endpoint_url or env.get("AWS_ENDPOINT_URL", "")).strip()
    chosen = None if explicit else dev_stacks.choose(dev_stacks.running(), args.port, args.dev)
    endpoint = explicit or (chosen.aws_endpoint_url.strip() if chosen else "")
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
    # The operator's own ORB_API_BASE_URL, else the dev stack's sandbox, which is on this machine.
    orb_base_url = checked_url(
        ((chosen.orb_api_base_url if chosen else "") or DEV_ORB_BASE_URL)
        if local_orb
        else env["ORB_API_BASE_URL"].strip(),
        "ORB_API_BASE_URL" if not local_orb else "the dev stack's Orb sandbox URL",
        allowed_hosts=None if not local_orb else LOOPBACK_HOSTS,
    )
    return Target(
        label=f"dev stack {chosen.name} at {endpoint}" if chosen else f"dev stack at {endpoint}",
        sqs=sqs,
        ingest_queue_url=ingest,
        rejected_queue_url=rejected,
        mapping=functools.cache(lambda: MappingSettings.from_env(map_settings_env(env))),
        orb_base_url=orb_base_url,
        orb_api_key=lambda: DEV_ORB_API_KEY if local_orb else _api_key_from_env(env),
        # The dev stack names it as local_aws does (S3 names are lower case).
        audit_bucket=f"{stack}-{AUDIT_BUCKET}".lower(),
        s3=session.client("s3", endpoint_url=endpoint),
        cloudwatch=session.client("cloudwatch", endpoint_url=endpoint),
        outputs={"IngestQueueUrl": ingest, "RejectedQueueUrl": rejected},
        parameters=dev_parameters(env, MAPPING_PARAMETERS),
        alarm_prefix=f"{stack}-",
        checkpoint_table=lambda: f"{stack}-ReconcileCheckpointTable",
        dynamodb=session.client("dynamodb", endpoint_url=endpoint),
    )


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
    # Checked here, raised only when the key is asked for: `replay` never talks to Orb.
    orb_base_url, orb_problem = "", ""
    try:
        orb_base_url = checked_url(
            parameters.get("OrbApiBaseUrl") or DEFAULT_ORB_API_BASE_URL,
            f"the OrbApiBaseUrl of stack {args.stack!r}",
            allowed_hosts={ORB_API_HOST, *(host.strip().lower() for host in args.allow_orb_host)},
        )
    except TargetError as exc:
        orb_problem = str(exc)

    def api_key() -> str:
        if orb_problem:
            raise TargetError(orb_problem)
        # The URL's host is Orb's or one the operator named: the only places a key goes, whichever.
        if env.get("ORB_API_KEY", "").strip():
            return env["ORB_API_KEY"].strip()
        arn = parameters.get("OrbApiKeySecretArn", "")
        if not arn:
            raise TargetError("set ORB_API_KEY: the stack has no OrbApiKeySecretArn parameter")
        check_secret_arn(arn, str(stack.get("StackId", "")), args.stack)
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
        orb_base_url=orb_base_url,
        orb_api_key=api_key,
        audit_bucket=outputs.get("AuditBucketName", ""),
        s3=session.client("s3") if outputs.get("AuditBucketName") else None,
        cloudwatch=session.client("cloudwatch"),
        outputs=outputs,
        parameters=parameters,
        alarm_prefix=f"{args.stack}-",
        checkpoint_table=lambda: _physical_id(session, args.stack, "ReconcileCheckpointTable"),
        dynamodb=session.client("dynamodb"),
    )


def _physical_id(session: Any, stack: str, logical_id: str) -> str:
    """A resource's name in the stack ("" if it has none: an older template)."""
    try:
        detail = session.client("cloudformation").describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)
    except Exception:
        return ""
    return str(detail.get("StackResourceDetail", {}).get("PhysicalResourceId", ""))


def _api_key_from_env(env: Mapping[str, str]) -> str:
    key = env.get("ORB_API_KEY", "").strip()
    if not key:
        raise TargetError("ORB_API_BASE_URL is set (real Orb): set ORB_API_KEY too")
    return key


def mapping_description(settings: MappingSettings) -> str:
    """The stack's mapping parameters, escaped for the terminal."""
    return printable(
        f"EVENT_NAME_FIELD={settings.event_name_field} EXTERNAL_CUSTOMER_ID_FIELD="
        f"{settings.external_customer_id_field} IDEMPOTENCY_KEY_FIELD={settings.idempotency_key_field} "
        f"PROPERTIES_MAPPING={json.dumps(dict(settings.properties_mapping))}"
    )
