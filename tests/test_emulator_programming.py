"""Two-phase therapy writes on the emulator: PREPARE_* / COMMIT, READ_PROGRAM, faults.

Real emulator processes (tests/emulator_harness.py) with frozen clocks moved only
by the control channel's `advance`, so volumes and times are asserted exactly;
then the pump logic alone (emulator/pump.py) with an injected clock for what a
process cannot reach cheaply (EOS, MRI mode, history length, bolus cut short).
"""
from __future__ import annotations

import dataclasses
import json

import pytest
from emulator_harness import RawClient, commit, ok, read_log, read_program, refused, status
from loopback import based

from emulator.pump import APPLIED_HISTORY, Pump, Refusal
from protocol import (
    Alarm,
    Command,
    CommitOutcome,
    Drug,
    ErrorReason,
    EventType,
    InfusionMode,
    MriMode,
    Role,
    WriteKind,
    bodies,
    encode,
)
from protocol.constants import BolusPurpose
from protocol.models import MINIMUM_RATE_NL_PER_DAY
from protocol.therapy import daily_total, dose_for_rate, rate_for_dose

DAY = 86_400
FROZEN = 1e-9
START = "2030-01-01T00:00:00Z"  # midnight UTC: flex steps line up with the test's clock
T0 = 1_893_456_000
MORPHINE_10 = 10_000_000  # the default reservoir: morphine 10 mg/mL, 18 mL, 0.2 mL/day


@pytest.fixture
def emu(start_emulator):
    return start_emulator("--start-time", START, transport="tcp", time_scale=FROZEN)


@pytest.fixture
def client(emu):
    with RawClient(emu.url, keys=emu.keys) as c:
        yield c


# --- helpers ----------------------------------------------------------------------


def steps(*pairs):
    return [{"start_minute": m, "dose_ng_per_day": d} for m, d in pairs]


def prepare_program(c, txid, mode, step_list, drug=Drug.MORPHINE, conc=MORPHINE_10):
    return c.request(Command.PREPARE_PROGRAM, {"txid": txid, "mode": mode, "drug": drug,
                                               "concentration_ng_per_ml": conc, "steps": step_list})


def prepare_refill(c, txid, volume_ul, conc, mode, step_list, drug=Drug.MORPHINE, withdrawn_ul=0):
    return c.request(Command.PREPARE_REFILL, {"txid": txid, "drug": drug, "concentration_ng_per_ml": conc,
                                              "volume_ul": volume_ul, "withdrawn_ul": withdrawn_ul,
                                              "bridge_volume_nl": 0, "bridge_duration_s": 0,
                                              "mode": mode, "steps": step_list})


def prepare_bolus(c, txid, dose_ng, duration_s):
    return c.request(Command.PREPARE_BOLUS, {"txid": txid, "dose_ng": dose_ng, "duration_s": duration_s,
                                             "purpose": "CLINICIAN"})


def of_type(events, type_):
    return [e for e in events if e.type == type_]


def plain(steps) -> list[dict]:
    """Steps as plain data, to compare with a table of them."""
    return [bodies.as_dict(step) for step in steps]


def snapshot(emu, c):
    return status(c), read_program(c), emu.control("state")


# --- programs ---------------------------------------------------------------------


def test_continuous_change_applies_only_at_commit(emu, client):
    before = snapshot(emu, client)
    echo = ok(prepare_program(client, 7, InfusionMode.CONTINUOUS, steps((0, 3_000_000))), Command.PREPARE_PROGRAM)
    assert echo.txid == 7 and echo.kind == WriteKind.PROGRAM
    assert plain(echo.program.steps) == [{"start_minute": 0, "dose_ng_per_day": 3_000_000, "rate_nl_per_day": 300_000}]
    assert echo.program.daily_dose_ng_per_day == 3_000_000
    assert echo.program.daily_volume_nl_per_day == 300_000
    assert echo.reservoir_ul == 18_000
    assert (echo.bolus_dose_ng, echo.bolus_duration_s, echo.bolus_volume_nl) == (0, 0, 0)
    # prepared, not applied: everything the programmer can read is as before
    now = snapshot(emu, client)
    assert now[0] == before[0] and now[1] == before[1]
    assert now[2]["pending"]["txid"] == 7
    assert plain(before[1].program.steps) == [
        {"start_minute": 0, "dose_ng_per_day": 2_000_000, "rate_nl_per_day": 200_000}]

    emu.control("advance", seconds=600)
    done = ok(commit(client, 7), Command.COMMIT)
    assert done == bodies.Committed(txid=7, outcome=CommitOutcome.APPLIED, kind=WriteKind.PROGRAM, applied_at=T0 + 600)
    after = status(client)
    assert after.daily_dose_ng_per_day == 3_000_000 and after.current_rate_nl_per_day == 300_000
    assert (after.last_txid, after.last_programmed_at) == (7, T0 + 600)
    back = read_program(client)
    assert back == bodies.ReadProgramResponse(last_txid=7, program=echo.program)
    events = read_log(client)
    assert [(e.type, e.arg1, e.arg2, e.time) for e in events[-2:]] == [
        (EventType.PROGRAM_CHANGED, 2_000_000, 3_000_000, T0 + 600),
        (EventType.TX_APPLIED, 7, WriteKind.PROGRAM, T0 + 600),
    ]


