"""What reconciling an archived hour costs over its life (issue 18), at the deployed pace.

Every archived send-hour is looked up in its first pass, its final pass, and once a day for
``ReconcileLookbackDays`` daily passes: 2 + lookback passes. The first and final passes read every
archive object of the hour (a sampled hour too: the sample is drawn from all its keys), look its
keys up (all, or ``ReconcileSampleSize`` above ``ReconcileFullCheckEventsPerHour``) in searches of
500 paced at ``ReconcileRequestsPerSecond``, save a checkpoint per search and write one report (the
final pass also its basis). A daily pass reads only that basis (1 GET) and looks up its
``ReconcileDailySampleSize`` keys plus those not present at the final pass (``daily_sample_size=None``
models the daily passes before the basis: each a whole pass like the final one). Lambda bills the
paced waiting and the reading: the bench's CPU time per object, scaled to the Lambda's CPU share
(memory / 1,769 MB of a vCPU), plus S3's latency per GET (moto's in-process S3 has none) divided by
the ``READ_AHEAD`` GETs a pass has under way at once. Measured (bench/reconcile_read.py, 2026-12-07):
~17 ms of CPU per object of 500 events when every line was parsed, 7-8 ms since lines not looked up
are scanned (their key and event hour) and not parsed.

The runs are hourly (``ReconcileSchedule``) and last at most the function's timeout: a day holds
24 x timeout seconds of reconciling, whatever is due.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.cost import DYNAMODB_READ_UNIT, DYNAMODB_WRITE_UNIT, LAMBDA_GB_SECOND, LAMBDA_REQUEST

S3_GET = 0.0004 / 1000  # S3 Standard, us-east-1: GET per request
S3_LIST_OR_PUT = 0.005 / 1000  # LIST and PUT per request
SEARCH_KEYS = 500  # keys per /events/search
EVENTS_PER_OBJECT = 500  # one archive object per Orb /ingest request of 500 events
MB_PER_VCPU = 1769  # Lambda: one vCPU at 1,769 MB, proportionally less below
S3_GET_LATENCY_SECONDS = 0.02  # an assumption: a GET of a few KB from Lambda in the same region
RUNS_PER_DAY = 24  # ReconcileSchedule's default: hourly
READ_AHEAD = 8  # archive GETs under way at once (archive_reader.READ_AHEAD)


@dataclass(frozen=True)
class HourPass:
    """One pass over one send-hour of ``events_per_hour`` events."""

    events_per_hour: int
    full_check_events_per_hour: int
    sample_size: int

    @property
    def sampled(self) -> bool:
        return self.events_per_hour > self.full_check_events_per_hour

    @property
    def searches(self) -> int:
        keys = min(self.sample_size, self.events_per_hour) if self.sampled else self.events_per_hour
        return math.ceil(keys / SEARCH_KEYS)

    @property
    def objects(self) -> int:
        return math.ceil(self.events_per_hour / EVENTS_PER_OBJECT)

    def orb_calls(self) -> int:
        return self.searches + 1  # + one volume call (final and daily passes; first passes have none)

    def read_seconds(self, read_seconds_per_object: float, memory_mb: int) -> float:
        """Reading every object of the hour once (a first or final pass's reading)."""
        return self.objects * object_seconds(read_seconds_per_object, memory_mb)

    def lambda_seconds(self, requests_per_second: float, read_seconds_per_object: float, memory_mb: int) -> float:
        return self.orb_calls() / requests_per_second + self.read_seconds(read_seconds_per_object, memory_mb)

    def cost(self, requests_per_second: float, read_seconds_per_object: float, memory_mb: int) -> dict[str, float]:
        seconds = self.lambda_seconds(requests_per_second, read_seconds_per_object, memory_mb)
        return {
            "s3": self.objects * S3_GET + 3 * S3_LIST_OR_PUT,  # GETs; 2 listings and the report's PUT
            # A checkpoint per search and one when done (1 WRU each, under 1 KB); a few reads.
            "dynamodb": (self.searches + 1) * DYNAMODB_WRITE_UNIT + 3 * DYNAMODB_READ_UNIT,
            "lambda": seconds * memory_mb / 1024 * LAMBDA_GB_SECOND,
        }


def object_seconds(read_seconds_per_object: float, memory_mb: int) -> float:
    """One archive object's reading at ``memory_mb``: its CPU at Lambda's share of a vCPU, and its
    GET's latency, ``READ_AHEAD`` of them overlapping."""
    cpu_share = min(1.0, memory_mb / MB_PER_VCPU)
    return read_seconds_per_object / cpu_share + S3_GET_LATENCY_SECONDS / READ_AHEAD


def largest_hour_read_in_one_run(
    read_seconds_per_object: float, memory_mb: int, timeout_seconds: int, safety_margin_seconds: float = 20
) -> int:
    """Events per send-hour above which one run cannot read the whole hour: its first and final
    passes start over in every run and never finish (README "Reconciliation")."""
    objects = (timeout_seconds - safety_margin_seconds) / object_seconds(read_seconds_per_object, memory_mb)
    return int(objects) * EVENTS_PER_OBJECT


@dataclass(frozen=True)
class DailyPass:
    """A daily pass from its hour's basis: no archive object read, whatever the hour's size."""

    sample_size: int
    not_present_keys: int = 0  # listed by the final pass; 0 when nothing was lost

    @property
    def searches(self) -> int:
        return math.ceil((self.sample_size + self.not_present_keys) / SEARCH_KEYS)

    def orb_calls(self) -> int:
        return self.searches + 1  # + the volume call

    def lambda_seconds(self, requests_per_second: float) -> float:
        return self.orb_calls() / requests_per_second + S3_GET_LATENCY_SECONDS

    def cost(self, requests_per_second: float, memory_mb: int) -> dict[str, float]:
        return {
            "s3": S3_GET + S3_LIST_OR_PUT,  # the basis's GET, the report's PUT
            "dynamodb": (self.searches + 1) * DYNAMODB_WRITE_UNIT + 3 * DYNAMODB_READ_UNIT,
            "lambda": self.lambda_seconds(requests_per_second) * memory_mb / 1024 * LAMBDA_GB_SECOND,
        }


@dataclass(frozen=True)
class Lifetime:
    events_per_second: float
    sampled: bool
    per_pass_per_million: float
    lifetime_per_million: float
    passes: int
    seconds_needed_per_day: float  # every pass due in a day, at steady state
    seconds_available_per_day: float
    daily_seconds_per_day: float  # the daily passes' share of seconds_needed_per_day

    @property
    def fits_in_a_day(self) -> bool:
        return self.seconds_needed_per_day <= self.seconds_available_per_day


def lifetime(
    *,
    events_per_second: float,
    full_check_events_per_hour: int,
    sample_size: int,
    lookback_days: int,
    requests_per_second: float,
    read_seconds_per_object: float,
    memory_mb: int,
    timeout_seconds: int,
    daily_sample_size: int | None = None,
) -> Lifetime:
    hour = HourPass(round(events_per_second * 3600), full_check_events_per_hour, sample_size)
    cost = hour.cost(requests_per_second, read_seconds_per_object, memory_mb)
    runs = RUNS_PER_DAY  # an invocation per hourly run: a request each
    per_hour_pass = sum(cost.values())
    hour_seconds = hour.lambda_seconds(requests_per_second, read_seconds_per_object, memory_mb)
    if daily_sample_size is None:  # before the basis: a daily pass is a whole pass
        per_daily_pass, daily_seconds = per_hour_pass, hour_seconds
    else:
        daily = DailyPass(min(daily_sample_size, hour.events_per_hour))
        per_daily_pass = sum(daily.cost(requests_per_second, memory_mb).values()) + S3_LIST_OR_PUT / lookback_days
        daily_seconds = daily.lambda_seconds(requests_per_second)  # (+ the final pass's basis PUT, spread)
    hours_per_million = 1e6 / hour.events_per_hour
    passes = 2 + lookback_days
    # At steady state a day brings 24 first passes, 24 final passes and 24 x lookback daily passes.
    daily_seconds_per_day = RUNS_PER_DAY * lookback_days * daily_seconds
    seconds_per_day = RUNS_PER_DAY * 2 * hour_seconds + daily_seconds_per_day
    per_day_requests = runs * LAMBDA_REQUEST
    per_million_requests = per_day_requests / (events_per_second * 86400) * 1e6
    return Lifetime(
        events_per_second=events_per_second,
        sampled=hour.sampled,
        per_pass_per_million=per_hour_pass * hours_per_million + per_million_requests / passes,
        lifetime_per_million=(2 * per_hour_pass + lookback_days * per_daily_pass) * hours_per_million
        + per_million_requests,
        passes=passes,
        seconds_needed_per_day=seconds_per_day,
        seconds_available_per_day=RUNS_PER_DAY * timeout_seconds,
        daily_seconds_per_day=daily_seconds_per_day,
    )
