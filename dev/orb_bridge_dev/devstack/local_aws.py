"""Embedded AWS for the dev stack: moto's server on loopback with the resources of template.yaml.

The queues (with their redrive policy), the idempotency table (with TTL), the event bus and the
audit archive's bucket (versioned) are created from their declarations in the template, so that
the local stack mirrors what ``sam deploy`` creates. Intrinsics between them (``!Ref``, ``!GetAtt``, ``!Sub``) are resolved
against the resources created here and the template's Parameter defaults.

Two local deviations, both deliberate:
- the ingest queue's visibility timeout is short (seconds), so retries are visible while you
  watch; the template's value (>= 6x the function timeout) is for AWS;
- a "bus tap" SQS queue receives every event on the webhook bus, so forwarded webhooks can
  be seen and counted.

moto itself runs in a child process (``moto_server``), with one speed-up of its SQS
(``moto_sqs_speedup``), same behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orb_bridge_dev.devstack.local_audit import create_audit_resources
from orb_bridge_dev.devstack.moto_server import MotoServerProcess
from orb_bridge_dev.devstack.template import PSEUDO_PARAMETERS, TemplateError, parameter_values, resolve

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

INGEST_QUEUE = "IngestQueue"
REJECTED_QUEUE = "RejectedQueue"
IDEMPOTENCY_TABLE = "WebhookIdempotencyTable"
EVENT_BUS = "OrbWebhookEventBus"
AUDIT_BUCKET = "AuditBucket"

DEFAULT_LOCAL_VISIBILITY_TIMEOUT = 2
BUS_TAP_QUEUE_NAME = "orb-bridge-dev-bus-tap"
# Matches every event put on the bus (EventBridge needs at least one field in a pattern).
BUS_TAP_PATTERN = {"account": [ACCOUNT_ID]}

# SQS attributes the template may set that a CreateQueue call accepts as strings.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
)


class _Refs:
    """What the template's intrinsics resolve to locally: parameter defaults and created resources."""

    def __init__(self, template: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> None:
        self.template = template
        self.parameters = parameter_values(template, overrides)
        self.refs: dict[str, Any] = {}

    def register(self, logical_id: str, ref: Any, **attributes: Any) -> None:
        self.refs[logical_id] = ref
        for name, value in attributes.items():
            self.refs[f"{logical_id}.{name}"] = value

    def resolve(self, value: Any) -> Any:
        return resolve(value, self.template, self.parameters, self.refs)


def _resource(template: Mapping[str, Any], logical_id: str, expected_type: str) -> Mapping[str, Any]:
    resource = (template.get("Resources") or {}).get(logical_id)
    if not isinstance(resource, Mapping):
        raise TemplateError(f"template.yaml has no resource {logical_id}")
    if resource.get("Type") != expected_type:
        raise TemplateError(f"{logical_id} is a {resource.get('Type')}, expected {expected_type}")
    return resource.get("Properties") or {}


@dataclass(frozen=True)
class QueueInfo:
    url: str
    arn: str
    name: str
    # What the template asks for in AWS (the local queue uses a shorter one).
    template_visibility_timeout: int
    max_receive_count: int | None = None


@dataclass(frozen=True)
class LocalResources:
    endpoint_url: str
    ingest_queue: QueueInfo
    rejected_queue: QueueInfo
    bus_tap_queue: QueueInfo
    idempotency_table_name: str
    event_bus_name: str
    event_bus_arn: str
    extra: dict[str, Any] = field(default_factory=dict)
    audit_bucket_name: str = ""  # the audit archive (moto's S3), as deployed


class LocalAws:
    """moto's server (a child process) on 127.0.0.1 plus the template's resources."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        port: int = 0,
        stack_name: str = PSEUDO_PARAMETERS["AWS::StackName"],
        parameters: Mapping[str, Any] | None = None,
        local_visibility_timeout: int = DEFAULT_LOCAL_VISIBILITY_TIMEOUT,
    ) -> None:
        self.template = template
        self.port = port
        self.stack_name = stack_name
        self.parameters = dict(parameters or {})
        self.local_visibility_timeout = local_visibility_timeout
        self._server: Any = None
        self.resources: LocalResources | None = None

    # ---- lifecycle -----------------------------------------------------------------------
    def check_template(self) -> None:
        """Refuse, before starting anything, a template lacking what the dev stack mirrors."""
        _resource(self.template, REJECTED_QUEUE, "AWS::SQS::Queue")
        _resource(self.template, IDEMPOTENCY_TABLE, "AWS::DynamoDB::Table")
        _resource(self.template, EVENT_BUS, "AWS::Events::EventBus")
        if not _resource(self.template, INGEST_QUEUE, "AWS::SQS::Queue").get("RedrivePolicy"):
            raise TemplateError(f"{INGEST_QUEUE} needs a RedrivePolicy to {REJECTED_QUEUE}")

    def start(self) -> LocalResources:
        self.check_template()
        self._server = MotoServerProcess(port=self.port)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.port = port
        endpoint_url = f"http://{host}:{port}"
        try:
            self.resources = self._create_resources(endpoint_url)
        except BaseException:
            self.stop()
            raise
        return self.resources

    @property
    def running(self) -> bool:
        """Whether moto's server process is up (``start`` stops it again when setup fails)."""
        return self._server is not None

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()

    def client(self, service: str) -> Any:
        import boto3

        assert self.resources is not None, "start() first"
        return boto3.session.Session().client(
            service,
            endpoint_url=self.resources.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    # ---- resources -----------------------------------------------------------------------
    def _create_resources(self, endpoint_url: str) -> LocalResources:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        sqs = session.client("sqs", endpoint_url=endpoint_url)
        dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        events = session.client("events", endpoint_url=endpoint_url)
        resolver = _Refs(self.template, self.parameters)

        rejected = self._create_queue(sqs, resolver, REJECTED_QUEUE, local_visibility=None)
        ingest = self._create_queue(sqs, resolver, INGEST_QUEUE, local_visibility=self.local_visibility_timeout)

        table_name = self._create_table(dynamodb, resolver)
        bus_name, bus_arn = self._create_bus(events, resolver)
        audit_bucket = self._create_bucket(session.client("s3", endpoint_url=endpoint_url), resolver)

        tap_url = sqs.create_queue(QueueName=BUS_TAP_QUEUE_NAME)["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="orb-bridge-dev-bus-tap", EventBusName=bus_name, EventPattern=json.dumps(BUS_TAP_PATTERN))
        events.put_targets(
            Rule="orb-bridge-dev-bus-tap", EventBusName=bus_name, Targets=[{"Id": "bus-tap", "Arn": tap_arn}]
        )
        tap = QueueInfo(url=tap_url, arn=tap_arn, name=BUS_TAP_QUEUE_NAME, template_visibility_timeout=30)
        audit = create_audit_resources(self.template, audit_bucket, dynamodb, resolver.resolve, self.stack_name)
        return LocalResources(
            endpoint_url=endpoint_url,
            ingest_queue=ingest,
            rejected_queue=rejected,
            bus_tap_queue=tap,
            idempotency_table_name=table_name,
            event_bus_name=bus_name,
            event_bus_arn=bus_arn,
            audit_bucket_name=audit_bucket,
            extra=audit,
        )

    def _physical_name(self, resolver: _Refs, properties: Mapping[str, Any], key: str, logical_id: str) -> str:
        name = resolver.resolve(properties.get(key)) if properties.get(key) is not None else None
        return str(name) if name else f"{self.stack_name}-{logical_id}"

    def _create_queue(self, sqs: Any, resolver: _Refs, logical_id: str, local_visibility: int | None) -> QueueInfo:
        properties = _resource(self.template, logical_id, "AWS::SQS::Queue")
        name = self._physical_name(resolver, properties, "QueueName", logical_id)
        attributes: dict[str, str] = {}
        for key in _QUEUE_ATTRIBUTES:
            if properties.get(key) is not None:
                attributes[key] = str(resolver.resolve(properties[key]))
        template_visibility = int(attributes.get("VisibilityTimeout", 30))
        if local_visibility is not None:
            attributes["VisibilityTimeout"] = str(local_visibility)
        max_receive_count = None
        if properties.get("RedrivePolicy") is not None:
            policy = resolver.resolve(properties["RedrivePolicy"])
            if isinstance(policy, str):
                policy = json.loads(policy)
            max_receive_count = int(policy["maxReceiveCount"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": policy["deadLetterTargetArn"], "maxReceiveCount": max_receive_count}
            )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        resolver.register(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)
        return QueueInfo(url, arn, name, template_visibility, max_receive_count)

    def _create_table(self, dynamodb: Any, resolver: _Refs) -> str:
        properties = resolver.resolve(_resource(self.template, IDEMPOTENCY_TABLE, "AWS::DynamoDB::Table"))
        name = self._physical_name(resolver, properties, "TableName", IDEMPOTENCY_TABLE)
        key_schema = properties.get("KeySchema") or [{"AttributeName": "id", "KeyType": "HASH"}]
        definitions = properties.get("AttributeDefinitions") or [{"AttributeName": "id", "AttributeType": "S"}]
        arguments: dict[str, Any] = {
            "TableName": name,
            "KeySchema": key_schema,
            "AttributeDefinitions": definitions,
            "BillingMode": properties.get("BillingMode") or "PAY_PER_REQUEST",
        }
        if arguments["BillingMode"] == "PROVISIONED":
            arguments["ProvisionedThroughput"] = properties.get("ProvisionedThroughput") or {
                "ReadCapacityUnits": 5,
                "WriteCapacityUnits": 5,
            }
        dynamodb.create_table(**arguments)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
        resolver.register(IDEMPOTENCY_TABLE, name, Arn=arn)
        return name

    def _create_bucket(self, s3: Any, resolver: _Refs) -> str:
        """The audit archive's bucket, versioned as deployed (S3 names are lower case)."""
        if AUDIT_BUCKET not in self.template.get("Resources", {}):
            return ""
        properties = _resource(self.template, AUDIT_BUCKET, "AWS::S3::Bucket")
        name = self._physical_name(resolver, properties, "BucketName", AUDIT_BUCKET).lower()
        s3.create_bucket(Bucket=name)
        if (properties.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        resolver.register(AUDIT_BUCKET, name, Arn=f"arn:aws:s3:::{name}")
        return name

    def _create_bus(self, events: Any, resolver: _Refs) -> tuple[str, str]:
        properties = _resource(self.template, EVENT_BUS, "AWS::Events::EventBus")
        name = self._physical_name(resolver, properties, "Name", EVENT_BUS)
        arn = events.create_event_bus(Name=name)["EventBusArn"]
        resolver.register(EVENT_BUS, name, Arn=arn, Name=name)
        return name, arn