def test_flex_schedule_totals_and_exact_drain(emu, client):
    pairs = [(0, 1_234_567), (7 * 60 + 30, 4_000_001), (18 * 60, 1_500_000)]
    echo = ok(prepare_program(client, 21, InfusionMode.FLEX, steps(*pairs)), Command.PREPARE_PROGRAM).program
    starts = [m for m, _ in pairs]
    rates = [rate_for_dose(d, MORPHINE_10) for _, d in pairs]
    assert [s.rate_nl_per_day for s in echo.steps] == rates
    assert echo.daily_dose_ng_per_day == daily_total(starts, [d for _, d in pairs])
    assert echo.daily_volume_nl_per_day == daily_total(starts, rates)
    ok(commit(client, 21), Command.COMMIT)
    assert read_program(client).program == echo
    start_nl = emu.control("state")["reservoir_nl"]
    assert status(client).current_rate_nl_per_day == rates[0]
    emu.control("advance", seconds=8 * 3600)  # 08:00: the second step
    assert status(client).current_rate_nl_per_day == rates[1]
    emu.control("advance", seconds=11 * 3600)  # 19:00: the third
    assert status(client).current_rate_nl_per_day == rates[2]
    state = emu.control("advance", seconds=5 * 3600)  # midnight: a whole day
    assert start_nl - state["reservoir_nl"] == daily_total(starts, rates)
    assert status(client).daily_dose_ng_per_day == echo.daily_dose_ng_per_day


def test_minimum_and_stopped_modes(emu, client):
    echo = ok(prepare_program(client, 1, InfusionMode.MINIMUM, []), Command.PREPARE_PROGRAM).program
    dose = dose_for_rate(MINIMUM_RATE_NL_PER_DAY, MORPHINE_10)
    assert echo.mode == InfusionMode.MINIMUM
    assert echo.steps == (bodies.DeliveredStep(start_minute=0, dose_ng_per_day=dose,
                                               rate_nl_per_day=MINIMUM_RATE_NL_PER_DAY),)
    ok(commit(client, 1), Command.COMMIT)
    s = status(client)
    assert (s.mode, s.current_rate_nl_per_day, s.daily_dose_ng_per_day) == (
        InfusionMode.MINIMUM, MINIMUM_RATE_NL_PER_DAY, dose)

    echo = ok(prepare_program(client, 2, InfusionMode.STOPPED, []), Command.PREPARE_PROGRAM).program
    assert echo.steps == () and echo.daily_volume_nl_per_day == echo.daily_dose_ng_per_day == 0
    ok(commit(client, 2), Command.COMMIT)
    before = emu.control("state")["reservoir_nl"]
    assert emu.control("advance", seconds=DAY)["reservoir_nl"] == before
    s = status(client)
    assert (s.mode, s.current_rate_nl_per_day, s.daily_dose_ng_per_day) == (InfusionMode.STOPPED, 0, 0)
    assert read_program(client) == bodies.ReadProgramResponse(last_txid=2, program=echo)


