"""The emulator's catheter (protocol version 4): the record (PREPARE_CATHETER), priming boluses,
bridge boluses after a refill, and the fluid column that says what reached the patient
(docs/protocol.md, "Catheter, priming and bridge boluses").

The pump logic alone with its clock injected for the rules and every refusal (each with its
reason, and nothing changed), then real emulator processes over the real wire.
"""
from __future__ import annotations

import json

import pytest
from emulator_harness import RawClient, commit, ok, read_log, status
from emulator_harness import refused as refused_reply
from pump_v4 import (
    DAY,
    FROZEN,
    MORPHINE_10,
    START,
    T0,
    bolus,
    catheter,
    events,
    make,
    refill,
    refused,
    stop,
    write,
)

from emulator import store
from emulator.pump import Pump
from protocol import Command, Drug, ErrorReason, EventType, WriteKind, bodies
from protocol.catheter import NO_CATHETER, bridge_duration_s
from protocol.constants import BolusPurpose, CatheterAction, CatheterModel

INVALID, RANGE = ErrorReason.INVALID_STATE, ErrorReason.OUT_OF_RANGE
DEAD_800 = 408_000  # the tubing (200 uL) and 800 mm of 2.6 uL/cm
SEGMENT_150 = 39_000  # 150 mm of catheter
IMPLANT, REVISION, CORRECTION = CatheterAction.IMPLANT, CatheterAction.REVISION, CatheterAction.CORRECTION


def received(pump: Pump) -> dict[str, int]:
    return pump.describe()["patient_received_ng"]


# --- the record ------------------------------------------------------------------------------


def test_a_new_pump_has_a_primed_catheter_full_of_its_drug_or_none():
    pump = make()
    assert pump.status().catheter == bodies.CatheterRecord(IMPLANT, CatheterModel.STANDARD, 800, 0, T0, DEAD_800, 0)
    assert pump.describe()["catheter"]["column"] == [[DEAD_800, "morphine", MORPHINE_10]]
    pump.advance_to(T0 + DAY)  # a full column: the patient gets what leaves the reservoir, 2 mg a day
    assert received(pump) == {"MORPHINE": 2_000_000}
    bare = make(catheter_mm=0)
    assert bare.status().catheter == NO_CATHETER and bare.describe()["catheter"]["column"] == []
    bare.advance_to(T0 + DAY)
    assert received(bare) == {"MORPHINE": 2_000_000}


def test_a_revision_arms_priming_of_its_segment_only_and_a_correction_does_not_rearm():
    pump = make()
    n = pump.log.count
    echo = write(pump, catheter(1, REVISION, 800, 150))
    record = bodies.CatheterRecord(REVISION, CatheterModel.STANDARD, 800, 150, T0, DEAD_800, SEGMENT_150)
    assert echo.kind is WriteKind.CATHETER and echo.catheter == record and pump.status().catheter == record
    assert events(pump, n) == [(EventType.CATHETER_RECORDED, int(REVISION), 800 + 65_536 * 150),
                               (EventType.TX_APPLIED, 1, int(WriteKind.CATHETER))]
    # the new segment, at the tip, holds nothing yet; the rest keeps its drug
    assert pump.describe()["catheter"]["column"] == [[SEGMENT_150, "none", 0],
                                                     [DEAD_800 - SEGMENT_150, "morphine", MORPHINE_10]]
    # a correction keeps the action, the segment and the priming due (worked out for the new model/length)
    pump.advance_to(T0 + 60)
    write(pump, catheter(2, CORRECTION, 760))
    assert pump.status().catheter == bodies.CatheterRecord(REVISION, CatheterModel.STANDARD, 760, 150, T0 + 60,
                                                           200_000 + 197_600, SEGMENT_150)
    primed = make()
    write(primed, catheter(1, CORRECTION, 700))
    assert primed.status().catheter.priming_due_nl == 0  # 0 stays 0
    assert primed.status().catheter.dead_space_nl == 200_000 + 182_000


def test_a_correction_of_an_unprimed_implant_works_the_priming_out_again():
    """Priming a volume worked out from a mistyped length is the 2013 recall's hazard."""
    pump = make(catheter_mm=0)
    write(pump, catheter(1, IMPLANT, 800))
    assert pump.status().catheter.priming_due_nl == DEAD_800
    write(pump, catheter(2, CORRECTION, 500))
    assert pump.status().catheter.priming_due_nl == 200_000 + 130_000 == pump.status().catheter.dead_space_nl


