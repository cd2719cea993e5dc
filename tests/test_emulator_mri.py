"""MRI on the emulator: MRI-safe mode (PREPARE_MRI_ENTER / PREPARE_MRI_EXIT), its automatic
exit, and what a scanner's static field does to each pump model (docs/protocol.md,
"MRI-safe mode").

Real emulator processes (tests/emulator_harness.py) with frozen clocks moved only by
the control channel's `advance`; the field is set over the control channel (`field`,
`scenario`), never over telemetry. Then the pump logic alone (emulator/pump.py) for
exactness under any cut of time, persistence and the rules a process cannot reach
cheaply.
"""
from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from emulator_harness import RawClient, commit, ok, read_log, read_program, refused, status
from loopback import based

from emulator import store
from emulator.pump import Pump, Refusal
from protocol import (
    Alarm,
    Command,
    CommitOutcome,
    Drug,
    ErrorReason,
    EventType,
    InfusionMode,
    MriMode,
    Priority,
    WriteKind,
    bodies,
    encode,
)
from protocol.constants import BolusPurpose

DAY = 86_400
FROZEN = 1e-9
START = "2030-01-01T00:00:00Z"
T0 = 1_893_456_000
MORPHINE_10 = 10_000_000
RATE = 200_000  # the default program: 0.2 mL/day
PERISTALTIC = ("--model", "peristaltic-40")
VALVE_GATED = ("--model", "valve-gated-20")


# --- helpers ----------------------------------------------------------------------


def start(start_emulator, *args, **kw):
    return start_emulator("--start-time", START, *args, transport="tcp", time_scale=FROZEN, **kw)


def enter(c, txid, auto_exit_s=4 * 3600):
    return c.request(Command.PREPARE_MRI_ENTER, {"txid": txid, "auto_exit_s": auto_exit_s})


def leave(c, txid):
    return c.request(Command.PREPARE_MRI_EXIT, {"txid": txid})


def summary(events):
    return [(e.type, e.arg1, e.time) for e in events]


def empty_reservoir(c, txid):
    """A refill to 0 uL with mode STOPPED: how a valve-gated pump is emptied for MRI."""
    ok(c.request(Command.PREPARE_REFILL, {"txid": txid, "drug": Drug.MORPHINE,
                                          "concentration_ng_per_ml": MORPHINE_10, "volume_ul": 0,
                                          "withdrawn_ul": 18_000, "mode": InfusionMode.STOPPED,
                                          "bridge_volume_nl": 0, "bridge_duration_s": 0,
                                          "steps": []}), Command.PREPARE_REFILL)
    ok(commit(c, txid), Command.COMMIT)


def field(emu, tesla, **kw):
    reply = emu.control("field", tesla=tesla, **kw)
    assert reply["ok"], reply
    return reply


# --- MRI-safe mode: enter and exit --------------------------------------------------------


