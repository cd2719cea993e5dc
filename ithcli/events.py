"""Event-log entries in words: what each type's arg1/arg2 mean (docs/protocol.md)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .output import fmt_span
from .status import alarm_name as _alarm_name
from .status import iso

if TYPE_CHECKING:
    from protocol.bodies import Event


def describe_event(event: Event, dose_unit: str = "mcg/day") -> str:
    from protocol import Alarm, EventType, Quantity

    t = event.type
    a1, a2 = event.arg1, event.arg2
    mass = dose_unit.split("/")[0]

    def alarm_name(bit: int) -> str:
        try:
            return _alarm_name(Alarm(bit)).replace("_", " ")
        except ValueError:  # Alarm(0) and undefined bits alone have no name
            return f"unknown alarm 0x{bit:x}"

    if t == EventType.POWER_ON:
        return "pump started" + (" (state restored from memory)" if a1 else "")
    if t == EventType.ALARM_RAISED:
        return f"alarm raised: {alarm_name(a1)}"
    if t == EventType.ALARM_CLEARED:
        return f"alarm cleared: {alarm_name(a1)}"
    if t == EventType.PROGRAM_CHANGED:
        return (f"program applied: {Quantity.from_base(a1, dose_unit)} -> "
                f"{Quantity.from_base(a2, dose_unit)} (24-hour totals)")
    if t == EventType.TX_APPLIED:
        from protocol import WriteKind

        kind = WriteKind(a2).name.lower().replace("_", " ") if a2 in WriteKind._value2member_map_ else f"kind {a2}"
        return f"transaction {a1} applied ({kind})"
    if t == EventType.REFILL:
        return f"refilled to {Quantity.from_base(a1, 'mL')} at {Quantity.from_base(a2, mass + '/mL')}"
    if t == EventType.MRI_SAFE_ENTERED:
        return f"MRI-safe mode entered, automatic exit after {a1 // 3600} h {a1 % 3600 // 60} min"
    if t == EventType.MRI_SAFE_EXITED:
        return "MRI-safe mode exited" + (" by the automatic timer" if a1 else "")
    if t == EventType.UNCONTROLLED_BOLUS:
        return f"UNCONTROLLED BOLUS: {Quantity.from_base(a1, 'mL')} delivered"
    if t == EventType.BOLUS_STARTED:
        return f"bolus started: {Quantity.from_base(a1, mass)} over {fmt_span(a2)}"
    if t == EventType.SESSION_OPENED:
        from protocol import Role

        role = Role(a1).name.lower() if a1 in Role._value2member_map_ else f"role {a1}"
        count = a2 or 1  # 0: logged by a version-2 pump, one session
        return f"{role} session opened" if count == 1 else f"{count} {role} sessions opened (coalesced)"
    if t == EventType.AUTH_FAILURE:
        from protocol import ErrorReason

        reason = ErrorReason(a2).name.lower() if a2 in ErrorReason._value2member_map_ else f"reason {a2}"
        return f"{a1} authentication failure{'s' if a1 != 1 else ''} (the latest: {reason})"
    catheter = _catheter_event(event)
    if catheter is not None:
        return catheter
    clock_or_ptm = _clock_ptm_event(event, mass)
    if clock_or_ptm is not None:
        return clock_or_ptm
    if t == EventType.PATIENT_RECORDED:
        return _patient_event(a1, a2)
    return t.name.lower().replace("_", " ")


def _patient_event(a1: int, a2: int) -> str:
    """PATIENT_RECORDED in words: the action, which fields changed, the origin recorded. The event
    carries no identifier, and nothing here would show one."""
    from protocol.constants import PatientAction, SpasticityOrigin
    from protocol.patient import CHANGED_SHIFT, FIELD_BITS

    action = {int(PatientAction.RECORD): "patient recorded", int(PatientAction.CORRECT): "patient record corrected"
              }.get(a1, f"patient record (action {a1})")
    code = a2 & 0xFF
    origin = SpasticityOrigin(code).name.lower() if code in SpasticityOrigin._value2member_map_ else f"origin {code}"
    names = {"patient_id": "ID", "initials": "initials", "birth_date": "birth date",
             "spasticity_origin": "spasticity origin"}
    changed = [names[name] for name, bit in FIELD_BITS if (a2 >> CHANGED_SHIFT) & bit]
    text = action + (f": {', '.join(changed)} changed" if a1 == PatientAction.CORRECT and changed else "")
    return text + ("" if origin == "not_recorded" else f" ({origin} spasticity)")


def _clock_ptm_event(event: Event, mass: str) -> str | None:
    """CLOCK_SET, PTM_GRANTED and PTM_REFUSED in words (None: another type)."""
    from protocol import EventType, Quantity
    from protocol.constants import PtmRefusal

    from .clock import set_step, step_text

    t, a1, a2 = event.type, event.arg1, event.arg2
    if t == EventType.CLOCK_SET:
        # arg1/arg2: the old and new times' low 32 bits; their difference is the step
        return f"pump clock set: {step_text(set_step(a1, a2))} (earlier events carry the old clock's times)"
    if t == EventType.PTM_GRANTED:
        return f"patient bolus granted: {Quantity.from_base(a1, mass)} over {fmt_span(a2)}"
    if t == EventType.PTM_REFUSED:
        reason = PtmRefusal(a1).name.lower() if a1 in PtmRefusal._value2member_map_ else f"reason {a1}"
        left = f", {a2 // 60} min {a2 % 60} s of lockout left" if a1 == PtmRefusal.LOCKOUT else ""
        return f"patient bolus refused: {reason.replace('_', ' ')}{left}"
    return None


def _catheter_event(event: Event) -> str | None:
    """CATHETER_RECORDED, PRIMING_STARTED, BRIDGE_STARTED and DRUG_CHANGED in words (None: another
    type); none is in the current drug's unit (a bridge's dose is the previous drug's)."""
    from decimal import Decimal

    from protocol import EventType, Quantity
    from protocol.constants import CatheterAction

    t, a1, a2 = event.type, event.arg1, event.arg2

    def cm(mm: int) -> str:
        return f"{format((Decimal(mm) / 10).normalize(), 'f')} cm"

    def ml(nl: int) -> str:
        return f"{format((Decimal(nl) / 1_000_000).normalize(), 'f')} mL"

    if t == EventType.CATHETER_RECORDED:
        action = CatheterAction(a1).name.lower() if a1 in CatheterAction._value2member_map_ else f"action {a1}"
        length, replaced = a2 % 65_536, a2 // 65_536
        text = f"catheter {action} recorded: {cm(length)}"
        text += f", {cm(replaced)} segment replaced" if replaced and action == "revision" else ""
        return text + (" (priming not re-armed)" if action == "correction" else " (priming due)")
    if t == EventType.PRIMING_STARTED:
        return f"priming bolus: {ml(a1)} over {fmt_span(a2)} (the bolus above; monitor the patient)"
    if t == EventType.BRIDGE_STARTED:
        # arg1 is a dose of the drug the pump held before the refill logged just before this event,
        # which may be another drug than today's, dosed in the other mass unit (morphine in mg,
        # baclofen in mcg). The log names no drug, so this number is never put in today's drug's
        # unit alone: it is given in both, and said to be the old drug's.
        old_dose = f"{Quantity.from_base(a1, 'mg')} ({Quantity.from_base(a1, 'mcg')})"
        return (f"bridge bolus started: the catheter's old contents, {old_dose} of the drug the pump held before "
                f"this refill (the DRUG_CHANGED just before names it when the drug changed) over {fmt_span(a2)}, "
                "instead of the program")
    if t == EventType.DRUG_CHANGED:
        from protocol import Drug

        def name(code: int) -> str:
            return Drug(code).name.lower() if code in Drug._value2member_map_ else f"drug {code}"

        return (f"refill with another drug: {name(a1)} -> {name(a2)} (doses logged before this, and the "
                f"'before' of the program change after it, are {name(a1)}'s)")
    return None


def event_record(event: Event, dose_unit: str) -> dict:
    from protocol import ALARM_PRIORITY, Alarm, EventType

    record: dict[str, Any] = {
        "index": event.index,
        "time": iso(event.time),
        "type": event.type.name.lower(),
        "priority": event.priority.name.lower(),
        "arg1": event.arg1,
        "arg2": event.arg2,
        "description": describe_event(event, dose_unit),
    }
    if event.type in (EventType.ALARM_RAISED, EventType.ALARM_CLEARED):
        try:
            alarm = Alarm(event.arg1)
            expected = ALARM_PRIORITY.get(alarm)
        except ValueError:
            alarm, expected = None, None
        record["alarm"] = alarm.name.lower() if alarm is not None and alarm.name else None
        # the pump's priority is shown as logged; one that differs from the IEC 60601-1-8
        # classification ithcli holds for the alarm is pointed out, never silently replaced
        if expected is not None and expected != event.priority:
            record["description"] += (f" (the pump logged priority {event.priority.name.lower()}; ithcli "
                                      f"classifies it {expected.name.lower()})")
    return record
