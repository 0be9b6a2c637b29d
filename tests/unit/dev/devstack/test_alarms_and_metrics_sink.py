"""The dev stack's EMF-to-CloudWatch shim and alarm evaluator, on their own (no server)."""

from __future__ import annotations

from orb_bridge_dev.devstack.alarms import Alarm, state_of
from orb_bridge_dev.devstack.metrics_sink import metric_data

BLOB = {
    "_aws": {
        "Timestamp": 1763715600000,
        "CloudWatchMetrics": [
            {
                "Namespace": "SegmentOrbBridge",
                "Dimensions": [["stage", "service"]],
                "Metrics": [{"Name": "RejectedRecordsWritten", "Unit": "Count"}],
            }
        ],
    },
    "stage": "intake",
    "service": "orb-bridge-dev",
    "RejectedRecordsWritten": [1.0, 2.0],
}


def test_each_emf_value_becomes_a_datapoint_under_the_functions_own_service():
    ((namespace, entries),) = metric_data(BLOB, "track_intake").items()
    assert namespace == "SegmentOrbBridge"
    assert [e["Value"] for e in entries] == [1.0, 2.0]
    assert entries[0]["Dimensions"] == [
        {"Name": "stage", "Value": "intake"},
        {"Name": "service", "Value": "track_intake"},
    ]


def test_text_that_is_not_emf_puts_nothing():
    assert metric_data({"message": "hello"}, "track_intake") == {}


def alarm(**overrides):
    properties = {"ComparisonOperator": "GreaterThanThreshold", "Threshold": 0, "TreatMissingData": "notBreaching"}
    return Alarm("a", properties | overrides)


def test_alarm_states_follow_threshold_comparison_and_missing_data():
    assert state_of(alarm(), 1.0) == "ALARM"
    assert state_of(alarm(), 0.0) == "OK"
    assert state_of(alarm(), None) == "OK"
    assert state_of(alarm(TreatMissingData="breaching"), None) == "ALARM"
    assert state_of(alarm(TreatMissingData="missing"), None) == "INSUFFICIENT_DATA"
    assert state_of(alarm(ComparisonOperator="LessThanThreshold", Threshold=5), 4.0) == "ALARM"
