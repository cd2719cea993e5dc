"""Every safety limit a write is checked against, in one place.

The checks are pure: they take the drug library entry, the pump model, what the
pump holds now, its history (ithcli/history.py, from the pump's own log) and what
is about to be sent, and return findings:

    refuse   never sent, whatever the flags (hard limits, wrong concentration...)
    soft     sent only with --override-soft-limit NAME=REASON naming this limit
             (OVERRIDE_NAMES; each reason is audited with the limit it overrides)
    confirm  sent only with the named confirmation flag (CONFIRM_FLAGS)
    warn     shown, and recorded in the audit log

`settle()` turns findings into one refusal that lists everything still needed at
once, or the list of findings to show. Where each figure comes from: docs/clinical.md.
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
    override: str | None = None  # for "soft": its name in OVERRIDE_NAMES
    reason: str | None = None  # for "soft", once overridden: the reason given for it

    def __post_init__(self):
        if self.level == "soft" and self.override not in OVERRIDE_NAMES:
            raise ValueError(f"soft finding {self.rule!r} has no override name")

    @property
    def needs(self) -> str:
        """What accepts it on the command line."""
        return f"--override-soft-limit {self.override}=REASON" if self.level == "soft" else str(self.flag)

    def as_dict(self) -> dict:
        out = {"level": self.level, "rule": self.rule, "message": self.message, "flag": self.flag}
        if self.level == "soft":
            out |= {"override": self.override, "reason": self.reason}
        return out


def parse_overrides(given) -> dict[str, str]:
    """--override-soft-limit NAME=REASON (repeatable) -> {NAME: REASON}; UsageError when one is bare,
    unnamed, unknown or given twice."""
    from .errors import UsageError

    names = ", ".join(OVERRIDE_NAMES)
    out: dict[str, str] = {}
    for text in given or ():
        name, sep, reason = str(text).partition("=")
        key = normalise_override(name)
        if not sep or not reason.strip():
            raise UsageError(f"--override-soft-limit {text!r}: name the limit and give a reason, "
                             f"NAME=REASON (names: {names}). Nothing was sent")
        if key not in OVERRIDE_NAMES:
            raise UsageError(f"--override-soft-limit {text!r}: {name.strip()!r} is not a soft limit "
                             f"(names: {names}). Nothing was sent")
        if key in out:
            raise UsageError(f"--override-soft-limit {key} is given twice. Nothing was sent")
        out[key] = reason.strip()
    return out


def normalise_override(name: str) -> str:
    return name.strip().upper().replace("-", "_")


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
                        f"{fmt(entry.soft_max_ng_per_day, unit)} for {entry.name}", override="DAILY_MAX")]
    return []


def check_change(entry, *, current: int, new: int, mode: str, history=None, origin: str | None = None,
                 dry_run_suspected: bool = False) -> list[Finding]:
    """Titration rules: one step, increases in a window, escalation budgets over 24 hours and
    7 days, 10x changes, stops and restarts. history: ithcli.history.History, or None when
    the change does not depend on it (a stop). dry_run_suspected: a refill found far less
    in the reservoir than expected (an interruption of unknown length)."""
    unit = entry.dose_unit
    out: list[Finding] = []
    if new > current:
        step = new - current
        hard_step = entry.hard_step_increase_ng_per_day
        if hard_step is not None and step > hard_step:
            out.append(Finding("refuse", "step-size",
                               f"an increase of {fmt(step, unit)} is larger than the "
                               f"{fmt(hard_step, unit)} {entry.name} allows per change"))
        elif entry.max_step_increase_ng_per_day is not None and step > entry.max_step_increase_ng_per_day:
            out.append(Finding("soft", "step-size",
                               f"an increase of {fmt(step, unit)} is larger than the "
                               f"{fmt(entry.max_step_increase_ng_per_day, unit)} allowed per change for {entry.name}",
                               override="STEP"))
        if current > 0 and entry.max_step_increase_percent is not None:
            pct = _pct(new, current)
            if pct > entry.max_step_increase_percent:
                out.append(Finding("soft", "step-percent",
                                   f"an increase of {pct} % is more than the {entry.max_step_increase_percent} % "
                                   f"allowed per change for {entry.name}", override="STEP_PERCENT"))
        if history is not None:
            out += _check_frequency(entry, history)
            out += check_escalation(entry, history, new=new, origin=origin)
    # while delivery is interrupted the patient receives nothing: a lower restart dose is not a cut
    receiving = 0 if history is not None and history.ongoing() is not None else current
    if receiving > 0 and new > 0 and (new >= receiving * TENFOLD or new * TENFOLD <= receiving):
        out.append(Finding("confirm", "tenfold",
                           f"{fmt(new, unit)} is 10x or more away from the current {fmt(current, unit)}: "
                           f"check for a decimal or unit slip", "--confirm-tenfold"))
    restart = check_restart(entry, history, new=new, dry_run_suspected=dry_run_suspected)
    out += restart
    long_break = any(f.rule == "restart-after-interruption" for f in restart)
    if current == 0 and new > entry.usual_start_ng_per_day[1] and not long_break:
        out.append(Finding("confirm", "restart",
                           f"restarting at {fmt(new, unit)}, above the usual starting dose "
                           f"{fmt(entry.usual_start_ng_per_day[1], unit)}: tolerance may have been lost",
                           "--confirm-restart"))
    if entry.withdrawal_risk and new < receiving:
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


def _window_text(hours: int) -> str:
    return "24 hours" if hours == 24 else f"{hours // 24} days" if hours % 24 == 0 else f"{hours} hours"


def history_unknown(entry, history, what: str) -> Finding:
    """The HISTORY override: the log read does not reach back over `what` (a window a check needs)."""
    from .history import HOUR

    reach = ("the log read holds no events" if history.oldest_time is None else
             f"its oldest event is {(history.now - history.oldest_time) // HOUR} h old")
    return Finding("soft", "history-unknown",
                   f"the pump's log does not reach back over {what} ({reach}: older events were overwritten), "
                   f"so what {entry.name} was given then is unknown", override="HISTORY")


def _check_frequency(entry, history) -> list[Finding]:
    if entry.window_days is None:
        return []
    since = history.now - entry.window_days * SECONDS_PER_DAY
    window = _window_text(entry.window_days * 24)
    if not history.covers(since):
        return [history_unknown(entry, history, f"the last {window} (increases are counted there)")]
    done = history.increases_since(since)
    hard, soft = entry.hard_increases_per_window, entry.max_increases_per_window
    text = f"this would be increase {done + 1} within {window}"
    if hard is not None and done + 1 > hard:
        return [Finding("refuse", "increase-frequency", f"{text}; {entry.name} allows at most {hard}")]
    if soft is not None and done + 1 > soft:
        return [Finding("soft", "increase-frequency", f"{text}; {entry.name} allows {soft}", override="FREQUENCY")]
    return []


def check_escalation(entry, history, *, new: int, origin: str | None = None) -> list[Finding]:
    """The largest rise over each rolling window against the dose in force at its start
    (or the restart dose after a restart inside it), from the pump's log."""
    unit = entry.dose_unit
    out: list[Finding] = []
    unknown: list[str] = []
    for hours, kind, (soft, hard) in entry.rise_budgets(origin):
        since = history.now - hours * 3600
        window = _window_text(hours)
        if not history.covers(since):
            unknown.append(window)
            continue
        base = history.baseline(since)
        if new <= base or (kind == "percent" and base == 0):
            continue  # from nothing, the restart rules judge it
        rise = new - base
        over = None
        if kind == "percent":
            pct = _pct(new, base)
            if pct > hard:
                over = ("refuse", f"{pct} %, past the hard budget of {hard} %")
            elif pct > soft:
                over = ("soft", f"{pct} %, past the soft budget of {soft} %")
        else:
            if rise > hard:
                over = ("refuse", f"{fmt(rise, unit)}, past the hard budget of {fmt(hard, unit)}")
            elif rise > soft:
                over = ("soft", f"{fmt(rise, unit)}, past the soft budget of {fmt(soft, unit)}")
        if over is None:
            continue
        level, how = over
        restarted = any(i.end is not None and i.end > since for i in history.interruptions)
        against = "the restart dose" if restarted else f"the dose {window} ago"
        suffix = "" if origin or not entry.rise_24h_percent_by_origin or hours != 24 else \
            " (spasticity origin not recorded: the stricter cerebral budget applies)"
        name = "RISE_24H" if hours == 24 else "RISE_7D"
        out.append(Finding(level, f"rise-{window.replace(' ', '')}",
                           f"{fmt(new, unit)} is a rise of {how} for {entry.name} over {window}, "
                           f"against {against} {fmt(base, unit)}{suffix}",
                           override=name if level == "soft" else None))
    if unknown:
        out.append(history_unknown(entry, history, "the last " + " and ".join(unknown)
                                    + " (the escalation budgets are measured there)"))
    return out