def _refusals():
    C, F, M, S = InfusionMode.CONTINUOUS, InfusionMode.FLEX, InfusionMode.MINIMUM, InfusionMode.STOPPED
    I, O = ErrorReason.INVALID_STATE, ErrorReason.OUT_OF_RANGE  # noqa: E741  (one letter keeps the table readable)
    program = lambda mode, s, **kw: lambda c: prepare_program(c, 100, mode, s, **kw)  # noqa: E731
    refill = lambda *a, **kw: lambda c: prepare_refill(c, 100, *a, **kw)  # noqa: E731
    fourteen = steps(*[(60 * i, 1_000_000) for i in range(14)])
    return [
        ("drug mismatch", program(C, steps((0, 1_000_000)), drug=Drug.BACLOFEN), I),
        ("concentration mismatch", program(C, steps((0, 1_000_000)), conc=5_000_000), I),
        ("continuous, two steps", program(C, steps((0, 1_000_000), (60, 2_000_000))), O),
        ("continuous, not at 00:00", program(C, steps((60, 1_000_000))), O),
        ("flex, no steps", program(F, []), O),
        ("flex, 14 steps", program(F, fourteen), O),
        ("flex, first not at 00:00", program(F, steps((30, 1_000_000), (60, 2_000_000))), O),
        ("flex, not increasing", program(F, steps((0, 1_000_000), (600, 2_000_000), (300, 1_000_000))), O),
        ("continuous, dose 0", program(C, steps((0, 0))), O),
        ("flex, a dose 0", program(F, steps((0, 1_000_000), (600, 0))), O),
        ("flow below the model's minimum", program(C, steps((0, 100_000))), O),
        ("flow above the model's maximum", program(C, steps((0, 250_000_000))), O),
        ("minimum with steps", program(M, steps((0, 480_000))), O),
        ("stopped with steps", program(S, steps((0, 1_000_000))), O),
        ("refill over capacity", refill(40_001, MORPHINE_10, C, steps((0, 2_000_000))), O),
        ("refill withdrawn over capacity", refill(20_000, MORPHINE_10, C, steps((0, 2_000_000)),
                                                  withdrawn_ul=40_001), O),
        ("refill with no drug", refill(20_000, MORPHINE_10, C, steps((0, 2_000_000)), drug=Drug.NONE), O),
        ("refill, flow out of range at the new concentration",
         refill(20_000, 50_000_000, C, steps((0, 2_000_000))), O),
        ("refill, bad schedule", refill(20_000, MORPHINE_10, F, steps((0, 2_000_000), (0, 1_000_000))), O),
        ("bolus larger than the reservoir", lambda c: prepare_bolus(c, 100, 200_000_000, 86_400), I),
        ("bolus faster than the mechanism", lambda c: prepare_bolus(c, 100, 1_000_000, 60), O),
        ("commit of an unknown txid", lambda c: commit(c, 4242), I),
    ]


def test_every_refusal_has_its_reason_and_changes_nothing(emu, client):
    before = snapshot(emu, client)
    for name, send, reason in _refusals():
        detail = refused(send(client), reason)
        assert snapshot(emu, client) == before, name
        if name == "drug mismatch":
            assert "BACLOFEN" in detail and "MORPHINE" in detail
        if name == "commit of an unknown txid":
            assert detail == "no prepared transaction 4242"
    assert not of_type(read_log(client), EventType.TX_APPLIED)


def test_repeated_commit_is_already_applied_and_applies_nothing_twice(emu, client):
    ok(prepare_program(client, 55, InfusionMode.CONTINUOUS, steps((0, 2_500_000))), Command.PREPARE_PROGRAM)
    first = ok(commit(client, 55), Command.COMMIT)
    emu.control("advance", seconds=3600)
    state = emu.control("state")
    for _ in range(3):
        again = ok(commit(client, 55), Command.COMMIT)
        assert again == dataclasses.replace(first, outcome=CommitOutcome.ALREADY_APPLIED)
    assert emu.control("state") == state
    events = read_log(client)
    assert len(of_type(events, EventType.TX_APPLIED)) == 1
    assert len(of_type(events, EventType.PROGRAM_CHANGED)) == 1
    assert status(client).last_programmed_at == first.applied_at == T0
    # the txid may not be reused for a new transaction while it is remembered
    refused(prepare_program(client, 55, InfusionMode.CONTINUOUS, steps((0, 1_000_000))), ErrorReason.INVALID_STATE)


def test_a_new_prepare_replaces_the_pending_one(emu, client):
    ok(prepare_program(client, 10, InfusionMode.CONTINUOUS, steps((0, 3_000_000))), Command.PREPARE_PROGRAM)
    ok(prepare_program(client, 11, InfusionMode.CONTINUOUS, steps((0, 1_000_000))), Command.PREPARE_PROGRAM)
    assert refused(commit(client, 10), ErrorReason.INVALID_STATE) == "no prepared transaction 10"
    ok(commit(client, 11), Command.COMMIT)
    assert status(client).daily_dose_ng_per_day == 1_000_000
    # a refused PREPARE also leaves nothing pending
    ok(prepare_program(client, 12, InfusionMode.CONTINUOUS, steps((0, 3_000_000))), Command.PREPARE_PROGRAM)
    refused(prepare_program(client, 13, InfusionMode.CONTINUOUS, steps((0, 0))), ErrorReason.OUT_OF_RANGE)
    refused(commit(client, 12), ErrorReason.INVALID_STATE)
    assert status(client).last_txid == 11


