"""The patient record's rules both ends apply the same way (version 5; docs/protocol.md,
"The patient record").

A pump records which patient it is implanted in: an opaque ID the clinic chooses (its
record number, never a name), optionally the initials and the birth date for a bedside
check, and baclofen's spasticity origin, which picks the drug's 24-hour escalation budget.
The record is carried only inside sealed frames. The pump refuses a field that breaks these
rules (OUT_OF_RANGE); ithcli checks them the same way before anything is sent.
"""
from __future__ import annotations

import re
from datetime import date

from .bodies import PatientRecord
from .constants import SpasticityOrigin
from .messages import INITIALS_LEN, PATIENT_ID_LEN

#: no patient recorded (a new pump, or a pump from before version 5)
NO_PATIENT = PatientRecord(patient_id="", initials="", birth_date=0,
                           spasticity_origin=SpasticityOrigin.NOT_RECORDED, recorded_at=0)

#: the characters of a patient ID: no spaces, nothing a terminal or a file name would read
PATIENT_ID_CHARS = "A-Z a-z 0-9 . _ : / -"
_PATIENT_ID = re.compile(rf"[A-Za-z0-9._:/-]{{1,{PATIENT_ID_LEN}}}")
_INITIALS = re.compile(rf"[A-Z]{{0,{INITIALS_LEN}}}")
#: the earliest birth date accepted
EARLIEST_BIRTH = date(1900, 1, 1)

#: PATIENT_RECORDED.arg2: the SpasticityOrigin recorded, and which fields changed << CHANGED_SHIFT
CHANGED_SHIFT = 8
CHANGED_ID, CHANGED_INITIALS, CHANGED_BIRTH_DATE, CHANGED_ORIGIN = 1, 2, 4, 8
FIELD_BITS = (("patient_id", CHANGED_ID), ("initials", CHANGED_INITIALS), ("birth_date", CHANGED_BIRTH_DATE),
              ("spasticity_origin", CHANGED_ORIGIN))


def patient_id_problem(text: str) -> str | None:
    """Why `text` is not a patient ID (None: it is one)."""
    if not text:
        return "the patient ID is empty"
    if len(text) > PATIENT_ID_LEN:
        return f"the patient ID has {len(text)} characters: at most {PATIENT_ID_LEN}"
    if not _PATIENT_ID.fullmatch(text):
        return f"the patient ID may hold only {PATIENT_ID_CHARS} (no spaces)"
    return None


def initials_problem(text: str) -> str | None:
    """Why `text` is not the patient's initials (None: they are, or empty: not recorded)."""
    if not _INITIALS.fullmatch(text):
        return f"initials are 0 to {INITIALS_LEN} capital letters A-Z"
    return None


def birth_date_of(yyyymmdd: int) -> date | None:
    """The date of a wire birth date (None for 0, not recorded); ValueError when it is no calendar date."""
    if yyyymmdd == 0:
        return None
    return date(yyyymmdd // 10_000, yyyymmdd // 100 % 100, yyyymmdd % 100)


def as_yyyymmdd(day: date | None) -> int:
    """A date as the wire carries it (None: 0, not recorded)."""
    return 0 if day is None else day.year * 10_000 + day.month * 100 + day.day


def birth_date_problem(yyyymmdd: int, today: date) -> str | None:
    """Why `yyyymmdd` is not a birth date the pump accepts on `today` (its own date, UTC)."""
    if yyyymmdd == 0:
        return None
    try:
        born = birth_date_of(yyyymmdd)
    except ValueError:
        return f"birth date {yyyymmdd} is not a calendar date (yyyymmdd)"
    assert born is not None
    if born < EARLIEST_BIRTH:
        return f"birth date {born.isoformat()} is before {EARLIEST_BIRTH.isoformat()}"
    if born > today:
        return f"birth date {born.isoformat()} is after the pump's date {today.isoformat()}"
    return None


def record_problems(patient_id: str, initials: str, birth_date: int, today: date) -> list[str]:
    """Every field of a PREPARE_PATIENT that breaks the rules (the origin is a code: any is accepted)."""
    found = [patient_id_problem(patient_id), initials_problem(initials), birth_date_problem(birth_date, today)]
    return [p for p in found if p is not None]


def changed_fields(before: PatientRecord, after: PatientRecord) -> int:
    """The CHANGED_* bits of the fields that differ (a RECORD: every field given, against NO_PATIENT)."""
    return sum(bit for name, bit in FIELD_BITS if getattr(before, name) != getattr(after, name))


def recorded_arg2(record: PatientRecord, changed: int) -> int:
    """PATIENT_RECORDED.arg2: the origin recorded and the fields that changed; never an identifier."""
    return int(record.spasticity_origin) | changed << CHANGED_SHIFT
