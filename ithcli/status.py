"""A pump's status as people and scripts see it: units attached, projections computed.

Everything here is derived from one INTERROGATE reply (plain ints from the wire)
and the drug library's dose unit; nothing is rounded into a float before output.

Every date in the result is on this computer's calendar (calendar.py): the pump's
timestamps and the projections from its clock, moved by the skew measured at the
read. Only `pump_time` (and `pump_clock.pump_time`) is the pump's own clock.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from protocol import ALARM_PRIORITY, Alarm, Quantity
from protocol.models import MODELS

from .calendar import calendar_iso, clock_view, iso, measure_skew, to_calendar

if TYPE_CHECKING:
    from protocol.bodies import Event, Program, Status

SECONDS_PER_DAY = 86_400
ERI_TO_REPLACE_BY_DAYS = 90


def quantity(base: int, unit: str) -> dict[str, Any]:
    q = Quantity.from_base(base, unit)
    return {"value": q.value, "unit": q.unit}


def alarm_name(alarm: Alarm) -> str:
    """An alarm as output spells it: Alarm.LOW_RESERVOIR -> "low_reservoir".

    ValueError for a value no member names (Alarm(0), or only bits the protocol does not
    define): those have no name. Members iterated from Alarm always have one."""
    name = alarm.name
    if name is None:
        raise ValueError(f"alarm bits 0x{int(alarm):x} have no name")
    return name.lower()


def _ml(ul: int) -> Decimal:
    return Decimal(ul) / 1000


def reaches(pump_time: int, volume_ul: int, threshold_ul: int, per_day_nl: int) -> int | None:
    """Pump time at which volume_ul falls to threshold_ul at per_day_nl (now if already there)."""
    if per_day_nl <= 0:
        return None
    return pump_time + max(0, volume_ul - threshold_ul) * 1000 * SECONDS_PER_DAY // per_day_nl


def _projection(status: Status, threshold_ul: int) -> int | None:
    """Pump time at which the reservoir reaches threshold at the 24-hour average flow."""
    if status.mode.name == "STOPPED":
        return None
    return reaches(status.pump_time, status.reservoir_ul, threshold_ul, status.daily_volume_nl_per_day)


def replace_by_check(eri_at: int, pump_replace_by: int) -> dict[str, Any]:
    """The replace-by date computed from ERI (+ 90 days), cross-checked with the pump's own.

    Domain hazard 7: a replace-by date shown as unknown, or later than ERI + 90
    days. A mismatch is any disagreement once ERI is known, including a pump that
    reports its replace-by date as unknown (0) while its ERI date is known.
    """
    computed = eri_at + ERI_TO_REPLACE_BY_DAYS * SECONDS_PER_DAY if eri_at else None
    mismatch = computed is not None and pump_replace_by != computed
    return {"computed": computed, "mismatch": mismatch}


def replace_by_warning(battery: dict) -> str | None:
    """One line for people when the pump's replace-by date disagrees with ERI + 90 days."""
    from .output import fmt_date

    if not battery.get("replace_by_mismatch"):
        return None

    def day(key: str) -> str:  # on the calendar people read (localtime.py)
        return fmt_date(battery.get(key), with_time=False)
    return (f"REPLACE-BY MISMATCH: the pump says {day('replace_by')}, but ERI {day('eri_date')} + 90 days is "
            f"{day('replace_by_computed')}: plan the replacement by the earlier date and report the discrepancy")


def describe(status: Status, library, *, read_at: float, port: str, emulated: bool,
             skew_s: int | None = None) -> dict[str, Any]:
    """The interrogate result: the documented JSON object (README, 'interrogate --json').

    read_at: this computer's clock when the reply arrived (seconds since the epoch).
    skew_s: the pump clock's skew to move dates by; None: measured from this reply
    (pump_time - read_at). Give it to describe a later read of the same session (a
    write's read-back) with the session's skew.
    """
    drug_code = status.drug.name
    entry = library.for_code(drug_code)
    dose_unit = entry.dose_unit if entry else "mcg/day"
    conc_unit = entry.concentration_unit if entry else "mcg/mL"
    spec = MODELS[status.model]
    fw = status.firmware
    measured = measure_skew(status.pump_time, read_at)
    skew = measured if skew_s is None else int(skew_s)
    cal = calendar_iso(skew)  # iso(to_calendar(ts, skew)), its shift worked out once for the dozen dates here
    return {
        "serial_number": status.serial_number,
        "model": spec.name,
        "design": spec.design,
        "firmware": f"{fw.major}.{fw.minor}.{fw.patch}",
        "emulated": emulated,
        "port": port,
        "drug": drug_code.lower(),
        "drug_in_library": entry is not None,
        "concentration": quantity(status.concentration_ng_per_ml, conc_unit),
        "mode": status.mode.name.lower(),
        "daily_dose": quantity(status.daily_dose_ng_per_day, dose_unit),
        "flow_ml_per_day": Decimal(status.daily_volume_nl_per_day) / 1_000_000,
        "current_rate_ml_per_day": Decimal(status.current_rate_nl_per_day) / 1_000_000,
        **_reservoir_view(status, cal),
        "battery": _battery_view(status, cal),
        "alarms": _alarms_view(status.alarms),
        "mri_mode": status.mri_mode.name.lower(),
        "mri_auto_exit_at": cal(status.mri_auto_exit_at),
        "bolus_remaining": quantity(status.bolus_remaining_ng, dose_unit.split("/")[0]),
        "catheter": _catheter(status, cal),
        "ptm": _ptm_view(status, dose_unit, skew),  # patient-activated boluses: limits and use (ithcli/ptm.py)
        "patient": _patient(status, cal),  # the patient record (ithcli/patient.py); None: none recorded
        "last_programming": {
            "txid": status.last_txid,
            "at": cal(status.last_programmed_at),
        },
        "event_count": status.event_count,
        "pump_time": iso(status.pump_time),  # the pump's own clock, not moved
        "clock_skew_s": skew,
        "read_at": iso(read_at),
        "pump_clock": clock_view(status.pump_time, int(read_at), skew),
    }