# --- refills and boluses -------------------------------------------------------------


def test_refill_with_a_new_concentration_keeps_the_dose(emu, client):
    emu.control("advance", seconds=DAY)
    echo = ok(prepare_refill(client, 30, 30_000, 20_000_000, InfusionMode.CONTINUOUS, steps((0, 2_000_000)),
                             withdrawn_ul=17_700), Command.PREPARE_REFILL)
    assert echo.kind == WriteKind.REFILL and echo.reservoir_ul == 30_000
    assert echo.program.concentration_ng_per_ml == 20_000_000
    assert plain(echo.program.steps) == [{"start_minute": 0, "dose_ng_per_day": 2_000_000, "rate_nl_per_day": 100_000}]
    assert status(client).reservoir_ul == 17_800  # not yet
    ok(commit(client, 30), Command.COMMIT)
    s = status(client)
    assert (s.reservoir_ul, s.concentration_ng_per_ml, s.drug) == (30_000, 20_000_000, Drug.MORPHINE)
    assert (s.daily_dose_ng_per_day, s.daily_volume_nl_per_day, s.current_rate_nl_per_day) == (
        2_000_000, 100_000, 100_000)
    assert read_program(client).program == echo.program
    events = read_log(client)
    assert [(e.type, e.arg1, e.arg2) for e in events[-3:]] == [
        (EventType.REFILL, 30_000, 20_000_000),
        (EventType.PROGRAM_CHANGED, 2_000_000, 2_000_000),
        (EventType.TX_APPLIED, 30, WriteKind.REFILL),
    ]
    assert emu.control("advance", seconds=DAY)["reservoir_nl"] == 30_000_000 - 100_000


def test_refill_of_an_empty_pump_clears_alarms_and_resumes(start_emulator):
    # 2.5 mL at 24 mL/day (240 mg/day at 10 mg/mL): low at 1800 s, empty at 9000 s
    emu = start_emulator("--start-time", START, "--volume", "2.5 mL", "--flow", "24 mL/day",
                         transport="tcp", time_scale=FROZEN)
    with RawClient(emu.url, keys=emu.keys) as c:
        emu.control("advance", seconds=10_000)
        s = status(c)
        assert s.alarms & Alarm.EMPTY_RESERVOIR and s.current_rate_nl_per_day == 0
        ok(prepare_refill(c, 1, 20_000, MORPHINE_10, InfusionMode.CONTINUOUS, steps((0, 2_000_000))),
           Command.PREPARE_REFILL)
        n = status(c).event_count
        ok(commit(c, 1), Command.COMMIT)
        s = status(c)
        assert not s.alarms & (Alarm.EMPTY_RESERVOIR | Alarm.LOW_RESERVOIR)
        assert s.current_rate_nl_per_day == 200_000 and s.reservoir_ul == 20_000
        new = [(e.type, e.arg1) for e in read_log(c)[n:]]
    assert new == [
        (EventType.REFILL, 20_000),
        (EventType.PROGRAM_CHANGED, 240_000_000),  # the previous 24-hour dose
        (EventType.ALARM_CLEARED, Alarm.EMPTY_RESERVOIR),
        (EventType.ALARM_CLEARED, Alarm.LOW_RESERVOIR),
        (EventType.DELIVERY_RESUMED, 0),
        (EventType.TX_APPLIED, 1),
    ]


def test_bolus_runs_drains_and_refuses_a_second(emu, client):
    echo = ok(prepare_bolus(client, 40, 1_000_000, 3600), Command.PREPARE_BOLUS)  # 1 mg over 1 h = 0.1 mL
    assert echo.kind == WriteKind.BOLUS
    assert (echo.bolus_dose_ng, echo.bolus_duration_s, echo.bolus_volume_nl) == (1_000_000, 3600, 100_000)
    assert echo.program == read_program(client).program
    assert status(client).bolus_remaining_ng == 0
    ok(commit(client, 40), Command.COMMIT)
    assert status(client).bolus_remaining_ng == 1_000_000
    refused(prepare_bolus(client, 41, 100_000, 3600), ErrorReason.INVALID_STATE)
    state = emu.control("advance", seconds=1800)
    assert state["reservoir_nl"] == 18_000_000 - 50_000 - 200_000 * 1800 // DAY
    assert status(client).bolus_remaining_ng == 500_000
    state = emu.control("advance", seconds=1800)
    assert state["reservoir_nl"] == 18_000_000 - 100_000 - 200_000 * 3600 // DAY
    assert status(client).bolus_remaining_ng == 0 and state["bolus"] is None
    events = read_log(client)
    started, finished = of_type(events, EventType.BOLUS_STARTED), of_type(events, EventType.BOLUS_FINISHED)
    assert [(e.arg1, e.arg2, e.time) for e in started] == [(1_000_000, 3600, T0)]
    assert [(e.arg1, e.time) for e in finished] == [(0, T0 + 3600)]
    ok(prepare_bolus(client, 41, 100_000, 3600), Command.PREPARE_BOLUS)  # finished: another may start