def test_peristaltic_enter_and_exit(start_emulator):
    emu = start(start_emulator, *PERISTALTIC)
    with RawClient(emu.url, keys=emu.keys) as c:
        program, before = read_program(c), status(c)
        echo = ok(enter(c, 1, 4 * 3600), Command.PREPARE_MRI_ENTER)
        assert echo == bodies.Prepared(txid=1, kind=WriteKind.MRI_ENTER, program=program.program,
                                       reservoir_ul=18_000, bolus_dose_ng=0, bolus_duration_s=0,
                                       bolus_volume_nl=0, mri_auto_exit_s=14_400,
                                       bolus_purpose=BolusPurpose.CLINICIAN, catheter=before.catheter,
                                       clock_step_s=0, ptm=before.ptm, patient=before.patient)
        assert status(c) == before  # prepared, not applied
        emu.control("advance", seconds=600)
        n = status(c).event_count
        done = ok(commit(c, 1), Command.COMMIT)
        assert done == bodies.Committed(txid=1, outcome=CommitOutcome.APPLIED, kind=WriteKind.MRI_ENTER,
                                        applied_at=T0 + 600)
        s = status(c)
        assert (s.mri_mode, s.mri_auto_exit_at, s.current_rate_nl_per_day) == (
            MriMode.SAFE, T0 + 600 + 14_400, 0)
        assert (s.last_txid, s.mode, s.daily_dose_ng_per_day) == (1, InfusionMode.CONTINUOUS, 2_000_000)
        # the program itself unchanged
        assert read_program(c) == bodies.ReadProgramResponse(last_txid=1, program=program.program)
        state = emu.control("state")
        assert state["motor"] == "parked" and state["mri_program"] == state["program"]
        held = state["reservoir_nl"]
        assert emu.control("advance", seconds=3600)["reservoir_nl"] == held  # nothing delivered

        # the rest is refused in the mode, entering again too
        assert "already" in refused(enter(c, 2), ErrorReason.INVALID_STATE)
        refused(c.request(Command.PREPARE_BOLUS, {"txid": 3, "dose_ng": 100_000, "duration_s": 3600,
                                                  "purpose": "CLINICIAN"}),
                ErrorReason.INVALID_STATE)

        echo = ok(leave(c, 4), Command.PREPARE_MRI_EXIT)
        assert echo.kind == WriteKind.MRI_EXIT and echo.program == program.program
        assert echo.mri_auto_exit_s == 0 and echo.reservoir_ul == held // 1000
        assert ok(commit(c, 4), Command.COMMIT).applied_at == T0 + 4200
        s = status(c)
        assert (s.mri_mode, s.mri_auto_exit_at, s.current_rate_nl_per_day, s.last_txid) == (
            MriMode.OFF, 0, RATE, 4)
        assert read_program(c).program == program.program
        assert emu.control("advance", seconds=DAY)["reservoir_nl"] == held - RATE  # drains again
        assert summary(read_log(c, n)) == [
            (EventType.MRI_SAFE_ENTERED, 14_400, T0 + 600),
            (EventType.DELIVERY_STOPPED, 0, T0 + 600),
            (EventType.TX_APPLIED, 1, T0 + 600),
            (EventType.MRI_SAFE_EXITED, 0, T0 + 4200),
            (EventType.DELIVERY_RESUMED, 0, T0 + 4200),
            (EventType.TX_APPLIED, 4, T0 + 4200),
        ]
        again = ok(commit(c, 4), Command.COMMIT)
        assert again.outcome == CommitOutcome.ALREADY_APPLIED and again.kind == WriteKind.MRI_EXIT
        assert "not in MRI-safe mode" in refused(leave(c, 5), ErrorReason.INVALID_STATE)


def test_valve_gated_emptied_enters_and_the_field_does_nothing(start_emulator):
    emu = start(start_emulator, *VALVE_GATED)
    with RawClient(emu.url, keys=emu.keys) as c:
        empty_reservoir(c, 1)
        s = status(c)
        assert s.reservoir_ul == 0 and s.mode == InfusionMode.STOPPED
        program = read_program(c).program
        ok(enter(c, 2, 3600 * 6), Command.PREPARE_MRI_ENTER)
        ok(commit(c, 2), Command.COMMIT)
        s = status(c)
        assert s.mri_mode == MriMode.SAFE and s.mri_auto_exit_at == T0 + 6 * 3600
        assert emu.control("state")["valves"] == "closed"
        n = s.event_count
        alarms = s.alarms
        for tesla in (1.5, 3):  # 3 T is beyond this model's conditions: still nothing in the mode
            state = field(emu, tesla, gradient_t_per_m=15)
            assert state["in_field"] == tesla and state["reservoir_nl"] == 0
        assert state["field_within_mr_conditions"] is False
        emu.control("advance", seconds=3600)
        field(emu, 0)
        assert status(c).event_count == n and status(c).alarms == alarms
        ok(leave(c, 3), Command.PREPARE_MRI_EXIT)
        ok(commit(c, 3), Command.COMMIT)
        assert read_program(c).program == program
        assert summary(read_log(c, n)) == [(EventType.MRI_SAFE_EXITED, 0, T0 + 3600),
                                           (EventType.TX_APPLIED, 3, T0 + 3600)]
        assert emu.control("state")["valves"] == "gated"
        # refilled and reprogrammed afterwards, it delivers again
        ok(c.request(Command.PREPARE_REFILL, {"txid": 4, "drug": Drug.MORPHINE, "concentration_ng_per_ml": MORPHINE_10,
                                              "volume_ul": 20_000, "withdrawn_ul": 0, "bridge_volume_nl": 0,
                                              "bridge_duration_s": 0, "mode": InfusionMode.CONTINUOUS,
                                              "steps": [{"start_minute": 0, "dose_ng_per_day": 2_000_000}]}),
           Command.PREPARE_REFILL)
        ok(commit(c, 4), Command.COMMIT)
        assert emu.control("advance", seconds=DAY)["reservoir_nl"] == 20_000_000 - RATE


