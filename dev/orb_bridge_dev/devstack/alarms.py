"""The template's alarms on the dev stack: created in moto's CloudWatch and evaluated here.

moto stores alarms but never evaluates them, so ``evaluate`` does what CloudWatch does for the
kinds of alarm the template has (one metric, one statistic, a threshold and a comparison over
``EvaluationPeriods`` x ``Period`` seconds, missing data as ``TreatMissingData`` says; or a sum of
metrics, ``a + b + ...``, as ``ReconciliationAlarm`` is) and sets each alarm's state. Our metrics come from moto (``metrics_sink``); the SQS metrics AWS publishes
itself are read from the queue's attributes (the queue's age is not kept by moto: missing data).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orb_bridge_dev.devstack.template import resolve, resources_of_type

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
# AWS/SQS metric -> the queue attribute that holds it now.
SQS_ATTRIBUTES = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
}


@dataclass(frozen=True)
class Alarm:
    name: str
    properties: Mapping[str, Any]

    @property
    def dimensions(self) -> list[dict[str, str]]:
        return [{"Name": d["Name"], "Value": str(d["Value"])} for d in self.properties.get("Dimensions", [])]


def template_alarms(template: Mapping[str, Any], refs: Mapping[str, Any], stack_name: str) -> list[Alarm]:
    """The template's alarms whose condition holds, resolved (names ``<stack>-<LogicalId>``)."""
    alarms = []
    for logical_id, resource in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        condition = resource.get("Condition")
        if condition and not resolve({"Condition": condition}, template, refs=refs):
            continue
        properties = resolve(resource["Properties"], template, refs=refs)
        alarms.append(Alarm(f"{stack_name}-{logical_id}", properties))
    return alarms


def alarm_refs(resources: Any) -> dict[str, str]:
    """What the alarms' ``!GetAtt Queue.QueueName`` stand for on the dev stack (``LocalResources``)."""
    return {
        "IngestQueue.QueueName": resources.ingest_queue.name,
        "RejectedQueue.QueueName": resources.rejected_queue.name,
    }


def create(cloudwatch: Any, alarms: list[Alarm]) -> None:
    for alarm in alarms:
        p = alarm.properties
        if "Metrics" in p:  # metric math: moto stores it as given
            cloudwatch.put_metric_alarm(
                AlarmName=alarm.name,
                AlarmDescription=str(p.get("AlarmDescription", "")),
                Metrics=p["Metrics"],
                EvaluationPeriods=int(p["EvaluationPeriods"]),
                Threshold=float(p["Threshold"]),
                ComparisonOperator=p["ComparisonOperator"],
                TreatMissingData=p.get("TreatMissingData", "missing"),
            )
            continue
        cloudwatch.put_metric_alarm(
            AlarmName=alarm.name,
            AlarmDescription=str(p.get("AlarmDescription", "")),
            Namespace=p["Namespace"],
            MetricName=p["MetricName"],
            Dimensions=alarm.dimensions,
            Statistic=p["Statistic"],
            Period=int(p["Period"]),
            EvaluationPeriods=int(p["EvaluationPeriods"]),
            Threshold=float(p["Threshold"]),
            ComparisonOperator=p["ComparisonOperator"],
            TreatMissingData=p.get("TreatMissingData", "missing"),
        )


def _statistic(
    cloudwatch: Any,
    namespace: str,
    name: str,
    dimensions: list[dict[str, str]],
    statistic: str,
    window: int,
    now: datetime,
) -> float | None:
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=dimensions,
        StartTime=now - timedelta(seconds=window),
        EndTime=now + timedelta(seconds=1),
        Period=window,
        Statistics=[statistic],
    )["Datapoints"]
    values = [float(point[statistic]) for point in points]
    if not values:
        return None
    return max(values) if statistic != "Minimum" else min(values)


def _sum_of_metrics(cloudwatch: Any, alarm: Alarm, now: datetime) -> float | None:
    """A metric-math alarm whose expression adds metrics (``a + b + c``): the sum of their statistics."""
    p = alarm.properties
    by_id = {m["Id"]: m for m in p["Metrics"]}
    expression = next(m["Expression"] for m in p["Metrics"] if m.get("Expression"))
    total: float | None = None
    for metric_id in (part.strip() for part in expression.split("+")):
        stat = by_id[metric_id]["MetricStat"]
        metric = stat["Metric"]
        dimensions = [{"Name": d["Name"], "Value": str(d["Value"])} for d in metric.get("Dimensions", [])]
        window = int(stat["Period"]) * int(p["EvaluationPeriods"])
        value = _statistic(cloudwatch, metric["Namespace"], metric["MetricName"], dimensions, stat["Stat"], window, now)
        if value is not None:
            total = (total or 0.0) + value
    return total


def _value(cloudwatch: Any, sqs: Any, queue_urls: Mapping[str, str], alarm: Alarm, now: datetime) -> float | None:
    p = alarm.properties
    if "Metrics" in p:
        return _sum_of_metrics(cloudwatch, alarm, now)
    if p["Namespace"] == "AWS/SQS":
        attribute = SQS_ATTRIBUTES.get(p["MetricName"])
        queue = next((d["Value"] for d in alarm.dimensions if d["Name"] == "QueueName"), "")
        if attribute is None or queue not in queue_urls:
            return None
        found = sqs.get_queue_attributes(QueueUrl=queue_urls[queue], AttributeNames=[attribute])["Attributes"]
        return float(found[attribute])
    window = int(p["Period"]) * int(p["EvaluationPeriods"])
    return _statistic(cloudwatch, p["Namespace"], p["MetricName"], alarm.dimensions, p["Statistic"], window, now)


def state_of(alarm: Alarm, value: float | None) -> str:
    p = alarm.properties
    if value is None:
        missing = p.get("TreatMissingData", "missing")
        return {"breaching": "ALARM", "notBreaching": "OK"}.get(missing, "INSUFFICIENT_DATA")
    return "ALARM" if COMPARISONS[p["ComparisonOperator"]](value, float(p["Threshold"])) else "OK"


def evaluate(
    cloudwatch: Any, sqs: Any, queue_urls: Mapping[str, str], alarms: list[Alarm], now: datetime | None = None
) -> dict[str, str]:
    """Evaluate every alarm now and set its state in moto; return the states by alarm name."""
    now = now or datetime.now(UTC)
    states = {}
    for alarm in alarms:
        value = _value(cloudwatch, sqs, queue_urls, alarm, now)
        state = states[alarm.name] = state_of(alarm, value)
        reason = f"dev stack evaluation: {alarm.properties.get('Statistic', 'sum')} {value} at {now.isoformat()}"
        cloudwatch.set_alarm_state(AlarmName=alarm.name, StateValue=state, StateReason=reason)
    return states
