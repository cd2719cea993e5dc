"""The pump as a pure state machine: no I/O, time only through advance_to().

All arithmetic is on integers so that nothing drifts however long it runs:
reservoir in nL, rates in nL/day, doses in ng/day, time in whole seconds of pump
time (Unix epoch). Delivery carries the sub-nL remainder between steps, and every
threshold (low reservoir, empty, ERI, EOS) is reached at the exact second it is
crossed: advance_to() computes each crossing time and stops there to log it.

Battery: the charge is counted in "nominal seconds" (one second of running at
zero flow) and drains at (1 + 0.04 * flow in mL/day) nominal seconds per second.
Stored scaled by BATTERY_UNIT so the drain per second is the exact integer
BATTERY_UNIT + flow_nl_per_day. ERI is raised when the charge left would last
90 days at the model's maximum flow, so EOS is always at least 90 days later.

MRI (docs/protocol.md, "MRI-safe mode"): MRI-safe mode records the program,
suspends delivery (peristaltic: motor parked; valve-gated: valves closed) and arms
an automatic exit that restores it. A static field (set over the test-only control
channel, never telemetry) outside MRI-safe mode stalls a peristaltic motor (it
recovers stall_recovery_s after the field ends; a pump that was alarming when it
stalled waits for an INTERROGATE at or after that time) and opens a valve-gated
pump's valves, dumping the reservoir. Auto-exit, recovery and scheduled field
changes are thresholds like the others: advance_to() stops at their exact second.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

from protocol import (
    ALARM_PRIORITY,
    Alarm,
    BatteryState,
    CommitOutcome,
    Drug,
    ErrorReason,
    EventType,
    InfusionMode,
    MriMode,
    Priority,
    WriteKind,
)
from protocol.messages import SERIAL_LEN
from protocol.models import MODELS_BY_NAME, ModelSpec
from protocol.therapy import rate_for_dose

from .program import DAY, Program, Step
from .security_state import FailureLog, SessionLog

NL_PER_UL = 1000
#: charge units per nominal second; 0.04 per mL/day * 25_000_000 = 1 per nL/day
BATTERY_UNIT = 25_000_000
ERI_WARNING_S = 90 * DAY  # replace within 90 days of ERI
#: what 100 % means: a new battery, about 7 years at low flow
DESIGN_BATTERY_S = 7 * 365 * DAY
LOG_CAPACITY = 4096
FIRMWARE = {"major": 1, "minor": 0, "patch": 0}
SERIAL_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")

# reasons delivery is suspended, with the alarm bit logged in DELIVERY_STOPPED.arg1
SUSPEND_EMPTY = "reservoir_empty"
SUSPEND_EOS = "battery_eos"
SUSPEND_MRI = "mri_safe"  # MRI-safe mode: motor parked / valves closed (no alarm)
SUSPEND_STALL = "motor_stall"
SUSPEND_ALARM = {SUSPEND_EMPTY: Alarm.EMPTY_RESERVOIR, SUSPEND_EOS: Alarm.EOS, SUSPEND_STALL: Alarm.MOTOR_STALL}
SUSPEND_REASONS = frozenset({SUSPEND_EMPTY, SUSPEND_EOS, SUSPEND_MRI, SUSPEND_STALL})

#: static fields the control channel can put the pump in (T); 0 = no field
FIELD_TESLA = (0.0, 1.5, 3.0)
DEFAULT_GRADIENT_T_PER_M = 10.0
MAX_GRADIENT_T_PER_M = 100.0
#: after the field ends, a stalled motor recovers this much later (domain: hours, up to 24 h)
DEFAULT_STALL_RECOVERY_S = 2 * 3600
MAX_STALL_RECOVERY_S = 86_400
MAX_SCENARIO_EVENTS = 64

#: applied transactions remembered for idempotent COMMIT replies (ALREADY_APPLIED)
APPLIED_HISTORY = 16
NL_PER_ML = 1_000_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def valid_serial(text: str) -> bool:
    return 1 <= len(text) <= SERIAL_LEN and set(text) <= SERIAL_CHARS


class Refusal(Exception):
    """A request the pump understood and refuses: the handler turns it into an ERROR reply."""

    def __init__(self, reason: ErrorReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def bolus_volume_nl(dose_ng: int, concentration_ng_per_ml: int) -> int:
    """The volume that carries dose at concentration, in nL, rounded up (never short)."""
    return _ceil_div(dose_ng * NL_PER_ML, concentration_ng_per_ml)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True)
class Pending:
    """The single prepared transaction, waiting for COMMIT(txid). Volatile: not saved."""

    txid: int
    kind: WriteKind
    program: Program  # what will run once committed (a bolus: the current program)
    drug: Drug
    concentration_ng_per_ml: int
    reservoir_ul: int  # once committed (a refill: the new volume)
    withdrawn_ul: int = 0
    bolus_dose_ng: int = 0
    bolus_duration_s: int = 0
    bolus_volume_nl: int = 0
    mri_auto_exit_s: int = 0  # MRI_ENTER: the delay the automatic exit will be armed with

    def body(self) -> dict:
        """The protocol's Prepared struct: the echo of what the pump will do."""
        return {
            "txid": self.txid,
            "kind": self.kind,
            "program": self.program.body(self.drug, self.concentration_ng_per_ml),
            "reservoir_ul": self.reservoir_ul,
            "bolus_dose_ng": self.bolus_dose_ng,
            "bolus_duration_s": self.bolus_duration_s,
            "bolus_volume_nl": self.bolus_volume_nl,
            "mri_auto_exit_s": self.mri_auto_exit_s,
        }

    def describe(self) -> dict:
        return {"txid": self.txid, "kind": self.kind.name, "program": self.program.to_dict(),
                "drug": self.drug.name.lower(), "concentration_ng_per_ml": self.concentration_ng_per_ml,
                "reservoir_ul": self.reservoir_ul, "bolus_dose_ng": self.bolus_dose_ng,
                "bolus_duration_s": self.bolus_duration_s, "bolus_volume_nl": self.bolus_volume_nl,
                "mri_auto_exit_s": self.mri_auto_exit_s}


@dataclass(frozen=True)
class FieldChange:
    """A scheduled change of the static field (the control channel's `scenario`)."""

    at: int  # pump time
    tesla: float  # 0: out of the field
    gradient_t_per_m: float

    def to_list(self) -> list:
        return [self.at, self.tesla, self.gradient_t_per_m]

    @classmethod
    def from_list(cls, row: list) -> "FieldChange":
        at, tesla, gradient = row
        tesla, gradient = check_field(tesla, gradient)
        return cls(_uint(at, 63), tesla, gradient)


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
class Applied:
    txid: int
    kind: WriteKind
    applied_at: int