def check_restart(entry, history, *, new: int, dry_run_suspected: bool = False) -> list[Finding]:
    """Resuming delivery after an interruption longer than the drug's threshold: at or below the
    usual starting dose, unless overridden by name (tolerance is lost in days)."""
    from .history import HOUR

    if new == 0 or entry.interruption_hours is None:
        return []
    unit = entry.dose_unit
    start_dose = entry.usual_start_ng_per_day[1]
    threshold = entry.interruption_hours * HOUR
    gap = history.ongoing() if history is not None else None
    out: list[Finding] = []
    if dry_run_suspected:
        what = ("the withdrawn volume is far below what the pump expected: it may have run dry without "
                "knowing it, for an unknown time")
    elif gap is not None and gap.at_least(history.now) >= threshold:
        length = gap.at_least(history.now)
        since = "an unknown time" if gap.start is None and gap.began_before is None else \
            f"{'at least ' if gap.start is None else ''}{duration(length)}"
        what = f"delivery has been interrupted for {since} ({', '.join(gap.causes)})"
    else:
        return _resumed_high(entry, history, threshold) if history is not None else []
    if entry.withdrawal_risk and entry.code == "BACLOFEN":
        out.append(Finding("warn", "withdrawal", f"{what}: the patient may be in baclofen withdrawal, "
                                                 "which can be life-threatening: assess before resuming"))
    if new > start_dose:
        out.append(Finding("soft", "restart-after-interruption",
                           f"{what}, longer than {entry.name}'s {entry.interruption_hours} h: tolerance may have "
                           f"been lost; resume at or below the usual starting dose {fmt(start_dose, unit)} "
                           f"(--dose '{fmt(start_dose, unit)}'), not {fmt(new, unit)}", override="RESTART"))
    else:
        out.append(Finding("warn", "restart-after-interruption",
                           f"{what}: resuming at {fmt(new, unit)}, within the usual starting dose"))
    return out