@pytest.mark.parametrize("model", [PERISTALTIC, VALVE_GATED], ids=["peristaltic", "valve-gated"])
def test_a_forgotten_exit_ends_by_itself_at_the_exact_second(start_emulator, model):
    emu = start(start_emulator, *model)
    with RawClient(emu.url, keys=emu.keys) as c:
        txid = 1
        if model is VALVE_GATED:
            empty_reservoir(c, txid)
            txid += 1
        program = read_program(c).program
        ok(enter(c, txid, 3600), Command.PREPARE_MRI_ENTER)
        ok(commit(c, txid), Command.COMMIT)
        n = status(c).event_count
        held = emu.control("state")["reservoir_nl"]
        assert emu.control("advance", seconds=3599)["mri_mode"] == "SAFE"
        state = emu.control("advance", seconds=3601)  # across the exit, 2 h after entering
        assert state["mri_mode"] == "OFF" and state["mri_auto_exit_at"] == 0
        s = status(c)
        assert (s.mri_mode, s.mri_auto_exit_at, s.last_txid) == (MriMode.OFF, 0, txid)
        assert read_program(c).program == program
        new = summary(read_log(c, n))
        if model is PERISTALTIC:
            # delivery resumed at exactly T0 + 3600: one hour's worth left by T0 + 7200
            assert new == [(EventType.MRI_SAFE_EXITED, 1, T0 + 3600), (EventType.DELIVERY_RESUMED, 0, T0 + 3600)]
            assert state["reservoir_nl"] == held - RATE * 3600 // DAY
            assert s.current_rate_nl_per_day == RATE
        else:
            assert new == [(EventType.MRI_SAFE_EXITED, 1, T0 + 3600)]  # still empty: nothing to resume
            assert state["valves"] == "gated"


def test_reader_cannot_enter_or_exit(start_emulator):
    emu = start(start_emulator, *PERISTALTIC)
    with RawClient(emu.url, keys=emu.keys, role="reader") as reader:
        for request in (lambda: enter(reader, 1), lambda: leave(reader, 2)):
            assert "CLINICIAN" in refused(request(), ErrorReason.NOT_PERMITTED)
    assert emu.control("state")["pending"] is None
    with RawClient(emu.url, keys=emu.keys) as clinician:
        ok(enter(clinician, 3), Command.PREPARE_MRI_ENTER)
        ok(commit(clinician, 3), Command.COMMIT)
        ok(leave(clinician, 4), Command.PREPARE_MRI_EXIT)  # pending: a reader must not commit it
    with RawClient(emu.url, keys=emu.keys, role="reader") as reader:
        refused(commit(reader, 4), ErrorReason.NOT_PERMITTED)
        refused(leave(reader, 5), ErrorReason.NOT_PERMITTED)
        assert status(reader).mri_mode == MriMode.SAFE
    assert emu.control("state")["pending"]["txid"] == 4


# --- refusals -----------------------------------------------------------------------------


def test_valve_gated_holding_drug_cannot_enter(start_emulator):
    emu = start(start_emulator, *VALVE_GATED)
    with RawClient(emu.url, keys=emu.keys) as c:
        before = status(c), read_program(c), emu.control("state")
        detail = refused(enter(c, 1), ErrorReason.INVALID_STATE)
        assert "18000 uL" in detail and "emptied first" in detail
        after = status(c), read_program(c), emu.control("state")
        assert after == before and after[2]["pending"] is None


def test_entering_while_a_bolus_runs_is_refused(start_emulator):
    emu = start(start_emulator, *PERISTALTIC)
    with RawClient(emu.url, keys=emu.keys) as c:
        ok(c.request(Command.PREPARE_BOLUS, {"txid": 1, "dose_ng": 100_000, "duration_s": 3600,
                                             "purpose": "CLINICIAN"}),
           Command.PREPARE_BOLUS)
        ok(commit(c, 1), Command.COMMIT)
        assert "bolus" in refused(enter(c, 2), ErrorReason.INVALID_STATE)
        assert status(c).mri_mode == MriMode.OFF
        emu.control("advance", seconds=3600)  # finished: now it may
        ok(enter(c, 2), Command.PREPARE_MRI_ENTER)


