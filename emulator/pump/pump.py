"""Pump: one implanted pump, composed of its parts, as a pure state machine.

No I/O, and time only through advance_to() (the clock is injected: Pump.clock,
read by tick()). The parts each do one job (see __init__.py for the map); Pump
builds them, moves time, and decides the order in which what became true is
logged: every threshold (low reservoir, empty, ERI, EOS) and every timer (MRI
auto-exit, stall recovery, a scheduled field change, a coalesced routine event)
is reached at its exact second, because advance_to() asks each part for its
next one and stops there.
"""
from __future__ import annotations

from collections.abc import Callable

from protocol import Alarm, CommitOutcome, Drug, ErrorReason, EventType, Role, bodies
from protocol.constants import CatheterModel
from protocol.messages import MAX_CATHETER_MM, SERIAL_LEN
from protocol.models import MODELS_BY_NAME, ModelSpec

from ..faults import tamper_pending
from ..program import Program
from . import views
from .battery import BATTERY_UNIT, DESIGN_BATTERY_S, Battery
from .catheter_part import Catheter
from .clock_step import ClockStep
from .core import PumpCore
from .delivery import NL_PER_UL, Delivery
from .mri import (
    DEFAULT_GRADIENT_T_PER_M,
    DEFAULT_STALL_RECOVERY_S,
    MAX_STALL_RECOVERY_S,
    Mri,
    check_field,
    check_schedule,
)
from .patient import Patient
from .ptm import Outcome, PatientBoluses
from .routine import RoutineEvents
from .transactions import Transactions
from .write_kinds import PrepareRequest

FIRMWARE = bodies.Firmware(major=1, minor=0, patch=0)
SERIAL_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def valid_serial(text: str) -> bool:
    return 1 <= len(text) <= SERIAL_LEN and set(text) <= SERIAL_CHARS


class _Forward:
    """pump.NAME reads and writes part.ATTR: an attribute callers have always used on the
    Pump, now held by the part whose job it is."""

    def __init__(self, part: str, attr: str = ""):
        self.part, self.attr = part, attr  # attr "": the same name as on the Pump

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = self.attr or name

    def __get__(self, pump, owner=None):
        if pump is None:
            return self
        return getattr(getattr(pump, self.part), self.attr)

    def __set__(self, pump, value) -> None:
        setattr(getattr(pump, self.part), self.attr, value)