# --- faults (control channel) ----------------------------------------------------------


def unanswered(emu, command, body=None) -> None:
    """`command` sent on a connection of its own gets no reply at all: a HELLO sent behind it is
    answered, and nothing before it (the pump answers a link's frames in order; no fixed wait)."""
    with RawClient(emu.url, keys=emu.keys) as quick:
        seq = quick.next_seq()
        quick.send_raw(quick.seal(command, body, seq=seq))
        frames = quick.frames_before_barrier(hello=True)
        assert frames == [], [(f.seq, f.command) for f in frames]


def arm(emu, name, count=1):
    reply = emu.control("fault", name=name, count=count)
    assert reply["ok"] and reply["armed"][name] == count, reply
    return reply


def test_fault_control_ops(emu):
    assert emu.control("fault", name="no_such_fault")["ok"] is False
    assert emu.control("fault", name="drop_reply", count=-1)["ok"] is False
    reply = emu.control("fault", name="drop_reply")
    assert reply == {"ok": True, "armed": {"drop_reply": 1}}
    arm(emu, "reset_on_commit", 2)
    listing = emu.control("faults")
    assert listing["armed"] == {"drop_reply": 1, "reset_on_commit": 2}
    assert set(listing["known"]) == {"drop_commit_reply", "mismatch_on_commit", "reset_on_commit",
                                     "reset_after_commit", "drop_prepare_reply", "reset_after_prepare",
                                     "drop_reply"}
    assert emu.control("clear_faults") == {"ok": True, "armed": {}}
    assert emu.control("faults")["armed"] == {}


def test_drop_commit_reply_applies_and_status_tells(emu, client):
    ok(prepare_program(client, 77, InfusionMode.CONTINUOUS, steps((0, 3_000_000))), Command.PREPARE_PROGRAM)
    arm(emu, "drop_commit_reply")
    unanswered(emu, Command.COMMIT, {"txid": 77})
    assert emu.control("faults")["armed"] == {}
    s = status(client)
    assert s.last_txid == 77 and s.daily_dose_ng_per_day == 3_000_000
    assert [(e.arg1, e.arg2) for e in of_type(read_log(client), EventType.TX_APPLIED)] == [
        (77, WriteKind.PROGRAM)]
    assert ok(commit(client, 77), Command.COMMIT).outcome == CommitOutcome.ALREADY_APPLIED


def test_mismatch_on_commit_is_caught_only_by_reading_back(emu, client):
    echo = ok(prepare_program(client, 78, InfusionMode.CONTINUOUS, steps((0, 3_000_000))), Command.PREPARE_PROGRAM)
    arm(emu, "mismatch_on_commit")
    assert ok(commit(client, 78), Command.COMMIT).outcome == CommitOutcome.APPLIED
    back = read_program(client).program
    assert back != echo.program
    assert plain(back.steps) == [{"start_minute": 0, "dose_ng_per_day": 3_300_000, "rate_nl_per_day": 330_000}]
    assert status(client).last_txid == 78


def lost_session(emu, c):
    """A sealed request after a pump reset: answered in clear, NOT_AUTHENTICATED. Then a new session."""
    answer = c.request(Command.INTERROGATE)
    assert answer.auth is None  # in clear: the pump has no session key to seal with any more
    refused(answer, ErrorReason.NOT_AUTHENTICATED)
    c.handshake(c.role, emu.keys[c.role])


def test_a_reset_ends_every_session_as_a_real_pump_loses_them_with_its_ram(emu, client):
    with RawClient(emu.url, keys=emu.keys, role="reader") as other:
        assert status(other).last_txid == 0
        assert emu.control("reset")["ok"]
        for c in (client, other):
            lost_session(emu, c)
            assert status(c).alarms & Alarm.RESET
    # a connection opened after the reset is not affected by it
    with RawClient(emu.url, keys=emu.keys) as later:
        assert status(later).alarms & Alarm.RESET


