"""Every safety limit a write is checked against, in one place.

The checks are pure: they take the drug library entry, the pump model, what the
pump holds now and what is about to be sent, and return findings:

    refuse   never sent, whatever the flags (hard limits, wrong concentration...)
    soft     sent only with --override-soft-limit REASON (the reason is audited)
    confirm  sent only with the named confirmation flag (10x changes, stopping
             a withdrawal-risk drug, restarting above the usual starting dose)
    warn     shown, and recorded in the audit log

`settle()` turns findings into a refusal or the list of warnings to show.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .errors import SafetyError

SECONDS_PER_DAY = 86_400
TENFOLD = 10
WITHDRAWAL_CUT_PERCENT = 50  # cuts this large of a withdrawal-risk drug need confirmation
#: refill reconciliation: withdrawn vs expected gap that suggests a pocket fill
POCKET_FILL_GAP_UL = {20_000: 1_000, 40_000: 2_000}

#: every soft limit, by the name an override gives it: --override-soft-limit NAME=REASON
#: (one per limit; a reason overrides only the limit it names)
OVERRIDE_NAMES = {
    "DAILY_MAX": "the 24-hour total above the drug's soft maximum",
    "STEP": "one increase larger than the drug's largest step",
    "STEP_PERCENT": "one increase larger than the drug's largest step in percent",
    "FREQUENCY": "more increases in the drug's window than it allows",
    "RISE_24H": "the rise over the last 24 hours past the drug's soft budget",
    "RISE_7D": "the rise over the last 7 days past the drug's soft budget",
    "HISTORY": "the pump's log does not reach back over a window the checks need",
    "RESTART": "resuming above the usual starting dose after an interruption longer than the drug's threshold",
}
#: every confirmation, by its flag (a batch plan names them without the "--confirm-")
CONFIRM_FLAGS = {
    "--confirm-tenfold": "a new dose 10x or more away from the current one",
    "--confirm-withdrawal-risk": "stopping (or cutting by half or more) a drug with a withdrawal risk",
    "--confirm-restart": "restarting a stopped pump above the drug's usual starting dose",
    "--confirm-empty-before-visit": "the reservoir running empty before the next visit",
    "--confirm-fill-gap": "withdrawn volume far from what the pump expected (possible pocket fill)",
}


@dataclass(frozen=True)
class Finding:
    level: str
    rule: str
    message: str
    flag: str | None = None  # for "confirm": the flag that accepts it

    def as_dict(self) -> dict:
        return {"level": self.level, "rule": self.rule, "message": self.message, "flag": self.flag}


def fmt(ng: int, unit: str) -> str:
    from protocol import Quantity

    return str(Quantity.from_base(ng, unit))


def _pct(new: int, old: int) -> Decimal:
    return (Decimal(new - old) * 100 / Decimal(old)).quantize(Decimal("0.1"))


def check_concentration(entry, concentration_ng_per_ml: int) -> list[Finding]:
    if concentration_ng_per_ml in entry.concentrations_ng_per_ml:
        return []
    allowed = ", ".join(fmt(c, entry.concentration_unit) for c in entry.concentrations_ng_per_ml)
    return [Finding("refuse", "concentration",
                    f"{fmt(concentration_ng_per_ml, entry.concentration_unit)} is not an allowed "
                    f"{entry.name} concentration (allowed: {allowed})")]


def check_flow(spec, rates: list[int], mode: str) -> list[Finding]:
    if mode in ("STOPPED", "MINIMUM"):
        return []
    out = []
    for rate in rates:
        if not spec.min_flow_nl_per_day <= rate <= spec.max_flow_nl_per_day:
            out.append(Finding(
                "refuse", "flow-range",
                f"a flow of {_ml_day(rate)} is outside the "
                f"{spec.name}'s range {_ml_day(spec.min_flow_nl_per_day)} to {_ml_day(spec.max_flow_nl_per_day)}",
            ))
    return out


def _ml_day(nl: int) -> str:
    return f"{format((Decimal(nl) / 1_000_000).normalize(), 'f')} mL/day"


def check_daily_total(entry, total: int, what: str = "the new 24-hour total") -> list[Finding]:
    unit = entry.dose_unit
    if total > entry.hard_max_ng_per_day:
        return [Finding("refuse", "hard-max",
                        f"{what} {fmt(total, unit)} is above the hard limit "
                        f"{fmt(entry.hard_max_ng_per_day, unit)} for {entry.name}")]
    if total > entry.soft_max_ng_per_day:
        return [Finding("soft", "soft-max",
                        f"{what} {fmt(total, unit)} is above the soft limit "
                        f"{fmt(entry.soft_max_ng_per_day, unit)} for {entry.name}")]
    return []


def increases_in_window(history: list[tuple[int, int, int]], since: int) -> int:
    """How many dose increases the pump's log shows at or after `since`.

    history: (time, previous 24-hour dose, new 24-hour dose) of each applied
    program, from the pump's PROGRAM_CHANGED events (so changes made by any
    programmer count, not only this one's).
    """
    return sum(1 for when, before, after in history if after > before and when >= since)


def check_change(entry, *, current: int, new: int, mode: str, history: list[tuple[int, int, int]],
                 pump_time: int) -> list[Finding]:
    """Titration rules: step size, rate of increases, 10x changes, stops and restarts."""
    unit = entry.dose_unit
    out: list[Finding] = []
    if new > current:
        step = new - current
        if entry.max_step_increase_ng_per_day is not None and step > entry.max_step_increase_ng_per_day:
            out.append(Finding("soft", "step-size",
                               f"an increase of {fmt(step, unit)} is larger than the "
                               f"{fmt(entry.max_step_increase_ng_per_day, unit)} allowed per change for {entry.name}"))
        if current > 0 and entry.max_step_increase_percent is not None:
            pct = _pct(new, current)
            if pct > entry.max_step_increase_percent:
                out.append(Finding("soft", "step-percent",
                                   f"an increase of {pct} % is more than the {entry.max_step_increase_percent} % "
                                   f"allowed per change for {entry.name}"))
        if entry.max_increases_per_window is not None:
            since = pump_time - entry.window_days * SECONDS_PER_DAY
            done = increases_in_window(history, since)
            if done + 1 > entry.max_increases_per_window:
                out.append(Finding("soft", "increase-frequency",
                                   f"this would be increase {done + 1} within {entry.window_days} day(s); "
                                   f"{entry.name} allows {entry.max_increases_per_window}"))
    if current > 0 and new > 0 and (new >= current * TENFOLD or new * TENFOLD <= current):
        out.append(Finding("confirm", "tenfold",
                           f"{fmt(new, unit)} is 10x or more away from the current {fmt(current, unit)}: "
                           f"check for a decimal or unit slip", "--confirm-tenfold"))
    if current == 0 and new > entry.usual_start_ng_per_day[1]:
        out.append(Finding("confirm", "restart",
                           f"restarting at {fmt(new, unit)}, above the usual starting dose "
                           f"{fmt(entry.usual_start_ng_per_day[1], unit)}: tolerance may have been lost",
                           "--confirm-restart"))
    if entry.withdrawal_risk and new < current:
        stopping = mode == "STOPPED" or new == 0
        big_cut = stopping or (current - new) * 100 >= current * WITHDRAWAL_CUT_PERCENT
        risk = (f"{entry.name} carries a withdrawal risk: "
                + ("stopping it abruptly can be life-threatening" if entry.code == "BACLOFEN"
                   else "abrupt stops or large cuts can cause dangerous withdrawal"))
        if big_cut:
            what = "stopping delivery" if stopping else f"cutting the dose by {-_pct(new, current)} %"
            out.append(Finding("confirm", "withdrawal", f"{what}: {risk}", "--confirm-withdrawal-risk"))
        else:
            out.append(Finding("warn", "withdrawal", f"a dose cut: {risk}; watch for withdrawal"))
    return out


def check_bolus(entry, *, dose: int, daily_total: int, volume_nl: int, reservoir_ul: int) -> list[Finding]:
    out = check_daily_total(entry, daily_total + dose, "the 24-hour total with this bolus")
    if volume_nl > reservoir_ul * 1000:
        out.append(Finding("refuse", "bolus-volume",
                           f"the bolus needs {_ml(volume_nl // 1000)} but the reservoir holds {_ml(reservoir_ul)}"))
    return out


def _ml(ul: int) -> str:
    return f"{format((Decimal(ul) / 1000).normalize(), 'f')} mL"


def check_refill(spec, *, volume_ul: int, withdrawn_ul: int | None, expected_ul: int) -> list[Finding]:
    out: list[Finding] = []
    if volume_ul > spec.capacity_ul:
        out.append(Finding("refuse", "capacity",
                           f"a fill of {_ml(volume_ul)} exceeds the {spec.name}'s capacity of {_ml(spec.capacity_ul)}"))
    if volume_ul == 0:
        out.append(Finding("refuse", "empty-fill", "a refill volume of 0 mL"))
    if withdrawn_ul is not None:
        gap = abs(withdrawn_ul - expected_ul)
        limit = POCKET_FILL_GAP_UL.get(spec.capacity_ul, 1_000)
        if gap > limit:
            out.append(Finding("warn", "withdrawn-gap",
                               f"withdrew {_ml(withdrawn_ul)} but the pump expected {_ml(expected_ul)} "
                               f"(a gap of {_ml(gap)}, over {_ml(limit)}): possible pocket fill at the last "
                               f"refill, a wrong recorded volume, or a delivery fault; investigate before filling"))
    return out


def settle(findings: list[Finding], *, override_reason: str | None, confirmed: set[str]) -> list[Finding]:
    """Raise SafetyError for anything not allowed; return what to show as warnings."""
    refusals = [f for f in findings if f.level == "refuse"]
    if refusals:
        raise SafetyError("refused: " + "; ".join(f.message for f in refusals) + ". Nothing was sent")
    soft = [f for f in findings if f.level == "soft"]
    if soft and not override_reason:
        raise SafetyError("soft limit: " + "; ".join(f.message for f in soft)
                          + ". Pass --override-soft-limit REASON to proceed. Nothing was sent")
    missing = [f for f in findings if f.level == "confirm" and f.flag not in confirmed]
    if missing:
        raise SafetyError("; ".join(f"{f.message} (pass {f.flag})" for f in missing) + ". Nothing was sent")
    return [f for f in findings if f.level in ("warn", "soft", "confirm")]
