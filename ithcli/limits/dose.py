"""The checks of a daily dose: concentration, flow, the 24-hour total, one change and the
escalation budgets and restarts read from the pump's history (docs/clinical.md#drug-limits,
docs/clinical.md#escalation-budgets-and-restarts)."""
from __future__ import annotations

from ..history import HOUR
from .findings import SECONDS_PER_DAY, TENFOLD, WITHDRAWAL_CUT_PERCENT, Finding, duration, fmt, ml_day, pct_change


def check_concentration(entry, concentration_ng_per_ml: int) -> list[Finding]:
    if concentration_ng_per_ml in entry.concentrations_ng_per_ml:
        return []
    allowed = ", ".join(fmt(c, entry.concentration_unit) for c in entry.concentrations_ng_per_ml)
    return [Finding("refuse", "concentration",
                    f"{fmt(concentration_ng_per_ml, entry.concentration_unit)} is not an allowed "
                    f"{entry.name} concentration (allowed: {allowed})")]


def check_flow(spec, rates: list[int], mode: str, *, doses: tuple[int, ...] | list[int] = (),
               starts: tuple[int, ...] | list[int] = (), entry=None, concentration_ng_per_ml: int = 0
               ) -> list[Finding]:
    """Each step's flow within the model's range (the pump refuses others, in nL/day). With the
    steps' doses, the drug's entry and the concentration, each refusal says the dose asked for, its
    flow and the smallest or largest dose that works at this concentration; a dose of 0 points at
    --stop (the pump takes no step of 0: a stop is its own mode)."""
    if mode in ("STOPPED", "MINIMUM"):
        return []
    named = entry is not None and concentration_ng_per_ml > 0 and len(doses) == len(rates)
    out = []
    for i, rate in enumerate(rates):
        if spec.min_flow_nl_per_day <= rate <= spec.max_flow_nl_per_day:
            continue
        at = f"step {_hhmm(starts[i])}: " if mode == "FLEX" and i < len(starts) else ""
        if not named:
            out.append(Finding("refuse", "flow-range",
                               f"{at}a flow of {ml_day(rate)} is outside the {spec.name}'s range "
                               f"{ml_day(spec.min_flow_nl_per_day)} to {ml_day(spec.max_flow_nl_per_day)}"))
        elif doses[i] == 0:
            every = "every step of a flex schedule delivers; " if mode == "FLEX" else ""
            out.append(Finding("refuse", "dose-zero",
                               f"{at}a dose of {fmt(0, entry.dose_unit)}: {every}to stop delivery use --stop "
                               "(ithcli program --stop)"))
        else:
            out.append(Finding("refuse", "flow-range", at + _flow_range_text(spec, entry, doses[i], rate,
                                                                            concentration_ng_per_ml)))
    return out


def _flow_range_text(spec, entry, dose: int, rate: int, conc: int) -> str:
    """'1 mcg/day at 2000 mcg/mL is 0.0005 mL/day, below the peristaltic-20's smallest flow of
    0.048 mL/day: give at least 96 mcg/day (its smallest flow at 2000 mcg/mL)'. The dose named is
    the one at exactly the range's edge (rounded inwards to the ng), so it always works."""
    from protocol.therapy import NL_PER_ML

    low, high = spec.min_flow_nl_per_day, spec.max_flow_nl_per_day
    unit, per_ml = entry.dose_unit, fmt(conc, entry.concentration_unit)
    said = f"{fmt(dose, unit)} at {per_ml} is {ml_day(rate)}"
    if rate < low:
        smallest = -(-low * conc // NL_PER_ML)
        return (f"{said}, below the {spec.name}'s smallest flow of {ml_day(low)}: give at least "
                f"{fmt(smallest, unit)} (its smallest flow at {per_ml})")
    largest = high * conc // NL_PER_ML
    return (f"{said}, above the {spec.name}'s top flow of {ml_day(high)}: give at most {fmt(largest, unit)} "
            f"(its top flow at {per_ml})")


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


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
            pct = pct_change(new, current)
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
            what = "stopping delivery" if stopping else f"cutting the dose by {-pct_change(new, current)} %"
            out.append(Finding("confirm", "withdrawal", f"{what}: {risk}", "--confirm-withdrawal-risk"))
        else:
            out.append(Finding("warn", "withdrawal", f"a dose cut: {risk}; watch for withdrawal"))
    return out


def _window_text(hours: int) -> str:
    return "24 hours" if hours == 24 else f"{hours // 24} days" if hours % 24 == 0 else f"{hours} hours"


def history_unknown(entry, history, what: str) -> Finding:
    """The HISTORY override: the log read does not reach back over `what` (a window a check needs)."""

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
            pct = pct_change(new, base)
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
        suffix = "" if not entry.rise_24h_percent_by_origin or hours != 24 else \
            f" (the {origin} spasticity budget)" if origin else \
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
