"""The template's dashboard and the metric registry agree, both ways.

Every metric the layer emits (the registry ``orb_bridge.core.metric_names``, plus any
``add_metric``/``single_metric`` call that bypasses it) is on the dashboard under the same
namespace, name and dimension keys; every ``SegmentOrbBridge`` metric on the dashboard (an explicit
row, or a ``SEARCH`` where a dimension's values are open-ended) is in the registry; every alarm on
our namespace names a registry metric, and every alarm is on the dashboard's alarm widget.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from orb_bridge.core import metric_names as names
from orb_bridge.core.metric_names import NAMESPACE, REGISTRY, Metric
from orb_bridge_dev.devstack.template import REPO_ROOT, load_template, parameter_values, resolve, resources_of_type

LAYER = REPO_ROOT / "layers" / "orb_bridge" / "orb_bridge"
# The one module allowed to call Powertools' metric functions: it does so for the registry.
EMITTER = LAYER / "core" / "observability.py"
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}\s+MetricName=\"([^\"]+)\"")

# (namespace, metric name, dimension keys, service value or None for a SEARCH)
Series = tuple[str, str, frozenset[str]]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def stand_ins(template: dict[str, Any]) -> dict[str, str]:
    """What Ref/GetAtt of each resource stands for: enough to render the dashboard body."""
    refs: dict[str, str] = {}
    for logical_id in template["Resources"]:
        refs[logical_id] = f"{logical_id}-name"
        for attribute in ("Arn", "QueueName"):
            refs[f"{logical_id}.{attribute}"] = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{logical_id}"
    return refs


def dashboard_body(template: dict[str, Any], pacing: bool = True) -> dict[str, Any]:
    parameters = parameter_values(template)
    if not pacing:
        parameters |= {"OrbRequestsPerSecond": "0", "OrbEventsPerMinute": "0"}
    (dashboard,) = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    properties = resolve(dashboard["Properties"], template, parameters, stand_ins(template))
    return json.loads(properties["DashboardBody"])


def dashboard_series(body: dict[str, Any]) -> dict[Series, str | None]:
    """Our namespace's metrics on the dashboard: each series, with its ``service`` value (None for SEARCH)."""
    found: dict[Series, str | None] = {}
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            if isinstance(row[0], dict):
                match = SEARCH.search(row[0].get("expression", ""))
                if match:
                    namespace, *keys = (part.strip() for part in match.group(1).split(","))
                    found[(namespace, match.group(2), frozenset(keys))] = None
                continue
            namespace, name, *rest = row
            pairs = [item for item in rest if not isinstance(item, dict)]
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            if namespace == NAMESPACE:
                found[(namespace, name, frozenset(dimensions))] = dimensions.get(names.SERVICE)
    return {series: service for series, service in found.items() if series[0] == NAMESPACE}


def registry_series(registry: Iterable[Metric]) -> dict[Series, set[str]]:
    series: dict[Series, set[str]] = {}
    for metric in registry:
        for keys in metric.dimension_sets():
            series.setdefault((NAMESPACE, metric.name, keys), set()).add(metric.service)
    return series


def bypassing_calls(layer: Path = LAYER, root: Path = REPO_ROOT) -> list[tuple[str, int, str | None]]:
    """``add_metric``/``single_metric`` calls outside the emitter: (file, line, literal name)."""
    calls = []
    for path in sorted(layer.rglob("*.py")):
        if path == EMITTER:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in {"add_metric", "single_metric"}:
                literal = next(
                    (
                        str(k.value.value)
                        for k in node.keywords
                        if k.arg == "name" and isinstance(k.value, ast.Constant)
                    ),
                    None,
                )
                calls.append((str(path.relative_to(root)), node.lineno, literal))
    return calls


def differences(registry: Iterable[Metric], body: dict[str, Any], bypassed: Iterable[str] = ()) -> list[str]:
    """What the dashboard and the emitted metrics disagree on (empty when they agree)."""
    emitted = registry_series(registry)
    shown = dashboard_series(body)
    problems = []
    for name in bypassed:  # emitted with a literal name, outside the registry: must be shown somehow
        if not any(series[1] == name for series in shown):
            problems.append(f"{name} is emitted (bypassing the registry) but not on the dashboard")
    for series, services in emitted.items():
        if series not in shown:
            problems.append(f"{series[1]} {sorted(series[2])} is emitted but not on the dashboard")
        elif shown[series] is not None and shown[series] not in services:
            problems.append(f"{series[1]} is shown for service {shown[series]}, emitted by {sorted(services)}")
    for series in shown:
        if series not in emitted:
            problems.append(f"{series[1]} {sorted(series[2])} is on the dashboard but not in the registry")
    return problems


