"""Setting the emulator's clock (protocol version 4, PREPARE_CLOCK; docs/protocol.md, "Setting the
clock"): pump time moves by the step taken at PREPARE, at COMMIT, without delivering anything;
every running timer keeps its length; flex schedules read the new time of day; CLOCK_SET logs
the old and the new time.

The pump logic alone with its clock injected, then real emulator processes over the real wire.
"""
from __future__ import annotations

import json

import pytest
from emulator_harness import RawClient, commit, ok, read_log, status
from pump_v4 import DAY, FROZEN, START, T0, Clock, bolus, clock_set, events, make, program, refused, write

from emulator import store
from emulator.pump import Pump
from protocol import Command, ErrorReason, EventType, InfusionMode, MriMode, WriteKind, bodies

MASK = 0xFFFF_FFFF
JAN_2020, JAN_2100 = 1_577_836_800, 4_102_444_800


def set_clock(pump: Pump, clock: Clock, txid: int, new_time: int, wait_s: int = 0) -> bodies.Prepared:
    """PREPARE at the injected clock's now, COMMIT wait_s later (the handler ticks before each)."""
    pump.tick()
    echo = pump.prepare(bodies.PrepareClockRequest(txid=txid, based_on_txid=pump.last_txid, new_time=new_time))
    clock.now += wait_s
    pump.tick()
    pump.commit(txid)
    return echo


def test_a_clock_set_moves_pump_time_by_the_step_taken_at_prepare_and_delivers_nothing():
    clock, twin_clock = Clock(), Clock()
    pump, twin = make(clock=clock), make(clock=twin_clock)
    clock.now = twin_clock.now = T0 + 1000
    pump.tick()
    n = pump.log.count
    echo = set_clock(pump, clock, 1, T0 + 1000 + DAY, wait_s=100)
    assert echo.kind is WriteKind.CLOCK and echo.clock_step_s == DAY and echo.program == pump.program_body()
    now = T0 + 1100 + DAY  # the 100 s between PREPARE and COMMIT still count
    assert pump.status().pump_time == now and pump.describe()["clock_step_s"] == DAY
    assert events(pump, n) == [(EventType.CLOCK_SET, (T0 + 1100) & MASK, now & MASK),
                               (EventType.TX_APPLIED, 1, int(WriteKind.CLOCK))]
    assert [e.time for e in pump.log.events][-2:] == [now, now]
    twin_clock.now = T0 + 1100
    twin.tick()
    assert pump.reservoir_nl == twin.reservoir_nl  # the commit delivered nothing
    # back by two days: the same, the other way
    set_clock(pump, clock, 2, now - 2 * DAY, wait_s=0)
    assert pump.status().pump_time == T0 + 1100 - DAY and pump.describe()["clock_step_s"] == -DAY
    assert events(pump)[-2][0] is EventType.CLOCK_SET
    # delivery runs by elapsed time: three days later both pumps have delivered the same
    clock.now += 3 * DAY
    twin_clock.now += 3 * DAY
    pump.tick()
    twin.tick()
    assert (pump.reservoir_nl, pump.delivered_nl) == (twin.reservoir_nl, twin.delivered_nl)
    assert pump.status().pump_time == twin.status().pump_time - DAY


def test_timers_keep_their_length_mri_auto_exit_and_a_bolus():
    clock = Clock()
    pump = make(clock=clock)
    write(pump, bodies.PrepareMriEnterRequest(txid=1, based_on_txid=0, auto_exit_s=4 * 3600))
    assert pump.status().mri_auto_exit_at == T0 + 4 * 3600
    set_clock(pump, clock, 2, T0 - DAY)  # taken in MRI-safe mode: it delivers nothing
    assert pump.status().mri_auto_exit_at == T0 - DAY + 4 * 3600
    clock.now += 4 * 3600 - 1
    pump.tick()
    assert pump.status().mri_mode is MriMode.SAFE
    clock.now += 1
    pump.tick()
    assert pump.status().mri_mode is MriMode.OFF and events(pump)[-2][:2] == (EventType.MRI_SAFE_EXITED, 1)
    write(pump, bolus(3, 100_000, 3600))
    set_clock(pump, clock, 4, pump.core.time + 7 * DAY)
    clock.now += 3599
    pump.tick()
    assert pump.bolus is not None
    clock.now += 1
    pump.tick()
    assert pump.bolus is None and events(pump)[-1] == (EventType.BOLUS_FINISHED, 0, 0)


def test_a_stall_recovers_at_the_same_real_moment():
    clock = Clock()
    pump = make(clock=clock)
    pump.set_field(1.5)
    pump.set_field(0)
    assert pump.stall_recovery_at == T0 + 2 * 3600
    set_clock(pump, clock, 1, T0 + 3600)
    assert pump.stall_recovery_at == T0 + 3 * 3600
    clock.now += 2 * 3600
    pump.tick()
    assert not pump.stalled and pump.status().pump_time == T0 + 3 * 3600


