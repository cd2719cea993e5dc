"""The patient record on the emulator (protocol version 5, PREPARE_PATIENT; docs/protocol.md, "The
patient record"): RECORD on a pump that holds none, CORRECT the one it holds, every field checked
as protocol/patient.py says, PATIENT_RECORDED logged without the ID, the record saved (a state file
from before version 5 has none).

The pump logic alone with its clock injected, then a real emulator process over the real wire.
"""
from __future__ import annotations

import json
from datetime import date

import pytest
from emulator_harness import RawClient, commit, ok, read_log, status
from pump_v4 import DAY, FROZEN, START, T0, Clock, events, make, refused, write

from emulator import store
from emulator.pump import Pump
from protocol import Command, ErrorReason, EventType, WriteKind, bodies
from protocol.constants import MriMode, PatientAction, SpasticityOrigin
from protocol.patient import (
    CHANGED_BIRTH_DATE,
    CHANGED_ID,
    CHANGED_INITIALS,
    CHANGED_ORIGIN,
    CHANGED_SHIFT,
    NO_PATIENT,
    birth_date_problem,
    initials_problem,
    patient_id_problem,
)

RECORD, CORRECT = PatientAction.RECORD, PatientAction.CORRECT
SPINAL, CEREBRAL, NOT_RECORDED = SpasticityOrigin.SPINAL, SpasticityOrigin.CEREBRAL, SpasticityOrigin.NOT_RECORDED


def patient(txid: int, action: PatientAction = RECORD, patient_id: str = "MRN-0042117", initials: str = "AB",
            birth_date: int = 19_700_102, origin: SpasticityOrigin = SPINAL) -> bodies.PreparePatientRequest:
    return bodies.PreparePatientRequest(txid=txid, based_on_txid=0, action=action, patient_id=patient_id,
                                        initials=initials, birth_date=birth_date, spasticity_origin=origin)


def recorded(action: PatientAction, origin: SpasticityOrigin, changed: int) -> tuple[EventType, int, int]:
    return EventType.PATIENT_RECORDED, int(action), int(origin) | changed << CHANGED_SHIFT


# --- the rules both ends share (protocol/patient.py) ------------------------------------------


@pytest.mark.parametrize("text, ok_", [("MRN-0042117", True), ("a.b_c:d/e-9", True), ("X" * 24, True),
                                       ("", False), ("X" * 25, False), ("MRN 42", False), ("Müller", False),
                                       ("id;drop", False), ("[bold]x", False), ("a\tb", False)])
def test_the_patient_id_rule(text, ok_):
    assert (patient_id_problem(text) is None) is ok_


@pytest.mark.parametrize("text, ok_", [("", True), ("AB", True), ("ABCD", True), ("ABCDE", False), ("ab", False),
                                       ("A.", False), ("A B", False)])
def test_the_initials_rule(text, ok_):
    assert (initials_problem(text) is None) is ok_


@pytest.mark.parametrize("value, ok_", [(0, True), (19_700_102, True), (19_000_101, True), (20_300_101, True),
                                        (18_991_231, False), (20_300_102, False), (19_700_230, False),
                                        (19_701_301, False), (19_700_100, False), (99_991_231, False)])
def test_the_birth_date_rule(value, ok_):
    assert (birth_date_problem(value, date(2030, 1, 1)) is None) is ok_


# --- the pump alone ------------------------------------------------------------------------------


def test_a_new_pump_holds_no_patient_and_a_record_is_echoed_reported_and_logged():
    pump = make()
    assert pump.status().patient == NO_PATIENT
    n = pump.log.count
    echo = write(pump, patient(1))
    assert echo.kind is WriteKind.PATIENT and echo.patient.patient_id == "MRN-0042117"
    assert echo.program == pump.program_body() and echo.catheter == pump.status().catheter  # nothing else moves
    now = pump.status().patient
    assert (now.patient_id, now.initials, now.birth_date, now.spasticity_origin, now.recorded_at) == (
        "MRN-0042117", "AB", 19_700_102, SPINAL, T0)
    every = CHANGED_ID | CHANGED_INITIALS | CHANGED_BIRTH_DATE | CHANGED_ORIGIN
    assert events(pump, n) == [recorded(RECORD, SPINAL, every), (EventType.TX_APPLIED, 1, int(WriteKind.PATIENT))]
    # every echo of any other write carries the record as it is
    echo = write(pump, bodies.PrepareClockRequest(txid=2, based_on_txid=1, new_time=T0 + 60))
    assert echo.patient == pump.status().patient