@dataclass
class Bolus:
    """A running bolus: volume_nl delivered evenly over duration_s on top of the program.

    Exact like the program: over dt seconds it delivers (remainder + volume_nl * dt)
    // duration_s nL, carrying the rest, so the whole volume is out at duration_s.
    """

    txid: int
    dose_ng: int
    volume_nl: int
    duration_s: int
    started_at: int
    elapsed_s: int = 0
    delivered_nl: int = 0
    remainder: int = 0  # nL*s not yet a whole nL (< duration_s)

    @property
    def seconds_left(self) -> int:
        return self.duration_s - self.elapsed_s

    @property
    def battery_rate(self) -> int:
        """nL/day for the battery drain (floor: the battery model is not this exact)."""
        return self.volume_nl * DAY // self.duration_s

    def remaining_ng(self, concentration_ng_per_ml: int) -> int:
        return max(0, self.dose_ng - self.delivered_nl * concentration_ng_per_ml // NL_PER_ML)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("txid", "dose_ng", "volume_nl", "duration_s", "started_at",
                                              "elapsed_s", "delivered_nl", "remainder")}

    @classmethod
    def from_dict(cls, data: dict) -> "Bolus":
        bolus = cls(**{k: _uint(data[k], 63) for k in ("txid", "dose_ng", "volume_nl", "duration_s",
                                                          "started_at", "elapsed_s", "delivered_nl",
                                                          "remainder")})
        if (bolus.duration_s == 0 or bolus.volume_nl == 0 or bolus.elapsed_s > bolus.duration_s
                or bolus.remainder >= bolus.duration_s or bolus.delivered_nl > bolus.volume_nl):
            raise ValueError("running bolus is inconsistent")
        return bolus


@dataclass(frozen=True)
class LogEvent:
    index: int
    time: int
    type: EventType
    priority: Priority
    arg1: int = 0
    arg2: int = 0

    def body(self) -> dict:
        """The protocol's Event struct."""
        return {
            "index": self.index,
            "time": self.time,
            "type": self.type,
            "priority": self.priority,
            "arg1": self.arg1,
            "arg2": self.arg2,
        }

    def to_list(self) -> list:
        return [self.index, self.time, self.type.name, self.priority.name, self.arg1, self.arg2]

    @classmethod
    def from_list(cls, row: list) -> "LogEvent":
        index, time_, type_, prio, arg1, arg2 = row
        return cls(_uint(index, 32), _uint(time_, 63), EventType[type_], Priority[prio],
                   _uint(arg1, 32), _uint(arg2, 32))


class EventLog:
    """A ring buffer with absolute, ever-increasing indexes (like the pump's flash log)."""

    def __init__(self, capacity: int = LOG_CAPACITY):
        self.events: deque[LogEvent] = deque(maxlen=capacity)
        self.count = 0  # the index the next event gets

    @property
    def oldest_index(self) -> int:
        return self.count - len(self.events)

    def append(self, time_: int, type_: EventType, priority: Priority, arg1: int = 0, arg2: int = 0) -> LogEvent:
        event = LogEvent(self.count, time_, type_, priority, arg1, arg2)
        self.events.append(event)
        self.count += 1
        return event

    def read(self, first_index: int, max_count: int) -> list[LogEvent]:
        start = max(first_index, self.oldest_index)
        offset = start - self.oldest_index
        return [self.events[i] for i in range(offset, min(offset + max_count, len(self.events)))]


