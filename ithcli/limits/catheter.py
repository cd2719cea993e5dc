"""The checks of the catheter record, the priming bolus and a refill's bridge bolus
(docs/clinical.md#catheter; domain hazard 5, the 2013 priming recall).

    check_catheter   an IMPLANT, REVISION or CORRECTION of the record
    check_priming    a priming bolus: only while priming is due, the volume the pump worked
                     out, counted in full in the 24-hour total, the patient monitored
    shortest_bolus_s the shortest a bolus can run on top of the program (limits/bolus.py)
    check_bridge     a refill that changes the drug or concentration with a catheter recorded:
                     an explicit --bridge or --no-bridge, and a bridge only when the pump can run it
"""
from __future__ import annotations

from decimal import Decimal

from protocol.catheter import DAY_S
from protocol.constants import CatheterAction
from protocol.messages import MAX_BRIDGE_S, MAX_CATHETER_MM

# BOLUS_MIN_S, BOLUS_MAX_S and shortest_bolus_s live in limits/bolus.py; catheter_ops imports them from here
from .bolus import BOLUS_MAX_S as BOLUS_MAX_S
from .bolus import BOLUS_MIN_S as BOLUS_MIN_S
from .bolus import check_bolus, check_bolus_rate
from .bolus import shortest_bolus_s as shortest_bolus_s
from .findings import Finding, fmt_mass, ml_nl

#: a bolus runs 1 min to 24 h (BOLUS_MIN_S, BOLUS_MAX_S: limits/bolus.py); a bridge bolus up to 14 days
#: (at the lowest flows the dead space takes days to move: PREPARE_REFILL bridge_duration_s, MAX_BRIDGE_S)
BRIDGE_MAX_S = MAX_BRIDGE_S
#: the flag a priming bolus needs: the patient will be monitored after it
MONITORING_FLAG = "--confirm-monitoring"
#: what a refill that changes the contents of a catheter needs: one of the two, said explicitly
BRIDGE_CHOICE = "--bridge or --no-bridge"


def cm(mm: int) -> str:
    return f"{format((Decimal(mm) / 10).normalize(), 'f')} cm"


def check_catheter(action: CatheterAction, *, recorded: CatheterAction, length_mm: int, replaced_mm: int,
                   priming_due_nl: int, recorded_replaced_mm: int = 0) -> list[Finding]:
    """An IMPLANT, REVISION or CORRECTION asked for, against what the pump has recorded
    (`recorded`: its last IMPLANT or REVISION, NONE: nothing; `recorded_replaced_mm`: the segment
    its last REVISION replaced, which a CORRECTION keeps)."""
    out: list[Finding] = []
    if not 1 <= length_mm <= MAX_CATHETER_MM:
        out.append(Finding("refuse", "catheter-length",
                           f"a catheter length of {cm(length_mm)}: give 0.1 to {cm(MAX_CATHETER_MM)}"))
    if action is not CatheterAction.IMPLANT and recorded is CatheterAction.NONE:
        out.append(Finding("refuse", "catheter-none",
                           f"no catheter is recorded on this pump: a {action.name.lower()} needs its implant "
                           "recorded first (ithcli catheter implant)"))
    if action is CatheterAction.REVISION and not 1 <= replaced_mm <= length_mm:
        out.append(Finding("refuse", "catheter-segment",
                           f"the replaced segment of {cm(replaced_mm)} must be more than 0 and at most the "
                           f"catheter's {cm(length_mm)}"))
    if action is CatheterAction.CORRECTION and recorded_replaced_mm > length_mm:
        out.append(Finding("refuse", "catheter-segment",
                           f"a correction to {cm(length_mm)} is shorter than the {cm(recorded_replaced_mm)} segment "
                           f"the last revision replaced (a correction keeps it): give --length "
                           f"{cm(recorded_replaced_mm)} or longer"))
    if action is CatheterAction.CORRECTION:
        out.append(Finding("warn", "correction-no-priming",
                           "a correction fixes a mistyped record and does NOT re-arm priming: after a real "
                           "implant or revision record that instead (ithcli catheter implant / revise)"))
    elif priming_due_nl:
        out.append(Finding("warn", "priming-still-due",
                           f"{ml_nl(priming_due_nl)} of priming is still due from the last "
                           f"{recorded.name.lower()}: it is replaced by what this {action.name.lower()} arms"))
    return out