def _resumed_high(entry, history, threshold: int) -> list[Finding]:
    """A long interruption that ended (in the last 7 days) at more than the usual starting dose,
    whoever or whatever resumed it (a stall that recovered by itself does): say so, since the
    patient may have been restarted without tolerance."""
    since = history.now - 7 * SECONDS_PER_DAY
    long_ones = [i for i in history.interruptions if i.end is not None and i.end > since
                 and i.at_least(history.now) >= threshold]
    if not long_ones or (long_ones[-1].restart_dose or 0) <= entry.usual_start_ng_per_day[1]:
        return []
    gap = long_ones[-1]
    return [Finding("warn", "resumed-after-interruption",
                    f"delivery resumed at {fmt(gap.restart_dose or 0, entry.dose_unit)} after "
                    f"{'at least ' if gap.start is None else ''}{duration(gap.at_least(history.now))} without "
                    f"it ({', '.join(gap.causes)}), above the usual starting dose: tolerance may have been lost; "
                    "watch for overdose")]


def duration(seconds: int) -> str:
    """How long an interruption lasted, as the refusals and the before/after table say it."""
    if seconds >= 2 * SECONDS_PER_DAY:
        return f"{Decimal(seconds) / SECONDS_PER_DAY:.1f} days"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def check_bolus(entry, *, dose: int, daily_total: int, volume_nl: int, reservoir_ul: int,
                boluses_24h: int = 0) -> list[Finding]:
    """daily_total: the programmed dose; boluses_24h: the boluses the log shows in the last 24 hours."""
    what = ("the 24-hour total with this bolus and the " + fmt_mass(boluses_24h, entry) + " of boluses given in "
            "the last 24 hours" if boluses_24h else "the 24-hour total with this bolus")
    out = check_daily_total(entry, daily_total + boluses_24h + dose, what)
    if volume_nl > reservoir_ul * 1000:
        out.append(Finding("refuse", "bolus-volume",
                           f"the bolus needs {_ml(volume_nl // 1000)} but the reservoir holds {_ml(reservoir_ul)}"))
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
                    f"the bolus would run at {_ml_day(bolus_rate)} on top of the program, past the "
                    f"{spec.name}'s top flow of {_ml_day(spec.max_flow_nl_per_day)}{hint}")]


def fmt_mass(ng: int, entry) -> str:
    return fmt(ng, entry.mass_unit)


