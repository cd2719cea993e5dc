"""The checks of a clinician bolus: the 24-hour total with it, the reservoir, the mechanism's top flow."""
from __future__ import annotations

from .dose import check_daily_total
from .findings import SECONDS_PER_DAY, Finding, fmt, fmt_mass, ml, ml_day, ml_nl, span

#: a bolus runs 1 min to 24 h (PREPARE_BOLUS duration_s; a patient's activation too)
BOLUS_MIN_S, BOLUS_MAX_S = 60, 86_400


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


def volume_text(entry, *, dose_ng: int, concentration_ng_per_ml: int, volume_nl: int) -> str:
    """'50 mcg at 2000 mcg/mL is 0.025 mL': what a bolus's speed is worked out from."""
    return (f"{fmt_mass(dose_ng, entry)} at {fmt(concentration_ng_per_ml, entry.concentration_unit)} "
            f"is {ml_nl(volume_nl)}")


def shortest_bolus_s(spec, *, volume_nl: int, program_max_rate_nl_per_day: int) -> int | None:
    """The shortest whole-minute duration a bolus of volume_nl can run on top of the program
    without passing the mechanism's top flow (at least 1 min); None when no duration up to 24 h can."""
    room = spec.max_flow_nl_per_day - program_max_rate_nl_per_day
    if room <= 0:
        return None
    seconds = max(BOLUS_MIN_S, -(-volume_nl * SECONDS_PER_DAY // room))
    seconds = -(-seconds // 60) * 60
    return seconds if seconds <= BOLUS_MAX_S else None


def check_bolus_rate(spec, *, volume_nl: int, seconds: int, program_max_rate_nl_per_day: int,
                     what: str | None = None, option: str = "--over", entry=None,
                     concentration_ng_per_ml: int = 0) -> list[Finding]:
    """The mechanism's top speed bounds the program and the bolus together (the pump refuses it
    too, in nL/day): refused here, naming the shortest duration that works. what: the bolus's
    volume in words (volume_text); option: the option that gives its duration; entry and
    concentration_ng_per_ml: to say the most that fits in 24 h in the drug's unit too."""
    bolus_rate = -(-volume_nl * SECONDS_PER_DAY // seconds)
    top, program = spec.max_flow_nl_per_day, program_max_rate_nl_per_day
    if program + bolus_rate <= top:
        return []
    room = top - program
    said = what or f"a bolus of {ml_nl(volume_nl)}"
    beside = f" ({ml_day(room)} beside the program's {ml_day(program)})" if program and room > 0 else ""
    shortest = shortest_bolus_s(spec, volume_nl=volume_nl, program_max_rate_nl_per_day=program)
    if room <= 0:
        hint = f"the program already runs at the {spec.name}'s top flow: no bolus fits beside it"
    elif shortest is None:
        most = ml_nl(room)  # a day at the room left beside the program
        if entry is not None and concentration_ng_per_ml > 0:
            most = f"{fmt_mass(room * concentration_ng_per_ml // 1_000_000, entry)} ({most})"
        hint = f"even over 24 h it is too fast: give at most {most} over 24 h, or lower the program first"
    else:
        hint = f"give {option} {span(shortest)} or longer"
    return [Finding("refuse", "bolus-rate",
                    f"{said}: over {span(seconds)} that runs at {ml_day(bolus_rate)}, and the {spec.name} "
                    f"delivers at most {ml_day(top)}{beside}: {hint}")]


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
