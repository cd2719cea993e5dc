"""`api.Pump`'s calls for the pump's clock, patient-activated boluses and the patient record
(docs/api.md, "The clock and patient boluses", "The patient on the pump"), kept beside the API
module: `Pump` inherits them. They stand on the same `_state`, `apply` and `status` as every
other write and read."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import clock as clock_ops
from . import ptm as ptm_ops
from .api_types import Patient, PreparedChange
from .clock import ClockReading
from .errors import UsageError
from .ptm import PatientBoluses

if TYPE_CHECKING:
    from .api_types import Status, WriteResult
    from .app import PumpSession
    from .therapy_change import PumpState


class ClockAndPatientBoluses:
    """Mixed into api.Pump, which provides the session, _state, apply and status."""

    _session: PumpSession

    def _state(self, *, allow_unknown_drug: bool = False, expect_drug: str | None = None) -> PumpState:
        raise NotImplementedError  # api.Pump's

    def apply(self, prepared: PreparedChange) -> WriteResult:
        raise NotImplementedError  # api.Pump's

    def status(self, *, settle: bool = True) -> Status:
        raise NotImplementedError  # api.Pump's

    def clock(self) -> ClockReading:
        """The pump's clock against this computer's, read now (settling an unconfirmed write first)."""
        raw, described = self._session.read()
        return ClockReading.from_view(clock_ops.clock_reading(raw, self._session.last_read_at or 0,
                                                              emulated=described["emulated"]))

    def check_clock(self, *, to: str | None = None, confirm: Iterable[str] = ()) -> PreparedChange:
        """Set the pump's clock to `to` (ISO 8601 with its UTC offset), or to this computer's time
        when the PREPARE is sent (None); a step over a day needs confirm={"clock-step"}."""
        from .api import confirmation_flags

        state = self._state(allow_unknown_drug=True)
        return PreparedChange(state, clock_ops.clock_change(self._session, state, to=to,
                                                            confirmed=confirmation_flags(confirm)))

    def set_clock(self, **kw: Any) -> WriteResult:
        """check_clock(**kw), then apply it: verified when the pump's time reads back where it was set."""
        return self.apply(self.check_clock(**kw))

    def ptm(self, *, reading: Status | None = None) -> PatientBoluses:
        """Patient-activated boluses: limits, worst case a day, use in the last 24 hours."""
        return PatientBoluses.from_view((reading or self.status()).data["ptm"])

    def check_ptm(self, *, dose: str | None = None, lockout: str | None = None, max_per_day: int | None = None,
                  duration: str | None = None, off: bool = False, overrides: dict[str, str] | None = None,
                  confirm: Iterable[str] = (), expect_drug: str | None = None) -> PreparedChange:
        """New patient-bolus limits (dose per activation, lockout, most a day, duration), or off=True;
        refused past the drug library's limits or when the worst case a day breaks the hard maximum."""
        from .api import _overrides, confirmation_flags

        state = self._state(expect_drug=expect_drug)
        return PreparedChange(state, ptm_ops.ptm_change(state, dose=dose, lockout=lockout, max_per_day=max_per_day,
                                                        duration=duration, off=off, overrides=_overrides(overrides),
                                                        confirmed=confirmation_flags(confirm)))

    def set_ptm(self, **kw: Any) -> WriteResult:
        """check_ptm(**kw), then apply it."""
        return self.apply(self.check_ptm(**kw))

    def patient(self, *, reading: Status | None = None) -> Patient:
        """The patient the pump records (of `reading`, else of a status read now)."""
        return Patient.from_view((reading or self.status()).data["patient"])

    def check_patient(self, action: str, *, patient_id: str | None = None, initials: str | None = None,
                      born: str | None = None, spasticity_origin: str | None = None) -> PreparedChange:
        """Check a patient record: action "record" (on a pump that holds none; patient_id required) or
        "correct" (the record it holds; fields not given are kept, initials="" or born="" clears one).
        born "YYYY-MM-DD"; spasticity_origin "spinal", "cerebral" or "not-recorded". A bad field is
        refused (UsageError) before the pump is read; a record over a recorded patient, or a correction
        with none, is refused (SafetyError). Nothing is sent."""
        from protocol.constants import PatientAction

        from .patient import Given, patient_change

        actions = {"record": PatientAction.RECORD, "correct": PatientAction.CORRECT}
        if action not in actions:
            raise UsageError(f"patient action {action!r}: give one of {', '.join(actions)}")
        given = Given.parse(patient_id=patient_id, initials=initials, born=born, spasticity_origin=spasticity_origin)
        state = self._state(allow_unknown_drug=True)
        return PreparedChange(state, patient_change(state, actions[action], given=given))

    def record_patient(self, action: str, **kw: Any) -> WriteResult:
        """check_patient(action, **kw), then apply it: verified when the record reads back as echoed."""
        return self.apply(self.check_patient(action, **kw))