# --- the field outside MRI-safe mode ------------------------------------------------------


def test_a_scan_without_safe_mode_stalls_the_motor_until_recovery(start_emulator):
    emu = start(start_emulator, *PERISTALTIC)
    with RawClient(emu.url, keys=emu.keys) as c:
        n = status(c).event_count
        state = field(emu, 1.5)
        assert state["motor"] == "stalled" and state["in_field"] == 1.5
        assert state["stall"] == {"stalled": True, "recovery_at": None, "needs_interrogation": False}
        s = status(c)
        assert s.alarms & Alarm.MOTOR_STALL and s.current_rate_nl_per_day == 0
        held = state["reservoir_nl"]
        emu.control("advance", seconds=3600)  # an hour in the scanner
        state = field(emu, 0)
        assert state["stall"]["recovery_at"] == T0 + 3600 + 7200  # the default --stall-recovery
        assert emu.control("advance", seconds=7199)["motor"] == "stalled"
        assert status(c).alarms & Alarm.MOTOR_STALL
        state = emu.control("advance", seconds=1)
        assert state["motor"] == "running" and state["reservoir_nl"] == held  # nothing delivered while stalled
        s = status(c)
        assert not s.alarms & Alarm.MOTOR_STALL and s.current_rate_nl_per_day == RATE
        events = read_log(c, n)
        assert summary(events) == [
            (EventType.MOTOR_STALL, 0, T0),
            (EventType.ALARM_RAISED, Alarm.MOTOR_STALL, T0),
            (EventType.DELIVERY_STOPPED, Alarm.MOTOR_STALL, T0),
            (EventType.STALL_RECOVERY, 0, T0 + 10_800),
            (EventType.ALARM_CLEARED, Alarm.MOTOR_STALL, T0 + 10_800),
            (EventType.DELIVERY_RESUMED, 0, T0 + 10_800),
        ]
        assert events[1].priority == Priority.HIGH
        assert emu.control("advance", seconds=DAY)["reservoir_nl"] == held - RATE


def test_a_scenario_is_played_exactly_by_advance(start_emulator):
    emu = start(start_emulator, *PERISTALTIC, "--stall-recovery", "3600")
    with RawClient(emu.url, keys=emu.keys) as c:
        n = status(c).event_count
        reply = emu.control("scenario", events=[{"after_s": 2400, "op": "field", "tesla": 0},
                                                {"after_s": 600, "op": "field", "tesla": 3,
                                                 "gradient_t_per_m": 5}])
        assert reply["ok"] and [e["at"] for e in reply["scenario"]] == [T0 + 600, T0 + 2400]
        state = emu.control("advance", seconds=DAY)  # one jump over the whole scan and the recovery
        assert state["scenario"] == [] and state["in_field"] == 0 and state["motor"] == "running"
        stalled_s = (2400 + 3600) - 600
        assert state["reservoir_nl"] == 18_000_000 - RATE * (DAY - stalled_s) // DAY
        assert [(t, a, time) for t, a, time in summary(read_log(c, n))
                if t in (EventType.MOTOR_STALL, EventType.STALL_RECOVERY)] == [
            (EventType.MOTOR_STALL, 0, T0 + 600), (EventType.STALL_RECOVERY, 0, T0 + 6000)]


def test_a_pump_that_was_alarming_restarts_only_when_interrogated(start_emulator):
    # 1.5 mL: the low-reservoir alarm (2 mL) is active before the scan
    emu = start(start_emulator, *PERISTALTIC, "--volume", "1.5 mL", "--stall-recovery", "3600")
    with RawClient(emu.url, keys=emu.keys) as c:
        assert status(c).alarms & Alarm.LOW_RESERVOIR
        assert field(emu, 3)["stall"]["needs_interrogation"] is True
        assert status(c).alarms & Alarm.MOTOR_STALL  # an interrogation in the field changes nothing
        emu.control("advance", seconds=1800)
        field(emu, 0)
        emu.control("advance", seconds=1800)
        assert status(c).alarms & Alarm.MOTOR_STALL  # before the recovery time: still stalled
        state = emu.control("advance", seconds=DAY)  # long past it: waits for an interrogation
        assert state["motor"] == "stalled" and state["reservoir_nl"] == 1_500_000
        n = state["event_count"]
        s = status(c)
        assert not s.alarms & Alarm.MOTOR_STALL and s.current_rate_nl_per_day == RATE
        at = T0 + 3600 + DAY
        assert summary(read_log(c, n)) == [(EventType.STALL_RECOVERY, 0, at),
                                           (EventType.ALARM_CLEARED, Alarm.MOTOR_STALL, at),
                                           (EventType.DELIVERY_RESUMED, 0, at)]


