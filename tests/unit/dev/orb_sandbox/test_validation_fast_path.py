"""The sandbox's fast path for the usual valid event gives exactly the full rules' answer.

``event_errors`` answers a plainly valid event (exact JSON types, flat properties, canonical
timestamp) without the full rules; for every event, valid or not, its answer (messages and parsed
time) must be the one ``event_errors_by_full_rules`` gives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orb_bridge_dev.orb_sandbox.validation import (
    IngestRules,
    _plainly_valid_moment,
    event_errors,
    event_errors_by_full_rules,
)
from tests.support.strategies import fuzz_settings, json_values

NOW = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
LIMITS = st.sampled_from([timedelta(0), timedelta(minutes=5), timedelta(hours=1), timedelta(hours=12)])
RULES = st.builds(lambda grace, future: IngestRules(grace_period=grace, future_limit=future), LIMITS, LIMITS)


class Text(str):
    """A str subclass: valid to the full rules, never taken by the fast path's exact type checks."""


def canonical(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def near_now(rules: IngestRules) -> st.SearchStrategy[str]:
    """Canonical times around the accepted window, its exact edges (and a millisecond past) included."""
    future_ms = int(rules.future_limit.total_seconds() * 1000)
    grace_ms = int(rules.grace_period.total_seconds() * 1000)
    edges = st.sampled_from([future_ms, future_ms + 1, future_ms - 1, -grace_ms, -grace_ms - 1, -grace_ms + 1, 0])
    spread = st.integers(min_value=-2 * grace_ms - 1000, max_value=2 * future_ms + 1000)
    return (edges | spread).map(lambda ms: canonical(NOW + timedelta(milliseconds=ms)))


# Canonical in shape, any digits: month 13, day 31 of February, hour 24, second 60, year 0...
ANY_DIGITS = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z".format,
    st.integers(0, 9999),
    st.integers(0, 19),
    st.integers(0, 39),
    st.integers(0, 29),
    st.integers(0, 69),
    st.integers(0, 69),
    st.integers(0, 999),
)
OTHER_FORMS = st.sampled_from(
    [
        "2024-05-06T07:08:09Z",
        "2024-05-06T07:08:09.123456Z",
        "2024-05-06T07:08:09.1Z",
        "2024-05-06T07:08:09.123z",
        "2024-05-06t07:08:09.123Z",
        "2024-05-06 07:08:09.123Z",
        "2024-05-06T07:08:09.123+00:00",
        "2024-05-06T09:08:09.123+02:00",
        "2024-05-06T07:08:09.123",
        "2024-05-06T07:08",
        " 2024-05-06T07:08:09.123Z",
        "2024-05-06T07:08:09.123Z\n",
        "2024-05-06T07:08:09,123Z",
        "\u0662024-05-06T07:08:09.123Z",  # an Arabic-Indic digit: \\d matches it, the fast path does not
        "20240506T070809.123Z",
        "2024-05-06",
        "",
        "not a time",
    ]
)


def timestamps(rules: IngestRules) -> st.SearchStrategy[Any]:
    return near_now(rules) | ANY_DIGITS | OTHER_FORMS | near_now(rules).map(Text) | json_values


PROPERTY_VALUES = st.text(max_size=6) | st.integers() | st.floats(allow_nan=False) | st.booleans()
PROPERTIES = (
    st.dictionaries(st.text(max_size=6), PROPERTY_VALUES, max_size=5)
    | st.dictionaries(st.text(max_size=6), PROPERTY_VALUES | json_values | st.just(Text("x")), max_size=4)
    | json_values
)
NAMES = st.sampled_from(["api_request", " x ", "", " ", "\t\n", "\u3000"]) | st.text(max_size=4) | json_values
CUSTOMERS = st.sampled_from(["customer_1", "", Text("c")]) | json_values
ABSENT = object()


@st.composite
def valid_events(draw: st.DrawFn, rules: IngestRules) -> dict[str, Any]:
    customer_field = draw(st.sampled_from(["customer_id", "external_customer_id"]))
    return {
        "event_name": draw(st.sampled_from(["api_request", " a "]) | st.text(min_size=1).filter(str.strip)),
        "idempotency_key": "k",
        "timestamp": draw(near_now(rules).filter(lambda t: within_limits(t, rules))),
        "properties": draw(st.dictionaries(st.text(max_size=6), PROPERTY_VALUES, max_size=5)),
        customer_field: draw(st.text(min_size=1, max_size=8)),
    }


@st.composite
def events(draw: st.DrawFn, rules: IngestRules) -> dict[str, Any]:
    """A valid event with a few fields changed, removed or added: valid or invalid, in any way."""
    event = draw(valid_events(rules))
    fields: dict[str, st.SearchStrategy[Any]] = {
        "event_name": NAMES,
        "timestamp": timestamps(rules),
        "properties": PROPERTIES,
        "customer_id": CUSTOMERS,
        "external_customer_id": CUSTOMERS,
        "extra": json_values,
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        value = draw(st.just(ABSENT) | st.none() | fields[name])
        if value is ABSENT:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def within_limits(timestamp: str, rules: IngestRules) -> bool:
    return NOW - rules.grace_period <= _at(timestamp) <= NOW + rules.future_limit


def assert_same_answer(event: dict[str, Any], rules: IngestRules) -> tuple[list[str], datetime | None]:
    answer = event_errors(event, NOW, rules)
    full = event_errors_by_full_rules(event, NOW, rules)
    assert answer == full
    # Same instant, and the same zone object: stored events and their search answers stay identical.
    assert (None if answer[1] is None else answer[1].tzinfo) is (None if full[1] is None else full[1].tzinfo)
    return answer


@fuzz_settings(800)
@given(data=st.data(), rules=RULES)
def test_any_event_gets_the_full_rules_answer(data: st.DataObject, rules: IngestRules) -> None:
    assert_same_answer(data.draw(events(rules)), rules)


@fuzz_settings(200)
@given(data=st.data(), rules=RULES)
def test_plainly_valid_events_take_the_fast_path_with_the_full_rules_answer(
    data: st.DataObject, rules: IngestRules
) -> None:
    event = data.draw(valid_events(rules))
    assert _plainly_valid_moment(event, NOW, rules) is not None  # the fast path answered
    errors, moment = assert_same_answer(event, rules)
    assert errors == [] and moment == _at(event["timestamp"])


def test_the_benchs_events_take_the_fast_path() -> None:
    event = {
        "event_name": "api_request",
        "idempotency_key": "r-000001",
        "timestamp": canonical(NOW - timedelta(minutes=1)),
        "properties": {"endpoint": "/v1/search", "region": "eu-west-1", "billable": True, "duration_ms": 7},
        "external_customer_id": "customer_7",
    }
    assert _plainly_valid_moment(event, NOW, IngestRules()) == NOW - timedelta(minutes=1)
    assert event_errors(event, NOW, IngestRules()) == ([], NOW - timedelta(minutes=1))


def test_a_backfills_events_are_judged_by_the_full_rules() -> None:
    class OtherCustomersBackfill:
        id = "bf_1"
        timeframe_start, timeframe_end = NOW - timedelta(days=2), NOW

        def covers_customer(self, customer_id: str | None, external_customer_id: str | None) -> bool:
            return False

    event = {
        "event_name": "api_request",
        "idempotency_key": "k",
        "timestamp": canonical(NOW - timedelta(minutes=1)),
        "properties": {},
        "customer_id": "c",
    }
    errors, _ = event_errors(event, NOW, IngestRules(), OtherCustomersBackfill())
    assert errors == ["Backfill bf_1 is scoped to another customer"]