@pytest.mark.parametrize("body, reason, words", [
    (catheter(1, REVISION, 800, 0), RANGE, ["segment of 0 mm"]),
    (catheter(1, REVISION, 800, 801), RANGE, ["1..800"]),
    (catheter(1, IMPLANT, 800, 10), RANGE, ["IMPLANT replaces no segment"]),
    (catheter(1, CORRECTION, 800, 10), RANGE, ["keeps the recorded segment"]),
    (catheter(1, IMPLANT, 800, model=CatheterModel.NONE), RANGE, ["model NONE"]),
    (catheter(1, CatheterAction.NONE, 800), RANGE, ["IMPLANT, REVISION or CORRECTION"]),
])
def test_catheter_records_refused(body, reason, words):
    refused(make(), body, reason, *words)


def test_revision_and_correction_need_a_record_and_no_bolus_may_run():
    bare = make(catheter_mm=0)
    refused(bare, catheter(1, REVISION, 800, 100), RANGE, "needs a catheter recorded")
    refused(bare, catheter(1, CORRECTION, 800), RANGE, "needs a catheter recorded")
    revised = make()
    write(revised, catheter(1, REVISION, 800, 150))
    refused(revised, catheter(2, CORRECTION, 100), RANGE, "shorter than the 150 mm segment")
    busy = make()
    write(busy, bolus(1, 100_000))
    refused(busy, catheter(2, REVISION, 800, 100), INVALID, "CLINICIAN bolus is running")


# --- priming ------------------------------------------------------------------------------------


def test_priming_is_refused_on_a_primed_pump_and_for_any_other_volume():
    pump = make()
    refused(pump, bolus(1, 390_000, purpose=BolusPurpose.PRIMING), INVALID, "nothing to prime")
    write(pump, catheter(1, REVISION, 800, 150))
    refused(pump, bolus(2, 390_001, purpose=BolusPurpose.PRIMING), RANGE, "39000 nL", "390000 ng")
    for purpose in (BolusPurpose.BRIDGE, BolusPurpose.PATIENT):
        refused(pump, bolus(2, 390_000, purpose=purpose), RANGE, purpose.name)


def test_priming_after_a_revision_moves_exactly_the_segment_and_nothing_reaches_the_patient():
    pump = make()
    write(pump, stop(1))  # the program stopped: what leaves the reservoir is the priming alone
    write(pump, catheter(2, REVISION, 800, 150))
    before_nl, before_rx, n = pump.reservoir_nl, received(pump), pump.log.count
    echo = write(pump, bolus(3, 390_000, 3600, BolusPurpose.PRIMING))
    assert (echo.bolus_purpose, echo.bolus_volume_nl, echo.bolus_dose_ng) == (BolusPurpose.PRIMING, SEGMENT_150,
                                                                              390_000)
    assert echo.catheter.priming_due_nl == SEGMENT_150  # the echo is the record before COMMIT primes it
    assert pump.status().catheter.priming_due_nl == 0
    assert events(pump, n) == [(EventType.BOLUS_STARTED, 390_000, 3600),
                               (EventType.PRIMING_STARTED, SEGMENT_150, 3600),
                               (EventType.TX_APPLIED, 3, int(WriteKind.BOLUS))]
    pump.advance_to(T0 + 2 * 3600)
    assert before_nl - pump.reservoir_nl == SEGMENT_150 and received(pump) == before_rx
    assert pump.describe()["catheter"]["column"] == [[DEAD_800, "morphine", MORPHINE_10]]
    assert events(pump, n)[-1] == (EventType.BOLUS_FINISHED, 0, 0)
    refused(pump, bolus(4, 390_000, purpose=BolusPurpose.PRIMING), INVALID, "nothing to prime")


def test_priming_after_an_implant_fills_the_tubing_and_the_whole_catheter():
    pump = make(catheter_mm=0)
    write(pump, stop(1))
    write(pump, catheter(2, IMPLANT, 500))
    dead = 330_000
    assert pump.describe()["catheter"]["column"] == [[dead, "none", 0]]
    write(pump, bolus(3, 3_300_000, 3600, BolusPurpose.PRIMING))
    pump.advance_to(T0 + 3600)
    assert pump.describe()["catheter"]["column"] == [[dead, "morphine", MORPHINE_10]]
    assert received(pump) == {} and pump.reservoir_nl == 18_000_000 - dead


# --- bridge boluses -----------------------------------------------------------------------------

FAST = 1_000_000  # 1 mL/day: 10 mg/day of morphine at 10 mg/mL
BRIDGE_S = bridge_duration_s(DEAD_800, FAST)  # 35_251 s


