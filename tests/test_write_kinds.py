"""The write kinds (ithcli/write_kinds.py): each names the PREPARE command and echo kind
the wire uses for it, and judges its own read-back (pure; end to end in the CLI tests)."""
from __future__ import annotations

import dataclasses

import pytest

import protocol
from ithcli import write_kinds as kinds
from protocol import bodies
from protocol.catheter import NO_CATHETER
from protocol.constants import BolusPurpose
from protocol.patient import NO_PATIENT
from protocol.ptm import PTM_OFF, PTM_UNUSED

ALL = [kinds.PROGRAM, kinds.REFILL, kinds.EMPTY, kinds.BOLUS, kinds.MRI_ENTER, kinds.MRI_EXIT]

PROGRAM = bodies.Program(protocol.InfusionMode.CONTINUOUS, protocol.Drug.MORPHINE, 10_000_000, 10_000_000,
                         1_000_000, (bodies.DeliveredStep(0, 10_000_000, 1_000_000),))  # 1 mL/day
STATUS = bodies.Status(
    serial_number="K1", model=protocol.PumpModel.PERISTALTIC_40, firmware=bodies.Firmware(1, 0, 0), pump_time=0,
    drug=protocol.Drug.MORPHINE, concentration_ng_per_ml=10_000_000, mode=protocol.InfusionMode.CONTINUOUS,
    daily_dose_ng_per_day=10_000_000, daily_volume_nl_per_day=1_000_000, current_rate_nl_per_day=1_000_000,
    reservoir_ul=20_000, capacity_ul=40_000, low_reservoir_alarm_ul=2_000, battery_state=protocol.BatteryState.OK,
    battery_percent=90, eri_at=0, replace_by=0, alarms=protocol.Alarm(0), mri_mode=protocol.MriMode.OFF,
    mri_auto_exit_at=0, last_txid=1, last_programmed_at=0, bolus_remaining_ng=0, event_count=1, auth_failures=0,
    catheter=NO_CATHETER, ptm=PTM_OFF, ptm_use=PTM_UNUSED, patient=NO_PATIENT)


def echo(**kw) -> bodies.Prepared:
    base = bodies.Prepared(txid=1, kind=protocol.WriteKind.PROGRAM, program=PROGRAM, reservoir_ul=20_000,
                           bolus_dose_ng=0, bolus_duration_s=0, bolus_volume_nl=0, mri_auto_exit_s=0,
                           bolus_purpose=BolusPurpose.CLINICIAN, catheter=NO_CATHETER, clock_step_s=0, ptm=PTM_OFF,
                           patient=NO_PATIENT)
    return dataclasses.replace(base, **kw)


def committed(applied_at: int) -> bodies.Committed:
    return bodies.Committed(1, protocol.CommitOutcome.APPLIED, protocol.WriteKind.PROGRAM, applied_at)


def status(**kw) -> bodies.Status:
    return dataclasses.replace(STATUS, **kw)


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_each_kind_is_carried_by_its_own_prepare_command(kind):
    assert kind.command.name == f"PREPARE_{kind.wire.name}"


def test_names_are_distinct_so_the_journal_tells_an_emptied_reservoir_from_a_refill():
    assert len({k.name for k in ALL}) == len(ALL)
    assert kinds.EMPTY.wire is protocol.WriteKind.REFILL and kinds.EMPTY.name == "EMPTY"


def test_a_refill_read_back_allows_what_was_delivered_since_and_nothing_more():
    filled, at = echo(reservoir_ul=20_000), committed(1000)  # the program runs 1 mL/day
    day_later = 1000 + 86_400
    assert kinds.REFILL.readback_problems(filled, at, status(pump_time=day_later, reservoir_ul=19_000)) == []
    assert kinds.REFILL.readback_problems(filled, at, status(pump_time=day_later, reservoir_ul=18_000))
    assert kinds.REFILL.readback_problems(filled, at, status(pump_time=day_later, reservoir_ul=20_001))