@pytest.mark.parametrize("tesla", [1.5, 3])
def test_valve_gated_holding_drug_in_the_field_dumps_the_reservoir(start_emulator, tesla):
    emu = start(start_emulator, *VALVE_GATED)
    with RawClient(emu.url, keys=emu.keys) as c:
        n = status(c).event_count
        state = field(emu, tesla)
        assert state["reservoir_nl"] == 0 and state["delivered_nl"] == 18_000_000
        s = status(c)
        assert s.reservoir_ul == 0 and s.alarms & Alarm.UNCONTROLLED_BOLUS and s.current_rate_nl_per_day == 0
        events = read_log(c, n)
        assert summary(events) == [
            (EventType.UNCONTROLLED_BOLUS, 18_000, T0),
            (EventType.ALARM_RAISED, Alarm.UNCONTROLLED_BOLUS, T0),
            (EventType.ALARM_RAISED, Alarm.LOW_RESERVOIR, T0),
            (EventType.RESERVOIR_EMPTY, 0, T0),
            (EventType.ALARM_RAISED, Alarm.EMPTY_RESERVOIR, T0),
            (EventType.DELIVERY_STOPPED, Alarm.EMPTY_RESERVOIR, T0),
        ]
        assert events[1].priority == Priority.HIGH
        field(emu, 0)
        assert status(c).event_count == n + len(events)  # leaving the field logs nothing


def test_in_safe_mode_the_field_does_not_stall_but_leaving_the_mode_in_it_does(start_emulator):
    emu = start(start_emulator, *PERISTALTIC, "--stall-recovery", "600")
    with RawClient(emu.url, keys=emu.keys) as c:
        ok(enter(c, 1), Command.PREPARE_MRI_ENTER)
        ok(commit(c, 1), Command.COMMIT)
        n = status(c).event_count
        state = field(emu, 3)
        assert state["motor"] == "parked" and not state["stall"]["stalled"]
        emu.control("advance", seconds=1800)
        assert status(c).event_count == n and not status(c).alarms & Alarm.MOTOR_STALL
        ok(leave(c, 2), Command.PREPARE_MRI_EXIT)
        ok(commit(c, 2), Command.COMMIT)  # still in the scanner: the motor stalls at once
        assert emu.control("state")["motor"] == "stalled"
        field(emu, 0)
        assert emu.control("advance", seconds=600)["motor"] == "running"
        types = [e.type for e in read_log(c, n)]
        assert types == [EventType.MRI_SAFE_EXITED, EventType.DELIVERY_RESUMED, EventType.TX_APPLIED,
                         EventType.MOTOR_STALL, EventType.ALARM_RAISED, EventType.DELIVERY_STOPPED,
                         EventType.STALL_RECOVERY, EventType.ALARM_CLEARED, EventType.DELIVERY_RESUMED]


def test_field_and_scenario_arguments_are_checked(start_emulator):
    emu = start(start_emulator, *PERISTALTIC)
    before = emu.control("state")
    cases: list[tuple[str, dict[str, object]]] = [
                   ("field", {}), ("field", {"tesla": 2}), ("field", {"tesla": "3"}), ("field", {"tesla": True}),
                   ("field", {"tesla": 3, "gradient_t_per_m": 0}), ("field", {"tesla": 3, "gradient_t_per_m": 1e9}),
                   ("scenario", {}), ("scenario", {"events": [{"after_s": -1, "op": "field", "tesla": 3}]}),
                   ("scenario", {"events": [{"after_s": 1, "op": "advance", "seconds": 3}]}),
                   ("scenario", {"events": [{"after_s": 1, "op": "field", "tesla": 3},
                                            {"after_s": 2, "op": "field", "tesla": 7}]})]
    for op, kw in cases:
        reply = emu.control(op, **kw)
        assert reply["ok"] is False and reply["error"], (op, kw)
    assert emu.control("state") == before