def test_a_flex_schedule_reads_the_new_time_of_day():
    clock = Clock(T0 + 10 * 3600)  # 10:00
    pump = make(clock=clock)
    pump.tick()
    write(pump, program(1, (0, 2_000_000), (720, 4_000_000), mode=InfusionMode.FLEX))  # 12:00: twice the flow
    assert pump.status().current_rate_nl_per_day == 200_000
    set_clock(pump, clock, 2, T0 + 13 * 3600)
    assert pump.status().current_rate_nl_per_day == 400_000
    set_clock(pump, clock, 3, T0 + 11 * 3600)
    assert pump.status().current_rate_nl_per_day == 200_000


@pytest.mark.parametrize("new_time, ok_", [(JAN_2020 - 1, False), (JAN_2020, True), (JAN_2100, True),
                                           (JAN_2100 + 1, False)])
def test_times_outside_2020_to_2100_are_refused(new_time, ok_):
    pump = make()
    if ok_:
        assert pump.prepare(clock_set(1, new_time)).clock_step_s == new_time - T0
    else:
        refused(pump, clock_set(1, new_time), ErrorReason.OUT_OF_RANGE, "2020-01-01..2100-01-01")


def test_a_pump_at_end_of_service_takes_no_clock_set():
    pump = make()
    pump.battery.charge = 1
    pump.advance_to(T0 + 10)
    refused(pump, clock_set(1, T0), ErrorReason.INVALID_STATE, "end of service")


def test_the_step_is_saved_and_a_corrupt_one_refused(tmp_path):
    clock = Clock()
    pump = make(clock=clock)
    set_clock(pump, clock, 1, T0 + 5 * DAY)
    data = json.loads(json.dumps(pump.to_dict()))
    assert data["clock_step_s"] == 5 * DAY
    assert Pump.from_dict(data).to_dict() == pump.to_dict()
    data["clock_step_s"] = True
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": store.FORMAT, "version": store.VERSION, "saved_at": 0, "pump": data}))
    with pytest.raises(store.StateError, match="clock step"):
        store.load(str(path))


# --- over the wire: real emulator processes ----------------------------------------------------


def prepare_clock(c, txid, new_time):
    return c.request(Command.PREPARE_CLOCK, {"txid": txid, "based_on_txid": status(c).last_txid,
                                             "new_time": new_time})


def test_process_clock_set_forward_and_back_with_mri_auto_exit_at_the_same_real_moment(start_emulator, tmp_path):
    state = tmp_path / "pump.json"
    emu = start_emulator("--start-time", START, transport="tcp", time_scale=FROZEN, state_path=state)
    with RawClient(emu.url, keys=emu.keys) as c:
        ok(c.request(Command.PREPARE_MRI_ENTER, {"txid": 1, "auto_exit_s": 4 * 3600}), Command.PREPARE_MRI_ENTER)
        ok(commit(c, 1), Command.COMMIT)
        held = emu.control("state")["reservoir_nl"]
        echo = ok(prepare_clock(c, 2, T0 + DAY), Command.PREPARE_CLOCK)
        assert echo.clock_step_s == DAY
        assert ok(commit(c, 2), Command.COMMIT).applied_at == T0 + DAY
        s = status(c)
        assert (s.pump_time, s.mri_auto_exit_at) == (T0 + DAY, T0 + DAY + 4 * 3600)
        echo = ok(prepare_clock(c, 3, T0 - DAY), Command.PREPARE_CLOCK)
        assert echo.clock_step_s == -2 * DAY
        ok(commit(c, 3), Command.COMMIT)
        s = status(c)
        assert (s.pump_time, s.mri_auto_exit_at) == (T0 - DAY, T0 - DAY + 4 * 3600)
        log = read_log(c)
        sets = [(e.time, e.arg1, e.arg2) for e in log if e.type is EventType.CLOCK_SET]
        assert sets == [(T0 + DAY, T0 & MASK, (T0 + DAY) & MASK), (T0 - DAY, (T0 + DAY) & MASK, (T0 - DAY) & MASK)]
        assert emu.control("state")["reservoir_nl"] == held  # nothing delivered (MRI-safe mode, and the sets)
        assert emu.control("advance", seconds=4 * 3600 - 1)["mri_mode"] == "SAFE"
        assert emu.control("advance", seconds=1)["mri_mode"] == "OFF"
        last = read_log(c)[-2]
        assert (last.type, last.arg1, last.time) == (EventType.MRI_SAFE_EXITED, 1, T0 - DAY + 4 * 3600)
    assert emu.stop() == 0
    # restarted, the pump keeps its clock (the step is saved with it, and not applied twice)
    emu2 = start_emulator(transport="tcp", time_scale=FROZEN, state_path=state, key_file=emu.key_file)
    with RawClient(emu2.url, keys=emu2.keys) as c:
        assert status(c).pump_time == T0 - DAY + 4 * 3600
    assert emu2.control("state")["clock_step_s"] == -DAY