def test_reset_after_prepare_loses_the_transaction_and_the_session(emu, client):
    before = read_program(client)
    arm(emu, "reset_after_prepare")
    echo = ok(prepare_program(client, 82, InfusionMode.CONTINUOUS, steps((0, 3_000_000))), Command.PREPARE_PROGRAM)
    assert echo.txid == 82  # the echo went out, sealed, before the reset
    refused(commit(client, 82), ErrorReason.NOT_AUTHENTICATED)
    client.handshake("clinician", emu.keys["clinician"])
    refused(commit(client, 82), ErrorReason.INVALID_STATE)  # the transaction died with the reset
    assert read_program(client) == before and status(client).last_txid == 0
    assert not of_type(read_log(client), EventType.TX_APPLIED)


def test_reset_on_commit_loses_the_transaction(emu, client):
    before = read_program(client)
    ok(prepare_program(client, 79, InfusionMode.CONTINUOUS, steps((0, 3_000_000))), Command.PREPARE_PROGRAM)
    arm(emu, "reset_on_commit")
    unanswered(emu, Command.COMMIT, {"txid": 79})
    lost_session(emu, client)
    s = status(client)
    assert s.last_txid == 0 and s.alarms & Alarm.RESET
    assert read_program(client) == before
    events = read_log(client)
    # the reset, then our sealed frame to a pump with no session (an auth failure to it: the first,
    # logged at once); quick's session and our new one are counted, for a SESSION_OPENED 10 minutes
    # after the first (docs/protocol.md, "Routine events and the log")
    assert [(e.type, e.arg1, e.arg2) for e in events[-3:]] == [
        (EventType.POWER_ON, 0, 0), (EventType.ALARM_RAISED, Alarm.RESET, 0),
        (EventType.AUTH_FAILURE, 1, ErrorReason.NOT_AUTHENTICATED)]
    assert emu.control("state")["sessions_unlogged"] == {"reader": 0, "clinician": 2}
    assert not of_type(events, EventType.TX_APPLIED)
    emu.control("advance", seconds=600)
    assert [(e.type, e.arg1, e.arg2) for e in read_log(client, events[-1].index + 1)] == [
        (EventType.SESSION_OPENED, Role.CLINICIAN, 2)]
    refused(commit(client, 79), ErrorReason.INVALID_STATE)  # the pending transaction is gone


def test_reset_after_commit_applies_then_resets(emu, client):
    ok(prepare_program(client, 80, InfusionMode.CONTINUOUS, steps((0, 3_000_000))), Command.PREPARE_PROGRAM)
    arm(emu, "reset_after_commit")
    unanswered(emu, Command.COMMIT, {"txid": 80})
    lost_session(emu, client)
    s = status(client)
    assert s.last_txid == 80 and s.alarms & Alarm.RESET and s.daily_dose_ng_per_day == 3_000_000
    types = [e.type for e in read_log(client)[-5:]]
    # the new sessions are counted, not yet logged: SESSION_OPENED comes 10 minutes after the first
    assert types == [EventType.PROGRAM_CHANGED, EventType.TX_APPLIED, EventType.POWER_ON, EventType.ALARM_RAISED,
                     EventType.AUTH_FAILURE]


def test_drop_prepare_reply_still_stores_the_transaction(emu, client):
    arm(emu, "drop_prepare_reply")
    unanswered(emu, Command.PREPARE_PROGRAM, {"txid": 81, "mode": InfusionMode.CONTINUOUS, "drug": Drug.MORPHINE,
                                              "concentration_ng_per_ml": MORPHINE_10, "steps": steps((0, 3_000_000))})
    assert emu.control("state")["pending"]["txid"] == 81
    assert ok(commit(client, 81), Command.COMMIT).outcome == CommitOutcome.APPLIED


def test_drop_reply_drops_one_reply_of_any_kind(emu, client):
    arm(emu, "drop_reply")
    with RawClient(emu.url, keys=emu.keys) as quick:
        quick.send_raw(quick.seal(Command.INTERROGATE, seq=quick.next_seq()))
        assert quick.frames_before_barrier() == []  # not answered; the next request is
        assert status(quick).last_txid == 0  # and the retry is answered
    assert emu.control("faults")["armed"] == {}


# --- persistence -----------------------------------------------------------------------


