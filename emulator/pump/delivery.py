"""Delivery: the reservoir, the drug in it, the program and its rates, the bolus.

All on integers so that nothing drifts however long the pump runs: reservoir in
nL, rates in nL/day, doses in ng/day, time in whole seconds. Delivery carries the
sub-nL remainder between steps, and the reservoir's thresholds (low, empty) are
reached at the exact second they are crossed: crossings() tells advance_to()
when, and check_reservoir() logs them.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol import Alarm, Drug, ErrorReason, EventType, InfusionMode, bodies
from protocol.constants import BolusPurpose
from protocol.models import ModelSpec

from ..program import DAY, Program
from .catheter_part import Catheter
from .core import SUSPEND_EMPTY, PumpCore, Refusal
from .integers import ceil_div, check_uint

NL_PER_UL = 1000
NL_PER_ML = 1_000_000


def bolus_volume_nl(dose_ng: int, concentration_ng_per_ml: int) -> int:
    """The volume that carries dose at concentration, in nL, rounded up (never short)."""
    return ceil_div(dose_ng * NL_PER_ML, concentration_ng_per_ml)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass
class Bolus:
    """A running bolus: volume_nl delivered evenly over duration_s on top of the program.

    Exact like the program: over dt seconds it delivers (remainder + volume_nl * dt)
    // duration_s nL, carrying the rest, so the whole volume is out at duration_s.
    A BRIDGE bolus runs instead of the program (a refill's: it moves the old drug out of the
    catheter at the old rate); every other purpose runs on top of it.
    """

    txid: int
    dose_ng: int
    volume_nl: int
    duration_s: int
    started_at: int
    elapsed_s: int = 0
    delivered_nl: int = 0
    remainder: int = 0  # nL*s not yet a whole nL (< duration_s)
    purpose: BolusPurpose = BolusPurpose.CLINICIAN

    @property
    def seconds_left(self) -> int:
        return self.duration_s - self.elapsed_s

    @property
    def battery_rate(self) -> int:
        """nL/day for the battery drain (floor: the battery model is not this exact)."""
        return self.volume_nl * DAY // self.duration_s

    def remaining_ng(self, concentration_ng_per_ml: int) -> int:
        if self.purpose is BolusPurpose.BRIDGE:  # its dose is the old drug's, pushed out by the new
            return self.dose_ng * (self.volume_nl - self.delivered_nl) // self.volume_nl
        return max(0, self.dose_ng - self.delivered_nl * concentration_ng_per_ml // NL_PER_ML)

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in ("txid", "dose_ng", "volume_nl", "duration_s", "started_at",
                                                 "elapsed_s", "delivered_nl", "remainder")},
                "purpose": self.purpose.name}

    @classmethod
    def from_dict(cls, data: dict) -> Bolus:
        bolus = cls(**{k: check_uint(data[k], 63) for k in ("txid", "dose_ng", "volume_nl", "duration_s",
                                                              "started_at", "elapsed_s", "delivered_nl",
                                                              "remainder")},
                    purpose=BolusPurpose[data.get("purpose", "CLINICIAN")])  # absent before protocol version 4
        if (bolus.duration_s == 0 or bolus.volume_nl == 0 or bolus.elapsed_s > bolus.duration_s
                or bolus.remainder >= bolus.duration_s or bolus.delivered_nl > bolus.volume_nl):
            raise ValueError("running bolus is inconsistent")
        return bolus


class Delivery:
    """The reservoir and what leaves it. Set up by Pump.new() or the store."""

    def __init__(self, core: PumpCore, spec: ModelSpec, catheter: Catheter) -> None:
        self.core = core
        self.spec = spec
        self.catheter = catheter  # what leaves the reservoir enters its column
        self.drug: Drug
        self.concentration_ng_per_ml: int
        self.program: Program
        self.reservoir_nl: int
        self.delivery_remainder = 0  # nL*s/day not yet a whole nL (< DAY)
        self.delivered_nl = 0  # lifetime total, for the control channel
        self.low_reservoir_alarm_ul: int
        self.bolus: Bolus | None = None

    # --- what runs now --------------------------------------------------------

    @property
    def current_rate_nl_per_day(self) -> int:
        """The program's rate now (a running bolus comes on top; see bolus_remaining_ng); 0 while
        a bridge bolus runs instead of it."""
        if not self.core.delivering or (self.bolus is not None and self.bolus.purpose is BolusPurpose.BRIDGE):
            return 0
        return self.program.rate_at(self.core.time)

    @property
    def running_bolus(self) -> Bolus | None:
        """The bolus, while delivery runs (a suspension pauses it)."""
        return self.bolus if self.core.delivering else None

    @property
    def bolus_remaining_ng(self) -> int:
        return self.bolus.remaining_ng(self.concentration_ng_per_ml) if self.bolus else 0

    def program_body(self) -> bodies.Program:
        """The protocol's Program struct for what runs now."""
        return self.program.body(self.drug, self.concentration_ng_per_ml)

    def programmed_flow(self) -> tuple[int, int | None]:
        """(the programmed 24-hour volume, nL/day; the seconds until it empties the reservoir,
        None when it never will) for the battery's ERI projection."""
        rate = self.program.daily_volume_nl() if self.core.delivering else 0
        if rate > 0 and self.reservoir_nl > 0:
            return rate, self.seconds_to_deliver(self.reservoir_nl, rate)
        return rate, None

    # --- the passing of time --------------------------------------------------

    def crossings(self, rate: int, bolus: Bolus | None) -> list[int]:
        """Pump times advance_to() must stop at: the program's next step, the bolus's end,
        and each reservoir threshold at `rate` (plus `bolus`)."""
        now = self.core.time
        due = []
        change = self.program.next_change(now)
        if change is not None:
            due.append(change)
        if bolus is not None:
            due.append(now + bolus.seconds_left)
        if rate > 0 or bolus is not None:
            for level in self._reservoir_levels():
                due.append(now + self.seconds_to_deliver(self.reservoir_nl - level, rate, bolus))
        return due

    def _reservoir_levels(self) -> list[int]:
        """Reservoir levels (nL) still to be crossed, each of which logs something."""
        levels = []
        low = self.low_reservoir_alarm_ul * NL_PER_UL
        if not self.core.alarms & Alarm.LOW_RESERVOIR and self.reservoir_nl > low:
            levels.append(low)
        if self.reservoir_nl > 0:
            levels.append(0)
        return levels

    def seconds_to_deliver(self, amount_nl: int, rate: int, bolus: Bolus | None = None) -> int:
        """The fewest whole seconds after which at least amount_nl has left the reservoir."""
        if bolus is None:
            return max(1, ceil_div(amount_nl * DAY - self.delivery_remainder, rate))

        def delivered(dt: int) -> int:
            return ((self.delivery_remainder + rate * dt) // DAY
                    + (bolus.remainder + bolus.volume_nl * dt) // bolus.duration_s)

        # each part alone bounds the answer; the exact one is found by bisection
        hi = ceil_div(amount_nl * bolus.duration_s - bolus.remainder, bolus.volume_nl)
        if rate > 0:
            hi = min(hi, ceil_div(amount_nl * DAY - self.delivery_remainder, rate))
        lo, hi = 1, max(1, hi)
        while lo < hi:
            mid = (lo + hi) // 2
            if delivered(mid) >= amount_nl:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def integrate(self, dt: int, rate: int, bolus: Bolus | None) -> None:
        """Deliver for dt seconds at `rate` (plus `bolus`), never more than the reservoir holds."""
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
        self.catheter.receive(taken, self.drug, self.concentration_ng_per_ml)

    def check_reservoir(self) -> None:
        """The low-reservoir alarm, and on empty: RESERVOIR_EMPTY, its alarm, delivery stopped."""
        core = self.core
        if self.reservoir_nl <= self.low_reservoir_alarm_ul * NL_PER_UL:
            core.raise_alarm(Alarm.LOW_RESERVOIR)
        if self.reservoir_nl == 0 and SUSPEND_EMPTY not in core.suspended:
            core.log_event(EventType.RESERVOIR_EMPTY)
            core.raise_alarm(Alarm.EMPTY_RESERVOIR)
            self.delivery_remainder = 0
            core.suspend(SUSPEND_EMPTY)

    def check_bolus_end(self) -> None:
        """A bolus ends when its time is up, or as soon as delivery stops."""
        if self.bolus is not None and (not self.core.delivering or self.bolus.seconds_left <= 0):
            self._finish_bolus(self.bolus)

    def _finish_bolus(self, bolus: Bolus) -> None:
        """BOLUS_FINISHED, arg1 = the dose not delivered, ng (0: complete)."""
        left = bolus.remaining_ng(self.concentration_ng_per_ml) if bolus.seconds_left > 0 else 0
        self.bolus = None
        self.core.log_event(EventType.BOLUS_FINISHED, arg1=left)

    def deliver_all_at_once(self) -> int:
        """The whole reservoir leaves now (valves forced open); the volume in nL."""
        volume = self.reservoir_nl
        self.reservoir_nl = 0
        self.delivered_nl += volume
        self.catheter.receive(volume, self.drug, self.concentration_ng_per_ml)  # forced through the catheter
        return volume

    def shift(self, step_s: int) -> None:
        """The clock was set: a running bolus keeps its length (it counts elapsed seconds)."""
        if self.bolus is not None:
            self.bolus.started_at = max(0, self.bolus.started_at + step_s)

    # --- checks for a write (Refusal) -----------------------------------------

    def build_program(self, mode: InfusionMode, steps: tuple[bodies.ProgramStep, ...],
                      concentration_ng_per_ml: int) -> Program:
        """The program a request asks for, as the pump would run it, or OUT_OF_RANGE."""
        mode = InfusionMode(mode)
        if mode in (InfusionMode.STOPPED, InfusionMode.MINIMUM):
            if steps:
                raise Refusal(ErrorReason.OUT_OF_RANGE,
                              f"a {mode.name} program takes no steps (the pump sets them), not {len(steps)}")
            if mode is InfusionMode.STOPPED:
                return Program.stopped()
            return Program.minimum(concentration_ng_per_ml)
        pairs = [(s.start_minute, s.dose_ng_per_day) for s in steps]
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

    def check_bolus(self, volume_nl: int, duration_s: int) -> None:
        """A bolus of volume_nl over duration_s can start now, or Refusal."""
        if self.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE,
                          f"a bolus is running (txid {self.bolus.txid}, "
                          f"{self.bolus.remaining_ng(self.concentration_ng_per_ml)} ng left)")
        if volume_nl > self.reservoir_nl:
            raise Refusal(ErrorReason.INVALID_STATE,
                          f"bolus needs {volume_nl} nL; the reservoir holds {self.reservoir_nl} nL")
        # the mechanism's top speed bounds program + bolus together
        bolus_rate = ceil_div(volume_nl * DAY, duration_s)
        high = self.spec.max_flow_nl_per_day
        if self.program.max_rate_nl_per_day() + bolus_rate > high:
            raise Refusal(ErrorReason.OUT_OF_RANGE,
                          f"bolus at {bolus_rate} nL/day on top of the program exceeds {high} nL/day; "
                          "give a longer duration")

    # --- applying a write (checked by transactions.py) ------------------------

    def change_program(self, program: Program) -> None:
        previous = self.program.daily_dose_ng()
        self.program = program
        self.core.log_event(EventType.PROGRAM_CHANGED, arg1=previous, arg2=program.daily_dose_ng())

    def start_bolus(self, txid: int, dose_ng: int, volume_nl: int, duration_s: int,
                    purpose: BolusPurpose = BolusPurpose.CLINICIAN) -> None:
        """A CLINICIAN or PRIMING bolus: BOLUS_STARTED."""
        self.begin_bolus(txid, dose_ng, volume_nl, duration_s, purpose)
        self.core.log_event(EventType.BOLUS_STARTED, arg1=dose_ng, arg2=duration_s)

    def begin_bolus(self, txid: int, dose_ng: int, volume_nl: int, duration_s: int, purpose: BolusPurpose) -> None:
        """Any bolus starts now; the caller logs its own event (a bridge, a patient's)."""
        self.bolus = Bolus(txid, dose_ng, volume_nl, duration_s, self.core.time, purpose=purpose)
        self.core.changes += 1

    def refill(self, reservoir_ul: int, drug: Drug, concentration_ng_per_ml: int, program: Program) -> None:
        """The reservoir now holds reservoir_ul of drug, running `program`: logged, alarms
        cleared, and delivery resumed unless something else still stops it."""
        core = self.core
        previous = self.program.daily_dose_ng()
        if drug != self.drug:  # the log names drugs only here: what came before is another drug's
            core.log_event(EventType.DRUG_CHANGED, arg1=int(self.drug), arg2=int(drug))
        self.reservoir_nl = reservoir_ul * NL_PER_UL
        self.drug = drug
        self.concentration_ng_per_ml = concentration_ng_per_ml
        self.program = program
        core.log_event(EventType.REFILL, arg1=reservoir_ul, arg2=concentration_ng_per_ml)
        core.log_event(EventType.PROGRAM_CHANGED, arg1=previous, arg2=program.daily_dose_ng())
        if self.reservoir_nl > 0:
            core.clear_alarm(Alarm.EMPTY_RESERVOIR)
        if self.reservoir_nl > self.low_reservoir_alarm_ul * NL_PER_UL:
            core.clear_alarm(Alarm.LOW_RESERVOIR)
        if self.reservoir_nl > 0 and SUSPEND_EMPTY in core.suspended:
            core.resume(SUSPEND_EMPTY)  # logs DELIVERY_RESUMED unless something else still stops it
