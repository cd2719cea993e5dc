"""Therapy arithmetic both ends must agree on, in integers: dose, rate, 24-hour totals.

A schedule is a list of (start_minute, dose_ng_per_day) steps covering the day
from minute 0; each step's dose is the rate it delivers at while active, expressed
per day (never per hour: the per-hour reading of a flex step is a known fatal
error). The 24-hour total weighs each step by its length.
"""
from __future__ import annotations

from itertools import pairwise

MINUTES_PER_DAY = 1440
NL_PER_ML = 1_000_000
MAX_STEPS = 13


def rate_for_dose(dose_ng_per_day: int, concentration_ng_per_ml: int) -> int:
    """nL/day that delivers dose at concentration, rounded to the nearest nL/day."""
    if concentration_ng_per_ml <= 0:
        raise ValueError("concentration must be above zero")
    num = dose_ng_per_day * NL_PER_ML
    return (num + concentration_ng_per_ml // 2) // concentration_ng_per_ml


def dose_for_rate(rate_nl_per_day: int, concentration_ng_per_ml: int) -> int:
    """ng/day delivered by rate at concentration (floor: never over-states delivery)."""
    return rate_nl_per_day * concentration_ng_per_ml // NL_PER_ML


def step_minutes(starts: list[int]) -> list[int]:
    """Length in minutes of each step, the last running to midnight."""
    ends = list(starts[1:]) + [MINUTES_PER_DAY]
    return [end - start for start, end in zip(starts, ends, strict=True)]


def daily_total(starts: list[int], values: list[int]) -> int:
    """24-hour total of per-day values (doses or rates) weighted by step length (floor)."""
    if not starts:
        return 0
    return sum(v * m for v, m in zip(values, step_minutes(starts), strict=True)) // MINUTES_PER_DAY


def check_schedule(starts: list[int]) -> str | None:
    """None when valid, else why: 1..13 steps, first at 00:00, strictly increasing, < 24:00."""
    if not 1 <= len(starts) <= MAX_STEPS:
        return f"a schedule has 1 to {MAX_STEPS} steps, not {len(starts)}"
    if starts[0] != 0:
        return "the first step must start at 00:00"
    for a, b in pairwise(starts):
        if b <= a:
            return "step start times must be strictly increasing"
    if starts[-1] >= MINUTES_PER_DAY:
        return "a step must start before 24:00"
    return None


def active_step(starts: list[int], minute_of_day: int) -> int:
    index = 0
    for i, start in enumerate(starts):
        if start <= minute_of_day:
            index = i
    return index
