"""Patient-activated boluses: the clinician's limits and the patient's activations
(docs/protocol.md, "Patient-activated boluses").

The handheld's press reaches the emulator over its control channel (`activate`). The pump
grants it only within the limits: on, no other bolus, delivery running, the reservoir
holding the dose, the lockout passed since the last granted one, fewer than max_per_day
granted in the rolling 24 hours. Granted and refused activations are kept (their times)
for the rolling counts Status reports; the lockout and the window are timers, so a clock
set moves their times with it.
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol import Drug, ErrorReason, EventType, bodies
from protocol.constants import BolusPurpose, PtmRefusal
from protocol.ptm import PTM_OFF

from ..program import DAY
from .core import PumpCore, Refusal
from .delivery import Delivery, bolus_volume_nl
from .integers import ceil_div, check_uint

MIN_DURATION_S = 60
U8_MAX, U16_MAX = 255, 65_535


@dataclass(frozen=True)
class Outcome:
    """One activation: granted, or refused with its reason."""

    refusal: PtmRefusal | None
    detail: str
    lockout_left_s: int = 0

    @property
    def granted(self) -> bool:
        return self.refusal is None


def check_limits(limits: bodies.PtmLimits, delivery: Delivery) -> None:
    """PREPARE_PTM's rules: OUT_OF_RANGE with the reason, else nothing."""
    if not limits.enabled:
        if limits != PTM_OFF:
            raise Refusal(ErrorReason.OUT_OF_RANGE, "patient boluses off: dose, duration, lockout and max_per_day "
                          "must all be 0")
        return
    if limits.dose_ng == 0:
        raise Refusal(ErrorReason.OUT_OF_RANGE, "patient boluses on with a dose of 0")
    if limits.duration_s < MIN_DURATION_S:
        raise Refusal(ErrorReason.OUT_OF_RANGE, f"duration {limits.duration_s} s: give at least {MIN_DURATION_S} s")
    if limits.max_per_day == 0:
        raise Refusal(ErrorReason.OUT_OF_RANGE, "patient boluses on with max_per_day 0 (turn them off instead)")
    if limits.lockout_s < limits.duration_s:
        raise Refusal(ErrorReason.OUT_OF_RANGE, f"lockout {limits.lockout_s} s is shorter than the duration "
                      f"{limits.duration_s} s: two activations would overlap")
    if delivery.drug is not Drug.NONE and delivery.concentration_ng_per_ml > 0:
        # the mechanism's top speed bounds program + activation, as for a clinician bolus
        volume = bolus_volume_nl(limits.dose_ng, delivery.concentration_ng_per_ml)
        rate = ceil_div(volume * DAY, limits.duration_s)
        high = delivery.spec.max_flow_nl_per_day
        if delivery.program.max_rate_nl_per_day() + rate > high:
            raise Refusal(ErrorReason.OUT_OF_RANGE, f"an activation at {rate} nL/day on top of the program exceeds "
                          f"{high} nL/day; give a longer duration")