def test_bridge_refill_echo_and_events():
    pump = make(flow=FAST)
    n = pump.log.count
    echo = write(pump, refill(1, 20_000_000, 10_000_000, bridge=(DEAD_800, BRIDGE_S)))
    assert (echo.bolus_purpose, echo.bolus_volume_nl, echo.bolus_duration_s, echo.bolus_dose_ng) == (
        BolusPurpose.BRIDGE, DEAD_800, BRIDGE_S, 4_080_000)  # the old drug's dose: 408 uL at 10 mg/mL
    assert [e[0] for e in events(pump, n)] == [EventType.REFILL, EventType.PROGRAM_CHANGED, EventType.BRIDGE_STARTED,
                                               EventType.TX_APPLIED]
    assert events(pump, n)[2] == (EventType.BRIDGE_STARTED, 4_080_000, BRIDGE_S)
    s = pump.status()
    assert s.current_rate_nl_per_day == 0 and s.bolus_remaining_ng == 4_080_000  # the program waits
    pump.advance_to(T0 + BRIDGE_S)
    assert events(pump, n)[-1] == (EventType.BOLUS_FINISHED, 0, 0)
    assert pump.status().current_rate_nl_per_day == 500_000  # the new program: 10 mg/day at 20 mg/mL


@pytest.mark.parametrize("bridge, words", [
    ((DEAD_800, 0), ["both"]),
    ((0, BRIDGE_S), ["both"]),
    ((DEAD_800 - 1, BRIDGE_S), ["dead space is 408000 nL"]),
    ((DEAD_800, BRIDGE_S + 1), [f"takes {BRIDGE_S} s"]),
])
def test_bridge_refused_unless_exactly_the_pumps_own(bridge, words):
    refused(make(flow=FAST), refill(1, 20_000_000, 10_000_000, bridge=bridge), RANGE, *words)


def test_bridge_refused_without_a_record_a_change_an_old_rate_or_the_volume():
    refused(make(flow=FAST, catheter_mm=0), refill(1, 20_000_000, 10_000_000, bridge=(DEAD_800, BRIDGE_S)), RANGE,
            "no catheter recorded")
    refused(make(flow=FAST), refill(1, MORPHINE_10, 10_000_000, bridge=(DEAD_800, BRIDGE_S)), RANGE,
            "nothing to bridge")
    refused(make(flow=FAST), refill(1, 20_000_000, 10_000_000, volume_ul=400, bridge=(DEAD_800, BRIDGE_S)), RANGE,
            "cannot push out")
    stopped = make(flow=FAST)
    write(stopped, stop(1))
    refused(stopped, refill(2, 20_000_000, 10_000_000, bridge=(DEAD_800, BRIDGE_S)), RANGE, "delivers nothing")
    # at 0.2 mL/day a bridge takes about two days: the echo carries it (up to 14 days, messages.MAX_BRIDGE_S)
    slow_s = bridge_duration_s(DEAD_800, 200_000)
    echo = write(make(), refill(1, 20_000_000, 2_000_000, bridge=(DEAD_800, slow_s)))
    assert echo.bolus_duration_s == slow_s > 2 * 86_400 and echo.bolus_purpose is BolusPurpose.BRIDGE


def test_a_drug_change_with_a_bridge_gives_the_old_drug_at_the_old_rate_then_the_new_one():
    bridged, plain = make(flow=FAST, catheter_mm=0), make(flow=FAST, catheter_mm=0)
    for pump in (bridged, plain):  # implanted: the priming fills it with morphine, the program on top
        write(pump, catheter(1, IMPLANT, 800))
        write(pump, bolus(2, 4_080_000, 3600, BolusPurpose.PRIMING))
        pump.advance_to(T0 + 3600)
        assert pump.describe()["catheter"]["column"] == [[DEAD_800, "morphine", MORPHINE_10]]
    t, before = T0 + 3600, received(bridged)["MORPHINE"]
    new = Drug.HYDROMORPHONE  # 2 mg/day at 4 mg/mL: 0.5 mL/day
    write(bridged, refill(3, 4_000_000, 2_000_000, drug=new, bridge=(DEAD_800, BRIDGE_S)))
    write(plain, refill(3, 4_000_000, 2_000_000, drug=new))
    for pump in (bridged, plain):
        pump.advance_to(t + BRIDGE_S)
    # the bridge: all the old morphine out, at the old rate (10 mg/day), no new drug yet
    assert received(bridged) == {"MORPHINE": before + 4_080_000}
    # none: the morphine goes on at the new program's 0.5 mL/day, half the dose, for twice as long
    assert abs(received(plain)["MORPHINE"] - before - 2_039_988) <= 10 and "HYDROMORPHONE" not in received(plain)
    for pump in (bridged, plain):
        pump.advance_to(t + 3 * DAY)
    assert received(bridged)["MORPHINE"] == received(plain)["MORPHINE"] == before + 4_080_000
    assert received(bridged)["HYDROMORPHONE"] > received(plain)["HYDROMORPHONE"] > 0


