"""Infusion programs: what rate the pump should run at, at any pump time.

Programs are dose-based, as the protocol is: each step holds the dose
(ng/day) it was programmed with and the rate (nL/day) the pump computed for it
at the reservoir's concentration (`protocol.therapy.rate_for_dose`). The pump
integrates the rates; the status's 24-hour totals are `therapy.daily_total` over
the steps' doses and rates, the same integer rule the programmer uses.

Flex step times are minutes after midnight of the pump clock (UTC: the pump has
no time zone). A step runs until the next step's start; the last runs to
midnight (every schedule starts at 00:00).

Constructors here check only structure (what a saved file could get wrong);
the clinical checks with their ErrorReasons (model flow range, zero doses,
drug mismatch) are the pump's, in pump/delivery.py and pump/transactions.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol import Drug, InfusionMode, bodies
from protocol.models import MINIMUM_RATE_NL_PER_DAY
from protocol.therapy import check_schedule, daily_total, dose_for_rate, rate_for_dose

DAY = 86_400
MINUTE = 60


@dataclass(frozen=True)
class Step:
    start_minute: int  # minute of the day, 0..1439
    dose_ng_per_day: int
    rate_nl_per_day: int

    @property
    def start_s(self) -> int:
        return self.start_minute * MINUTE


@dataclass(frozen=True)
class Program:
    mode: InfusionMode
    steps: tuple[Step, ...]  # sorted by start; empty when stopped

    # --- constructors: the only ways to make a valid program ---------------

    @classmethod
    def stopped(cls) -> Program:
        return cls(InfusionMode.STOPPED, ())

    @classmethod
    def minimum(cls, concentration_ng_per_ml: int) -> Program:
        rate = MINIMUM_RATE_NL_PER_DAY
        return cls(InfusionMode.MINIMUM, (Step(0, dose_for_rate(rate, concentration_ng_per_ml), rate),))

    @classmethod
    def from_flow(cls, rate_nl_per_day: int, concentration_ng_per_ml: int) -> Program:
        """A continuous program at exactly this flow (the emulator's --flow), dose derived."""
        _check_int(rate_nl_per_day, "rate")
        return cls(
            InfusionMode.CONTINUOUS,
            (Step(0, dose_for_rate(rate_nl_per_day, concentration_ng_per_ml), rate_nl_per_day),),
        )

    @classmethod
    def from_doses(cls, mode: InfusionMode, steps: list[tuple[int, int]], concentration_ng_per_ml: int) -> Program:
        """CONTINUOUS or FLEX from (start_minute, dose_ng_per_day) steps: rates computed here."""
        made = tuple(
            Step(start, dose, rate_for_dose(dose, concentration_ng_per_ml)) for start, dose in steps
        )
        return cls.checked(mode, made)

    @classmethod
    def checked(cls, mode: InfusionMode, steps: tuple[Step, ...]) -> Program:
        """Structural checks for every mode; raises ValueError."""
        mode = InfusionMode(mode)
        for step in steps:
            _check_int(step.start_minute, "start minute")
            _check_int(step.dose_ng_per_day, "dose")
            _check_int(step.rate_nl_per_day, "rate")
        starts = [s.start_minute for s in steps]
        if mode is InfusionMode.STOPPED:
            if steps:
                raise ValueError("a STOPPED program has no steps")
        elif mode is InfusionMode.MINIMUM:
            if len(steps) != 1 or starts[0] != 0 or steps[0].rate_nl_per_day != MINIMUM_RATE_NL_PER_DAY:
                raise ValueError("a MINIMUM program has one step at 00:00 at the minimum rate")
        elif mode is InfusionMode.CONTINUOUS:
            if len(steps) != 1 or starts[0] != 0:
                raise ValueError("a CONTINUOUS program has exactly one step, at 00:00")
        else:
            problem = check_schedule(starts)
            if problem:
                raise ValueError(problem)
        return cls(mode, tuple(steps))

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

    @property
    def starts(self) -> list[int]:
        return [s.start_minute for s in self.steps]

    def daily_volume_nl(self) -> int:
        return daily_total(self.starts, [s.rate_nl_per_day for s in self.steps])

    def daily_dose_ng(self) -> int:
        return daily_total(self.starts, [s.dose_ng_per_day for s in self.steps])

    def max_rate_nl_per_day(self) -> int:
        return max((s.rate_nl_per_day for s in self.steps), default=0)

    # --- the wire -------------------------------------------------------------

    def body(self, drug: Drug, concentration_ng_per_ml: int) -> bodies.Program:
        """The protocol's Program struct."""
        return bodies.Program(
            mode=self.mode,
            drug=drug,
            concentration_ng_per_ml=concentration_ng_per_ml,
            daily_dose_ng_per_day=self.daily_dose_ng(),
            daily_volume_nl_per_day=self.daily_volume_nl(),
            steps=tuple(bodies.DeliveredStep(s.start_minute, s.dose_ng_per_day, s.rate_nl_per_day)
                        for s in self.steps),
        )

    # --- persistence --------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "mode": self.mode.name,
            "steps": [[s.start_minute, s.dose_ng_per_day, s.rate_nl_per_day] for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Program:
        mode = InfusionMode[data["mode"]]
        steps = []
        for row in data["steps"]:
            start, dose, rate = row
            steps.append(Step(start, dose, rate))
        return cls.checked(mode, tuple(steps))


def _check_int(value, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} {value!r} is not a non-negative integer")