def test_mri_kinds_judge_the_mode_the_pump_reports():
    entered, at = echo(kind=protocol.WriteKind.MRI_ENTER, mri_auto_exit_s=3600), committed(50)
    safe = status(mri_mode=protocol.MriMode.SAFE, mri_auto_exit_at=3650, current_rate_nl_per_day=0)
    assert kinds.MRI_ENTER.readback_problems(entered, at, safe) == []
    assert kinds.MRI_ENTER.readback_problems(entered, at, dataclasses.replace(safe, current_rate_nl_per_day=5))
    assert kinds.MRI_ENTER.readback_problems(entered, at, dataclasses.replace(safe, mri_auto_exit_at=3651))
    assert kinds.MRI_EXIT.readback_problems(entered, at, safe)
    assert kinds.MRI_EXIT.readback_problems(entered, at, status(mri_mode=protocol.MriMode.OFF)) == []


# --- the pump's side: one object per write kind too (emulator/pump/write_kinds.py) ---------------


def test_the_pump_has_one_write_object_per_prepare_request_and_wire_kind():
    from emulator.handler import CLEAR_COMMANDS, HANDLERS
    from emulator.pump import write_kinds as pump_kinds

    requests = [cls for cls in bodies.ALL if issubclass(cls, bodies.Request)]
    prepares = {cls for cls in requests if cls.COMMAND.name.startswith("PREPARE_")}
    assert set(pump_kinds.BY_REQUEST) == prepares
    assert set(pump_kinds.BY_KIND) == set(protocol.WriteKind)
    for write in pump_kinds.WRITES:
        assert issubclass(write.request, bodies.Request)
        assert write.request.COMMAND is write.command and write.command.name == f"PREPARE_{write.kind.name}"
        assert write.request.REPLY is bodies.Prepared
    # every request the pump serves inside a session has a handler, keyed by its body class
    assert set(HANDLERS) == {cls for cls in requests if cls.COMMAND not in CLEAR_COMMANDS}
    # and every kind ithcli writes is one the pump knows
    assert {k.wire for k in ALL} <= set(pump_kinds.BY_KIND)
    assert {k.command for k in ALL} <= {w.command for w in pump_kinds.WRITES}
    # version 4's writes (issue 18) are the pump's too
    new = {protocol.Command.PREPARE_CATHETER, protocol.Command.PREPARE_CLOCK, protocol.Command.PREPARE_PTM}
    assert new <= {w.command for w in pump_kinds.WRITES}


def test_only_the_kinds_that_set_a_program_can_be_tampered_with():
    from emulator.pump import write_kinds as pump_kinds

    assert {w.kind for w in pump_kinds.WRITES if w.sets_program} == {protocol.WriteKind.PROGRAM,
                                                                    protocol.WriteKind.REFILL}


def test_a_patient_read_back_must_hold_the_record_echoed_recorded_at_commit():
    from protocol.constants import SpasticityOrigin

    record = bodies.PatientRecord(patient_id="MRN-1", initials="AB", birth_date=19_700_102,
                                  spasticity_origin=SpasticityOrigin.SPINAL, recorded_at=40)  # PREPARE's time
    echoed, at = echo(kind=protocol.WriteKind.PATIENT, patient=record), committed(50)
    assert kinds.PATIENT.command is protocol.Command.PREPARE_PATIENT and kinds.PATIENT.wire.name == "PATIENT"
    assert kinds.PATIENT.readback_problems(echoed, at, status(patient=dataclasses.replace(record, recorded_at=50))) \
        == []
    wrong = kinds.PATIENT.readback_problems(echoed, at, status(patient=dataclasses.replace(
        record, patient_id="MRN-2", recorded_at=50)))
    assert wrong == ["patient.patient_id: expected 'MRN-1', pump has 'MRN-2'"]
    assert kinds.PATIENT.readback_problems(echoed, at, status(patient=record))  # recorded at another time
    assert kinds.PATIENT.readback_problems(echoed, at, status())  # none recorded


def test_a_catheter_read_back_takes_the_commits_time_not_the_prepares():
    from protocol.constants import CatheterAction, CatheterModel

    record = dataclasses.replace(NO_CATHETER, action=CatheterAction.IMPLANT, model=CatheterModel.STANDARD,
                                 length_mm=800, recorded_at=40, dead_space_nl=480_000, priming_due_nl=480_000)
    echoed, at = echo(kind=protocol.WriteKind.CATHETER, catheter=record), committed(41)  # a second later
    assert kinds.CATHETER.readback_problems(echoed, at, status(catheter=dataclasses.replace(record, recorded_at=41))) \
        == []
    assert kinds.CATHETER.readback_problems(echoed, at, status(catheter=dataclasses.replace(
        record, recorded_at=41, length_mm=700))) == ["catheter.length_mm: expected 800, pump has 700"]
