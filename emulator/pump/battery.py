"""The battery: its charge, ERI (elective replacement) and EOS (end of service).

The charge is counted in "nominal seconds" (one second of running at zero flow)
and drains at (1 + 0.04 * flow in mL/day) nominal seconds per second. Stored
scaled by BATTERY_UNIT so the drain per second is the exact integer
BATTERY_UNIT + flow_nl_per_day. ERI is raised when the charge left would last
90 days at the model's maximum flow, so EOS is always at least 90 days later.
Both are reached at the exact second they are crossed (crossings()).
"""
from __future__ import annotations

from protocol import Alarm, BatteryState, EventType
from protocol.models import ModelSpec

from ..program import DAY
from .core import SUSPEND_EOS, PumpCore
from .integers import ceil_div

#: charge units per nominal second; 0.04 per mL/day * 25_000_000 = 1 per nL/day
BATTERY_UNIT = 25_000_000
ERI_WARNING_S = 90 * DAY  # replace within 90 days of ERI
#: what 100 % means: a new battery, about 7 years at low flow
DESIGN_BATTERY_S = 7 * 365 * DAY


class Battery:
    """Charge and state. Set up by Pump.new() or the store."""

    def __init__(self, core: PumpCore, spec: ModelSpec) -> None:
        self.core = core
        self.spec = spec
        self.charge: int  # nominal seconds * BATTERY_UNIT
        self.capacity: int  # what 100 % is, same unit
        self.state = BatteryState.OK
        self.eri_time = 0  # actual ERI time once reached
        self.eos_time = 0

    def shift(self, step_s: int) -> None:
        """The clock was set: ERI and EOS once reached stay the same moments (replace_by is read
        against pump time)."""
        if self.eri_time:
            self.eri_time = max(1, self.eri_time + step_s)
        if self.eos_time:
            self.eos_time = max(1, self.eos_time + step_s)

    @staticmethod
    def drain_per_second(flow_nl_per_day: int) -> int:
        """Charge units used per second while `flow_nl_per_day` is pumped."""
        return BATTERY_UNIT + flow_nl_per_day

    @property
    def eri_level(self) -> int:
        return ERI_WARNING_S * self.drain_per_second(self.spec.max_flow_nl_per_day)

    @property
    def percent(self) -> int:
        # rounded up: 0 % only once the charge is gone
        return min(100, ceil_div(self.charge * 100, self.capacity))

    def crossings(self, drain: int) -> list[int]:
        """Pump times advance_to() must stop at: ERI and EOS, at `drain` per second."""
        now = self.core.time
        levels = []
        if self.state is BatteryState.OK and self.charge > self.eri_level:
            levels.append(self.eri_level)
        if self.charge > 0:
            levels.append(0)
        return [now + ceil_div(self.charge - level, drain) for level in levels]

    def drain(self, dt: int, drain: int) -> None:
        self.charge = max(0, self.charge - drain * dt)

    def check(self) -> None:
        """ERI (logged, alarmed) and EOS (logged, alarmed, delivery stopped for good)."""
        core = self.core
        if self.state is BatteryState.OK and self.charge <= self.eri_level:
            self.state = BatteryState.ERI
            self.eri_time = core.time
            core.log_event(EventType.BATTERY_ERI)
            core.raise_alarm(Alarm.ERI)
        if self.state is not BatteryState.EOS and self.charge == 0:
            self.state = BatteryState.EOS
            self.eos_time = core.time
            core.log_event(EventType.BATTERY_EOS)
            core.raise_alarm(Alarm.EOS)
            core.suspend(SUSPEND_EOS)

    def projected_eri(self, rate: int, seconds_to_empty: int | None) -> int:
        """ERI time: actual once reached, else projected at `rate` nL/day until the reservoir
        empties after seconds_to_empty (None: never), then at electronics only."""
        if self.state is not BatteryState.OK:
            return self.eri_time
        now = self.core.time
        need = self.charge - self.eri_level
        if seconds_to_empty is not None:
            drain = self.drain_per_second(rate)
            if need <= drain * seconds_to_empty:
                return now + ceil_div(need, drain)
            return now + seconds_to_empty + ceil_div(need - drain * seconds_to_empty, BATTERY_UNIT)
        return now + ceil_div(need, BATTERY_UNIT)