def _ptm_view(status: Status, dose_unit: str, skew: int) -> dict[str, Any]:
    from .ptm import ptm_view

    return ptm_view(status.ptm, status.ptm_use, dose_unit, skew, status.daily_dose_ng_per_day)


def _catheter(status: Status, cal: Callable[[int | None], str | None]) -> dict[str, Any]:
    """The catheter record: model, lengths in cm, dead space and priming due in mL (ithcli/catheter_ops.py)."""
    from .catheter_ops import catheter_view

    return catheter_view(status.catheter, cal(status.catheter.recorded_at))


def _patient(status: Status, cal: Callable[[int | None], str | None]) -> dict[str, Any] | None:
    """The patient the pump records: ID, initials, born, spasticity origin, when (None: none)."""
    from .patient import patient_view

    return patient_view(status.patient, cal(status.patient.recorded_at))


def _reservoir_view(status: Status, cal: Callable[[int | None], str | None]) -> dict[str, Any]:
    """The reservoir now and when it alarms and empties at the 24-hour average flow (dates by cal)."""
    return {
        "reservoir_ml": _ml(status.reservoir_ul),
        "reservoir_capacity_ml": _ml(status.capacity_ul),
        "low_reservoir_alarm_ml": _ml(status.low_reservoir_alarm_ul),
        "projected_low_reservoir_date": cal(_projection(status, status.low_reservoir_alarm_ul)),
        "projected_empty_date": cal(_projection(status, 0)),
    }


def _battery_view(status: Status, cal: Callable[[int | None], str | None]) -> dict[str, Any]:
    eri_at = status.eri_at
    # the cross-check is the pump's own arithmetic: in pump time, before any date is moved
    replace = replace_by_check(eri_at, status.replace_by)
    return {
        "state": status.battery_state.name.lower(),
        "percent": status.battery_percent,
        "eri_date": cal(eri_at),
        "replace_by": cal(status.replace_by),
        "replace_by_computed": cal(replace["computed"]),
        # a pump whose own figure disagrees with ERI + 90 days is shown, never hidden
        "replace_by_mismatch": replace["mismatch"],
    }


def _alarm_table() -> tuple[tuple[int, str, str], ...]:
    """(bit, name, priority) of every alarm, the highest priority first and, within one priority,
    in Alarm's order: the order _alarms_view lists them in, worked out once."""
    rows = [(int(a), alarm_name(a), ALARM_PRIORITY[a].name.lower()) for a in Alarm]
    return tuple(sorted(rows, key=lambda row: ("high", "medium", "low").index(row[2])))  # stable


#: plain ints: IntFlag's & and iteration cost ~0.3 us each, eight of them every read of every pump
_ALARMS_BY_PRIORITY = _alarm_table()


def _alarms_view(flags: Alarm) -> list[dict[str, str]]:
    """The active alarms by name and priority, the highest priority first."""
    bits = int(flags)
    return [{"name": name, "priority": priority} for bit, name, priority in _ALARMS_BY_PRIORITY if bits & bit]


def delivery_state(status: Status) -> str:
    """What the pump delivers now, in words: "stopped" (its program is), "bridge bolus" (the old
    contents at the old rate; the program waits), "suspended" (a program, but no rate now: an
    alarm, MRI-safe mode, a stall) or "running"."""
    from .catheter import bridge_running

    if status.mode.name == "STOPPED":
        return "stopped"
    if bridge_running(status):
        return "bridge bolus"
    return "suspended" if status.current_rate_nl_per_day == 0 else "running"


def event_view(event: Event, dose_unit: str, skew_s: int | None) -> dict[str, Any]:
    """One pump log event for people and --json: "time" on this computer's calendar (moved by
    the session's skew), "pump_time" the pump's own stamp. skew_s None: not measured (no
    status read), both the same."""
    from .events import event_record

    record = event_record(event, dose_unit)
    record["time"] = iso(to_calendar(event.time, skew_s or 0))
    record["pump_time"] = iso(event.time)
    return record


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def program_view(program: Program, dose_unit: str) -> dict[str, Any]:
    """A program (READ_PROGRAM / PREPARE echo) with units, for people and --json."""
    conc_unit = dose_unit.split("/")[0] + "/mL"
    return {
        "mode": program.mode.name.lower(),
        "drug": program.drug.name.lower(),
        "concentration": quantity(program.concentration_ng_per_ml, conc_unit),
        "daily_dose": quantity(program.daily_dose_ng_per_day, dose_unit),
        "flow_ml_per_day": Decimal(program.daily_volume_nl_per_day) / 1_000_000,
        "steps": [
            {
                "start": hhmm(s.start_minute),
                "dose": quantity(s.dose_ng_per_day, dose_unit),
                "rate_ml_per_day": Decimal(s.rate_nl_per_day) / 1_000_000,
            }
            for s in program.steps
        ],
    }
