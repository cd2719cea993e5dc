"""The patient on the pump (protocol version 5): the record as people and scripts see it, and a
RECORD or CORRECT of it (a PATIENT write), its fields checked the way the pump checks them
(protocol/patient.py) before anything is sent.

    view = patient_view(status.patient, recorded_at)    # interrogate --json's "patient" (None: none)
    change = patient_change(state, PatientAction.RECORD, patient_id="MRN-0042117", initials="AB",
                            born="1970-01-02", spasticity_origin="spinal")
    change = patient_change(state, PatientAction.CORRECT, spasticity_origin="cerebral")  # the rest kept
    operations.apply_change(session, state, change)    # PREPARE, echo, COMMIT, read back

The ID is an opaque identifier the clinic chooses (its record number, never a name). The
pump's record is where baclofen's spasticity origin comes from (change_history.patient_origin);
it travels only inside sealed frames, and the pump's log never carries it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from protocol import bodies
from protocol.constants import PatientAction, SpasticityOrigin
from protocol.patient import (
    as_yyyymmdd,
    birth_date_of,
    birth_date_problem,
    initials_problem,
    patient_id_problem,
)

from . import write_kinds
from .errors import UsageError

if TYPE_CHECKING:
    from .therapy_change import Change, PumpState

#: --spasticity-origin's words (NOT_RECORDED: "not-recorded", to clear it with --correct)
ORIGINS = {"spinal": SpasticityOrigin.SPINAL, "cerebral": SpasticityOrigin.CEREBRAL,
           "not-recorded": SpasticityOrigin.NOT_RECORDED}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# --- the fields, checked as the pump checks them ------------------------------------------

def parse_patient_id(text: str, option: str = "--id") -> str:
    text = str(text).strip()
    problem = patient_id_problem(text)
    if problem:
        raise UsageError(f"{option}: {problem}. Nothing was sent")
    return text


def parse_initials(text: str, option: str = "--initials") -> str:
    """'ab' -> 'AB'; '' -> '' (not recorded)."""
    text = str(text).strip().upper()
    problem = initials_problem(text)
    if problem:
        raise UsageError(f"{option} {text!r}: {problem}. Nothing was sent")
    return text


def parse_born(text: str, option: str = "--born") -> date | None:
    """'1970-01-02' -> the date; '' -> None (not recorded). Checked against the pump's date later."""
    text = str(text).strip()
    if not text:
        return None
    if not _ISO_DATE.match(text):
        raise UsageError(f"{option} {text!r}: give the date as YYYY-MM-DD. Nothing was sent")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a calendar date. Nothing was sent") from None


def parse_origin(text: str, option: str = "--spasticity-origin") -> SpasticityOrigin:
    word = str(text).strip().lower()
    if word not in ORIGINS:
        raise UsageError(f"{option} {text!r}: give {', '.join(ORIGINS)}. Nothing was sent")
    return ORIGINS[word]


def origin_word(origin: SpasticityOrigin) -> str | None:
    """SPINAL -> 'spinal'; NOT_RECORDED -> None."""
    return None if origin is SpasticityOrigin.NOT_RECORDED else origin.name.lower()


def recorded_origin(status: bodies.Status) -> str | None:
    """The spasticity origin the pump records ('spinal', 'cerebral'), or None."""
    return origin_word(status.patient.spasticity_origin) if status.patient.patient_id else None


# --- as people and scripts see it -----------------------------------------------------

def patient_view(record: bodies.PatientRecord, recorded_at: str | None = None) -> dict[str, Any] | None:
    """interrogate --json's "patient": None when none is recorded."""
    if not record.patient_id:
        return None
    try:
        born = birth_date_of(record.birth_date)
    except ValueError:  # not a date: shown as the pump sent it, never guessed at
        born = None
    return {"id": record.patient_id, "initials": record.initials or None,
            "born": born.isoformat() if born else (str(record.birth_date) if record.birth_date else None),
            "spasticity_origin": origin_word(record.spasticity_origin), "recorded_at": recorded_at}


def patient_text(view: dict[str, Any] | None) -> str:
    """One line: 'MRN-0042117 (AB, born 1970-01-02), spinal spasticity', or 'not recorded'.
    Rich markup in what the pump sent is escaped (a pump is not trusted to format the screen)."""
    from rich.markup import escape

    if view is None:
        return "not recorded"
    check = [part for part in (view["initials"], f"born {view['born']}" if view["born"] else None) if part]
    text = view["id"] + (f" ({', '.join(check)})" if check else "")
    if view["spasticity_origin"]:
        text += f", {view['spasticity_origin']} spasticity"
    return escape(text)


# --- a RECORD or CORRECT -------------------------------------------------------------

@dataclass(frozen=True)
class Given:
    """What `patient set` was given (None: not given; with --correct, the recorded value is kept)."""

    patient_id: str | None = None
    initials: str | None = None  # "": clear them
    born_given: bool = False
    born: date | None = None  # with born_given, None: clear it
    spasticity_origin: SpasticityOrigin | None = None

    @classmethod
    def parse(cls, *, patient_id: str | None, initials: str | None, born: str | None,
              spasticity_origin: str | None) -> Given:
        """Every field's text checked before the pump is read (the birth date against its date later)."""
        return cls(None if patient_id is None else parse_patient_id(patient_id),
                   None if initials is None else parse_initials(initials),
                   born is not None, None if born is None else parse_born(born),
                   None if spasticity_origin is None else parse_origin(spasticity_origin))


def _finding(level: str, rule: str, message: str) -> Any:
    from .limits import Finding

    return Finding(level, rule, message)


