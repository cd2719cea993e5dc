"""The checks of patient-activated boluses (docs/clinical.md#patient-boluses).

Two places ask them:

- `ithcli ptm set`: the limits against the drug library (is the drug allowed patient
  boluses at all; dose, lockout and most a day within the library's widest), the pump's
  own rules said first (a duration of 1 min to 24 h, a lockout no shorter than it), and
  the **worst case** a day: the program's 24-hour dose plus every allowed activation
  (protocol/ptm.py). Above the hard daily maximum it is refused; above the soft one it
  needs the named override DAILY_MAX.
- a new program or refill while patient boluses are on (check_ptm_with_program): the
  same worst case with the new 24-hour dose. A rise that breaks the hard maximum with
  every activation on top is refused (lower the patient-bolus limits or turn them off
  first), past the soft one it needs DAILY_MAX; a cut or an unchanged dose is never
  refused for it (refusing a cut is not safer), but is warned about. A refill that
  changes the drug is refused while they are on: the dose per activation was set for
  the old drug.
"""
from __future__ import annotations

from protocol.ptm import worst_case_daily_ng

from .dose import check_daily_total
from .findings import SECONDS_PER_DAY, Finding, fmt_mass, span

#: the pump's rules for a duration (docs/protocol.md#patient-activated-boluses)
PTM_MIN_DURATION_S = 60


def check_ptm_limits(entry, limits, *, daily_dose_ng_per_day: int) -> list[Finding]:
    """New patient-bolus limits (a protocol.bodies.PtmLimits) on a pump delivering
    daily_dose_ng_per_day of entry's drug. Turning them off is never refused."""
    if not limits.enabled:
        return []
    allowed = entry.patient_bolus
    if allowed is None:
        return [Finding("refuse", "ptm-not-allowed",
                        f"the drug library does not allow patient-activated boluses of {entry.name}")]
    out: list[Finding] = []
    if limits.dose_ng == 0:
        out.append(Finding("refuse", "ptm-dose-zero",
                           f"a dose of {fmt_mass(0, entry)} per activation: to turn patient boluses off use --off "
                           "(ithcli ptm set --off)"))
    if not PTM_MIN_DURATION_S <= limits.duration_s <= SECONDS_PER_DAY:
        out.append(Finding("refuse", "ptm-duration",
                           f"a duration of {span(limits.duration_s)}: an activation runs from 1 min to 24 h"))
    if limits.lockout_s < limits.duration_s:
        out.append(Finding("refuse", "ptm-lockout-duration",
                           f"a lockout of {span(limits.lockout_s)} is shorter than the duration "
                           f"{span(limits.duration_s)}: two activations would overlap"))
    if limits.dose_ng > allowed.max_dose_ng:
        out.append(Finding("refuse", "ptm-dose",
                           f"a dose of {fmt_mass(limits.dose_ng, entry)} per activation is above the "
                           f"{fmt_mass(allowed.max_dose_ng, entry)} the drug library allows for {entry.name}"))
    if limits.lockout_s < allowed.min_lockout_s:
        out.append(Finding("refuse", "ptm-lockout",
                           f"a lockout of {span(limits.lockout_s)} is shorter than the "
                           f"{span(allowed.min_lockout_s)} the drug library allows for {entry.name}"))
    if limits.max_per_day > allowed.max_per_day:
        out.append(Finding("refuse", "ptm-max-per-day",
                           f"{limits.max_per_day} activations a day is more than the {allowed.max_per_day} the "
                           f"drug library allows for {entry.name}"))
    if limits.max_per_day * limits.lockout_s > SECONDS_PER_DAY:
        out.append(Finding("warn", "ptm-lockout-bounds-count",
                           f"with a lockout of {span(limits.lockout_s)} at most "
                           f"{SECONDS_PER_DAY // limits.lockout_s} activations fit in 24 hours, fewer than the "
                           f"{limits.max_per_day} set (the worst case counts all {limits.max_per_day})"))
    out += check_daily_total(entry, worst_case_daily_ng(daily_dose_ng_per_day, limits),
                             worst_case_text(entry, daily_dose_ng_per_day, limits))
    return out


def worst_case_text(entry, daily_dose_ng_per_day: int, limits) -> str:
    """'the worst case a day (the program's 2 mg/day + 4 x 0.2 mg of patient boluses)'"""
    return (f"the worst case a day (the program's {fmt_mass(daily_dose_ng_per_day, entry)}/day + "
            f"{limits.max_per_day} x {fmt_mass(limits.dose_ng, entry)} of patient boluses)")


def check_ptm_with_program(entry, limits, *, new: int, current: int, changing_drug: bool = False) -> list[Finding]:
    """A new 24-hour dose `new` (ng/day) on a pump whose patient-bolus limits are `limits`
    (Status.ptm); `current`: the 24-hour dose in force. Nothing while patient boluses are off."""
    if not limits.enabled:
        return []
    if changing_drug:
        return [Finding("refuse", "ptm-drug-change",
                        f"patient-activated boluses are on with a dose set for the drug in the pump, not for "
                        f"{entry.name}: turn them off first (ithcli ptm set --off)")]
    out: list[Finding] = []
    if entry.patient_bolus is None:
        out.append(Finding("warn", "ptm-not-allowed",
                           f"patient-activated boluses are on, but the drug library does not allow them for "
                           f"{entry.name}: turn them off (ithcli ptm set --off)"))
    found = check_daily_total(entry, worst_case_daily_ng(new, limits), worst_case_text(entry, new, limits))
    if new > current:
        return out + found
    # a cut or the same dose: refusing it is not safer; say that the limits still break the maximum
    return out + [Finding("warn", "ptm-worst-case",
                          f"{f.message}: lower the patient-bolus limits (ithcli ptm set)") for f in found]