class PatientBoluses:
    """The limits and the activations. Set up by Pump.new() or the store."""

    def __init__(self, core: PumpCore) -> None:
        self.core = core
        self.limits = PTM_OFF
        self.granted: list[int] = []  # pump times of granted activations, last 24 hours
        self.refused: list[tuple[int, PtmRefusal]] = []  # refused ones, last 24 hours (at most U16_MAX)
        self.last_granted_at = 0  # 0: never

    # --- the rolling 24 hours ------------------------------------------------------------

    def _forget_old(self) -> None:
        since = self.core.time - DAY  # an activation exactly 24 h ago is out of the window
        self.granted = [t for t in self.granted if t > since]
        self.refused = [r for r in self.refused if r[0] > since][-U16_MAX:]

    def use(self) -> bodies.PtmUse:
        """Status ptm_use: granted and refused in the last 24 hours (saturating), the last grant."""
        since = self.core.time - DAY
        granted = sum(1 for t in self.granted if t > since)
        refused = sum(1 for t, _ in self.refused if t > since)
        return bodies.PtmUse(granted_24h=min(granted, U8_MAX), refused_24h=min(refused, U16_MAX),
                             last_granted_at=self.last_granted_at)

    # --- an activation --------------------------------------------------------------------

    def judge(self, delivery: Delivery) -> Outcome:
        """Whether an activation now is granted, by the rules in the order docs/protocol.md lists them."""
        limits, now = self.limits, self.core.time
        self._forget_old()
        if not limits.enabled:
            return Outcome(PtmRefusal.DISABLED, "patient boluses are off")
        if delivery.bolus is not None:
            return Outcome(PtmRefusal.BOLUS_RUNNING,
                           f"a {delivery.bolus.purpose.name} bolus is running (txid {delivery.bolus.txid})")
        if not self.core.delivering:
            return Outcome(PtmRefusal.NOT_DELIVERING, f"delivery is stopped ({', '.join(sorted(self.core.suspended))})")
        if delivery.drug is Drug.NONE or delivery.concentration_ng_per_ml == 0:
            return Outcome(PtmRefusal.RESERVOIR, "no drug in the reservoir")
        volume = bolus_volume_nl(limits.dose_ng, delivery.concentration_ng_per_ml)
        if volume > delivery.reservoir_nl:
            return Outcome(PtmRefusal.RESERVOIR, f"the dose needs {volume} nL; the reservoir holds "
                           f"{delivery.reservoir_nl} nL")
        if self.last_granted_at and now - self.last_granted_at < limits.lockout_s:
            left = limits.lockout_s - (now - self.last_granted_at)
            return Outcome(PtmRefusal.LOCKOUT, f"locked out for {left} s more", left)
        if len(self.granted) >= limits.max_per_day:
            return Outcome(PtmRefusal.DAILY_MAX, f"{len(self.granted)} granted in the last 24 hours "
                           f"(at most {limits.max_per_day})")
        return Outcome(None, f"{limits.dose_ng} ng over {limits.duration_s} s")

    def activate(self, delivery: Delivery) -> Outcome:
        """A press of the handheld now: a PATIENT bolus starts (PTM_GRANTED), or PTM_REFUSED."""
        outcome = self.judge(delivery)
        core, limits = self.core, self.limits
        if outcome.refusal is not None:
            self.refused.append((core.time, outcome.refusal))
            self._forget_old()
            core.log_event(EventType.PTM_REFUSED, arg1=int(outcome.refusal), arg2=outcome.lockout_left_s)
            return outcome
        volume = bolus_volume_nl(limits.dose_ng, delivery.concentration_ng_per_ml)
        delivery.begin_bolus(0, limits.dose_ng, volume, limits.duration_s, BolusPurpose.PATIENT)
        self.granted.append(core.time)
        self.last_granted_at = core.time
        core.log_event(EventType.PTM_GRANTED, arg1=limits.dose_ng, arg2=limits.duration_s)
        return outcome

    def set_limits(self, limits: bodies.PtmLimits) -> None:
        """COMMIT of a PTM write. A patient bolus already running goes on; the activations are kept."""
        self.limits = limits
        self.core.changes += 1

    def shift(self, step_s: int) -> None:
        """The clock was set: the lockout and the 24-hour window keep their length."""
        self.granted = [max(0, t + step_s) for t in self.granted]
        self.refused = [(max(0, t + step_s), r) for t, r in self.refused]
        if self.last_granted_at:
            self.last_granted_at = max(1, self.last_granted_at + step_s)

    # --- the control channel and the state file ----------------------------------------

    def describe(self) -> dict:
        return {"limits": bodies.as_dict(self.limits), "granted": list(self.granted),
                "refused": [[t, r.name] for t, r in self.refused], "last_granted_at": self.last_granted_at,
                "use": bodies.as_dict(self.use())}

    def to_dict(self) -> dict:
        return {"limits": bodies.as_dict(self.limits), "granted": list(self.granted),
                "refused": [[t, r.name] for t, r in self.refused], "last_granted_at": self.last_granted_at}

    def load(self, data: dict | None) -> None:
        """The state file's "ptm" (None: a file from before protocol version 4: off, never used)."""
        if data is None:
            return
        raw = data["limits"]
        limits = bodies.PtmLimits(*(check_uint(raw[k], 32) for k in ("enabled", "dose_ng", "duration_s",
                                                                    "lockout_s", "max_per_day")))
        if (limits.enabled > 1 or limits.dose_ng > 1_000_000_000 or limits.duration_s > DAY
                or limits.lockout_s > DAY or limits.max_per_day > 24):
            raise ValueError("patient-bolus limits out of range")
        granted = [check_uint(t, 63) for t in data["granted"]]
        refused = [(check_uint(t, 63), PtmRefusal[name]) for t, name in data["refused"]]
        if len(granted) > 24 or len(refused) > U16_MAX or granted != sorted(granted):
            raise ValueError("patient activations do not fit 24 hours")
        self.limits, self.granted, self.refused = limits, granted, refused
        self.last_granted_at = check_uint(data["last_granted_at"], 63)