def patient_change(state: PumpState, action: PatientAction, *, patient_id: str | None = None,
                   initials: str | None = None, born: str | None = None, spasticity_origin: str | None = None,
                   given: Given | None = None) -> Change:
    """A RECORD (on a pump that holds no patient) or a CORRECT (of the record it holds; fields not
    given keep their recorded values, an empty initials or born clears it), checked; nothing sent."""
    from .limits import check_writable, settle
    from .therapy_change import Change
    from .writes import Expect, WriteRequest

    raw = state.raw
    current = raw.patient
    asked = given or Given.parse(patient_id=patient_id, initials=initials, born=born,
                                 spasticity_origin=spasticity_origin)
    before = patient_view(current, _recorded_at(state))
    # the record delivers nothing: taken in MRI-safe mode too, not at end of service
    findings = check_writable(raw, what="record the patient", in_mri_safe_mode=True)
    if action is PatientAction.RECORD and current.patient_id:
        findings.append(_finding("refuse", "patient-recorded",
                                 f"{raw.serial_number} already records patient {current.patient_id}: change the "
                                 "record with --correct (ithcli patient set --correct ...)"))
    if action is PatientAction.CORRECT and not current.patient_id:
        findings.append(_finding("refuse", "patient-none",
                                 f"{raw.serial_number} records no patient: there is nothing to correct (record one "
                                 "with ithcli patient set --id ID)"))
    settle(findings)  # a refusal here: nothing else is worth saying
    if action is PatientAction.RECORD and asked.patient_id is None:
        raise UsageError("give the patient's ID (--id): an opaque identifier the clinic chooses. Nothing was sent")
    keep = action is PatientAction.CORRECT
    new = bodies.PatientRecord(
        patient_id=asked.patient_id if asked.patient_id is not None else current.patient_id,
        initials=asked.initials if asked.initials is not None else (current.initials if keep else ""),
        birth_date=as_yyyymmdd(asked.born) if asked.born_given else (current.birth_date if keep else 0),
        spasticity_origin=(asked.spasticity_origin if asked.spasticity_origin is not None else
                           current.spasticity_origin if keep else SpasticityOrigin.NOT_RECORDED),
        recorded_at=0)
    today = datetime.fromtimestamp(raw.pump_time, UTC).date()  # the pump's own date, as it checks it
    problem = birth_date_problem(new.birth_date, today)
    if problem:
        raise UsageError(f"--born: {problem}. Nothing was sent")
    requested = patient_view(new)
    describe: dict[str, Any] = {"serial_number": raw.serial_number, "action": action.name.lower(),
                                "before": before, "requested": requested}
    unit = state.entry.dose_unit if state.entry else "mcg/day"
    if keep and _fields(new) == _fields(current):
        return Change("patient", None, describe | {"after": before}, [], unit=unit)
    if keep and new.patient_id != current.patient_id:
        findings.append(_finding("warn", "patient-id-changes",
                                 f"the patient ID changes from {current.patient_id} to {new.patient_id}: correct it "
                                 "only if the record was mistyped, never to move the pump to another patient"))
    uses_origin = bool(state.entry and state.entry.rise_24h_percent_by_origin)
    if new.spasticity_origin is not SpasticityOrigin.NOT_RECORDED and not uses_origin:
        drug = raw.drug.name.lower()
        findings.append(_finding("warn", "origin-not-used",
                                 f"the spasticity origin is recorded, but only baclofen's limits use it (the pump "
                                 f"holds {drug})"))
    warnings = settle(findings)
    describe["warnings"] = [w.as_dict() for w in warnings]
    request = WriteRequest(
        kind=write_kinds.PATIENT,
        prepare=partial(bodies.PreparePatientRequest, action=action, patient_id=new.patient_id,
                        initials=new.initials, birth_date=new.birth_date, spasticity_origin=new.spasticity_origin),
        expect=Expect(program=state.program, patient=_fields(new)), describe=describe)
    question = (f"Record patient {patient_text(requested)} on {raw.serial_number}?" if not keep else
                f"Correct the patient record on {raw.serial_number} to {patient_text(requested)}?")
    return Change("patient", request, describe, warnings, _rows(before, requested), question, {}, set(), unit)


def _fields(record: bodies.PatientRecord) -> dict[str, Any]:
    """The record as the echo must carry it (plain data); recorded_at, the pump's time at PREPARE,
    is not compared."""
    out = bodies.as_dict(record)
    del out["recorded_at"]
    return out


def _recorded_at(state: PumpState) -> str | None:
    """When the pump recorded its patient, as the status read shows it (this computer's calendar)."""
    view = state.described.get("patient")
    return view.get("recorded_at") if view else None


def _rows(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    from rich.markup import escape

    def part(view: dict[str, Any] | None, key: str) -> str:
        value = view.get(key) if view else None
        return escape(str(value)) if value else "-"

    rows = [("Patient", patient_text(before), patient_text(after))]
    rows += [(label, part(before, key), part(after, key))
             for label, key in (("Patient ID", "id"), ("Initials", "initials"), ("Born", "born"),
                                ("Spasticity origin", "spasticity_origin"))]
    return rows


def patient_after(state: PumpState, status: bodies.Status) -> dict[str, Any] | None:
    """The record read back, with the time the pump recorded it on this computer's calendar
    (moved by the session's skew, as interrogate shows it)."""
    from .calendar import iso, to_calendar

    record = status.patient
    return patient_view(record, iso(to_calendar(record.recorded_at, state.described["clock_skew_s"])))
