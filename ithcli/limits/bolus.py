"""The checks of a clinician bolus: the 24-hour total with it, the reservoir, the mechanism's top flow."""
from __future__ import annotations

from .dose import check_daily_total
from .findings import SECONDS_PER_DAY, Finding, fmt, fmt_mass, ml, ml_day


def check_bolus(entry, *, dose: int, daily_total: int, volume_nl: int, reservoir_ul: int,
                boluses_24h: int = 0) -> list[Finding]:
    """daily_total: the programmed dose; boluses_24h: the boluses the log shows in the last 24 hours."""
    what = ("the 24-hour total with this bolus and the " + fmt_mass(boluses_24h, entry) + " of boluses given in "
            "the last 24 hours" if boluses_24h else "the 24-hour total with this bolus")
    out = check_daily_total(entry, daily_total + boluses_24h + dose, what)
    if volume_nl > reservoir_ul * 1000:
        out.append(Finding("refuse", "bolus-volume",
                           f"the bolus needs {ml(volume_nl // 1000)} but the reservoir holds {ml(reservoir_ul)}"))
    return out


def check_bolus_rate(spec, *, volume_nl: int, seconds: int, program_max_rate_nl_per_day: int) -> list[Finding]:
    """The mechanism's top speed bounds the program and the bolus together (the pump refuses
    it too; saying so here names the shortest duration that works)."""
    bolus_rate = -(-volume_nl * SECONDS_PER_DAY // seconds)
    room = spec.max_flow_nl_per_day - program_max_rate_nl_per_day
    if program_max_rate_nl_per_day + bolus_rate <= spec.max_flow_nl_per_day:
        return []
    shortest = -(-volume_nl * SECONDS_PER_DAY // room) if room > 0 else None
    hint = f": give at least {-(-shortest // 60)} min" if shortest else ""
    return [Finding("refuse", "bolus-rate",
                    f"the bolus would run at {ml_day(bolus_rate)} on top of the program, past the "
                    f"{spec.name}'s top flow of {ml_day(spec.max_flow_nl_per_day)}{hint}")]


def check_no_bolus_running(entry, *, bolus_remaining_ng: int, what: str) -> list[Finding]:
    """The pump refuses a refill, an emptied reservoir, a catheter record and a priming bolus while
    any bolus runs (a clinician, priming, bridge or patient bolus): refused here before anything is
    sent. entry: the drug library entry of the drug in the pump (None: not in it)."""
    if not bolus_remaining_ng:
        return []
    left = fmt(bolus_remaining_ng, entry.mass_unit if entry is not None else "mcg")
    return [Finding("refuse", "bolus-running",
                    f"a bolus is running ({left} left): {what} after it finishes (ithcli interrogate shows "
                    "what is left)")]
