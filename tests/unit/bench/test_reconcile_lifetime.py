"""The reconciler's lifetime cost model: what an archived hour's 2 + lookback passes cost, and
whether a day's passes fit in a day's hourly runs."""

from __future__ import annotations

from typing import Any

import pytest

from bench.reconcile_lifetime import HourPass, largest_hour_read_in_one_run, lifetime

DEFAULTS: dict[str, Any] = {
    "full_check_events_per_hour": 100_000,
    "sample_size": 10_000,
    "lookback_days": 35,
    "requests_per_second": 2.0,
    "memory_mb": 256,
    "timeout_seconds": 900,
}


def test_an_hour_at_the_threshold_is_looked_up_in_full_and_a_larger_one_sampled_but_read_whole() -> None:
    full = HourPass(100_000, 100_000, 10_000)
    assert (full.sampled, full.searches, full.objects) == (False, 200, 200)
    sampled = HourPass(3_600_000, 100_000, 10_000)
    assert (sampled.sampled, sampled.searches, sampled.objects) == (True, 20, 7200)


def test_the_lifetime_is_every_pass_first_final_and_daily() -> None:
    life = lifetime(events_per_second=20, read_seconds_per_object=0.0, **DEFAULTS)
    assert life.passes == 37
    assert life.lifetime_per_million == pytest.approx(37 * life.per_pass_per_million, rel=0.01)


def test_at_the_threshold_a_days_passes_do_not_fit_in_a_days_runs_at_two_requests_a_second() -> None:
    # 24 hours x 37 passes x 201 calls / 2 per s = 89,244 s of pacing alone; 24 runs of 900 s hold 21,600.
    life = lifetime(events_per_second=100_000 / 3600, read_seconds_per_object=0.0, **DEFAULTS)
    assert life.seconds_needed_per_day >= 89_244 and not life.fits_in_a_day
    small = lifetime(events_per_second=1, read_seconds_per_object=0.0, **DEFAULTS)
    assert small.fits_in_a_day


def test_daily_passes_from_the_basis_fit_in_a_day_at_any_volume() -> None:
    # 24 x 35 daily passes of (2 searches + 1 volume call) / 2 per s + one basis GET each: 1,277 s.
    for events_per_second in (1, 20, 100_000 / 3600, 1000, 10_000):
        life = lifetime(
            events_per_second=events_per_second, read_seconds_per_object=0.0, daily_sample_size=1000, **DEFAULTS
        )
        assert life.daily_seconds_per_day == pytest.approx(24 * 35 * (3 / 2 + 0.02))
    before = lifetime(events_per_second=20, read_seconds_per_object=0.025, **DEFAULTS)
    after = lifetime(events_per_second=20, read_seconds_per_object=0.025, daily_sample_size=1000, **DEFAULTS)
    assert after.fits_in_a_day and not before.fits_in_a_day
    assert after.lifetime_per_million < before.lifetime_per_million / 10
    assert after.per_pass_per_million == before.per_pass_per_million  # first and final passes unchanged


def test_at_1000_events_a_second_the_reading_fits_a_run_and_a_day_only_with_more_cpu() -> None:
    # Measured per object of 500 events (bench/reconcile_read.py): 17 ms of CPU parsing every line, 8 ms
    # scanning the lines not looked up. 7,200 objects at 256 MB's 0.145 vCPU: 864 s -> 416 s a pass.
    hour = HourPass(3_600_000, 100_000, 10_000)
    assert hour.read_seconds(0.017, 256) > 850 > 420 > hour.read_seconds(0.008, 256)
    assert largest_hour_read_in_one_run(0.008, 256, 900) > 7_000_000 > largest_hour_read_in_one_run(0.017, 256, 900)
    day = {**DEFAULTS, "events_per_second": 1000, "daily_sample_size": 1000}
    assert not lifetime(read_seconds_per_object=0.017, **day).fits_in_a_day
    at_256 = lifetime(read_seconds_per_object=0.008, **day)
    assert 21_600 < at_256.seconds_needed_per_day < 22_000  # just short at 256 MB
    assert lifetime(read_seconds_per_object=0.008, **{**day, "memory_mb": 512}).fits_in_a_day
