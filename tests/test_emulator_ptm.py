"""Patient-activated boluses on the emulator (protocol version 4, PREPARE_PTM; docs/protocol.md,
"Patient-activated boluses"): the clinician's limits, and the patient's presses (the control
channel's `activate`) granted or refused by the pump's rules, logged and counted in ptm_use.

The pump logic alone with its clock injected, then a real emulator process over the real wire.
"""
from __future__ import annotations

import json

import pytest
from emulator_harness import RawClient, commit, ok, read_log, status
from pump_v4 import DAY, FROZEN, START, T0, Clock, bolus, clock_set, events, limits, make, ptm, refused, write

from emulator import store
from emulator.pump import Pump, Refusal
from protocol import Command, ErrorReason, EventType, MriMode, WriteKind, bodies
from protocol.constants import BolusPurpose, PtmRefusal
from protocol.ptm import PTM_OFF, PTM_UNUSED

HOUR = 3600
DOSE_NL = 10_000  # 0.1 mg at 10 mg/mL


def press(pump: Pump, clock: Clock, at: int) -> PtmRefusal | None:
    clock.now = at
    outcome = pump.activate()
    return outcome.refusal


@pytest.mark.parametrize("value, words", [
    (limits(dose_ng=0), "dose of 0"),
    (limits(duration_s=59), "at least 60 s"),
    (limits(max_per_day=0), "max_per_day 0"),
    (limits(lockout_s=599), "shorter than the duration"),
    (limits(dose_ng=10_000_000, duration_s=60, lockout_s=60), "on top of the program exceeds"),
    (bodies.PtmLimits(enabled=0, dose_ng=1, duration_s=0, lockout_s=0, max_per_day=0), "must all be 0"),
])
def test_limits_refused(value, words):
    refused(make(), ptm(1, value), ErrorReason.OUT_OF_RANGE, words)


def test_limits_set_echoed_and_reported():
    pump = make()
    assert (pump.status().ptm, pump.status().ptm_use) == (PTM_OFF, PTM_UNUSED)
    n = pump.log.count
    echo = write(pump, ptm(1, limits()))
    assert echo.kind is WriteKind.PTM and echo.ptm == limits() and pump.status().ptm == limits()
    assert echo.catheter == pump.status().catheter  # every echo carries the record as it will be
    assert events(pump, n) == [(EventType.TX_APPLIED, 1, int(WriteKind.PTM))]
    write(pump, ptm(2, PTM_OFF))
    assert pump.status().ptm == PTM_OFF


def test_activations_granted_and_refused_by_lockout_and_daily_count():
    clock = Clock()
    pump = make(clock=clock)
    assert press(pump, clock, T0) is PtmRefusal.DISABLED
    write(pump, ptm(1, limits()))  # 0.1 mg over 10 min, 3 h apart, 4 a day
    n, held = pump.log.count, pump.reservoir_nl
    assert press(pump, clock, T0 + 60) is None
    assert (pump.bolus.purpose, pump.bolus.volume_nl, pump.status().bolus_remaining_ng) == (
        BolusPurpose.PATIENT, DOSE_NL, 100_000)
    assert pump.status().current_rate_nl_per_day == 200_000  # on top of the program
    assert press(pump, clock, T0 + 120) is PtmRefusal.BOLUS_RUNNING
    refused(pump, bolus(2, 100_000), ErrorReason.INVALID_STATE, "bolus is running")
    assert press(pump, clock, T0 + 60 + HOUR) is PtmRefusal.LOCKOUT
    for hours in (3, 6, 9):
        assert press(pump, clock, T0 + 60 + hours * HOUR) is None
    assert press(pump, clock, T0 + 60 + 12 * HOUR) is PtmRefusal.DAILY_MAX
    assert pump.status().ptm_use == bodies.PtmUse(granted_24h=4, refused_24h=4, last_granted_at=T0 + 60 + 9 * HOUR)
    logged = [e for e in events(pump, n) if e[0] in (EventType.PTM_GRANTED, EventType.PTM_REFUSED,
                                                      EventType.BOLUS_FINISHED)]
    granted, finished = (EventType.PTM_GRANTED, 100_000, 600), (EventType.BOLUS_FINISHED, 0, 0)
    assert logged == [granted, (EventType.PTM_REFUSED, int(PtmRefusal.BOLUS_RUNNING), 0), finished,
                      (EventType.PTM_REFUSED, int(PtmRefusal.LOCKOUT), 2 * HOUR)] + [granted, finished] * 3 + [
                      (EventType.PTM_REFUSED, int(PtmRefusal.DAILY_MAX), 0)]
    # the program's delivery aside, exactly four doses left the reservoir
    twin = make()
    twin.advance_to(pump.core.time)
    assert held == 18_000_000 and twin.reservoir_nl - pump.reservoir_nl == 4 * DOSE_NL
    # the first grant leaves the rolling 24 hours: one more
    assert press(pump, clock, T0 + 60 + DAY) is None
    assert pump.status().ptm_use.granted_24h == 4


