"""What `orb-bridge status` reads from a deployment: queues, metrics, alarms, the settings that matter.

Each part is read on its own: one that cannot be read is noted in ``unknown`` and the rest is
still shown. The verdict: ``attention`` when an alarm is in ALARM or records wait on the
rejected queue, ``unknown`` when something needed to tell could not be read, else ``ok``.
Everything the deployment says (outputs, parameters, dimension values, alarm names) is input:
the screen escapes it (``terminal.printable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orb_bridge.core import metric_names as names
from orb_bridge_dev.deployment.rejected_records import Target

KEY_PARAMETERS = (
    "EventNameField",
    "ExternalCustomerIdField",
    "IdempotencyKeyField",
    "PropertiesMapping",
    "OrbRequestsPerSecond",
    "OrbEventsPerMinute",
    "OrbGracePeriodHours",
    "MaxReceiveCount",
)
QUEUE_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
# Counted over this window (the metrics' "recently").
RECENT = timedelta(hours=24)
# The last successful ingest is looked for this far back (hourly points).
INGEST_LOOKBACK = timedelta(days=14)
# The reconciler (issue 18) may not be deployed: its metric is read only if it exists.
RECONCILED_METRIC = "EventsReconciled"


@dataclass
class Health:
    label: str
    outputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    queues: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected_records_by_stage: dict[str, float] = field(default_factory=dict)
    webhooks_refused_by_reason: dict[str, float] = field(default_factory=dict)
    orb_errors_by_kind: dict[str, float] = field(default_factory=dict)
    last_successful_ingest: str | None = None
    last_reconciliation: str | None = None
    alarms_in_alarm: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.alarms_in_alarm or self.queues.get("rejected", {}).get("visible", 0) > 0:
            return "attention"
        return "unknown" if self.unknown else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def _queue(sqs: Any, url: str) -> dict[str, int]:
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_ATTRIBUTES)["Attributes"]
    return {
        "visible": int(found.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(found.get("ApproximateNumberOfMessagesNotVisible", 0)),
    }


def _sum_by(cloudwatch: Any, metric: names.Metric, key: str, now: datetime) -> dict[str, float]:
    """``metric``'s sum over ``RECENT`` for each value of dimension ``key`` (the values are open-ended)."""
    totals: dict[str, float] = {}
    listed = cloudwatch.list_metrics(Namespace=names.NAMESPACE, MetricName=metric.name)["Metrics"]
    seen: set[frozenset[tuple[str, str]]] = set()
    for found in listed:
        dimensions = {d["Name"]: d["Value"] for d in found.get("Dimensions", [])}
        if key not in dimensions or dimensions.get(names.SERVICE) != metric.service:
            continue
        if frozenset(dimensions.items()) in seen:  # moto lists a metric once per datapoint
            continue
        seen.add(frozenset(dimensions.items()))
        points = cloudwatch.get_metric_statistics(
            Namespace=names.NAMESPACE,
            MetricName=metric.name,
            Dimensions=found["Dimensions"],
            StartTime=now - RECENT,
            EndTime=now + timedelta(minutes=1),  # a datapoint stamped this very second counts
            Period=int(RECENT.total_seconds()),
            Statistics=["Sum"],
        )["Datapoints"]
        total = sum(float(point["Sum"]) for point in points)
        if total:
            totals[dimensions[key]] = totals.get(dimensions[key], 0.0) + total
    return totals


def _last_nonzero(cloudwatch: Any, metric_name: str, dimensions: list[dict[str, str]], now: datetime) -> str | None:
    points = cloudwatch.get_metric_statistics(
        Namespace=names.NAMESPACE,
        MetricName=metric_name,
        Dimensions=dimensions,
        StartTime=now - INGEST_LOOKBACK,
        EndTime=now,
        Period=3600,
        Statistics=["Sum"],
    )["Datapoints"]
    times = [point["Timestamp"] for point in points if float(point["Sum"]) > 0]
    return max(times).astimezone(UTC).isoformat(timespec="minutes") if times else None


def _alarms_in_alarm(cloudwatch: Any, prefix: str) -> list[str]:
    alarms: list[str] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(StateValue="ALARM", AlarmNamePrefix=prefix):
        # Filtered here too: not every CloudWatch implementation (moto) honours StateValue.
        alarms += [str(a["AlarmName"]) for a in page.get("MetricAlarms", []) if a.get("StateValue") == "ALARM"]
    return sorted(alarms)


def gather(target: Target, now: datetime | None = None) -> Health:
    now = now or datetime.now(UTC)
    health = Health(
        label=target.label,
        outputs={str(k): str(v) for k, v in target.outputs.items()},
        parameters={name: str(target.parameters[name]) for name in KEY_PARAMETERS if name in target.parameters},
    )

    def read(part: str, action: Any) -> None:
        try:
            action()
        except Exception as exc:  # the rest is still worth showing
            health.unknown.append(f"{part}: {type(exc).__name__}")

    for name, url in (("ingest", target.ingest_queue_url), ("rejected", target.rejected_queue_url)):
        read(f"{name} queue", lambda name=name, url=url: health.queues.__setitem__(name, _queue(target.sqs, url)))
    cloudwatch = target.cloudwatch
    if cloudwatch is None:
        health.unknown.append("metrics and alarms: no CloudWatch client")
        return health
    read(
        "rejected records metric",
        lambda: health.rejected_records_by_stage.update(
            _merge(
                _sum_by(cloudwatch, names.INTAKE_REJECTED_RECORDS_WRITTEN, "stage", now),
                _sum_by(cloudwatch, names.INGEST_REJECTED_RECORDS_WRITTEN, "stage", now),
            )
        ),
    )
    read(
        "webhook refusals metric",
        lambda: health.webhooks_refused_by_reason.update(_sum_by(cloudwatch, names.WEBHOOKS_REJECTED, "reason", now)),
    )
    read(
        "Orb errors metric",
        lambda: health.orb_errors_by_kind.update(_sum_by(cloudwatch, names.ORB_REQUEST_ERRORS, "kind", now)),
    )
    ingested = [{"Name": names.SERVICE, "Value": names.EVENTS_INGESTED.service}]

    def last_ingest() -> None:
        health.last_successful_ingest = _last_nonzero(cloudwatch, names.EVENTS_INGESTED.name, ingested, now)

    read("last ingest", last_ingest)

    def last_reconciliation() -> None:
        for found in cloudwatch.list_metrics(Namespace=names.NAMESPACE, MetricName=RECONCILED_METRIC)["Metrics"]:
            when = _last_nonzero(cloudwatch, RECONCILED_METRIC, found.get("Dimensions", []), now)
            if when and (health.last_reconciliation is None or when > health.last_reconciliation):
                health.last_reconciliation = when

    read("last reconciliation", last_reconciliation)
    read("alarms", lambda: health.alarms_in_alarm.extend(_alarms_in_alarm(cloudwatch, target.alarm_prefix)))
    return health


def dev_parameters(env: Mapping[str, str], mapping_parameters: Mapping[str, str]) -> dict[str, str]:
    """The dev stack's parameters: the template's defaults, with the mapping it takes from ``env``."""
    from orb_bridge_dev.devstack.template import load_template, parameter_values

    parameters = parameter_values(load_template())
    for name, variable in mapping_parameters.items():
        if env.get(variable, "").strip():
            parameters[name] = env[variable].strip()
    return parameters


def _merge(*parts: Mapping[str, float]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = merged.get(key, 0.0) + value
    return merged
