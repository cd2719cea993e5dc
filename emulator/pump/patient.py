"""The patient record (protocol version 5; docs/protocol.md, "The patient record").

Which patient the pump is implanted in: an opaque ID the clinic chooses, the initials and
birth date for a bedside check (optional), and baclofen's spasticity origin. A new pump
holds none; PREPARE_PATIENT RECORDs one on a pump that holds none and CORRECTs the one it
holds. The fields follow protocol/patient.py's rules (OUT_OF_RANGE otherwise); the origin is
accepted whatever the drug (ithcli uses it for baclofen's budget only). COMMIT logs
PATIENT_RECORDED, which carries the action, the origin and which fields changed: never the ID.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from protocol import ErrorReason, EventType, bodies
from protocol.constants import PatientAction, SpasticityOrigin
from protocol.patient import NO_PATIENT, changed_fields, record_problems, recorded_arg2

from .core import PumpCore, Refusal
from .integers import check_uint


class Patient:
    """The record. Set up by Pump.new() or the store."""

    def __init__(self, core: PumpCore) -> None:
        self.core = core
        self.record = NO_PATIENT

    @property
    def recorded(self) -> bool:
        return bool(self.record.patient_id)

    # --- a PATIENT write -----------------------------------------------------------------

    def plan(self, body: bodies.PreparePatientRequest) -> bodies.PatientRecord:
        """The record a PREPARE_PATIENT would leave once committed, or Refusal: INVALID_STATE for
        a RECORD over a recorded patient or a CORRECT with none, OUT_OF_RANGE for a bad field."""
        action = PatientAction(body.action)
        if action is PatientAction.RECORD and self.recorded:
            raise Refusal(ErrorReason.INVALID_STATE, "a patient is already recorded: CORRECT the record instead")
        if action is PatientAction.CORRECT and not self.recorded:
            raise Refusal(ErrorReason.INVALID_STATE, "no patient is recorded: RECORD one first")
        today = datetime.fromtimestamp(self.core.time, UTC).date()
        problems = record_problems(body.patient_id, body.initials, body.birth_date, today)
        if problems:
            raise Refusal(ErrorReason.OUT_OF_RANGE, "; ".join(problems))
        return bodies.PatientRecord(patient_id=body.patient_id, initials=body.initials, birth_date=body.birth_date,
                                    spasticity_origin=SpasticityOrigin(body.spasticity_origin),
                                    recorded_at=self.core.time)

    def apply(self, action: PatientAction, record: bodies.PatientRecord) -> None:
        """COMMIT of a PATIENT write: the record, stamped now; PATIENT_RECORDED."""
        changed = changed_fields(self.record, record)
        self.record = replace(record, recorded_at=self.core.time)
        self.core.log_event(EventType.PATIENT_RECORDED, arg1=int(action), arg2=recorded_arg2(record, changed))

    # --- the control channel and the state file ------------------------------------------

    def describe(self) -> dict:
        return self.to_dict()

    def to_dict(self) -> dict:
        r = self.record
        return {"patient_id": r.patient_id, "initials": r.initials, "birth_date": r.birth_date,
                "spasticity_origin": r.spasticity_origin.name, "recorded_at": r.recorded_at}

    def load(self, data: dict | None) -> None:
        """The state file's "patient" (None: a file from before protocol version 5: none recorded)."""
        if data is None:
            return
        patient_id, initials = data["patient_id"], data["initials"]
        if not isinstance(patient_id, str) or not isinstance(initials, str):
            raise ValueError("patient ID and initials must be text")
        record = bodies.PatientRecord(patient_id=patient_id, initials=initials,
                                      birth_date=check_uint(data["birth_date"], 32),
                                      spasticity_origin=SpasticityOrigin[data["spasticity_origin"]],
                                      recorded_at=check_uint(data["recorded_at"], 63))
        if not record.patient_id:
            if record != NO_PATIENT:
                raise ValueError("a patient record with no patient ID has other fields")
        else:
            # the rules as at PREPARE; a birth date is checked against no clock here (the pump's is read later)
            problems = record_problems(record.patient_id, record.initials, record.birth_date, datetime.max.date())
            if problems or not record.recorded_at:
                raise ValueError("patient record out of range: " + "; ".join(problems or ["never recorded"]))
        self.record = record
