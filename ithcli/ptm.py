"""Patient-activated boluses: their limits and use as people and scripts see them, and a
change of the limits (a PTM write), checked against the drug library (ithcli/limits/ptm.py).

    view = ptm_view(status.ptm, status.ptm_use, "mg/day", skew_s, status.daily_dose_ng_per_day)
    change = ptm_change(state, dose="0.2 mg", lockout="60min", max_per_day=4, duration="10min")
    change = ptm_change(state, off=True)
    operations.apply_change(session, state, change)     # PREPARE, echo, COMMIT, read back

The patient presses the handheld; the pump grants or refuses within the limits and logs
PTM_GRANTED / PTM_REFUSED (docs/protocol.md#patient-activated-boluses). Granted ones
count in the 24-hour total of later checks like any bolus (ithcli/history.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from protocol import Quantity, bodies
from protocol.ptm import PTM_OFF, worst_case_daily_ng

from . import write_kinds
from .calendar import iso, to_calendar
from .errors import UsageError
from .localtime import fmt_iso
from .status import quantity

if TYPE_CHECKING:
    from .operations import Change, PumpState

MAX_PER_DAY = 24  # the wire's most (docs/protocol.md, PREPARE_PTM)


def ptm_view(limits: bodies.PtmLimits, use: bodies.PtmUse, dose_unit: str, skew_s: int | None,
             daily_dose_ng_per_day: int | None = None) -> dict[str, Any]:
    """The `ptm` object of interrogate --json: the limits (dose in the drug's mass unit), the
    worst case a day with the program (when its dose is given), and the use in the last 24 hours."""
    mass = dose_unit.split("/")[0]
    out: dict[str, Any] = {
        "enabled": bool(limits.enabled),
        "dose": quantity(limits.dose_ng, mass),
        "duration_s": limits.duration_s,
        "lockout_s": limits.lockout_s,
        "max_per_day": limits.max_per_day,
    }
    if daily_dose_ng_per_day is not None:
        out["worst_case_daily"] = quantity(worst_case_daily_ng(daily_dose_ng_per_day, limits), dose_unit)
    out |= {"granted_24h": use.granted_24h, "refused_24h": use.refused_24h,
            "last_granted_at": iso(to_calendar(use.last_granted_at, skew_s or 0))}
    return out


def ptm_text(view: dict[str, Any]) -> str:
    """One line: 'on: 0.2 mg over 10 min, lockout 60 min, at most 4 a day (worst case 2.8 mg/day)'."""
    from .output import fmt_quantity

    if not view["enabled"]:
        return "off"
    text = (f"on: {fmt_quantity(view['dose'])} over {_min(view['duration_s'])}, lockout {_min(view['lockout_s'])}, "
            f"at most {view['max_per_day']} a day")
    if "worst_case_daily" in view:
        text += f" (worst case {fmt_quantity(view['worst_case_daily'])} with the program)"
    return text


def use_text(view: dict[str, Any]) -> str:
    """'2 granted, 1 refused in the last 24 h (last granted 2026-...)'."""
    from .output import fmt_date

    last = f" (last granted {fmt_date(view['last_granted_at'])})" if view.get("last_granted_at") else ""
    return f"{view['granted_24h']} granted, {view['refused_24h']} refused in the last 24 h{last}"


def _min(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def parse_limits(entry, *, dose: str | None, lockout: str | None, max_per_day: int | None, duration: str | None,
                 off: bool) -> bodies.PtmLimits:
    """The options of `ptm set` as PtmLimits: --off alone, or all four values in their units."""
    from .dosing import parse_dose, parse_duration

    given = [name for name, value in (("--dose", dose), ("--lockout", lockout), ("--max-per-day", max_per_day),
                                      ("--duration", duration)) if value is not None]
    if off:
        if given:
            raise UsageError(f"--off turns patient boluses off: give no {', '.join(given)} with it")
        return PTM_OFF
    missing = [name for name in ("--dose", "--lockout", "--max-per-day", "--duration") if name not in given]
    if missing:
        raise UsageError(f"give --off, or all of --dose, --lockout, --max-per-day and --duration "
                         f"(missing {', '.join(missing)})")
    assert dose is not None and lockout is not None and max_per_day is not None and duration is not None
    if isinstance(max_per_day, bool) or not isinstance(max_per_day, int) or not 1 <= max_per_day <= MAX_PER_DAY:
        raise UsageError(f"--max-per-day {max_per_day!r}: a whole number of activations from 1 to {MAX_PER_DAY}")
    return bodies.PtmLimits(enabled=1, dose_ng=parse_dose(dose, entry),
                            duration_s=parse_duration(duration, "--duration"),
                            lockout_s=parse_duration(lockout, "--lockout"), max_per_day=max_per_day)


def ptm_change(state: PumpState, *, dose: str | None = None, lockout: str | None = None,
               max_per_day: int | None = None, duration: str | None = None, off: bool = False,
               overrides: dict[str, str] | None = None, confirmed: frozenset[str] | set[str] = frozenset()) -> Change:
    """New patient-bolus limits, checked: refused past the library's limits or when the worst case
    a day breaks the hard maximum, DAILY_MAX past the soft one; turning them off is always allowed."""
    from . import limits as checks
    from .operations import Change
    from .writes import Expect, WriteRequest

    raw, entry = state.raw, state.drug_entry
    new = parse_limits(entry, dose=dose, lockout=lockout, max_per_day=max_per_day, duration=duration, off=off)
    unit, skew = entry.dose_unit, state.described["clock_skew_s"]
    before = ptm_view(raw.ptm, raw.ptm_use, unit, skew, raw.daily_dose_ng_per_day)
    requested = ptm_view(new, raw.ptm_use, unit, skew, raw.daily_dose_ng_per_day)
    describe: dict[str, Any] = {"serial_number": raw.serial_number, "before": before, "requested": requested,
                                "daily_dose": state.described["daily_dose"]}
    if new == raw.ptm:
        return Change("ptm", None, describe | {"after": before}, [], unit=unit)
    findings = checks.check_writable(raw, what="set patient boluses",
                                     auto_exit_at=fmt_iso(state.described["mri_auto_exit_at"]))
    findings += checks.check_ptm_limits(entry, new, daily_dose_ng_per_day=raw.daily_dose_ng_per_day)
    findings += _rate_check(state, new)
    if not new.enabled and raw.bolus_remaining_ng:
        findings.append(checks.Finding("warn", "ptm-off-bolus-running",
                                       "turning patient boluses off does not stop a bolus already running"))
    warnings = checks.settle(findings, overrides=overrides, confirmed=set(confirmed))
    describe |= {"warnings": [w.as_dict() for w in warnings], "overrides": dict(overrides or {})}
    request = WriteRequest(kind=write_kinds.PTM, prepare=partial(bodies.PreparePtmRequest, limits=new),
                           expect=Expect(program=state.program, ptm=bodies.as_dict(new)), describe=describe)
    question = (f"Turn patient boluses off on {raw.serial_number}?" if not new.enabled else
                f"Set patient boluses on {raw.serial_number} to {ptm_text(requested)}?")
    return Change("ptm", request, describe, warnings, _rows(before, requested), question, dict(overrides or {}),
                  set(confirmed), unit)


def _rate_check(state: PumpState, new: bodies.PtmLimits) -> list:
    """The mechanism's top speed bounds the program and an activation together (as a clinician bolus)."""
    from . import limits as checks

    conc = state.raw.concentration_ng_per_ml
    if not new.enabled or not conc or not new.duration_s:
        return []
    volume_nl = -(-new.dose_ng * 1_000_000 // conc)
    top = max((s.rate_nl_per_day for s in state.program.steps), default=0)
    said = "an activation of " + checks.volume_text(state.drug_entry, dose_ng=new.dose_ng,
                                                    concentration_ng_per_ml=conc, volume_nl=volume_nl)
    return checks.check_bolus_rate(state.spec, volume_nl=volume_nl, seconds=new.duration_s,
                                   program_max_rate_nl_per_day=top, what=said, option="--duration",
                                   entry=state.drug_entry, concentration_ng_per_ml=conc)


def _rows(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, str]]:
    from .output import fmt_quantity

    def part(view: dict[str, Any], key: str) -> str:
        if not view["enabled"]:
            return "-"
        value = view[key]
        return fmt_quantity(value) if isinstance(value, dict) else _min(value) if key.endswith("_s") else str(value)

    rows = [("Patient boluses", "on" if before["enabled"] else "off", "on" if after["enabled"] else "off")]
    rows += [(label, part(before, key), part(after, key))
             for label, key in (("Dose per activation", "dose"), ("Given over", "duration_s"),
                                ("Lockout", "lockout_s"), ("Most a day", "max_per_day"))]
    rows.append(("Worst case a day (program + all)", fmt_quantity(before["worst_case_daily"]),
                 fmt_quantity(after["worst_case_daily"])))
    return rows



@dataclass(frozen=True)
class PatientBoluses:
    """Patient-activated boluses on a pump (`Pump.ptm()`): the limits, with units, the worst case
    a day with the program, and the use in the last 24 hours (the `ptm` object of interrogate)."""

    enabled: bool
    dose: Quantity  # per activation, the drug's mass unit
    duration_s: int
    lockout_s: int
    max_per_day: int
    worst_case_daily: Quantity  # the program's 24-hour dose + max_per_day x dose
    granted_24h: int
    refused_24h: int
    last_granted_at: str | None  # this computer's calendar
    data: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_view(cls, v: dict[str, Any]) -> PatientBoluses:
        def q(d: dict[str, Any]) -> Quantity:
            return Quantity(Decimal(str(d["value"])), d["unit"])

        return cls(v["enabled"], q(v["dose"]), v["duration_s"], v["lockout_s"], v["max_per_day"],
                   q(v["worst_case_daily"]), v["granted_24h"], v["refused_24h"], v["last_granted_at"], v)