def test_a_correction_replaces_the_record_and_logs_which_fields_changed():
    clock = Clock()
    pump = make(clock=clock)
    write(pump, patient(1, origin=NOT_RECORDED, initials=""))
    clock.now = T0 + DAY
    pump.tick()
    n = pump.log.count
    write(pump, bodies.PreparePatientRequest(txid=2, based_on_txid=1, action=CORRECT, patient_id="MRN-0042117",
                                             initials="", birth_date=19_700_102, spasticity_origin=CEREBRAL))
    assert pump.status().patient.spasticity_origin is CEREBRAL and pump.status().patient.recorded_at == T0 + DAY
    assert events(pump, n)[0] == recorded(CORRECT, CEREBRAL, CHANGED_ORIGIN)
    # a mistyped ID corrected, and the birth date cleared
    write(pump, bodies.PreparePatientRequest(txid=3, based_on_txid=2, action=CORRECT, patient_id="MRN-0042171",
                                             initials="", birth_date=0, spasticity_origin=CEREBRAL))
    assert events(pump, n)[2] == recorded(CORRECT, CEREBRAL, CHANGED_ID | CHANGED_BIRTH_DATE)
    assert (pump.status().patient.patient_id, pump.status().patient.birth_date) == ("MRN-0042171", 0)


def test_record_over_a_patient_and_correct_with_none_are_refused():
    pump = make()
    refused(pump, patient(1, CORRECT), ErrorReason.INVALID_STATE, "no patient is recorded")
    write(pump, patient(1))
    detail = refused(pump, patient(2, patient_id="MRN-9"), ErrorReason.INVALID_STATE, "already recorded", "CORRECT")
    assert "MRN" not in detail  # a refusal never repeats an identifier


@pytest.mark.parametrize("fields, words", [
    ({"patient_id": ""}, "empty"),
    ({"patient_id": "MRN 0042117"}, "no spaces"),
    ({"patient_id": "MRN\x01"}, "may hold only"),
    ({"initials": "ab"}, "capital letters"),
    ({"initials": "A1"}, "capital letters"),
    ({"birth_date": 19_700_230}, "not a calendar date"),
    ({"birth_date": 18_991_231}, "before 1900-01-01"),
    ({"birth_date": 20_300_102}, "after the pump's date 2030-01-01"),
])
def test_bad_fields_are_refused_out_of_range_and_nothing_changes(fields, words):
    body = patient(1)
    refused(make(), bodies.PreparePatientRequest(**{**bodies.as_dict(body), **fields}), ErrorReason.OUT_OF_RANGE,
            words)


def test_taken_in_mri_safe_mode_and_while_a_bolus_runs_but_not_at_end_of_service():
    pump = make()
    write(pump, bodies.PrepareMriEnterRequest(txid=1, based_on_txid=0, auto_exit_s=3600))
    assert pump.mri_mode is MriMode.SAFE
    write(pump, patient(2))  # the record delivers nothing
    assert pump.status().patient.patient_id == "MRN-0042117"
    eos = make()
    eos.battery.charge = 0
    eos.advance_to(T0 + 1)
    refused(eos, patient(1), ErrorReason.INVALID_STATE, "end of service")


def test_an_origin_is_accepted_whatever_the_drug():
    pump = make()  # morphine
    write(pump, patient(1, origin=CEREBRAL))
    assert pump.status().patient.spasticity_origin is CEREBRAL