def _ml(ul: int) -> str:
    return f"{format((Decimal(ul) / 1000).normalize(), 'f')} mL"


def fill_gap(spec, *, withdrawn_ul: int | None, expected_ul: int) -> tuple[int, int] | None:
    """(gap, limit) when the withdrawn volume is further from the expected one than the model's
    pocket-fill limit (1 mL for a 20 mL pump, 2 mL for a 40 mL one), else None."""
    if withdrawn_ul is None:
        return None
    gap = abs(withdrawn_ul - expected_ul)
    limit = POCKET_FILL_GAP_UL.get(spec.capacity_ul, 1_000)
    return (gap, limit) if gap > limit else None


def dry_run_suspected(spec, *, withdrawn_ul: int | None, expected_ul: int) -> bool:
    """Far less withdrawn than the pump believed it held: it may have run dry without knowing."""
    found = fill_gap(spec, withdrawn_ul=withdrawn_ul, expected_ul=expected_ul)
    return found is not None and withdrawn_ul is not None and withdrawn_ul < expected_ul


def check_refill(spec, *, volume_ul: int, withdrawn_ul: int | None, expected_ul: int) -> list[Finding]:
    out: list[Finding] = []
    if volume_ul > spec.capacity_ul:
        out.append(Finding("refuse", "capacity",
                           f"a fill of {_ml(volume_ul)} exceeds the {spec.name}'s capacity of {_ml(spec.capacity_ul)}"))
    if volume_ul == 0:
        out.append(Finding("refuse", "empty-fill", "a refill volume of 0 mL"))
    if withdrawn_ul is not None and withdrawn_ul > spec.capacity_ul:
        out.append(Finding("refuse", "withdrawn-capacity",
                           f"withdrawn {_ml(withdrawn_ul)} is more than the {spec.name}'s capacity of "
                           f"{_ml(spec.capacity_ul)}: check the entry"))
    out += check_fill_gap(spec, withdrawn_ul=withdrawn_ul, expected_ul=expected_ul)
    return out


def check_fill_gap(spec, *, withdrawn_ul: int | None, expected_ul: int) -> list[Finding]:
    found = fill_gap(spec, withdrawn_ul=withdrawn_ul, expected_ul=expected_ul)
    if found is None or withdrawn_ul is None:  # fill_gap finds none without a withdrawn volume
        return []
    gap, limit = found
    return [Finding("confirm", "withdrawn-gap",
                    f"withdrew {_ml(withdrawn_ul)} but the pump expected {_ml(expected_ul)} (a gap of {_ml(gap)}, "
                    f"over {_ml(limit)}): a possible pocket fill at the last refill, a wrong recorded volume, or a "
                    f"delivery fault; investigate before filling", "--confirm-fill-gap")]


def settle(findings: list[Finding], *, overrides: dict[str, str] | None = None,
           confirmed: set[str] | frozenset[str] = frozenset()) -> list[Finding]:
    """Raise SafetyError for anything not allowed; return what to show (soft findings carry
    the reason given for them).

    Refusals are listed together; otherwise every override and confirmation still missing
    is listed at once, each with its flag, so one more attempt is enough."""
    from dataclasses import replace

    refusals = [f for f in findings if f.level == "refuse"]
    if refusals:
        raise SafetyError("refused: " + "; ".join(f.message for f in refusals) + ". Nothing was sent",
                          details={"refused": [f.as_dict() for f in refusals]})
    overrides = overrides or {}
    missing = [f for f in findings if (f.level == "soft" and f.override not in overrides)
               or (f.level == "confirm" and f.flag not in confirmed)]
    if missing:
        needs = list(dict.fromkeys(f.needs for f in missing))
        raise SafetyError(
            f"needs {len(needs)} more: " + "; ".join(f"{f.message} (pass {f.needs})" for f in missing)
            + ". Nothing was sent",
            details={"needed": needs, "findings": [f.as_dict() for f in missing]})
    # a soft finding's override is one of overrides here: any other was refused as missing above
    shown = [replace(f, reason=overrides[f.override]) if f.level == "soft" and f.override is not None else f
             for f in findings if f.level in ("warn", "soft", "confirm")]
    used = {f.override for f in findings if f.level == "soft"}
    for name in overrides:
        if name not in used:
            shown.append(Finding("warn", "unused-override",
                                 f"--override-soft-limit {name} was given but that limit was not reached"))
    return shown
