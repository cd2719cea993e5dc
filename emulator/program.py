"""Infusion programs: what rate the pump should run at, at any pump time.

Kept apart from pump.py so that later modes (flex schedules, minimum rate,
stopped) only add a constructor here; the pump integrates whatever
`rate_at`/`next_change` say, and the status's 24-hour totals come from here.

Flex step times are seconds after midnight of the pump clock (UTC: the pump has
no time zone). A step runs until the next step's start, wrapping at midnight.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol import InfusionMode
from protocol.models import MINIMUM_RATE_NL_PER_DAY

DAY = 86_400
MAX_FLEX_STEPS = 13


@dataclass(frozen=True)
class Step:
    start_s: int  # seconds after midnight, 0..86399
    rate_nl_per_day: int


@dataclass(frozen=True)
class Program:
    mode: InfusionMode
    steps: tuple[Step, ...]  # sorted by start_s; empty when stopped

    # --- constructors: the only ways to make a valid program ---------------

    @classmethod
    def continuous(cls, rate_nl_per_day: int) -> "Program":
        _check_rate(rate_nl_per_day)
        return cls(InfusionMode.CONTINUOUS, (Step(0, rate_nl_per_day),))

    @classmethod
    def stopped(cls) -> "Program":
        return cls(InfusionMode.STOPPED, ())

    @classmethod
    def minimum(cls) -> "Program":
        return cls(InfusionMode.MINIMUM, (Step(0, MINIMUM_RATE_NL_PER_DAY),))

    @classmethod
    def flex(cls, steps: list[tuple[int, int]]) -> "Program":
        if not 1 <= len(steps) <= MAX_FLEX_STEPS:
            raise ValueError(f"a flex program has 1..{MAX_FLEX_STEPS} steps, not {len(steps)}")
        made = tuple(sorted((Step(int(s), int(r)) for s, r in steps), key=lambda s: s.start_s))
        starts = [s.start_s for s in made]
        if len(set(starts)) != len(starts):
            raise ValueError("two flex steps start at the same time")
        for step in made:
            if not 0 <= step.start_s < DAY:
                raise ValueError(f"flex step start {step.start_s} s is outside 0..86399")
            _check_rate(step.rate_nl_per_day)
        return cls(InfusionMode.FLEX, made)

    # --- what the pump integrates -----------------------------------------

    def rate_at(self, t: int) -> int:
        """Programmed rate (nL/day) at pump time t."""
        if not self.steps:
            return 0
        tod = t % DAY
        rate = self.steps[-1].rate_nl_per_day  # before the first start: yesterday's last step
        for step in self.steps:
            if step.start_s <= tod:
                rate = step.rate_nl_per_day
        return rate

    def next_change(self, t: int) -> int | None:
        """The first pump time after t at which the rate may change (None: never)."""
        if len({s.rate_nl_per_day for s in self.steps}) <= 1:
            return None
        base = t - t % DAY
        return min(
            base + day + s.start_s
            for day in (0, DAY)
            for s in self.steps
            if base + day + s.start_s > t
        )

    # --- 24-hour totals (what the patient receives a day) -------------------

    def _day_integral(self) -> int:
        """sum(rate * seconds) over one day, in nL*s/day."""
        if not self.steps:
            return 0
        total = 0
        for i, step in enumerate(self.steps):
            end = self.steps[i + 1].start_s if i + 1 < len(self.steps) else DAY + self.steps[0].start_s
            total += step.rate_nl_per_day * (end - step.start_s)
        return total

    def daily_volume_nl(self) -> int:
        return self._day_integral() // DAY

    def daily_dose_ng(self, concentration_ng_per_ml: int) -> int:
        # nL * ng/mL / 1e6 nL/mL = ng; floor once, at the end, so steps do not drift
        return self._day_integral() * concentration_ng_per_ml // (DAY * 1_000_000)

    # --- persistence --------------------------------------------------------

    def to_dict(self) -> dict:
        return {"mode": self.mode.name, "steps": [[s.start_s, s.rate_nl_per_day] for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict) -> "Program":
        mode = InfusionMode[data["mode"]]
        steps = [(int(s), int(r)) for s, r in data["steps"]]
        if mode is InfusionMode.CONTINUOUS:
            if len(steps) != 1 or steps[0][0] != 0:
                raise ValueError("a continuous program has exactly one step at 0")
            return cls.continuous(steps[0][1])
        if mode is InfusionMode.STOPPED:
            if steps:
                raise ValueError("a stopped program has no steps")
            return cls.stopped()
        if mode is InfusionMode.MINIMUM:
            return cls.minimum()
        return cls.flex(steps)


def _check_rate(rate: int) -> None:
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
        raise ValueError(f"rate {rate!r} is not a non-negative integer nL/day")