def test_a_clock_set_does_not_move_recorded_at():
    pump = make()
    write(pump, patient(1))
    write(pump, bodies.PrepareClockRequest(txid=2, based_on_txid=1, new_time=T0 + 5 * DAY))
    assert pump.status().patient.recorded_at == T0


# --- the state file ------------------------------------------------------------------------------


def test_the_record_is_saved_and_a_version_4_file_has_none(tmp_path):
    pump = make()
    write(pump, patient(1))
    data = json.loads(json.dumps(pump.to_dict()))
    back = Pump.from_dict(data)
    assert back.to_dict() == pump.to_dict() and back.status() == pump.status()
    old = {k: v for k, v in data.items() if k != "patient"}
    path = tmp_path / "v4.json"
    path.write_text(json.dumps({"format": store.FORMAT, "version": 4, "saved_at": 0, "pump": old}))
    loaded, _ = store.load(str(path))
    assert loaded.status().patient == NO_PATIENT and loaded.status().catheter == pump.status().catheter
    path.write_text(json.dumps({"format": store.FORMAT, "version": 5, "saved_at": 0, "pump": old}))
    with pytest.raises(store.StateError, match="missing 'patient'"):
        store.load(str(path))


@pytest.mark.parametrize("change, words", [
    (lambda p: p.update(patient_id="MRN 1"), "no spaces"),
    (lambda p: p.update(initials="abc"), "capital letters"),
    (lambda p: p.update(birth_date=19_701_301), "calendar date"),
    (lambda p: p.update(spasticity_origin="SIDEWAYS"), "SIDEWAYS"),
    (lambda p: p.update(patient_id="", recorded_at=0), "no patient ID has other fields"),
    (lambda p: p.update(recorded_at=0), "never recorded"),
])
def test_a_corrupt_record_is_refused(tmp_path, change, words):
    pump = make()
    write(pump, patient(1))
    data = json.loads(json.dumps(pump.to_dict()))
    change(data["patient"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": store.FORMAT, "version": store.VERSION, "saved_at": 0, "pump": data}))
    with pytest.raises(store.StateError, match=words):
        store.load(str(path))


# --- over the wire: a real emulator process --------------------------------------------------------


def test_over_the_wire_recorded_corrected_refused_and_kept_across_a_restart(start_emulator, tmp_path):
    state = tmp_path / "pump.json"
    emu = start_emulator("--start-time", START, transport="tcp", time_scale=FROZEN, state_path=str(state))
    body = {k: v for k, v in bodies.as_dict(patient(7)).items()}
    with RawClient(emu.url, keys=emu.keys) as c:
        assert status(c).patient == NO_PATIENT
        echo = ok(c.request(Command.PREPARE_PATIENT, {**body, "based_on_txid": status(c).last_txid}),
                  Command.PREPARE_PATIENT)
        assert echo.patient.patient_id == "MRN-0042117" and echo.kind is WriteKind.PATIENT
        commit(c, 7)
        assert status(c).patient.initials == "AB"
        again = c.request(Command.PREPARE_PATIENT, {**body, "txid": 8, "based_on_txid": 7})
        assert again.body.reason is ErrorReason.INVALID_STATE
        bad = c.request(Command.PREPARE_PATIENT, {**body, "txid": 9, "based_on_txid": 7, "action": "CORRECT",
                                                  "initials": "a"})
        assert bad.body.reason is ErrorReason.OUT_OF_RANGE
        logged = [e for e in read_log(c) if e.type == EventType.PATIENT_RECORDED]
        assert [(e.arg1, e.arg2 & 0xFF) for e in logged] == [(RECORD, SPINAL)]
    emu.stop()
    saved = json.loads(state.read_text())
    assert saved["version"] == store.VERSION == 5 and saved["pump"]["patient"]["patient_id"] == "MRN-0042117"
    emu = start_emulator("--start-time", START, transport="tcp", time_scale=FROZEN, state_path=str(state),
                         key_file=emu.key_file)
    with RawClient(emu.url, keys=emu.keys) as c:
        assert status(c).patient.patient_id == "MRN-0042117"