def test_refused_when_delivery_stops_or_the_reservoir_cannot_carry_the_dose():
    clock = Clock()
    pump = make(clock=clock)
    write(pump, ptm(1, limits()))
    write(pump, bodies.PrepareMriEnterRequest(txid=2, based_on_txid=1, auto_exit_s=HOUR))
    assert pump.mri_mode is MriMode.SAFE and press(pump, clock, T0 + 1) is PtmRefusal.NOT_DELIVERING
    small = make(reservoir_ul=9)  # 9 uL: less than the 10 uL dose
    write(small, ptm(1, limits()))
    outcome = small.activate()
    assert outcome.refusal is PtmRefusal.RESERVOIR and "10000 nL" in outcome.detail
    assert small.bolus is None and events(small)[-1] == (EventType.PTM_REFUSED, int(PtmRefusal.RESERVOIR), 0)


def test_turning_them_off_does_not_stop_a_patient_bolus_and_a_clock_set_keeps_the_lockout():
    clock = Clock()
    pump = make(clock=clock)
    write(pump, ptm(1, limits()))
    assert press(pump, clock, T0) is None
    write(pump, ptm(2, PTM_OFF))
    assert pump.bolus is not None and pump.bolus.purpose is BolusPurpose.PATIENT
    write(pump, ptm(3, limits()))
    clock.now = T0 + HOUR
    pump.tick()
    pump.prepare(bodies.PrepareClockRequest(txid=4, based_on_txid=3, new_time=T0 - DAY))
    pump.commit(4)
    outcome = pump.activate()  # an hour after the grant, whatever the clock says: 2 h left
    assert outcome.refusal is PtmRefusal.LOCKOUT and outcome.lockout_left_s == 2 * HOUR
    assert pump.status().ptm_use.last_granted_at == T0 - DAY - HOUR


def test_ptm_is_saved_and_a_corrupt_one_refused(tmp_path):
    clock = Clock()
    pump = make(clock=clock)
    write(pump, ptm(1, limits()))
    press(pump, clock, T0)
    press(pump, clock, T0 + 60)
    data = json.loads(json.dumps(pump.to_dict()))
    back = Pump.from_dict(data)
    assert back.to_dict() == pump.to_dict() and back.status() == pump.status()
    assert back.bolus is not None and back.bolus.purpose is BolusPurpose.PATIENT
    for change in (lambda p: p["limits"].update(enabled=2), lambda p: p["refused"][0].__setitem__(1, "NOPE")):
        bad = json.loads(json.dumps(data))
        change(bad["ptm"])
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"format": store.FORMAT, "version": store.VERSION, "saved_at": 0, "pump": bad}))
        with pytest.raises(store.StateError):
            store.load(str(path))


def test_a_clock_set_refused_leaves_the_activations_alone():
    pump = make()
    write(pump, ptm(1, limits()))
    pump.activate()
    with pytest.raises(Refusal):
        pump.prepare(clock_set(2, 0))
    assert pump.status().ptm_use.granted_24h == 1


# --- over the wire: a real emulator process ------------------------------------------------------


def test_process_activations_granted_refused_logged_and_counted(start_emulator):
    emu = start_emulator("--start-time", START, transport="tcp", time_scale=FROZEN)
    with RawClient(emu.url, keys=emu.keys) as c:
        wire_limits = {"enabled": 1, "dose_ng": 100_000, "duration_s": 600, "lockout_s": 3 * HOUR, "max_per_day": 2}
        echo = ok(c.request(Command.PREPARE_PTM, {"txid": 1, "based_on_txid": status(c).last_txid,
                                                  "limits": wire_limits}), Command.PREPARE_PTM)
        assert echo.ptm == bodies.PtmLimits(**wire_limits)
        ok(commit(c, 1), Command.COMMIT)
        first = emu.control("activate")
        assert (first["ok"], first["outcome"], first["reason"]) == (True, "granted", None)
        assert first["bolus"]["purpose"] == "PATIENT"
        emu.control("advance", seconds=HOUR)
        locked = emu.control("activate")
        assert (locked["outcome"], locked["reason"], locked["lockout_left_s"]) == ("refused", "LOCKOUT", 2 * HOUR)
        emu.control("advance", seconds=2 * HOUR)
        assert emu.control("activate")["outcome"] == "granted"
        emu.control("advance", seconds=3 * HOUR)
        daily = emu.control("activate")
        assert (daily["outcome"], daily["reason"]) == ("refused", "DAILY_MAX")
        assert status(c).ptm_use == bodies.PtmUse(granted_24h=2, refused_24h=2, last_granted_at=T0 + 3 * HOUR)
        ptm_events = [(e.type, e.arg1, e.arg2, e.time) for e in read_log(c)
                      if e.type in (EventType.PTM_GRANTED, EventType.PTM_REFUSED)]
        assert ptm_events == [(EventType.PTM_GRANTED, 100_000, 600, T0),
                              (EventType.PTM_REFUSED, int(PtmRefusal.LOCKOUT), 2 * HOUR, T0 + HOUR),
                              (EventType.PTM_GRANTED, 100_000, 600, T0 + 3 * HOUR),
                              (EventType.PTM_REFUSED, int(PtmRefusal.DAILY_MAX), 0, T0 + 6 * HOUR)]
    assert emu.stop() == 0
