"""MRI: MRI-safe mode, the scanner's static field, and the motor's stall.

(docs/protocol.md, "MRI-safe mode".) MRI-safe mode records the program, suspends
delivery (peristaltic: motor parked; valve-gated: valves closed) and arms an
automatic exit that restores it. A static field (set over the test-only control
channel, never telemetry) outside MRI-safe mode stalls a peristaltic motor (it
recovers stall_recovery_s after the field ends; a pump that was alarming when it
stalled waits for an INTERROGATE at or after that time) and opens a valve-gated
pump's valves, dumping the reservoir. Auto-exit, recovery and scheduled field
changes are timers: advance_to() stops at their exact second.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol import Alarm, EventType, MriMode
from protocol.models import ModelSpec

from ..program import Program
from .core import SUSPEND_MRI, SUSPEND_STALL, PumpCore
from .delivery import NL_PER_UL, Delivery
from .integers import ceil_div, check_uint

#: static fields the control channel can put the pump in (T); 0 = no field
FIELD_TESLA = (0.0, 1.5, 3.0)
DEFAULT_GRADIENT_T_PER_M = 10.0
MAX_GRADIENT_T_PER_M = 100.0
#: after the field ends, a stalled motor recovers this much later (domain: hours, up to 24 h)
DEFAULT_STALL_RECOVERY_S = 2 * 3600
MAX_STALL_RECOVERY_S = 86_400
MAX_SCENARIO_EVENTS = 64


def check_field(tesla, gradient_t_per_m) -> tuple[float, float]:
    """(tesla, gradient) as floats, or ValueError: tesla one of FIELD_TESLA, gradient in
    (0, MAX_GRADIENT_T_PER_M] (0 when out of the field)."""
    for value in (tesla, gradient_t_per_m):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
    tesla, gradient = float(tesla), float(gradient_t_per_m)
    if tesla not in FIELD_TESLA:
        raise ValueError(f"field {tesla:g} T: give one of {', '.join(f'{t:g}' for t in FIELD_TESLA)}")
    if tesla == 0:
        return 0.0, 0.0
    if not 0 < gradient <= MAX_GRADIENT_T_PER_M:  # also refuses NaN
        raise ValueError(f"spatial gradient {gradient:g} T/m is outside (0, {MAX_GRADIENT_T_PER_M:g}]")
    return tesla, gradient


@dataclass(frozen=True)
class FieldChange:
    """A scheduled change of the static field (the control channel's `scenario`)."""

    at: int  # pump time
    tesla: float  # 0: out of the field
    gradient_t_per_m: float

    def to_list(self) -> list:
        return [self.at, self.tesla, self.gradient_t_per_m]

    @classmethod
    def from_list(cls, row: list) -> FieldChange:
        at, tesla, gradient = row
        tesla, gradient = check_field(tesla, gradient)
        return cls(check_uint(at, 63), tesla, gradient)


def check_schedule(changes: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """(after_s, tesla, gradient) rows checked, or ValueError for the first bad one."""
    if len(changes) > MAX_SCENARIO_EVENTS:
        raise ValueError(f"at most {MAX_SCENARIO_EVENTS} scheduled events")
    checked = []
    for after_s, tesla, gradient in changes:
        if not isinstance(after_s, int) or isinstance(after_s, bool) or not 0 <= after_s <= 2**40:
            raise ValueError(f"after_s {after_s!r} must be a non-negative integer of seconds")
        checked.append((after_s, *check_field(tesla, gradient)))
    return checked


class Mri:
    """MRI-safe mode, the field and the stall. Set up by Pump.new() or the store."""

    def __init__(self, core: PumpCore, spec: ModelSpec, delivery: Delivery) -> None:
        self.core = core
        self.spec = spec
        self.delivery = delivery  # safe mode records and restores its program; a dump empties it
        self.mode = MriMode.OFF
        self.auto_exit_at = 0
        #: the program recorded on entering MRI-safe mode, restored on exit (None when OFF)
        self.recorded_program: Program | None = None
        # the static field the pump is in (control channel only), and the motor's stall
        self.field_tesla = 0.0
        self.field_gradient_t_per_m = 0.0
        self.stalled = False
        self.stall_recovery_at: int | None = None  # None: not scheduled yet (the field is still on)
        self.stall_needs_interrogation = False  # it was alarming when it stalled
        self.stall_recovery_s = DEFAULT_STALL_RECOVERY_S
        self.scenario: list[FieldChange] = []  # scheduled field changes, by time

    @property
    def peristaltic(self) -> bool:
        return self.spec.design == "peristaltic"

    def timers(self) -> list[int]:
        """Pump times at which something is due: auto-exit, stall recovery, the next field change."""
        due = []
        if self.mode is MriMode.SAFE:
            due.append(self.auto_exit_at)
        if self.stalled and self.stall_recovery_at and not self.stall_needs_interrogation:
            due.append(self.stall_recovery_at)
        if self.scenario:
            due.append(self.scenario[0].at)
        return due

    def check(self) -> None:
        """Scheduled field changes, the automatic exit, stall recovery and the field's effects."""
        now = self.core.time
        while self.scenario and self.scenario[0].at <= now:
            change = self.scenario.pop(0)
            self.change_field(change.tesla, change.gradient_t_per_m)
            self._field_effects()  # each change acts, even two in the same second
        if self.mode is MriMode.SAFE and now >= self.auto_exit_at:
            self.exit(automatic=True)
        if (self.stalled and self.stall_recovery_at is not None and not self.stall_needs_interrogation
                and now >= self.stall_recovery_at):
            self._recover_stall()
        self._field_effects()

    def _field_effects(self) -> None:
        """What the field does outside MRI-safe mode: a peristaltic motor stalls; a valve-gated
        pump's valves open and the reservoir is dumped. In MRI-safe mode: nothing."""
        if not self.field_tesla or self.mode is not MriMode.OFF:
            return
        if self.peristaltic:
            if not self.stalled:
                self._stall()
        elif self.delivery.reservoir_nl > 0:
            self._dump()

    def change_field(self, tesla: float, gradient_t_per_m: float) -> None:
        """The field is now `tesla` (checked); a stalled motor's recovery follows it."""
        self.field_tesla, self.field_gradient_t_per_m = tesla, gradient_t_per_m
        self.core.changes += 1
        if not self.stalled:
            return
        if not tesla:
            if self.stall_recovery_at is None:  # the field has ended: recovery is now scheduled
                self.stall_recovery_at = self.core.time + self.stall_recovery_s
        elif self.mode is MriMode.OFF:
            self.stall_recovery_at = None  # back in the field before recovering: still stalled

    def schedule(self, checked: list[tuple[int, float, float]]) -> None:
        """Replace the scheduled changes with `checked` (check_schedule) rows from now."""
        now = self.core.time
        # sorted by time; changes at the same time keep their order
        self.scenario = [FieldChange(now + a, t, g) for a, t, g in sorted(checked, key=lambda c: c[0])]
        self.core.changes += 1

    def _stall(self) -> None:
        """MOTOR_STALL, the MOTOR_STALL alarm (HIGH) and delivery suspended."""
        core = self.core
        self.stalled = True
        self.stall_recovery_at = None
        # a pump already alarming may not restart until it is interrogated
        self.stall_needs_interrogation = bool(core.alarms & ~Alarm.MOTOR_STALL)
        core.log_event(EventType.MOTOR_STALL)
        core.raise_alarm(Alarm.MOTOR_STALL)
        core.suspend(SUSPEND_STALL)

    def _recover_stall(self) -> None:
        self.stalled = False
        self.stall_recovery_at = None
        self.stall_needs_interrogation = False
        self.core.log_event(EventType.STALL_RECOVERY)
        self.core.clear_alarm(Alarm.MOTOR_STALL)
        self.core.resume(SUSPEND_STALL)

    def interrogated(self) -> None:
        """An authenticated INTERROGATE: a pump that was alarming when it stalled restarts now,
        if its recovery time has come."""
        if (self.stalled and self.stall_needs_interrogation and self.stall_recovery_at is not None
                and self.core.time >= self.stall_recovery_at):
            self._recover_stall()

    def _dump(self) -> None:
        """The valves opened: the whole reservoir is delivered at once (arg1: uL, rounded up,
        never under-stating what the patient received)."""
        volume = self.delivery.deliver_all_at_once()
        self.core.log_event(EventType.UNCONTROLLED_BOLUS, arg1=ceil_div(volume, NL_PER_UL))
        self.core.raise_alarm(Alarm.UNCONTROLLED_BOLUS)
        # the empty-reservoir rules of Delivery.check_reservoir follow

    def enter(self, auto_exit_s: int) -> None:
        """MRI-safe mode: the program recorded, delivery suspended, the automatic exit armed."""
        self.recorded_program = self.delivery.program
        self.mode = MriMode.SAFE
        self.auto_exit_at = self.core.time + auto_exit_s
        self.core.log_event(EventType.MRI_SAFE_ENTERED, arg1=auto_exit_s)
        self.core.suspend(SUSPEND_MRI)  # motor parked / valves closed

    def exit(self, automatic: bool) -> None:
        """Restore the recorded program and delivery (arg1 = 1 when by the timer)."""
        if self.recorded_program is not None:
            self.delivery.program = self.recorded_program
        self.recorded_program = None
        self.mode = MriMode.OFF
        self.auto_exit_at = 0
        self.core.log_event(EventType.MRI_SAFE_EXITED, arg1=1 if automatic else 0)
        self.core.resume(SUSPEND_MRI)

    def shift(self, step_s: int) -> None:
        """The clock was set: the automatic exit, a stall's recovery and scheduled field changes
        stay at the same real moments."""
        if self.auto_exit_at:
            self.auto_exit_at = max(1, self.auto_exit_at + step_s)
        if self.stall_recovery_at is not None:
            self.stall_recovery_at = max(0, self.stall_recovery_at + step_s)
        self.scenario = [FieldChange(max(0, c.at + step_s), c.tesla, c.gradient_t_per_m) for c in self.scenario]

    def describe(self) -> dict:
        """The field and what it does to the mechanism (control channel `state` and `field`)."""
        if self.peristaltic:
            motor = "stalled" if self.stalled else "parked" if self.mode is MriMode.SAFE else "running"
            valves = None
        else:
            motor = None
            # closed in MRI-safe mode; forced open by a field outside it; else opened by the pump's control
            valves = "closed" if self.mode is MriMode.SAFE else "open" if self.field_tesla else "gated"
        tesla = self.field_tesla
        return {
            "in_field": tesla,  # T, 0 = out of the field
            "field_gradient_t_per_m": self.field_gradient_t_per_m,
            "field_within_mr_conditions": (tesla == 0 or (
                f"{tesla:g}" in self.spec.mr_field_tesla
                and self.field_gradient_t_per_m <= self.spec.mr_spatial_gradient_t_per_m)),
            "motor": motor,
            "valves": valves,
            "stall": {
                "stalled": self.stalled,
                "recovery_at": self.stall_recovery_at,
                "needs_interrogation": self.stall_needs_interrogation,
            },
            "stall_recovery_s": self.stall_recovery_s,
            "scenario": [{"at": c.at, "tesla": c.tesla, "gradient_t_per_m": c.gradient_t_per_m}
                         for c in self.scenario],
        }