def test_without_a_bridge_the_old_concentration_runs_at_the_new_rate_until_it_clears():
    bridged, plain = make(flow=FAST), make(flow=FAST)
    write(bridged, refill(1, 20_000_000, 10_000_000, bridge=(DEAD_800, BRIDGE_S)))
    write(plain, refill(1, 20_000_000, 10_000_000))  # 10 mg/day at 20 mg/mL: 0.5 mL/day
    morphine = {id(p): p.catheter.column.received.get(Drug.MORPHINE, 0) for p in (bridged, plain)}
    delivered = plain.delivered_nl
    for pump in (bridged, plain):
        pump.advance_to(T0 + BRIDGE_S)
    gained = {id(p): p.catheter.column.received[Drug.MORPHINE] - morphine[id(p)] for p in (bridged, plain)}
    assert gained[id(bridged)] == DEAD_800 * MORPHINE_10  # exactly the old drug (nL x ng/mL), at the old rate
    # without: what the new 0.5 mL/day pushed out was all old 10 mg/mL: about half the dose
    assert gained[id(plain)] == (plain.delivered_nl - delivered) * MORPHINE_10
    assert abs(gained[id(plain)] * 2 - gained[id(bridged)]) <= 4 * MORPHINE_10
    for pump in (bridged, plain):
        pump.advance_to(T0 + 3 * DAY)
    # over three days the bridged patient had the old 10 mg/day throughout; the other less
    assert abs(received(bridged)["MORPHINE"] - 30_000_000) < 200
    assert received(plain)["MORPHINE"] < 26_000_000


def test_the_column_is_exact_however_time_is_cut():
    one, many = make(flow=FAST), make(flow=FAST)
    for pump in (one, many):
        write(pump, refill(1, 20_000_000, 10_000_000, bridge=(DEAD_800, BRIDGE_S)))
    one.advance_to(T0 + 2 * DAY)
    t = T0
    while t < T0 + 2 * DAY:
        t = min(T0 + 2 * DAY, t + 997)
        many.advance_to(t)
    assert one.to_dict() == many.to_dict()


def test_an_uncontrolled_bolus_is_pushed_through_the_catheter():
    pump = make(model="valve-gated-20")
    before = pump.catheter.column.received.get(Drug.MORPHINE, 0)
    held = pump.reservoir_nl
    pump.set_field(1.5)
    assert pump.reservoir_nl == 0
    assert pump.catheter.column.received[Drug.MORPHINE] - before == held * MORPHINE_10


# --- the state file ------------------------------------------------------------------------------


def test_the_catheter_is_saved_and_an_older_file_has_none(tmp_path):
    pump = make()
    write(pump, catheter(1, REVISION, 800, 150))
    pump.advance_to(T0 + DAY)
    data = json.loads(json.dumps(pump.to_dict()))
    back = Pump.from_dict(data)
    assert back.to_dict() == pump.to_dict() and back.status() == pump.status()
    old = {k: v for k, v in data.items() if k not in ("catheter", "ptm", "clock_step_s")}
    path = tmp_path / "v3.json"
    path.write_text(json.dumps({"format": store.FORMAT, "version": 3, "saved_at": 0, "pump": old}))
    loaded, _ = store.load(str(path))
    assert loaded.status().catheter == NO_CATHETER and loaded.describe()["clock_step_s"] == 0
    path.write_text(json.dumps({"format": store.FORMAT, "version": 4, "saved_at": 0, "pump": old}))
    with pytest.raises(store.StateError, match="missing 'catheter'"):
        store.load(str(path))


