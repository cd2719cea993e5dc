"""The pump state machine alone (emulator/pump/), with an injected clock."""
from __future__ import annotations

import json
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import faults, store
from emulator.program import Program
from emulator.pump import BATTERY_UNIT, ERI_WARNING_S, Pump
from protocol import Alarm, BatteryState, Drug, EventType, InfusionMode, bodies, encode

DAY = 86_400
T0 = 1_900_000_000


def make(*, reservoir_ul: int = 18_000, flow_nl_per_day: int = 200_000, battery_seconds: int = 5 * 365 * DAY,
         clock: Callable[[], int] | None = None) -> Pump:
    return Pump.new(model="peristaltic-40", serial="T1", drug=Drug.MORPHINE, concentration_ng_per_ml=10_000_000,
                    reservoir_ul=reservoir_ul, flow_nl_per_day=flow_nl_per_day, low_reservoir_alarm_ul=2_000,
                    battery_seconds=battery_seconds, start_time=T0, clock=clock)


def test_status_builds_on_the_wire():
    pump = make()
    encode(2, pump.status(), seq=1, response=True)  # every field present and in range
    assert pump.log.count == 1 and pump.log.events[0].type == EventType.POWER_ON


@settings(max_examples=60, deadline=None)
@given(rate=st.integers(48_000, 24_000_000),
       steps=st.lists(st.integers(1, 3 * DAY), min_size=1, max_size=30))
def test_delivery_does_not_drift_however_time_is_cut(rate, steps):
    one, many = make(flow_nl_per_day=rate), make(flow_nl_per_day=rate)
    t = T0
    for step in steps:
        t += step
        many.advance_to(t)
    one.advance_to(t)
    assert one.reservoir_nl == many.reservoir_nl
    assert one.battery_charge == many.battery_charge
    assert [e.to_list() for e in one.log.events] == [e.to_list() for e in many.log.events]
    if one.delivering:
        assert one.delivered_nl == (t - T0) * rate // DAY


def test_injected_clock_and_crossings():
    now = [T0]
    pump = make(clock=lambda: now[0])
    now[0] += 100 * DAY
    pump.tick()
    types = [(e.type, e.arg1, e.time) for e in pump.log.events]
    assert (EventType.ALARM_RAISED, int(Alarm.LOW_RESERVOIR), T0 + 80 * DAY) in types
    assert (EventType.RESERVOIR_EMPTY, 0, T0 + 90 * DAY) in types
    assert (EventType.DELIVERY_STOPPED, int(Alarm.EMPTY_RESERVOIR), T0 + 90 * DAY) in types
    assert pump.current_rate_nl_per_day == 0 and pump.reservoir_nl == 0


def test_volume_below_threshold_alarms_at_power_on():
    pump = make(reservoir_ul=1_000)
    assert pump.alarms & Alarm.LOW_RESERVOIR
    assert pump.log.events[1].time == T0


def test_eri_projection_is_exact_and_eos_follows_90_days_later():
    pump = make(battery_seconds=300 * DAY, flow_nl_per_day=1_000_000)
    projected = pump.projected_eri()  # reservoir empties first: two drain rates
    pump.advance_to(T0 + 400 * DAY)
    assert pump.battery_state is BatteryState.EOS
    assert pump.eri_time == projected
    assert pump.eos_time >= pump.eri_time + ERI_WARNING_S
    assert pump.status().replace_by == pump.eri_time + ERI_WARNING_S
    assert pump.battery_charge == 0 and pump.battery_percent == 0


def test_battery_drain_rate_depends_on_flow():
    slow = make(flow_nl_per_day=48_000, reservoir_ul=40_000)
    fast = make(flow_nl_per_day=24_000_000, reservoir_ul=40_000)
    slow.advance_to(T0 + DAY)
    fast.advance_to(T0 + DAY)
    used = lambda p: 5 * 365 * DAY * BATTERY_UNIT - p.battery_charge  # noqa: E731
    assert used(slow) == DAY * (BATTERY_UNIT + 48_000)
    assert used(fast) == DAY * (BATTERY_UNIT + 24_000_000)  # 1.96 x


def test_flex_program_totals_and_rates():
    conc = 10_000_000  # 1 ng/day of dose is 0.1 nL/day of flow
    prog = Program.from_doses(InfusionMode.FLEX, [(0, 1_000_000), (6 * 60, 4_000_000), (18 * 60, 1_000_000)], conc)
    assert prog.mode is InfusionMode.FLEX
    assert [s.rate_nl_per_day for s in prog.steps] == [100_000, 400_000, 100_000]
    assert prog.daily_volume_nl() == (12 * 100_000 + 12 * 400_000) // 24
    assert prog.daily_dose_ng() == (12 * 1_000_000 + 12 * 4_000_000) // 24
    assert prog.rate_at(T0 - T0 % DAY + 7 * 3600) == 400_000
    assert prog.next_change(T0 - T0 % DAY) == T0 - T0 % DAY + 6 * 3600
    assert Program.from_flow(5, conc).next_change(T0) is None
    pump = make()
    pump.program = prog
    start = T0 - T0 % DAY
    pump.time = start
    before = pump.reservoir_nl
    pump.advance_to(start + DAY)
    assert before - pump.reservoir_nl == prog.daily_volume_nl()


def test_persistence_round_trip():
    pump = make()
    pump.advance_to(T0 + 85 * DAY)
    pump.reset()
    data = json.loads(json.dumps(pump.to_dict()))
    back = Pump.from_dict(data)
    assert back.to_dict() == pump.to_dict()
    assert back.status() == pump.status()


def test_the_pumps_attributes_are_its_parts():
    pump = make()
    pump.program = Program.stopped()
    pump.time += DAY
    assert pump.delivery.program == Program.stopped() and pump.core.time == T0 + DAY
    assert pump.battery_charge == pump.battery.charge and pump.log is pump.core.log
    # one core: an alarm raised by one part is what every part and the status see
    pump.core.raise_alarm(Alarm.ERI)
    assert pump.alarms & Alarm.ERI and pump.status().alarms & Alarm.ERI


def test_persistence_and_the_tamper_fault_live_outside_the_pump():
    pump = make()
    assert store.pump_to_dict(pump) == pump.to_dict()
    back = store.pump_from_dict(json.loads(json.dumps(store.pump_to_dict(pump))))
    assert store.pump_to_dict(back) == pump.to_dict()
    body = bodies.PrepareProgramRequest(txid=1, based_on_txid=0, drug=Drug.MORPHINE,
                                        concentration_ng_per_ml=10_000_000, mode=InfusionMode.CONTINUOUS,
                                        steps=(bodies.ProgramStep(0, 2_000_000),))
    echo = pump.prepare(body)
    assert faults.tamper_pending(pump) is True
    assert pump.pending.program.steps[0].dose_ng_per_day == 2_200_000
    assert echo.program.steps[0].dose_ng_per_day == 2_000_000  # the echo already went out
