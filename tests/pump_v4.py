"""Shared by the protocol-version-4 emulator tests (test_emulator_catheter.py, test_emulator_clock.py,
test_emulator_ptm.py): a pure pump with an injected clock, the new request bodies, a write applied
through PREPARE and COMMIT, and a refusal checked to leave the pump exactly as it was."""
from __future__ import annotations

import pytest
from loopback import based

from emulator.pump import Pump, Refusal
from protocol import CommitOutcome, Drug, ErrorReason, EventType, InfusionMode, bodies
from protocol.constants import BolusPurpose, CatheterAction, CatheterModel

DAY = 86_400
T0 = 1_893_456_000  # 2030-01-01T00:00:00Z
START = "2030-01-01T00:00:00Z"
FROZEN = 1e-9
MORPHINE_10 = 10_000_000  # 10 mg/mL
RATE = 200_000  # the emulator's default program: 0.2 mL/day


class Clock:
    """An injected clock the test moves (the real emulator's is emulator/clock.py)."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make(*, catheter_mm: int = 800, flow: int = RATE, reservoir_ul: int = 18_000, model: str = "peristaltic-40",
         clock: Clock | None = None, concentration: int = MORPHINE_10) -> Pump:
    return Pump.new(model=model, serial="V4", drug=Drug.MORPHINE, concentration_ng_per_ml=concentration,
                    reservoir_ul=reservoir_ul, flow_nl_per_day=flow, low_reservoir_alarm_ul=2_000,
                    battery_seconds=5 * 365 * DAY, start_time=T0, clock=clock, catheter_mm=catheter_mm)


def write(pump: Pump, body) -> bodies.Prepared:
    """PREPARE then COMMIT `body` (checked against the pump as it is); the echo."""
    echo = pump.prepare(based(pump, body))
    assert pump.commit(body.txid).outcome is CommitOutcome.APPLIED
    return echo


def refused(pump: Pump, body, reason: ErrorReason, *words: str) -> str:
    """PREPARE `body` is refused with `reason` (its detail names `words`) and nothing changes."""
    before = pump.to_dict()
    with pytest.raises(Refusal) as exc:
        pump.prepare(based(pump, body))
    assert exc.value.reason is reason, exc.value.detail
    for word in words:
        assert word in exc.value.detail, exc.value.detail
    assert pump.pending is None and pump.to_dict() == before
    return exc.value.detail


def events(pump: Pump, first: int = 0) -> list[tuple[EventType, int, int]]:
    return [(e.type, e.arg1, e.arg2) for e in pump.log.events if e.index >= first]


# --- request bodies ---------------------------------------------------------------------------


def catheter(txid: int, action: CatheterAction, length_mm: int, replaced_mm: int = 0,
             model: CatheterModel = CatheterModel.STANDARD) -> bodies.PrepareCatheterRequest:
    return bodies.PrepareCatheterRequest(txid=txid, based_on_txid=0, action=action, model=model,
                                         length_mm=length_mm, replaced_mm=replaced_mm)


def bolus(txid: int, dose_ng: int, duration_s: int = 3600,
          purpose: BolusPurpose = BolusPurpose.CLINICIAN) -> bodies.PrepareBolusRequest:
    return bodies.PrepareBolusRequest(txid=txid, based_on_txid=0, dose_ng=dose_ng, duration_s=duration_s,
                                      purpose=purpose)


def program(txid: int, *steps: tuple[int, int], mode: InfusionMode = InfusionMode.CONTINUOUS,
            concentration: int = MORPHINE_10) -> bodies.PrepareProgramRequest:
    return bodies.PrepareProgramRequest(txid=txid, based_on_txid=0, mode=mode, drug=Drug.MORPHINE,
                                        concentration_ng_per_ml=concentration,
                                        steps=tuple(bodies.ProgramStep(m, d) for m, d in steps))


def stop(txid: int) -> bodies.PrepareProgramRequest:
    return program(txid, mode=InfusionMode.STOPPED)


def refill(txid: int, concentration: int, dose_per_day: int, *, drug: Drug = Drug.MORPHINE, volume_ul: int = 20_000,
           bridge: tuple[int, int] = (0, 0)) -> bodies.PrepareRefillRequest:
    return bodies.PrepareRefillRequest(txid=txid, based_on_txid=0, drug=drug, concentration_ng_per_ml=concentration,
                                       volume_ul=volume_ul, withdrawn_ul=0, mode=InfusionMode.CONTINUOUS,
                                       steps=(bodies.ProgramStep(0, dose_per_day),), bridge_volume_nl=bridge[0],
                                       bridge_duration_s=bridge[1])


def clock_set(txid: int, new_time: int) -> bodies.PrepareClockRequest:
    return bodies.PrepareClockRequest(txid=txid, based_on_txid=0, new_time=new_time)


def limits(dose_ng: int = 100_000, duration_s: int = 600, lockout_s: int = 3 * 3600,
           max_per_day: int = 4, enabled: int = 1) -> bodies.PtmLimits:
    return bodies.PtmLimits(enabled=enabled, dose_ng=dose_ng, duration_s=duration_s, lockout_s=lockout_s,
                            max_per_day=max_per_day)


def ptm(txid: int, value: bodies.PtmLimits) -> bodies.PreparePtmRequest:
    return bodies.PreparePtmRequest(txid=txid, based_on_txid=0, limits=value)