class Pump:
    """One implanted pump. Build with Pump.new() or Pump.from_dict()."""

    def __init__(self) -> None:
        # every field is set by new() or from_dict(); listed here for readers
        self.spec: ModelSpec
        self.serial: str
        self.firmware = dict(FIRMWARE)
        self.drug: Drug
        self.concentration_ng_per_ml: int
        self.program: Program
        self.reservoir_nl: int
        self.delivery_remainder = 0  # nL*s/day not yet a whole nL (< DAY)
        self.delivered_nl = 0  # lifetime total, for the control channel
        self.low_reservoir_alarm_ul: int
        self.battery_charge: int  # nominal seconds * BATTERY_UNIT
        self.battery_capacity: int  # what 100 % is, same unit
        self.battery_state = BatteryState.OK
        self.eri_time = 0  # actual ERI time once reached
        self.eos_time = 0
        self.alarms = Alarm(0)
        self.suspended: set[str] = set()
        self.time: int
        self.mri_mode = MriMode.OFF
        self.mri_auto_exit_at = 0
        #: the program recorded on entering MRI-safe mode, restored on exit (None when OFF)
        self.mri_program: Program | None = None
        # the static field the pump is in (control channel only), and the motor's stall
        self.field_tesla = 0.0
        self.field_gradient_t_per_m = 0.0
        self.stalled = False
        self.stall_recovery_at: int | None = None  # None: not scheduled yet (the field is still on)
        self.stall_needs_interrogation = False  # it was alarming when it stalled
        self.stall_recovery_s = DEFAULT_STALL_RECOVERY_S
        self.scenario: list[FieldChange] = []  # scheduled field changes, by time
        self.last_txid = 0
        self.last_programmed_at = 0
        self.pending: Pending | None = None  # volatile: lost on reset and restart
        #: simulated resets in this process: sessions live in RAM, so the server ends them all
        self.resets = 0
        self.applied: deque[Applied] = deque(maxlen=APPLIED_HISTORY)
        self.bolus: Bolus | None = None
        self.log = EventLog()
        #: authentication refusals since manufacture, and their coalesced logging (persisted)
        self.auth = FailureLog()
        #: sessions opened since manufacture per role, and their coalesced logging (persisted)
        self.sessions = SessionLog()
        #: bumped on every change other than the passing of time; the server saves when it moves
        self.changes = 0
        self.clock: Callable[[], int] | None = None

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
    ) -> "Pump":
        """A pump switched on for the first time (logs POWER_ON, arg1=0)."""
        pump = cls()
        pump.spec = MODELS_BY_NAME[model]
        if not valid_serial(serial):
            raise ValueError(f"serial {serial!r} must be 1-{SERIAL_LEN} characters of A-Z, 0-9 and -")
        pump.serial = serial
        pump.drug = Drug(drug)
        if concentration_ng_per_ml <= 0:
            raise ValueError("concentration must be positive")
        pump.concentration_ng_per_ml = concentration_ng_per_ml
        if not 0 <= reservoir_ul <= pump.spec.capacity_ul:
            raise ValueError(f"volume {reservoir_ul} uL exceeds the capacity {pump.spec.capacity_ul} uL")
        pump.reservoir_nl = reservoir_ul * NL_PER_UL
        if not pump.spec.min_flow_nl_per_day <= flow_nl_per_day <= pump.spec.max_flow_nl_per_day:
            raise ValueError(
                f"flow {flow_nl_per_day} nL/day is outside {pump.spec.min_flow_nl_per_day}.."
                f"{pump.spec.max_flow_nl_per_day} nL/day"
            )
        # the flow exactly as given; the step's dose is what that flow delivers
        pump.program = Program.from_flow(flow_nl_per_day, concentration_ng_per_ml)
        if not 0 <= low_reservoir_alarm_ul <= pump.spec.capacity_ul:
            raise ValueError("low-reservoir alarm must be within the capacity")
        pump.low_reservoir_alarm_ul = low_reservoir_alarm_ul
        if battery_seconds <= 0:
            raise ValueError("battery charge must be positive")
        pump.battery_charge = battery_seconds * BATTERY_UNIT
        pump.battery_capacity = max(DESIGN_BATTERY_S, battery_seconds) * BATTERY_UNIT
        if start_time < 0:
            raise ValueError("start time is before 1970")
        pump.time = start_time
        if not 0 <= stall_recovery_s <= MAX_STALL_RECOVERY_S:
            raise ValueError(f"stall recovery must be 0..{MAX_STALL_RECOVERY_S} s")
        pump.stall_recovery_s = stall_recovery_s
        pump.clock = clock
        pump.power_on(restored=False)
        return pump

    def power_on(self, restored: bool) -> None:
        """Log POWER_ON (arg1=1 after a restore) and raise whatever is already due."""
        self._log(EventType.POWER_ON, arg1=1 if restored else 0)
        self._check_thresholds()

    # --- time ---------------------------------------------------------------

    def tick(self) -> None:
        """Catch up with the injected clock (no-op without one)."""
        if self.clock is not None:
            self.advance_to(self.clock())
        self._log_routine()

    # --- routine events: AUTH_FAILURE, SESSION_OPENED ---------------------------
    #
    # Coalesced so that nobody (a keyless attacker, a monitor opening sessions) can flush
    # therapy history out of the ring (security_state.py; docs/protocol.md, "Routine
    # events and the log"). Every occurrence is counted, and the count is saved with the
    # pump before the reply that acknowledges it; a count waiting for its event is
    # logged exactly COALESCE_S after that stream's previous event (a timer of
    # advance_to), so it is logged at its time even across a restart.
    # The checks themselves are emulator/session.py's.

    def record_auth_failure(self, reason: ErrorReason) -> None:
        """Count one authentication refusal; log a coalesced AUTH_FAILURE when one is due."""
        self.tick()
        self.changes += 1
        args = self.auth.record(reason, self.time)
        if args is not None:
            self._log(EventType.AUTH_FAILURE, arg1=args[0], arg2=args[1])

    def session_opened(self, role: int) -> None:
        """Count one session opened; log a coalesced SESSION_OPENED (arg1 the role, arg2 the
        sessions of that role since its previous SESSION_OPENED) when one is due."""
        self.tick()
        self.changes += 1
        count = self.sessions.record(role, self.time)
        if count is not None:
            self._log(EventType.SESSION_OPENED, arg1=int(role), arg2=count)

    def _log_routine(self) -> None:
        """Log the coalesced counts whose time has come (AUTH_FAILURE first, then by role)."""
        args = self.auth.flush(self.time)
        if args is not None:
            self._log(EventType.AUTH_FAILURE, arg1=args[0], arg2=args[1])
        for role, count in self.sessions.flush(self.time):
            self._log(EventType.SESSION_OPENED, arg1=int(role), arg2=count)

    def advance_to(self, target: int) -> None:
        """Run the pump until pump time `target`, stopping at every threshold to log it."""
        target = int(target)
        while self.time < target:
            rate = self.current_rate_nl_per_day
            bolus = self.bolus if self.delivering else None
            drain = BATTERY_UNIT + rate + (bolus.battery_rate if bolus else 0)
            end = target
            change = self.program.next_change(self.time)
            if change is not None:
                end = min(end, change)
            if bolus is not None:
                end = min(end, self.time + bolus.seconds_left)
            if rate > 0 or bolus is not None:
                for level in self._reservoir_levels():
                    end = min(end, self.time + self._seconds_to_deliver(self.reservoir_nl - level, rate, bolus))
            for level in self._battery_levels():
                end = min(end, self.time + _ceil_div(self.battery_charge - level, drain))
            for due in self._timers():
                if due > self.time:
                    end = min(end, due)
            self._integrate(end - self.time, rate, bolus, drain)
            self.time = end
            self._check_thresholds()

    def _reservoir_levels(self) -> list[int]:
        """Reservoir levels (nL) still to be crossed, each of which logs something."""
        levels = []
        low = self.low_reservoir_alarm_ul * NL_PER_UL
        if not self.alarms & Alarm.LOW_RESERVOIR and self.reservoir_nl > low:
            levels.append(low)
        if self.reservoir_nl > 0:
            levels.append(0)
        return levels

    def _timers(self) -> list[int]:
        """Pump times at which something is due: MRI auto-exit, stall recovery, field changes,
        and a coalesced count of routine events waiting for its event."""
        due = self.sessions.due_at()
        auth = self.auth.due_at()
        if auth is not None:
            due.append(auth)
        if self.mri_mode is MriMode.SAFE:
            due.append(self.mri_auto_exit_at)
        if self.stalled and self.stall_recovery_at and not self.stall_needs_interrogation:
            due.append(self.stall_recovery_at)
        if self.scenario:
            due.append(self.scenario[0].at)
        return due

    def _battery_levels(self) -> list[int]:
        levels = []
        if self.battery_state is BatteryState.OK and self.battery_charge > self.eri_level:
            levels.append(self.eri_level)
        if self.battery_charge > 0:
            levels.append(0)
        return levels

    def _seconds_to_deliver(self, amount_nl: int, rate: int, bolus: Bolus | None = None) -> int:
        """The fewest whole seconds after which at least amount_nl has left the reservoir."""
        if bolus is None:
            return max(1, _ceil_div(amount_nl * DAY - self.delivery_remainder, rate))

        def delivered(dt: int) -> int:
            return ((self.delivery_remainder + rate * dt) // DAY
                    + (bolus.remainder + bolus.volume_nl * dt) // bolus.duration_s)

        # each part alone bounds the answer; the exact one is found by bisection
        hi = _ceil_div(amount_nl * bolus.duration_s - bolus.remainder, bolus.volume_nl)
        if rate > 0:
            hi = min(hi, _ceil_div(amount_nl * DAY - self.delivery_remainder, rate))
        lo, hi = 1, max(1, hi)
        while lo < hi:
            mid = (lo + hi) // 2
            if delivered(mid) >= amount_nl:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _integrate(self, dt: int, rate: int, bolus: Bolus | None, drain: int) -> None:
        total = self.delivery_remainder + rate * dt
        delivered, self.delivery_remainder = divmod(total, DAY)
        extra = 0
        if bolus is not None:
            extra, bolus.remainder = divmod(bolus.remainder + bolus.volume_nl * dt, bolus.duration_s)
            bolus.elapsed_s += dt
        # a shortfall (the reservoir running dry) is the bolus's: the program's part comes
        # first, so the split does not depend on how time was cut
        delivered = min(delivered, self.reservoir_nl)
        extra = min(extra, self.reservoir_nl - delivered)
        if bolus is not None:
            bolus.delivered_nl += extra
        taken = delivered + extra
        self.reservoir_nl -= taken
        self.delivered_nl += taken
        self.battery_charge = max(0, self.battery_charge - drain * dt)

    def _check_thresholds(self) -> None:
        """Log everything that is true now and not yet logged, in clinical order."""
        self._check_mri()
        if self.reservoir_nl <= self.low_reservoir_alarm_ul * NL_PER_UL:
            self.raise_alarm(Alarm.LOW_RESERVOIR)
        if self.reservoir_nl == 0 and SUSPEND_EMPTY not in self.suspended:
            self._log(EventType.RESERVOIR_EMPTY)
            self.raise_alarm(Alarm.EMPTY_RESERVOIR)
            self.delivery_remainder = 0
            self.suspend(SUSPEND_EMPTY)
        if self.battery_state is BatteryState.OK and self.battery_charge <= self.eri_level:
            self.battery_state = BatteryState.ERI
            self.eri_time = self.time
            self._log(EventType.BATTERY_ERI)
            self.raise_alarm(Alarm.ERI)
        if self.battery_state is not BatteryState.EOS and self.battery_charge == 0:
            self.battery_state = BatteryState.EOS
            self.eos_time = self.time
            self._log(EventType.BATTERY_EOS)
            self.raise_alarm(Alarm.EOS)
            self.suspend(SUSPEND_EOS)
        if self.bolus is not None and (not self.delivering or self.bolus.seconds_left <= 0):
            self._finish_bolus()
        self._log_routine()

    # --- MRI: safe mode, the static field, the motor's stall ---------------------------

    @property
    def peristaltic(self) -> bool:
        return self.spec.design == "peristaltic"

    def _check_mri(self) -> None:
        """Scheduled field changes, the automatic exit, stall recovery and the field's effects."""
        while self.scenario and self.scenario[0].at <= self.time:
            change = self.scenario.pop(0)
            self._set_field(change.tesla, change.gradient_t_per_m)
            self._field_effects()  # each change acts, even two in the same second
        if self.mri_mode is MriMode.SAFE and self.time >= self.mri_auto_exit_at:
            self._exit_mri(automatic=True)
        if (self.stalled and self.stall_recovery_at is not None and not self.stall_needs_interrogation
                and self.time >= self.stall_recovery_at):
            self._recover_stall()
        self._field_effects()

    def _field_effects(self) -> None:
        """What the field does outside MRI-safe mode: a peristaltic motor stalls; a valve-gated
        pump's valves open and the reservoir is dumped. In MRI-safe mode: nothing."""
        if not self.field_tesla or self.mri_mode is not MriMode.OFF:
            return
        if self.peristaltic:
            if not self.stalled:
                self._stall()
        elif self.reservoir_nl > 0:
            self._dump()

    def _set_field(self, tesla: float, gradient_t_per_m: float) -> None:
        self.field_tesla, self.field_gradient_t_per_m = tesla, gradient_t_per_m
        self.changes += 1
        if not self.stalled:
            return
        if not tesla:
            if self.stall_recovery_at is None:  # the field has ended: recovery is now scheduled
                self.stall_recovery_at = self.time + self.stall_recovery_s
        elif self.mri_mode is MriMode.OFF:
            self.stall_recovery_at = None  # back in the field before recovering: still stalled

    def _stall(self) -> None:
        """MOTOR_STALL, the MOTOR_STALL alarm (HIGH) and delivery suspended."""
        self.stalled = True
        self.stall_recovery_at = None
        # a pump already alarming may not restart until it is interrogated
        self.stall_needs_interrogation = bool(self.alarms & ~Alarm.MOTOR_STALL)
        self._log(EventType.MOTOR_STALL)
        self.raise_alarm(Alarm.MOTOR_STALL)
        self.suspend(SUSPEND_STALL)

    def _recover_stall(self) -> None:
        self.stalled = False
        self.stall_recovery_at = None
        self.stall_needs_interrogation = False
        self._log(EventType.STALL_RECOVERY)
        self.clear_alarm(Alarm.MOTOR_STALL)
        self.resume(SUSPEND_STALL)

    def _dump(self) -> None:
        """The valves opened: the whole reservoir is delivered at once (arg1: uL, rounded up,
        never under-stating what the patient received)."""
        volume = self.reservoir_nl
        self.reservoir_nl = 0
        self.delivered_nl += volume
        self._log(EventType.UNCONTROLLED_BOLUS, arg1=_ceil_div(volume, NL_PER_UL))
        self.raise_alarm(Alarm.UNCONTROLLED_BOLUS)
        # the empty-reservoir rules of _check_thresholds follow

    def _enter_mri(self, auto_exit_s: int) -> None:
        self.mri_program = self.program
        self.mri_mode = MriMode.SAFE
        self.mri_auto_exit_at = self.time + auto_exit_s
        self._log(EventType.MRI_SAFE_ENTERED, arg1=auto_exit_s)
        self.suspend(SUSPEND_MRI)  # motor parked / valves closed

    def _exit_mri(self, automatic: bool) -> None:
        """Restore the recorded program and delivery (arg1 = 1 when by the timer)."""
        self.program = self.mri_program if self.mri_program is not None else self.program
        self.mri_program = None
        self.mri_mode = MriMode.OFF
        self.mri_auto_exit_at = 0
        self._log(EventType.MRI_SAFE_EXITED, arg1=1 if automatic else 0)
        self.resume(SUSPEND_MRI)

    def set_field(self, tesla, gradient_t_per_m=DEFAULT_GRADIENT_T_PER_M) -> None:
        """Put the pump in a static field now (tesla 0: take it out). ValueError when invalid."""
        tesla, gradient = check_field(tesla, gradient_t_per_m)
        self.tick()
        self._set_field(tesla, gradient)
        self._check_thresholds()

    def schedule_field(self, changes: list[tuple[int, float, float]]) -> None:
        """Replace the scheduled field changes with (after_s, tesla, gradient) from now; those
        due now act at once. ValueError when one is invalid (nothing is scheduled then)."""
        if len(changes) > MAX_SCENARIO_EVENTS:
            raise ValueError(f"at most {MAX_SCENARIO_EVENTS} scheduled events")
        checked = []
        for after_s, tesla, gradient in changes:
            if not isinstance(after_s, int) or isinstance(after_s, bool) or not 0 <= after_s <= 2**40:
                raise ValueError(f"after_s {after_s!r} must be a non-negative integer of seconds")
            checked.append((after_s, *check_field(tesla, gradient)))
        self.tick()
        # sorted by time; changes at the same time keep their order
        self.scenario = [FieldChange(self.time + a, t, g) for a, t, g in sorted(checked, key=lambda c: c[0])]
        self.changes += 1
        self._check_thresholds()

    def interrogated(self) -> None:
        """An authenticated INTERROGATE: a pump that was alarming when it stalled restarts now,
        if its recovery time has come."""
        if (self.stalled and self.stall_needs_interrogation and self.stall_recovery_at is not None
                and self.time >= self.stall_recovery_at):
            self._recover_stall()

    def _finish_bolus(self) -> None:
        """BOLUS_FINISHED, arg1 = the dose not delivered, ng (0: complete)."""
        left = self.bolus.remaining_ng(self.concentration_ng_per_ml) if self.bolus.seconds_left > 0 else 0
        self.bolus = None
        self._log(EventType.BOLUS_FINISHED, arg1=left)

    # --- state changes ------------------------------------------------------

    def _log(self, type_: EventType, priority: Priority = Priority.NONE, arg1: int = 0, arg2: int = 0) -> LogEvent:
        self.changes += 1
        return self.log.append(self.time, type_, priority, arg1, arg2)

    def raise_alarm(self, alarm: Alarm) -> None:
        if not self.alarms & alarm:
            self.alarms |= alarm
            self._log(EventType.ALARM_RAISED, ALARM_PRIORITY[alarm], int(alarm))

    def clear_alarm(self, alarm: Alarm) -> None:
        if self.alarms & alarm:
            self.alarms &= ~alarm
            self._log(EventType.ALARM_CLEARED, ALARM_PRIORITY[alarm], int(alarm))

    def suspend(self, reason: str) -> None:
        """Stop delivery for `reason` (logs DELIVERY_STOPPED when it was running)."""
        if reason in self.suspended:
            return
        was_running = not self.suspended
        self.suspended.add(reason)
        self.changes += 1
        if was_running:
            self._log(EventType.DELIVERY_STOPPED, arg1=int(SUSPEND_ALARM.get(reason, 0)))

    def resume(self, reason: str) -> None:
        """Lift one suspension (logs DELIVERY_RESUMED when none is left)."""
        if reason not in self.suspended:
            return
        self.suspended.discard(reason)
        self.changes += 1
        if not self.suspended:
            self._log(EventType.DELIVERY_RESUMED)

    def reset(self) -> None:
        """A simulated pump reset: the therapy and the log survive (non-volatile), the
        reset is logged and alarmed; a prepared transaction and every secure session
        (volatile) are lost."""
        self.tick()
        self.pending = None  # a prepared transaction is volatile: a reset loses it
        self.resets += 1  # the server ends every session when it sees this move
        self._log(EventType.POWER_ON, arg1=0)
        self.raise_alarm(Alarm.RESET)

    # --- two-phase writes -------------------------------------------------------
    #
    # PREPARE_* validates, stores the single pending transaction and returns its echo
    # (Prepared); nothing else changes. COMMIT(txid) re-checks and applies it. Any
    # PREPARE the pump reads first discards the pending one, so after a refused
    # PREPARE nothing is pending. Refusals raise Refusal(reason, detail).

    def _check_writable(self, kind: WriteKind | None = None) -> None:
        """State checks for every PREPARE and COMMIT of `kind` (INVALID_STATE)."""
        if self.battery_state is BatteryState.EOS:
            raise Refusal(ErrorReason.INVALID_STATE, "battery at end of service: delivery has stopped")
        if kind is WriteKind.MRI_EXIT:
            if self.mri_mode is not MriMode.SAFE:
                raise Refusal(ErrorReason.INVALID_STATE, "not in MRI-safe mode")
            return
        if self.mri_mode is not MriMode.OFF:
            if kind is WriteKind.MRI_ENTER:
                raise Refusal(ErrorReason.INVALID_STATE,
                              f"already in MRI-safe mode (automatic exit at {self.mri_auto_exit_at})")
            raise Refusal(ErrorReason.INVALID_STATE, f"MRI mode {self.mri_mode.name} is on")
        if kind is WriteKind.MRI_ENTER:
            if self.bolus is not None:
                raise Refusal(ErrorReason.INVALID_STATE,
                              f"a bolus is running (txid {self.bolus.txid}): enter MRI-safe mode after it")
            if self.spec.mr_must_be_empty and self.reservoir_nl > 0:
                raise Refusal(ErrorReason.INVALID_STATE,
                              f"reservoir holds {_ceil_div(self.reservoir_nl, NL_PER_UL)} uL: a valve-gated "
                              "pump must be emptied first (the field can open its valves)")

    def _check_new_request(self, body: dict) -> None:
        txid = body["txid"]
        if any(a.txid == txid for a in self.applied):
            raise Refusal(ErrorReason.INVALID_STATE, f"txid {txid} was already applied; use a new one")
        # compare-and-set: a change checked against a state that is no longer the pump's is refused
        if body["based_on_txid"] != self.last_txid:
            raise Refusal(ErrorReason.CHANGED_SINCE_READ,
                          f"based on txid {body['based_on_txid']}, but the pump has applied txid "
                          f"{self.last_txid} since: read it again")

    def _build_program(self, mode: InfusionMode, steps: list[dict], concentration_ng_per_ml: int) -> Program:
        """The program a request asks for, as the pump would run it, or OUT_OF_RANGE."""
        mode = InfusionMode(mode)
        if mode in (InfusionMode.STOPPED, InfusionMode.MINIMUM):
            if steps:
                raise Refusal(ErrorReason.OUT_OF_RANGE,
                              f"a {mode.name} program takes no steps (the pump sets them), not {len(steps)}")
            if mode is InfusionMode.STOPPED:
                return Program.stopped()
            return Program.minimum(concentration_ng_per_ml)
        pairs = [(s["start_minute"], s["dose_ng_per_day"]) for s in steps]
        if mode is InfusionMode.CONTINUOUS and (len(pairs) != 1 or pairs[0][0] != 0):
            raise Refusal(ErrorReason.OUT_OF_RANGE,
                          f"a CONTINUOUS program has exactly one step, at 00:00 (got {len(pairs)})")
        try:
            program = Program.from_doses(mode, pairs, concentration_ng_per_ml)
        except ValueError as exc:
            raise Refusal(ErrorReason.OUT_OF_RANGE, f"invalid {mode.name} schedule: {exc}") from None
        low, high = self.spec.min_flow_nl_per_day, self.spec.max_flow_nl_per_day
        for step in program.steps:
            at = _hhmm(step.start_minute)
            if step.dose_ng_per_day == 0:
                raise Refusal(ErrorReason.OUT_OF_RANGE, f"step {at}: a dose of 0 (use mode STOPPED)")
            if not low <= step.rate_nl_per_day <= high:
                raise Refusal(ErrorReason.OUT_OF_RANGE,
                              f"step {at}: {step.dose_ng_per_day} ng/day needs {step.rate_nl_per_day} nL/day, "
                              f"outside {low}..{high} nL/day")
        return program

    def _store_pending(self, pending: Pending) -> dict:
        self.pending = pending
        self.changes += 1
        return pending.body()

    def prepare_program(self, body: dict) -> dict:
        self.pending = None
        self._check_new_request(body)
        if body["drug"] != self.drug or body["concentration_ng_per_ml"] != self.concentration_ng_per_ml:
            raise Refusal(
                ErrorReason.INVALID_STATE,
                f"request says {Drug(body['drug']).name} {body['concentration_ng_per_ml']} ng/mL; reservoir "
                f"holds {self.drug.name} {self.concentration_ng_per_ml} ng/mL",
            )
        self._check_writable()
        program = self._build_program(body["mode"], body["steps"], self.concentration_ng_per_ml)
        return self._store_pending(Pending(
            body["txid"], WriteKind.PROGRAM, program, self.drug, self.concentration_ng_per_ml,
            self.reservoir_nl // NL_PER_UL,
        ))

    def prepare_refill(self, body: dict) -> dict:
        self.pending = None
        self._check_new_request(body)
        self._check_writable()
        if self.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE, "a bolus is running: refill after it finishes")
        if body["drug"] == Drug.NONE:
            raise Refusal(ErrorReason.OUT_OF_RANGE, "a refill needs a drug (NONE given)")
        capacity = self.spec.capacity_ul
        if body["volume_ul"] > capacity:
            raise Refusal(ErrorReason.OUT_OF_RANGE,
                          f"volume {body['volume_ul']} uL exceeds the capacity {capacity} uL")
        if body["withdrawn_ul"] > capacity:
            raise Refusal(ErrorReason.OUT_OF_RANGE,
                          f"withdrawn {body['withdrawn_ul']} uL exceeds the capacity {capacity} uL")
        concentration = body["concentration_ng_per_ml"]
        program = self._build_program(body["mode"], body["steps"], concentration)
        return self._store_pending(Pending(
            body["txid"], WriteKind.REFILL, program, Drug(body["drug"]), concentration,
            body["volume_ul"], withdrawn_ul=body["withdrawn_ul"],
        ))

    def _check_bolus(self, volume_nl: int, duration_s: int) -> None:
        if self.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE,
                          f"a bolus is running (txid {self.bolus.txid}, "
                          f"{self.bolus.remaining_ng(self.concentration_ng_per_ml)} ng left)")
        if volume_nl > self.reservoir_nl:
            raise Refusal(ErrorReason.INVALID_STATE,
                          f"bolus needs {volume_nl} nL; the reservoir holds {self.reservoir_nl} nL")
        # the mechanism's top speed bounds program + bolus together
        bolus_rate = _ceil_div(volume_nl * DAY, duration_s)
        high = self.spec.max_flow_nl_per_day
        if self.program.max_rate_nl_per_day() + bolus_rate > high:
            raise Refusal(ErrorReason.OUT_OF_RANGE,
                          f"bolus at {bolus_rate} nL/day on top of the program exceeds {high} nL/day; "
                          "give a longer duration")

    def prepare_bolus(self, body: dict) -> dict:
        self.pending = None
        self._check_new_request(body)
        self._check_writable()
        if self.drug == Drug.NONE:
            raise Refusal(ErrorReason.INVALID_STATE, "no drug in the reservoir")
        volume = bolus_volume_nl(body["dose_ng"], self.concentration_ng_per_ml)
        self._check_bolus(volume, body["duration_s"])
        return self._store_pending(Pending(
            body["txid"], WriteKind.BOLUS, self.program, self.drug, self.concentration_ng_per_ml,
            self.reservoir_nl // NL_PER_UL, bolus_dose_ng=body["dose_ng"],
            bolus_duration_s=body["duration_s"], bolus_volume_nl=volume,
        ))

    def prepare_mri_enter(self, body: dict) -> dict:
        self.pending = None
        self._check_new_request(body)
        self._check_writable(WriteKind.MRI_ENTER)
        auto_exit_s = body["auto_exit_s"]
        if not 3600 <= auto_exit_s <= 86_400:  # the codec's range too
            raise Refusal(ErrorReason.OUT_OF_RANGE, f"automatic exit after {auto_exit_s} s: give 3600..86400 s")
        return self._store_pending(Pending(
            body["txid"], WriteKind.MRI_ENTER, self.program, self.drug, self.concentration_ng_per_ml,
            self.reservoir_nl // NL_PER_UL, mri_auto_exit_s=auto_exit_s,
        ))

    def prepare_mri_exit(self, body: dict) -> dict:
        self.pending = None
        self._check_new_request(body)
        self._check_writable(WriteKind.MRI_EXIT)
        return self._store_pending(Pending(
            body["txid"], WriteKind.MRI_EXIT, self.mri_program, self.drug, self.concentration_ng_per_ml,
            self.reservoir_nl // NL_PER_UL,
        ))

    def tamper_pending(self) -> bool:
        """Fault injection: make the pending program's first dose 10 % higher (rate recomputed)
        while its echo has already gone out. False when there is nothing to tamper with."""
        p = self.pending
        if (p is None or p.kind not in (WriteKind.PROGRAM, WriteKind.REFILL)
                or p.program.mode not in (InfusionMode.CONTINUOUS, InfusionMode.FLEX)):
            return False
        first = p.program.steps[0]
        dose = max(first.dose_ng_per_day * 11 // 10, first.dose_ng_per_day + 1)
        step = Step(first.start_minute, dose, rate_for_dose(dose, p.concentration_ng_per_ml))
        self.pending = replace(p, program=Program(p.program.mode, (step,) + p.program.steps[1:]))
        return True

    def commit(self, txid: int) -> dict:
        """Apply the pending transaction txid now; ALREADY_APPLIED for a recent one."""
        for done in self.applied:
            if done.txid == txid:
                return {"txid": txid, "outcome": CommitOutcome.ALREADY_APPLIED, "kind": done.kind,
                        "applied_at": done.applied_at}
        pending = self.pending
        if pending is None or pending.txid != txid:
            raise Refusal(ErrorReason.INVALID_STATE, f"no prepared transaction {txid}")
        self.pending = None  # whatever happens next, it is used up
        self.changes += 1
        self._check_writable(pending.kind)  # time may have passed since PREPARE
        if pending.kind is WriteKind.MRI_ENTER:
            self._enter_mri(pending.mri_auto_exit_s)
        elif pending.kind is WriteKind.MRI_EXIT:
            self._exit_mri(automatic=False)
        elif pending.kind is WriteKind.BOLUS:
            self._check_bolus(pending.bolus_volume_nl, pending.bolus_duration_s)
            self.bolus = Bolus(txid, pending.bolus_dose_ng, pending.bolus_volume_nl,
                               pending.bolus_duration_s, self.time)
            self._log(EventType.BOLUS_STARTED, arg1=pending.bolus_dose_ng, arg2=pending.bolus_duration_s)
        elif pending.kind is WriteKind.REFILL:
            if self.bolus is not None:
                raise Refusal(ErrorReason.INVALID_STATE, "a bolus is running: refill after it finishes")
            self._refill(pending)
        else:
            previous = self.program.daily_dose_ng()
            self.program = pending.program
            self._log(EventType.PROGRAM_CHANGED, arg1=previous, arg2=self.program.daily_dose_ng())
        self.last_txid = txid
        self.last_programmed_at = self.time
        self.applied.append(Applied(txid, pending.kind, self.time))
        self._log(EventType.TX_APPLIED, arg1=txid, arg2=int(pending.kind))
        self._check_thresholds()
        return {"txid": txid, "outcome": CommitOutcome.APPLIED, "kind": pending.kind, "applied_at": self.time}

    def _refill(self, pending: Pending) -> None:
        previous = self.program.daily_dose_ng()
        self.reservoir_nl = pending.reservoir_ul * NL_PER_UL
        self.drug = pending.drug
        self.concentration_ng_per_ml = pending.concentration_ng_per_ml
        self.program = pending.program
        self._log(EventType.REFILL, arg1=pending.reservoir_ul, arg2=pending.concentration_ng_per_ml)
        self._log(EventType.PROGRAM_CHANGED, arg1=previous, arg2=self.program.daily_dose_ng())
        if self.reservoir_nl > 0:
            self.clear_alarm(Alarm.EMPTY_RESERVOIR)
        if self.reservoir_nl > self.low_reservoir_alarm_ul * NL_PER_UL:
            self.clear_alarm(Alarm.LOW_RESERVOIR)
        if self.reservoir_nl > 0 and SUSPEND_EMPTY in self.suspended:
            self.resume(SUSPEND_EMPTY)  # logs DELIVERY_RESUMED unless something else still stops it

    # --- derived values -------------------------------------------------------

    @property
    def eri_level(self) -> int:
        return ERI_WARNING_S * (BATTERY_UNIT + self.spec.max_flow_nl_per_day)

    @property
    def delivering(self) -> bool:
        return not self.suspended

    @property
    def current_rate_nl_per_day(self) -> int:
        """The program's rate now (a running bolus comes on top; see bolus_remaining_ng)."""
        return self.program.rate_at(self.time) if self.delivering else 0

    @property
    def bolus_remaining_ng(self) -> int:
        return self.bolus.remaining_ng(self.concentration_ng_per_ml) if self.bolus else 0

    def program_body(self) -> dict:
        """The protocol's Program struct for what runs now."""
        return self.program.body(self.drug, self.concentration_ng_per_ml)

    @property
    def battery_percent(self) -> int:
        # rounded up: 0 % only once the charge is gone
        return min(100, _ceil_div(self.battery_charge * 100, self.battery_capacity))

    def projected_eri(self) -> int:
        """ERI time: actual once reached, else projected at the programmed 24-hour volume."""
        if self.battery_state is not BatteryState.OK:
            return self.eri_time
        need = self.battery_charge - self.eri_level
        rate = self.program.daily_volume_nl() if self.delivering else 0
        if rate > 0 and self.reservoir_nl > 0:
            # at the programmed rate until the reservoir is empty, then electronics only
            t_empty = self._seconds_to_deliver(self.reservoir_nl, rate)
            drain = BATTERY_UNIT + rate
            if need <= drain * t_empty:
                return self.time + _ceil_div(need, drain)
            return self.time + t_empty + _ceil_div(need - drain * t_empty, BATTERY_UNIT)
        return self.time + _ceil_div(need, BATTERY_UNIT)

    def status(self) -> dict:
        """The protocol's Status struct (protocol/messages.py)."""
        eri_at = self.projected_eri()
        return {
            "serial_number": self.serial,
            "model": self.spec.code,
            "firmware": dict(self.firmware),
            "pump_time": self.time,
            "drug": self.drug,
            "concentration_ng_per_ml": self.concentration_ng_per_ml,
            "mode": self.program.mode,
            "daily_dose_ng_per_day": self.program.daily_dose_ng(),
            "daily_volume_nl_per_day": self.program.daily_volume_nl(),
            "current_rate_nl_per_day": self.current_rate_nl_per_day,
            # calculated volume, rounded down: never report drug that is not there
            "reservoir_ul": self.reservoir_nl // NL_PER_UL,
            "capacity_ul": self.spec.capacity_ul,
            "low_reservoir_alarm_ul": self.low_reservoir_alarm_ul,
            "battery_state": self.battery_state,
            "battery_percent": self.battery_percent,
            "eri_at": eri_at,
            "replace_by": eri_at + ERI_WARNING_S,
            "alarms": self.alarms,
            "mri_mode": self.mri_mode,
            "mri_auto_exit_at": self.mri_auto_exit_at,
            "last_txid": self.last_txid,
            "last_programmed_at": self.last_programmed_at,
            "bolus_remaining_ng": self.bolus_remaining_ng,
            "event_count": self.log.count,
            "auth_failures": self.auth.total,
        }

    def describe(self) -> dict:
        """Internal state for the test-only control channel (JSON-friendly)."""
        eri_at = self.projected_eri()
        return {
            "pump_time": self.time,
            "model": self.spec.name,
            "serial": self.serial,
            "drug": self.drug.name.lower(),
            "concentration_ng_per_ml": self.concentration_ng_per_ml,
            "mode": self.program.mode.name,
            "program": self.program.to_dict(),
            "current_rate_nl_per_day": self.current_rate_nl_per_day,
            "daily_volume_nl_per_day": self.program.daily_volume_nl(),
            "daily_dose_ng_per_day": self.program.daily_dose_ng(),
            "reservoir_nl": self.reservoir_nl,
            "delivery_remainder": self.delivery_remainder,
            "delivered_nl": self.delivered_nl,
            "capacity_ul": self.spec.capacity_ul,
            "low_reservoir_alarm_ul": self.low_reservoir_alarm_ul,
            "alarms": [a.name for a in Alarm if self.alarms & a],
            "suspended": sorted(self.suspended),
            "delivering": self.delivering,
            "battery_state": self.battery_state.name,
            "battery_charge": self.battery_charge,
            "battery_nominal_seconds": self.battery_charge // BATTERY_UNIT,
            "battery_percent": self.battery_percent,
            "eri_at": eri_at,
            "replace_by": eri_at + ERI_WARNING_S,
            "eos_at": self.eos_time,
            "mri_mode": self.mri_mode.name,
            "mri_auto_exit_at": self.mri_auto_exit_at,
            "mri_program": self.mri_program.to_dict() if self.mri_program else None,
            **self.describe_mri(),
            "last_txid": self.last_txid,
            "last_programmed_at": self.last_programmed_at,
            "pending": self.pending.describe() if self.pending else None,
            "applied": [[a.txid, a.kind.name, a.applied_at] for a in self.applied],
            "bolus": self.bolus.to_dict() if self.bolus else None,
            "bolus_remaining_ng": self.bolus_remaining_ng,
            "event_count": self.log.count,
            "oldest_index": self.log.oldest_index,
            "auth_failures": self.auth.total,
            "auth_failures_unlogged": self.auth.unlogged,
            # sessions opened since manufacture, and those not yet counted in a SESSION_OPENED
            "sessions_opened": {r.name.lower(): s.total for r, s in self.sessions.roles.items()},
            "sessions_unlogged": {r.name.lower(): s.unlogged for r, s in self.sessions.roles.items()},
        }

    def describe_mri(self) -> dict:
        """The field and what it does to the mechanism (control channel `state` and `field`)."""
        if self.peristaltic:
            motor = "stalled" if self.stalled else "parked" if self.mri_mode is MriMode.SAFE else "running"
            valves = None
        else:
            motor = None
            # closed in MRI-safe mode; forced open by a field outside it; else opened by the pump's control
            valves = "closed" if self.mri_mode is MriMode.SAFE else "open" if self.field_tesla else "gated"
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

    # --- persistence ----------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "model": self.spec.name,
            "serial": self.serial,
            "firmware": dict(self.firmware),
            "drug": self.drug.name,
            "concentration_ng_per_ml": self.concentration_ng_per_ml,
            "program": self.program.to_dict(),
            "reservoir_nl": self.reservoir_nl,
            "delivery_remainder": self.delivery_remainder,
            "delivered_nl": self.delivered_nl,
            "low_reservoir_alarm_ul": self.low_reservoir_alarm_ul,
            "battery_charge": self.battery_charge,
            "battery_capacity": self.battery_capacity,
            "battery_state": self.battery_state.name,
            "eri_time": self.eri_time,
            "eos_time": self.eos_time,
            "alarms": [a.name for a in Alarm if self.alarms & a],
            "suspended": sorted(self.suspended),
            "pump_time": self.time,
            "mri_mode": self.mri_mode.name,
            "mri_auto_exit_at": self.mri_auto_exit_at,
            "mri_program": self.mri_program.to_dict() if self.mri_program else None,
            "field": {"tesla": self.field_tesla, "gradient_t_per_m": self.field_gradient_t_per_m},
            "stall": {"stalled": self.stalled, "recovery_at": self.stall_recovery_at,
                      "needs_interrogation": self.stall_needs_interrogation},
            "stall_recovery_s": self.stall_recovery_s,
            "scenario": [c.to_list() for c in self.scenario],
            "last_txid": self.last_txid,
            "last_programmed_at": self.last_programmed_at,
            # the pending transaction is volatile (lost on restart, like on a reset): not saved
            "applied": [[a.txid, a.kind.name, a.applied_at] for a in self.applied],
            "bolus": self.bolus.to_dict() if self.bolus else None,
            "auth": self.auth.to_dict(),
            "sessions": self.sessions.to_dict(),
            "log": {
                "capacity": self.log.events.maxlen,
                "count": self.log.count,
                "events": [e.to_list() for e in self.log.events],
            },
        }

    @classmethod
    def from_dict(cls, data: dict, clock: Callable[[], int] | None = None) -> "Pump":
        """Rebuild a saved pump; raises ValueError/KeyError/TypeError on anything inconsistent.

        Does not log POWER_ON: the caller advances the clock over the downtime first,
        then calls power_on(restored=True).
        """
        pump = cls()
        pump.spec = MODELS_BY_NAME[data["model"]]
        pump.serial = data["serial"]
        if not isinstance(pump.serial, str) or not valid_serial(pump.serial):
            raise ValueError(f"bad serial {pump.serial!r}")
        pump.firmware = {k: _uint(data["firmware"][k], 8) for k in ("major", "minor", "patch")}
        pump.drug = Drug[data["drug"]]
        pump.concentration_ng_per_ml = _uint(data["concentration_ng_per_ml"], 32)
        pump.program = Program.from_dict(data["program"])
        pump.reservoir_nl = _uint(data["reservoir_nl"], 64)
        if pump.reservoir_nl > pump.spec.capacity_ul * NL_PER_UL:
            raise ValueError("reservoir exceeds the capacity")
        pump.delivery_remainder = _uint(data["delivery_remainder"], 64)
        if pump.delivery_remainder >= DAY:
            raise ValueError("delivery remainder out of range")
        pump.delivered_nl = _uint(data["delivered_nl"], 64)
        pump.low_reservoir_alarm_ul = _uint(data["low_reservoir_alarm_ul"], 32)
        pump.battery_charge = _uint(data["battery_charge"], 80)
        pump.battery_capacity = _uint(data["battery_capacity"], 80)
        if pump.battery_capacity == 0 or pump.battery_charge > pump.battery_capacity:
            raise ValueError("battery charge exceeds its capacity")
        pump.battery_state = BatteryState[data["battery_state"]]
        pump.eri_time = _uint(data["eri_time"], 63)
        pump.eos_time = _uint(data["eos_time"], 63)
        alarms = Alarm(0)
        for name in data["alarms"]:
            alarms |= Alarm[name]
        pump.alarms = alarms
        pump.suspended = set(data["suspended"])
        if not pump.suspended <= SUSPEND_REASONS:
            raise ValueError(f"unknown suspension reasons {sorted(pump.suspended)}")
        pump.time = _uint(data["pump_time"], 63)
        pump.mri_mode = MriMode[data["mri_mode"]]
        pump.mri_auto_exit_at = _uint(data["mri_auto_exit_at"], 63)
        pump.mri_program = Program.from_dict(data["mri_program"]) if data["mri_program"] is not None else None
        safe = pump.mri_mode is MriMode.SAFE
        if safe != (pump.mri_program is not None) or safe != (SUSPEND_MRI in pump.suspended) \
                or safe != (pump.mri_auto_exit_at > 0):
            raise ValueError("MRI-safe mode, its recorded program, timer and suspension disagree")
        field = data["field"]
        pump.field_tesla, pump.field_gradient_t_per_m = check_field(field["tesla"], field["gradient_t_per_m"])
        stall = data["stall"]
        pump.stalled = stall["stalled"] is True
        recovery = stall["recovery_at"]
        pump.stall_recovery_at = None if recovery is None else _uint(recovery, 63)
        pump.stall_needs_interrogation = stall["needs_interrogation"] is True
        if pump.stalled != (SUSPEND_STALL in pump.suspended) or pump.stalled != bool(pump.alarms & Alarm.MOTOR_STALL):
            raise ValueError("motor stall, its alarm and its suspension disagree")
        if not pump.stalled and (recovery is not None or pump.stall_needs_interrogation):
            raise ValueError("stall recovery scheduled for a motor that is not stalled")
        pump.stall_recovery_s = _uint(data["stall_recovery_s"], 32)
        if pump.stall_recovery_s > MAX_STALL_RECOVERY_S:
            raise ValueError("stall recovery time out of range")
        if len(data["scenario"]) > MAX_SCENARIO_EVENTS:
            raise ValueError("too many scheduled field changes")
        pump.scenario = [FieldChange.from_list(row) for row in data["scenario"]]
        if [c.at for c in pump.scenario] != sorted(c.at for c in pump.scenario):
            raise ValueError("scheduled field changes out of order")
        pump.last_txid = _uint(data["last_txid"], 32)
        pump.last_programmed_at = _uint(data["last_programmed_at"], 63)
        applied = data["applied"]
        if not isinstance(applied, list) or len(applied) > APPLIED_HISTORY:
            raise ValueError("applied-transaction history is not a list of at most 16")
        for row in applied:
            txid, kind, at = row
            pump.applied.append(Applied(_uint(txid, 32), WriteKind[kind], _uint(at, 63)))
        pump.bolus = Bolus.from_dict(data["bolus"]) if data["bolus"] is not None else None
        pump.auth = FailureLog.from_dict(data.get("auth"))  # absent in files from before the secure link
        pump.sessions = SessionLog.from_dict(data.get("sessions"))  # absent before protocol version 3
        log = data["log"]
        pump.log = EventLog(_uint(log["capacity"], 32) or LOG_CAPACITY)
        events = [LogEvent.from_list(row) for row in log["events"]]
        count = _uint(log["count"], 32)
        if len(events) > pump.log.events.maxlen or count < len(events):
            raise ValueError("event log does not fit its ring buffer")
        for offset, event in enumerate(events):
            if event.index != count - len(events) + offset:
                raise ValueError(f"event log index {event.index} out of sequence")
        pump.log.events.extend(events)
        pump.log.count = count
        pump.clock = clock
        return pump


def _uint(value, bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise ValueError(f"{value!r} is not an unsigned {bits}-bit integer")
    return value