def check_priming(entry, spec, *, priming_due_nl: int, recorded: CatheterAction, dose_ng: int, seconds: int,
                  daily_total: int, boluses_24h: int, reservoir_ul: int,
                  program_max_rate_nl_per_day: int) -> list[Finding]:
    """A priming bolus of priming_due_nl (dose_ng at the reservoir's concentration) over seconds."""
    if not priming_due_nl:
        why = ("no catheter is recorded" if recorded is CatheterAction.NONE else
               f"the catheter is primed: the last {recorded.name.lower()} has been primed already")
        return [Finding("refuse", "nothing-to-prime",
                        f"nothing to prime ({why}). A priming bolus is given only right after an implant or a "
                        "revision that has not been primed yet (record it with ithcli catheter implant / revise)")]
    out: list[Finding] = []
    # the whole priming dose counts: the recall's lesson is that it can reach the patient sooner than assumed
    out += check_bolus(entry, dose=dose_ng, daily_total=daily_total, volume_nl=priming_due_nl,
                       reservoir_ul=reservoir_ul, boluses_24h=boluses_24h)
    out += check_bolus_rate(spec, volume_nl=priming_due_nl, seconds=seconds,
                            program_max_rate_nl_per_day=program_max_rate_nl_per_day, option="--duration",
                            what=f"the priming volume is {ml_nl(priming_due_nl)} ({fmt_mass(dose_ng, entry)})")
    out.append(Finding("confirm", "priming-monitoring",
                       f"a priming bolus of {ml_nl(priming_due_nl)} ({fmt_mass(dose_ng, entry)}, counted in full in "
                       "the 24-hour total): drug can reach the patient sooner than priming assumes (2013 recall), "
                       "so the patient must be monitored after it", MONITORING_FLAG))
    return out


def bridge_problem(*, dead_space_nl: int, old_rate_nl_per_day: int, duration_s: int | None, volume_ul: int,
                   spec) -> str | None:
    """Why the pump cannot run a bridge bolus here (None: it can): the rules of PREPARE_REFILL."""
    if old_rate_nl_per_day <= 0 or duration_s is None:
        return "the running program delivers nothing, so there is no old rate to bridge at"
    if duration_s > BRIDGE_MAX_S:
        return (f"moving the {ml_nl(dead_space_nl)} dead space at the old "
                f"{ml_nl(old_rate_nl_per_day)}/day would take {Decimal(duration_s) / DAY_S:.1f} days, and a "
                f"bridge bolus runs at most {BRIDGE_MAX_S // DAY_S} days")
    if dead_space_nl > volume_ul * 1000:
        return f"the fill of {ml_nl(volume_ul * 1000)} cannot push out the {ml_nl(dead_space_nl)} dead space"
    if -(-dead_space_nl * DAY_S // duration_s) > spec.max_flow_nl_per_day:
        return f"the bridge would run past the {spec.name}'s top flow"
    return None


def check_bridge(choice: bool | None, *, problem: str | None, what: str, projection: str = "") -> list[Finding]:
    """A refill that changes the catheter's contents (`what`, e.g. "the concentration changes"):
    choice True --bridge, False --no-bridge, None not said. `projection`: what the patient gets
    with and without a bridge, in words (shown with the choice asked for)."""
    if choice is None:
        return [Finding("confirm", "bridge-choice",
                        f"{what} and a catheter is recorded: the patient receives the old contents of the dead "
                        "space at the new rate until it clears" + (f" ({projection})" if projection else "")
                        + "; choose a bridge bolus or none"
                        + (f" (a bridge is not possible: {problem})" if problem else ""),
                        BRIDGE_CHOICE)]
    if choice and problem:
        return [Finding("refuse", "bridge-impossible", f"a bridge bolus is not possible: {problem}")]
    if not choice:
        return [Finding("warn", "no-bridge",
                        "no bridge bolus: the old contents of the dead space reach the patient at the new rate "
                        "(see the projection)")]
    return []


def check_no_bridge_needed(choice: bool | None, *, reason: str) -> list[Finding]:
    """--bridge given when there is nothing to bridge (no catheter, or the same contents)."""
    if choice:
        return [Finding("refuse", "bridge-not-needed", f"--bridge: nothing to bridge ({reason})")]
    return []