class Pump:
    """One implanted pump. Build with Pump.new(), or load one with emulator.store."""

    def __init__(self, spec: ModelSpec, serial: str, clock: Callable[[], int] | None = None) -> None:
        self.spec = spec
        self.serial = serial
        self.firmware = FIRMWARE
        self.core = PumpCore()
        self.catheter = Catheter(self.core, spec)
        self.delivery = Delivery(self.core, spec, self.catheter)
        self.battery = Battery(self.core, spec)
        self.mri = Mri(self.core, spec, self.delivery)
        self.ptm = PatientBoluses(self.core)
        self.patient = Patient(self.core)  # the patient record (version 5): none on a new pump
        self.routine = RoutineEvents(self.core)
        # every part with a running deadline moves it when the clock is set
        self.clock_step = ClockStep(self.core, [self.delivery, self.battery, self.mri, self.ptm, self.routine])
        self.transactions = Transactions(self.core, spec, self.delivery, self.battery, self.mri,
                                         catheter=self.catheter, ptm=self.ptm, clock=self.clock_step,
                                         patient=self.patient)
        #: simulated resets in this process: sessions live in RAM, so the server ends them all
        self.resets = 0
        self.clock = clock

    # --- the Pump's attributes as callers know them, held by its parts ---------------

    time = _Forward("core")
    log = _Forward("core")
    alarms = _Forward("core")
    suspended = _Forward("core")
    changes = _Forward("core")
    counted = _Forward("core")
    delivering = _Forward("core")
    drug = _Forward("delivery")
    concentration_ng_per_ml = _Forward("delivery")
    program = _Forward("delivery")
    reservoir_nl = _Forward("delivery")
    delivery_remainder = _Forward("delivery")
    delivered_nl = _Forward("delivery")
    low_reservoir_alarm_ul = _Forward("delivery")
    bolus = _Forward("delivery")
    current_rate_nl_per_day = _Forward("delivery")
    bolus_remaining_ng = _Forward("delivery")
    battery_charge = _Forward("battery", "charge")
    battery_capacity = _Forward("battery", "capacity")
    battery_state = _Forward("battery", "state")
    battery_percent = _Forward("battery", "percent")
    eri_time = _Forward("battery")
    eos_time = _Forward("battery")
    eri_level = _Forward("battery")
    mri_mode = _Forward("mri", "mode")
    mri_auto_exit_at = _Forward("mri", "auto_exit_at")
    mri_program = _Forward("mri", "recorded_program")
    field_tesla = _Forward("mri")
    field_gradient_t_per_m = _Forward("mri")
    stalled = _Forward("mri")
    stall_recovery_at = _Forward("mri")
    stall_needs_interrogation = _Forward("mri")
    stall_recovery_s = _Forward("mri")
    scenario = _Forward("mri")
    peristaltic = _Forward("mri")
    last_txid = _Forward("transactions")
    last_programmed_at = _Forward("transactions")
    pending = _Forward("transactions")
    applied = _Forward("transactions")
    auth = _Forward("routine")
    sessions = _Forward("routine")

    # --- construction -------------------------------------------------------

    @classmethod
    def new(
        cls,
        *,
        model: str,
        serial: str,
        drug: Drug,
        concentration_ng_per_ml: int,
        reservoir_ul: int,
        flow_nl_per_day: int,
        low_reservoir_alarm_ul: int,
        battery_seconds: int,
        start_time: int,
        clock: Callable[[], int] | None = None,
        stall_recovery_s: int = DEFAULT_STALL_RECOVERY_S,
        catheter_mm: int = 0,
    ) -> Pump:
        """A pump switched on for the first time (logs POWER_ON, arg1=0); with catheter_mm, a
        STANDARD catheter of that length implanted and primed with the reservoir's drug."""
        spec = MODELS_BY_NAME[model]
        if not valid_serial(serial):
            raise ValueError(f"serial {serial!r} must be 1-{SERIAL_LEN} characters of A-Z, 0-9 and -")
        pump = cls(spec, serial, clock)
        delivery = pump.delivery
        delivery.drug = Drug(drug)
        if concentration_ng_per_ml <= 0:
            raise ValueError("concentration must be positive")
        delivery.concentration_ng_per_ml = concentration_ng_per_ml
        if not 0 <= reservoir_ul <= spec.capacity_ul:
            raise ValueError(f"volume {reservoir_ul} uL exceeds the capacity {spec.capacity_ul} uL")
        delivery.reservoir_nl = reservoir_ul * NL_PER_UL
        if not spec.min_flow_nl_per_day <= flow_nl_per_day <= spec.max_flow_nl_per_day:
            raise ValueError(
                f"flow {flow_nl_per_day} nL/day is outside {spec.min_flow_nl_per_day}.."
                f"{spec.max_flow_nl_per_day} nL/day"
            )
        # the flow exactly as given; the step's dose is what that flow delivers
        delivery.program = Program.from_flow(flow_nl_per_day, concentration_ng_per_ml)
        if not 0 <= low_reservoir_alarm_ul <= spec.capacity_ul:
            raise ValueError("low-reservoir alarm must be within the capacity")
        delivery.low_reservoir_alarm_ul = low_reservoir_alarm_ul
        if battery_seconds <= 0:
            raise ValueError("battery charge must be positive")
        pump.battery.charge = battery_seconds * BATTERY_UNIT
        pump.battery.capacity = max(DESIGN_BATTERY_S, battery_seconds) * BATTERY_UNIT
        if start_time < 0:
            raise ValueError("start time is before 1970")
        pump.core.time = start_time
        if not 0 <= stall_recovery_s <= MAX_STALL_RECOVERY_S:
            raise ValueError(f"stall recovery must be 0..{MAX_STALL_RECOVERY_S} s")
        pump.mri.stall_recovery_s = stall_recovery_s
        if not 0 <= catheter_mm <= MAX_CATHETER_MM:
            raise ValueError(f"catheter length must be 0..{MAX_CATHETER_MM} mm")
        if catheter_mm:
            pump.catheter.implant_primed(CatheterModel.STANDARD, catheter_mm, delivery.drug, concentration_ng_per_ml)
        pump.power_on(restored=False)
        return pump

    def power_on(self, restored: bool) -> None:
        """Log POWER_ON (arg1=1 after a restore) and raise whatever is already due."""
        self.core.log_event(EventType.POWER_ON, arg1=1 if restored else 0)
        self._check_thresholds()

    # --- time ---------------------------------------------------------------

    def tick(self) -> None:
        """Catch up with the injected clock plus the clock's step (no-op without a clock)."""
        if self.clock is not None:
            self.advance_to(self.clock() + self.clock_step.step_s)
        self.routine.log_due()

    def advance_to(self, target: int) -> None:
        """Run the pump until pump time `target`, stopping at every threshold to log it."""
        target = int(target)
        core, delivery, battery = self.core, self.delivery, self.battery
        while core.time < target:
            rate = delivery.current_rate_nl_per_day
            bolus = delivery.running_bolus
            drain = battery.drain_per_second(rate + (bolus.battery_rate if bolus else 0))
            timers = [due for due in self._timers() if due > core.time]
            end = min([target, *delivery.crossings(rate, bolus), *battery.crossings(drain), *timers])
            delivery.integrate(end - core.time, rate, bolus)
            battery.drain(end - core.time, drain)
            core.time = end
            self._check_thresholds()

    def _timers(self) -> list[int]:
        """Pump times at which something is due: MRI auto-exit, stall recovery, field changes,
        and a coalesced count of routine events waiting for its event."""
        return self.routine.timers() + self.mri.timers()

    def _check_thresholds(self) -> None:
        """Log everything that is true now and not yet logged, in clinical order."""
        self.mri.check()
        self.delivery.check_reservoir()
        self.battery.check()
        self.delivery.check_bolus_end()
        self.routine.log_due()

    # --- routine events (routine.py) ---------------------------------------------------

    def record_auth_failure(self, reason: ErrorReason) -> None:
        """Count one authentication refusal; log a coalesced AUTH_FAILURE when one is due."""
        self.tick()
        self.routine.auth_failure(reason)

    def session_opened(self, role: Role) -> None:
        """Count one session opened; log a coalesced SESSION_OPENED when one is due."""
        self.tick()
        self.routine.session_opened(role)

    # --- the static field (control channel) and the stall (mri.py) ---------------------

    def set_field(self, tesla, gradient_t_per_m=DEFAULT_GRADIENT_T_PER_M) -> None:
        """Put the pump in a static field now (tesla 0: take it out). ValueError when invalid."""
        tesla, gradient = check_field(tesla, gradient_t_per_m)
        self.tick()
        self.mri.change_field(tesla, gradient)
        self._check_thresholds()

    def schedule_field(self, changes: list[tuple[int, float, float]]) -> None:
        """Replace the scheduled field changes with (after_s, tesla, gradient) from now; those
        due now act at once. ValueError when one is invalid (nothing is scheduled then)."""
        checked = check_schedule(changes)
        self.tick()
        self.mri.schedule(checked)
        self._check_thresholds()

    # --- patient-activated boluses (ptm.py) -------------------------------------------

    def activate(self) -> Outcome:
        """The patient pressed the handheld now: granted (a PATIENT bolus starts) or refused, logged."""
        self.tick()
        outcome = self.ptm.activate(self.delivery)
        self._check_thresholds()
        return outcome

    def interrogated(self) -> None:
        """An authenticated INTERROGATE: a pump that was alarming when it stalled restarts now,
        if its recovery time has come."""
        self.mri.interrogated()

    def reset(self) -> None:
        """A simulated pump reset: the therapy and the log survive (non-volatile), the
        reset is logged and alarmed; a prepared transaction and every secure session
        (volatile) are lost."""
        self.tick()
        self.transactions.pending = None  # a prepared transaction is volatile: a reset loses it
        self.resets += 1  # the server ends every session when it sees this move
        self.core.log_event(EventType.POWER_ON, arg1=0)
        self.core.raise_alarm(Alarm.RESET)

    # --- two-phase writes (transactions.py, write_kinds.py) ------------------------------

    def prepare(self, body: PrepareRequest) -> bodies.Prepared:
        """Any PREPARE_* request: the pending transaction's echo, or Refusal."""
        return self.transactions.prepare(body)

    def commit(self, txid: int) -> bodies.Committed:
        """Apply the pending transaction txid now; ALREADY_APPLIED for a recent one."""
        reply = self.transactions.commit(txid)
        if reply.outcome is CommitOutcome.APPLIED:
            self._check_thresholds()  # what the write made true is logged before the reply
        return reply

    # --- views (views.py) -------------------------------------------------------------

    def program_body(self) -> bodies.Program:
        """The protocol's Program struct for what runs now."""
        return self.delivery.program_body()

    def projected_eri(self) -> int:
        """ERI time: actual once reached, else projected at the programmed 24-hour volume."""
        return self.battery.projected_eri(*self.delivery.programmed_flow())

    def status(self) -> bodies.Status:
        """The protocol's Status struct (protocol/messages.py)."""
        return views.status(self)

    def describe(self) -> dict:
        """Internal state for the test-only control channel (JSON-friendly)."""
        return views.describe(self)

    def describe_mri(self) -> dict:
        """The field and what it does to the mechanism (control channel `state` and `field`)."""
        return self.mri.describe()

    # --- kept for callers of the one-module Pump: persistence and the tamper fault -----

    def to_dict(self) -> dict:
        """The state file's "pump" object: emulator.store.pump_to_dict."""
        from ..store import pump_to_dict  # store imports Pump: imported here, not at the top
        return pump_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, clock: Callable[[], int] | None = None) -> Pump:
        """A saved pump: emulator.store.pump_from_dict (no POWER_ON logged)."""
        from ..store import pump_from_dict  # store imports Pump: imported here, not at the top
        return pump_from_dict(data, clock)

    def tamper_pending(self) -> bool:
        """The mismatch_on_commit fault: emulator.faults.tamper_pending."""
        return tamper_pending(self)