# --- persistence ----------------------------------------------------------------------------


def test_safe_mode_and_the_field_survive_kill_9(start_emulator, tmp_path):
    state_path = tmp_path / "pump.json"
    emu = start(start_emulator, *PERISTALTIC, state_path=state_path)
    with RawClient(emu.url, keys=emu.keys) as c:
        program = read_program(c)
        ok(enter(c, 1, 5 * 3600), Command.PREPARE_MRI_ENTER)
        ok(commit(c, 1), Command.COMMIT)
        field(emu, 1.5, gradient_t_per_m=12)
        emu.control("advance", seconds=600)
        before = status(c)
    emu.kill()
    saved = json.loads(state_path.read_text())
    assert saved["version"] == store.VERSION and saved["pump"]["mri_mode"] == "SAFE"

    emu2 = start_emulator(transport="tcp", time_scale=FROZEN, state_path=state_path, key_file=emu.key_file)
    with RawClient(emu2.url, keys=emu2.keys) as c:
        after = status(c)
        for name in ("mri_mode", "mri_auto_exit_at", "current_rate_nl_per_day", "reservoir_ul", "last_txid", "alarms"):
            assert getattr(after, name) == getattr(before, name), name
        assert after.mri_auto_exit_at == T0 + 5 * 3600
        state = emu2.control("state")
        assert (state["in_field"], state["field_gradient_t_per_m"], state["motor"]) == (1.5, 12, "parked")
        assert read_program(c) == bodies.ReadProgramResponse(last_txid=1, program=program.program)
        assert ok(commit(c, 1), Command.COMMIT).outcome == CommitOutcome.ALREADY_APPLIED
        field(emu2, 0)
        # the automatic exit still fires at its time after the restart
        state = emu2.control("advance", seconds=5 * 3600)
        assert state["mri_mode"] == "OFF" and state["motor"] == "running"
        exits = [e for e in read_log(c) if e.type == EventType.MRI_SAFE_EXITED]
        assert [(e.arg1, e.time) for e in exits] == [(1, T0 + 5 * 3600)]
    assert emu2.stop() == 0


# --- the pump logic alone ---------------------------------------------------------------------


def make(model="peristaltic-40", **kw) -> Pump:
    args = dict(model=model, serial="T1", drug=Drug.MORPHINE, concentration_ng_per_ml=MORPHINE_10,
                reservoir_ul=18_000, flow_nl_per_day=RATE, low_reservoir_alarm_ul=2_000,
                battery_seconds=5 * 365 * DAY, start_time=T0)
    args.update(kw)
    return Pump.new(**args)


def test_time_cut_any_way_gives_the_same_log_and_reservoir():
    def setup() -> Pump:
        pump = make(stall_recovery_s=1000)
        pump.prepare(based(pump, bodies.PrepareMriEnterRequest(txid=1, based_on_txid=0, auto_exit_s=3600)))
        pump.commit(1)
        # in the scanner during the mode, still in it when the mode ends by itself, out, back in
        # before the motor recovered (recovery postponed), out again
        pump.schedule_field([(100, 3.0, 10.0), (5000, 0.0, 0.0), (5500, 1.5, 10.0), (6000, 0.0, 0.0)])
        return pump

    one, many = setup(), setup()
    end = T0 + 12_000
    for t in range(T0 + 1, end + 1):
        many.advance_to(t)
    one.advance_to(end)
    assert [e.to_list() for e in one.log.events] == [e.to_list() for e in many.log.events]
    assert one.to_dict() == many.to_dict()
    times = [(e.type, e.time) for e in one.log.events if e.time > T0]
    assert times == [
        (EventType.MRI_SAFE_EXITED, T0 + 3600), (EventType.DELIVERY_RESUMED, T0 + 3600),
        (EventType.MOTOR_STALL, T0 + 3600), (EventType.ALARM_RAISED, T0 + 3600),
        (EventType.DELIVERY_STOPPED, T0 + 3600),
        # recovery 1000 s after the last end of the field
        (EventType.STALL_RECOVERY, T0 + 7000), (EventType.ALARM_CLEARED, T0 + 7000),
        (EventType.DELIVERY_RESUMED, T0 + 7000),
    ]
    # delivered only from T0 + 7000 (the mode was entered at T0)
    assert one.reservoir_nl == 18_000_000 - RATE * 5000 // DAY