def test_state_survives_kill_9_after_an_acknowledged_commit(start_emulator, tmp_path):
    state_path = tmp_path / "pump.json"
    emu = start_emulator("--start-time", START, transport="tcp", time_scale=FROZEN, state_path=state_path)
    with RawClient(emu.url, keys=emu.keys) as c:
        ok(prepare_program(c, 90, InfusionMode.FLEX, steps((0, 1_000_000), (720, 3_000_000))),
           Command.PREPARE_PROGRAM)
        done = ok(commit(c, 90), Command.COMMIT)
        ok(prepare_bolus(c, 91, 500_000, 7200), Command.PREPARE_BOLUS)
        ok(commit(c, 91), Command.COMMIT)
        emu.control("advance", seconds=1800)
        program, before = read_program(c), status(c)
        ok(prepare_program(c, 92, InfusionMode.CONTINUOUS, steps((0, 1_000_000))), Command.PREPARE_PROGRAM)
    emu.kill()
    saved = json.loads(state_path.read_text())["pump"]
    assert saved["last_txid"] == 91 and saved["bolus"]["txid"] == 91 and "pending" not in saved

    emu2 = start_emulator(transport="tcp", time_scale=FROZEN, state_path=state_path)
    with RawClient(emu2.url, keys=emu2.keys) as c:
        assert read_program(c) == program
        after = status(c)
        for name in ("last_txid", "last_programmed_at", "bolus_remaining_ng", "daily_dose_ng_per_day",
                     "reservoir_ul", "pump_time"):
            assert getattr(after, name) == getattr(before, name), name
        assert after.bolus_remaining_ng == 375_000
        # the applied history survived: a late duplicate COMMIT is still recognised
        assert ok(commit(c, 90), Command.COMMIT) == dataclasses.replace(done, outcome=CommitOutcome.ALREADY_APPLIED)
        # the pending PREPARE did not (volatile, as on a reset)
        refused(commit(c, 92), ErrorReason.INVALID_STATE)
    assert emu2.stop() == 0


# --- the pump logic alone (injected clock) --------------------------------------------------


def make(*, reservoir_ul: int = 18_000, battery_seconds: int = 5 * 365 * DAY) -> Pump:
    return Pump.new(model="peristaltic-40", serial="T1", drug=Drug.MORPHINE, concentration_ng_per_ml=MORPHINE_10,
                    reservoir_ul=reservoir_ul, flow_nl_per_day=200_000, low_reservoir_alarm_ul=2_000,
                    battery_seconds=battery_seconds, start_time=T0)


def typed_steps(*pairs) -> tuple[bodies.ProgramStep, ...]:
    return tuple(bodies.ProgramStep(m, d) for m, d in pairs)


def program_body(txid, dose=3_000_000) -> bodies.PrepareProgramRequest:
    return bodies.PrepareProgramRequest(txid=txid, based_on_txid=0, mode=InfusionMode.CONTINUOUS, drug=Drug.MORPHINE,
                                        concentration_ng_per_ml=MORPHINE_10, steps=typed_steps((0, dose)))


def refill_body(txid) -> bodies.PrepareRefillRequest:
    return bodies.PrepareRefillRequest(txid=txid, based_on_txid=0, drug=Drug.MORPHINE,
                                       concentration_ng_per_ml=MORPHINE_10, volume_ul=20_000, withdrawn_ul=0,
                                       mode=InfusionMode.CONTINUOUS, steps=typed_steps((0, 2_000_000)),
                                       bridge_volume_nl=0, bridge_duration_s=0)


def bolus_body(txid, dose_ng=100_000, duration_s=3600) -> bodies.PrepareBolusRequest:
    return bodies.PrepareBolusRequest(txid=txid, based_on_txid=0, dose_ng=dose_ng, duration_s=duration_s,
                                      purpose=BolusPurpose.CLINICIAN)


def all_prepares(pump):
    return [lambda: pump.prepare(based(pump, program_body(1))),
            lambda: pump.prepare(based(pump, refill_body(2))),
            lambda: pump.prepare(based(pump, bolus_body(3)))]


def test_eos_and_mri_mode_refuse_every_prepare_and_commit():
    pump = make(battery_seconds=100 * DAY)
    pump.prepare(based(pump, program_body(9)))
    pump.advance_to(T0 + 101 * DAY)
    with pytest.raises(Refusal) as exc:
        pump.commit(9)  # EOS reached between PREPARE and COMMIT
    assert exc.value.reason is ErrorReason.INVALID_STATE and pump.last_txid == 0
    for prepare in all_prepares(pump):
        with pytest.raises(Refusal) as exc:
            prepare()
        assert exc.value.reason is ErrorReason.INVALID_STATE and "end of service" in exc.value.detail

    pump = make()
    pump.mri_mode = MriMode.SAFE
    for prepare in all_prepares(pump):
        with pytest.raises(Refusal) as exc:
            prepare()
        assert exc.value.reason is ErrorReason.INVALID_STATE and "MRI" in exc.value.detail
    assert pump.pending is None