@pytest.mark.parametrize("change, words", [
    (lambda c: c.update(action="CORRECTION"), "not one the pump keeps"),
    (lambda c: c.update(priming_due_nl=10**6), "disagree"),
    (lambda c: c["column"]["segments"][0].__setitem__(0, 1), "disagree"),
    (lambda c: c.update(length_mm=-1), "unsigned"),
    (lambda c: c.update(replaced_mm=0), "segment does not match"),
])
def test_a_corrupt_catheter_is_refused(tmp_path, change, words):
    pump = make()
    write(pump, catheter(1, REVISION, 800, 150))
    data = json.loads(json.dumps(pump.to_dict()))
    change(data["catheter"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": store.FORMAT, "version": store.VERSION, "saved_at": 0, "pump": data}))
    with pytest.raises(store.StateError, match=words):
        store.load(str(path))


# --- over the wire: real emulator processes ----------------------------------------------------


def start(start_emulator, *args):
    return start_emulator("--start-time", START, *args, transport="tcp", time_scale=FROZEN)


def prepare(c, command, body):
    """A PREPARE checked against the pump as it is now (compare-and-set)."""
    return c.request(command, {**body, "based_on_txid": status(c).last_txid})


def test_process_priming_refused_on_a_primed_pump_then_given_after_a_revision(start_emulator):
    emu = start(start_emulator)
    with RawClient(emu.url, keys=emu.keys) as c:
        assert status(c).catheter.dead_space_nl == DEAD_800  # the default: 800 mm, primed
        prime = {"dose_ng": 390_000, "duration_s": 3600, "purpose": "PRIMING"}
        assert "nothing to prime" in refused_reply(c.request(Command.PREPARE_BOLUS, {"txid": 1, **prime}), INVALID)
        ok(c.request(Command.PREPARE_PROGRAM, {"txid": 2, "mode": "STOPPED", "drug": "MORPHINE",
                                               "concentration_ng_per_ml": MORPHINE_10, "steps": []}),
           Command.PREPARE_PROGRAM)
        ok(commit(c, 2), Command.COMMIT)
        echo = ok(prepare(c, Command.PREPARE_CATHETER, {"txid": 3, "action": "REVISION", "model": "STANDARD",
                                                       "length_mm": 800, "replaced_mm": 150}),
                  Command.PREPARE_CATHETER)
        assert echo.catheter.priming_due_nl == SEGMENT_150
        ok(commit(c, 3), Command.COMMIT)
        before = emu.control("state")
        echo = ok(c.request(Command.PREPARE_BOLUS, {"txid": 4, **prime}), Command.PREPARE_BOLUS)
        assert (echo.bolus_volume_nl, echo.bolus_purpose) == (SEGMENT_150, BolusPurpose.PRIMING)
        ok(commit(c, 4), Command.COMMIT)
        after = emu.control("advance", seconds=2 * 3600)
        assert before["reservoir_nl"] - after["reservoir_nl"] == SEGMENT_150
        assert after["patient_received_ng"] == before["patient_received_ng"]
        assert status(c).catheter.priming_due_nl == 0
        kinds = [e.type for e in read_log(c)]
        assert kinds[-4:] == [EventType.BOLUS_STARTED, EventType.PRIMING_STARTED, EventType.TX_APPLIED,
                              EventType.BOLUS_FINISHED]
    assert emu.stop() == 0


def test_process_no_catheter_option(start_emulator):
    emu = start(start_emulator, "--catheter-mm", "0")
    with RawClient(emu.url, keys=emu.keys) as c:
        assert status(c).catheter == NO_CATHETER


def test_process_bridge_against_no_bridge_over_the_following_days(start_emulator):
    flow = ("--flow", "1 mL/day")
    bridged, plain = start(start_emulator, *flow), start(start_emulator, *flow)
    body = {"drug": "MORPHINE", "concentration_ng_per_ml": 20_000_000, "volume_ul": 20_000, "withdrawn_ul": 0,
            "mode": "CONTINUOUS", "steps": [{"start_minute": 0, "dose_ng_per_day": 10_000_000}]}
    base = {}
    for emu, bridge in ((bridged, (DEAD_800, BRIDGE_S)), (plain, (0, 0))):
        with RawClient(emu.url, keys=emu.keys) as c:
            ok(c.request(Command.PREPARE_REFILL, {"txid": 1, **body, "bridge_volume_nl": bridge[0],
                                                  "bridge_duration_s": bridge[1]}), Command.PREPARE_REFILL)
            ok(commit(c, 1), Command.COMMIT)
        base[emu.url] = emu.control("state")["patient_received_ng"].get("MORPHINE", 0)
    got = {emu.url: emu.control("advance", seconds=BRIDGE_S)["patient_received_ng"]["MORPHINE"] - base[emu.url]
           for emu in (bridged, plain)}
    assert got[bridged.url] == 4_080_000  # all the old drug, at the old 10 mg/day
    assert abs(got[plain.url] - 2_039_988) <= 10  # (whole nL) the old 10 mg/mL at the new 0.5 mL/day: half
    days = {emu.url: emu.control("advance", seconds=3 * DAY - BRIDGE_S)["patient_received_ng"]["MORPHINE"]
            - base[emu.url] for emu in (bridged, plain)}
    assert abs(days[bridged.url] - 30_000_000) < 200  # three days of the old dose, 10 mg/day
    assert abs(days[plain.url] - 25_920_000) < 200  # 4.08 mg short: the dead space at half the dose