def test_refusals_and_echoes():
    pump = make()
    with pytest.raises(Refusal) as exc:
        pump.prepare(based(pump, bodies.PrepareMriExitRequest(txid=1, based_on_txid=0)))
    assert exc.value.reason is ErrorReason.INVALID_STATE
    with pytest.raises(Refusal) as exc:
        pump.prepare(based(pump, bodies.PrepareMriEnterRequest(txid=1, based_on_txid=0, auto_exit_s=60)))
    assert exc.value.reason is ErrorReason.OUT_OF_RANGE and pump.pending is None
    body = pump.prepare(based(pump, bodies.PrepareMriEnterRequest(txid=2, based_on_txid=0, auto_exit_s=7200)))
    encode(Command.PREPARE_MRI_ENTER, body, seq=1, response=True)  # valid on the wire
    assert pump.tamper_pending() is False  # the mismatch fault leaves MRI transactions alone
    pump.commit(2)
    body = pump.prepare(based(pump, bodies.PrepareMriExitRequest(txid=3, based_on_txid=0)))
    encode(Command.PREPARE_MRI_EXIT, body, seq=1, response=True)
    encode(Command.INTERROGATE, pump.status(), seq=1, response=True)
    # at EOS, in the mode: the timer still brings the program back
    pump = make(battery_seconds=DAY)
    pump.prepare(based(pump, bodies.PrepareMriEnterRequest(txid=1, based_on_txid=0, auto_exit_s=86_400)))
    pump.commit(1)
    pump.advance_to(T0 + 2 * DAY)
    assert pump.mri_mode is MriMode.OFF and pump.program.mode is InfusionMode.CONTINUOUS


def test_a_stall_cuts_a_running_bolus_short():
    pump = make()
    pump.prepare(based(pump, bodies.PrepareBolusRequest(txid=1, based_on_txid=0, dose_ng=1_000_000,
                                                        duration_s=3600, purpose=BolusPurpose.CLINICIAN)))
    pump.commit(1)
    pump.advance_to(T0 + 1800)
    pump.set_field(1.5)
    finished = [e for e in pump.log.events if e.type is EventType.BOLUS_FINISHED]
    assert pump.bolus is None and len(finished) == 1 and finished[0].arg1 == 500_000


def test_persistence_round_trip_and_consistency_checks(tmp_path):
    pump = make(stall_recovery_s=900)
    pump.set_field(3.0, 7.5)
    pump.set_field(0)
    pump.schedule_field([(5000, 1.5, 10.0)])
    data = json.loads(json.dumps(pump.to_dict()))
    back = Pump.from_dict(data)
    assert back.to_dict() == pump.to_dict() and back.describe() == pump.describe()
    for p in (pump, back):
        p.advance_to(T0 + DAY)
    assert back.to_dict() == pump.to_dict()

    safe = make()
    safe.prepare(based(safe, bodies.PrepareMriEnterRequest(txid=1, based_on_txid=0, auto_exit_s=3600)))
    safe.commit(1)
    good = safe.to_dict()
    assert Pump.from_dict(json.loads(json.dumps(good))).to_dict() == good
    broken: Mapping[str, object]
    for broken in ({"mri_program": None}, {"mri_auto_exit_at": 0}, {"suspended": []},
                   {"field": {"tesla": 2.0, "gradient_t_per_m": 1.0}},
                   {"stall": {"stalled": True, "recovery_at": None, "needs_interrogation": False}}):
        with pytest.raises((ValueError, KeyError, TypeError)):
            Pump.from_dict({**good, **broken})

    # a version-2 file (before MRI-safe mode) is read as out of the field and the mode
    path = tmp_path / "pump.json"
    store.save(str(path), make())
    data = json.loads(path.read_text())
    data["version"] = 2
    for key in ("mri_program", "field", "stall", "stall_recovery_s", "scenario"):
        del data["pump"][key]
    path.write_text(json.dumps(data))
    old, _ = store.load(str(path))
    assert old.mri_mode is MriMode.OFF and old.field_tesla == 0 and old.stall_recovery_s == 7200