def test_only_the_last_16_applied_are_remembered():
    pump = make()
    for txid in range(1, APPLIED_HISTORY + 2):
        pump.prepare(based(pump, program_body(txid, 1_000_000 + txid)))
        assert pump.commit(txid).outcome is CommitOutcome.APPLIED
    assert pump.commit(2).outcome is CommitOutcome.ALREADY_APPLIED
    with pytest.raises(Refusal) as exc:
        pump.commit(1)  # forgotten: refused, never applied again
    assert exc.value.reason is ErrorReason.INVALID_STATE and "no prepared transaction 1" in str(exc.value)
    assert sum(e.type is EventType.TX_APPLIED for e in pump.log.events) == APPLIED_HISTORY + 1


def test_reset_loses_the_pending_transaction_and_refill_waits_for_a_bolus():
    pump = make()
    pump.prepare(based(pump, program_body(5)))
    pump.reset()
    with pytest.raises(Refusal) as exc:
        pump.commit(5)
    assert exc.value.reason is ErrorReason.INVALID_STATE and "no prepared transaction 5" in str(exc.value)
    pump.prepare(based(pump, bolus_body(6)))
    pump.commit(6)
    with pytest.raises(Refusal) as exc:
        pump.prepare(based(pump, refill_body(7)))
    assert exc.value.reason is ErrorReason.INVALID_STATE


def test_bolus_checked_again_at_commit():
    pump = make(reservoir_ul=2_100)
    pump.prepare(based(pump, bolus_body(1, 20_000_000, 86_400)))  # 2 mL
    pump.advance_to(T0 + DAY)  # 0.2 mL delivered meanwhile: no longer enough
    with pytest.raises(Refusal) as exc:
        pump.commit(1)
    assert exc.value.reason is ErrorReason.INVALID_STATE and pump.bolus is None and pump.pending is None


def test_bolus_delivery_is_exact_however_time_is_cut_and_an_empty_reservoir_stops_it():
    # 2.1 mL; a 2.08 mL bolus (fits, as PREPARE requires) plus the program empties it before
    # the bolus ends: the low alarm (2 mL) and empty are both crossed during the bolus
    one, many = make(reservoir_ul=2_100), make(reservoir_ul=2_100)
    for pump in (one, many):
        pump.prepare(based(pump, bolus_body(1, 20_800_000, 20_000)))
        pump.commit(1)
    end = T0 + 20_000
    for t in range(T0 + 1, end + 1):
        many.advance_to(t)
    one.advance_to(end)
    assert [e.to_list() for e in one.log.events] == [e.to_list() for e in many.log.events]
    assert one.reservoir_nl == many.reservoir_nl == 0 and one.bolus is None
    # each crossing at the first second by which enough has left, program + bolus together
    delivered = lambda dt: dt * 200_000 // DAY + dt * 2_080_000 // 20_000  # noqa: E731
    first = lambda amount: next(dt for dt in range(1, 20_001) if delivered(dt) >= amount)  # noqa: E731
    times = {(e.type, e.arg1): e.time for e in one.log.events}
    assert times[(EventType.ALARM_RAISED, int(Alarm.LOW_RESERVOIR))] == T0 + first(100_000)
    assert times[(EventType.RESERVOIR_EMPTY, 0)] == T0 + first(2_100_000)
    finished = [e for e in one.log.events if e.type is EventType.BOLUS_FINISHED]
    assert len(finished) == 1 and finished[0].time == T0 + first(2_100_000)
    assert finished[0].arg1 > 0  # cut short: the dose not delivered


def test_persistence_round_trip_with_bolus_and_history():
    pump = make()
    pump.prepare(based(pump, program_body(1)))
    pump.commit(1)
    pump.prepare(based(pump, bolus_body(2)))
    pump.commit(2)
    pump.advance_to(T0 + 1234)
    data = json.loads(json.dumps(pump.to_dict()))
    back = Pump.from_dict(data)
    assert back.to_dict() == pump.to_dict() and back.status() == pump.status()
    assert back.commit(1).outcome is CommitOutcome.ALREADY_APPLIED
    for p in (pump, back):
        p.advance_to(T0 + DAY)
    assert back.to_dict() == pump.to_dict()
    # every reply the pump builds is valid on the wire
    encode(Command.INTERROGATE, back.status(), seq=1, response=True)
    encode(Command.PREPARE_PROGRAM, back.prepare(based(back, program_body(3))), seq=1, response=True)