def test_the_dashboard_shows_every_emitted_metric_and_only_those(template):
    bypassed = bypassing_calls()
    assert bypassed == [], "metrics must be emitted through orb_bridge.core.observability.emit/emit_by"
    assert differences(REGISTRY, dashboard_body(template)) == []
    assert differences(REGISTRY, dashboard_body(template, pacing=False)) == []


def test_the_comparison_fails_when_a_metric_or_a_dimension_is_renamed(template):
    body = dashboard_body(template)
    text = json.dumps(body)
    # Renamed on the dashboard: an explicit row, then a SEARCH's metric name and its dimension key.
    for old, new in (
        ('"EventsIngested"', '"EventsIngestedTotal"'),
        ('MetricName=\\"RejectedRecordsWritten\\"', 'MetricName=\\"RejectedRecordWrites\\"'),
        ("{SegmentOrbBridge,reason,service}", "{SegmentOrbBridge,cause,service}"),
        ('"service", "orb_ingest"', '"function", "orb_ingest"'),
        ('"SegmentOrbBridge", "TrackAccepted"', '"SegmentOrbBridge2", "TrackAccepted"'),
    ):
        assert old in text, old
        assert differences(REGISTRY, json.loads(text.replace(old, new))), f"renaming {old} went unnoticed"
    # Renamed in the registry (a copy): its name, its dimension, its service.
    for index, change in (
        (REGISTRY.index(names.EVENTS_INGESTED), {"name": "EventsIngestedTotal"}),
        (REGISTRY.index(names.WEBHOOKS_REJECTED), {"by": ("cause",)}),
        (REGISTRY.index(names.TRACK_ACCEPTED), {"service": "orb_ingest"}),
    ):
        registry = list(REGISTRY)
        registry[index] = dataclasses.replace(registry[index], **change)
        assert differences(registry, body), f"registry change {change} went unnoticed"
    # A widget removed, and a metric emitted with a literal name outside the registry.
    trimmed = copy.deepcopy(body)
    trimmed["widgets"] = [w for w in trimmed["widgets"] if "latency" not in w["properties"].get("title", "")]
    assert any("OrbRequestLatency" in problem for problem in differences(REGISTRY, trimmed))
    assert differences(REGISTRY, body, bypassed=["SomethingNew"])


def test_the_bypass_scan_finds_direct_metric_calls(tmp_path):
    module = tmp_path / "orb_bridge" / "rogue.py"
    module.parent.mkdir()
    module.write_text(
        'metrics.add_metric(name="Rogue", unit="Count", value=1)\n'
        "with single_metric(name=NAME, unit='Count', value=1) as one:\n    pass\n"
    )
    assert bypassing_calls(module.parent, tmp_path) == [
        ("orb_bridge/rogue.py", 1, "Rogue"),
        ("orb_bridge/rogue.py", 2, None),
    ]


def test_every_registry_metric_is_emitted_somewhere_in_the_layer():
    sources = "\n".join(p.read_text() for p in LAYER.rglob("*.py") if p.name != "metric_names.py")
    for constant, value in vars(names).items():
        if isinstance(value, Metric):
            assert f"names.{constant}" in sources, f"{constant} is registered but never emitted"


def test_the_namespace_is_the_templates(template):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        service = resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        assert service in {m.service for m in REGISTRY}, logical_id


def test_every_alarm_is_on_the_dashboard_and_names_a_registry_metric(template):
    body = dashboard_body(template)
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    on_dashboard = {arn.rsplit(":", 1)[1] for arn in alarm_widget["properties"]["alarms"]}
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert on_dashboard == set(alarms)
    emitted = registry_series(REGISTRY)
    for logical_id, alarm in alarms.items():
        properties = alarm["Properties"]
        # One metric, or metric math over several (each named the same way).
        stats = [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m] or [properties]
        for metric in stats:
            if metric["Namespace"] != NAMESPACE:
                continue
            dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            series = (NAMESPACE, metric["MetricName"], frozenset(dimensions))
            assert series in emitted, logical_id
            assert dimensions[names.SERVICE] in emitted[series], logical_id
    without_pacing = dashboard_body(template, pacing=False)
    (alarm_widget,) = [w for w in without_pacing["widgets"] if w["type"] == "alarm"]
    assert not any(arn.endswith(":PacingTableAlarm") for arn in alarm_widget["properties"]["alarms"])


def test_the_dashboard_is_named_after_the_stack(template):
    (dashboard,) = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == {"Ref": "AWS::StackName"}


def test_the_grace_period_line_follows_the_parameter(template):
    parameters = parameter_values(template) | {"OrbGracePeriodHours": "7"}
    (dashboard,) = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(resolve(dashboard["Properties"], template, parameters, stand_ins(template))["DashboardBody"])
    lines = [
        line["value"]
        for widget in body["widgets"]
        for line in widget.get("properties", {}).get("annotations", {}).get("horizontal", [])
    ]
    assert lines == [7]
