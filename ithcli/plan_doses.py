"""A plan's dosing steps checked in their drug's unit: split out of plan.py's checker.

Every dose, concentration and bolus is parsed in the unit the drug library gives the
drug the pump holds at that step (the target's, or the one a refill put in), never
converted, and checked against the drug's limits. The checker (plan._Checker) owns
the problems and the parse memo; these functions only report into it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import plan_relative

if TYPE_CHECKING:  # annotations only: plan imports this module
    from .plan import Plan, Step, _Checker


def needs_drug(checker: _Checker, plan: Plan) -> None:
    """Every target must name its drug when any step carries a dose (its own values included)."""
    shared = [s for s in plan.steps if s.carries_dose]
    example = next(iter(checker.by_name), "baclofen")
    for t in plan.targets:
        dosing_steps = [plan.step_for(t, s) for s in plan.steps if plan.step_for(t, s).carries_dose] \
            if t.steps else shared
        if dosing_steps and "drug" not in checker.raw_targets[t.number - 1]:  # a wrong one is reported already
            names = ", ".join(f"{s.number} ({s.action})" for s in dosing_steps)
            which = f"step {names} carries" if len(dosing_steps) == 1 else f"steps {names} carry"
            checker.problem(t.line, f"target {t.number} ({t.serial}): no drug: {which} a dose, a concentration or "
                            f"a bolus, so the plan must name the drug the pump holds (e.g. drug = \"{example}\")")


def check_values(checker: _Checker, plan: Plan) -> None:
    """Each dosing step, once per drug it can meet (targets sharing a drug share the work)."""
    from . import dosing, limits

    starts = {t.drug_code for t in plan.targets if t.drug_code}
    for start in sorted(starts):
        code: str | None = start
        for step in plan.steps:
            entry = checker.library.for_code(code) if code else None
            if entry is not None and step.carries_dose:
                _step_values(checker, plan, step, entry, dosing, limits)
            if step.action == "refill" and "drug" in step.args:
                code = step.refill_drug_code  # None (unknown drug, reported): later steps unchecked
    # each target's own versions, in the drug it holds at that step (the same values parsed once)
    for t in plan.targets:
        for own in t.steps.values():
            code = plan.drug_at(t, own.number) if t.drug_code else None
            entry = checker.library.for_code(code) if code else None
            if entry is not None and own.carries_dose:
                _step_values(checker, plan, own, entry, dosing, limits)


class _StepReport:
    """Problems of one step, on the line of the key they are about."""

    def __init__(self, checker: _Checker, step: Step):
        self.checker = checker
        self.step = step
        self.overrides = step.args.get("override_soft_limit") or {}

    def say(self, key: str, message: str | None) -> None:
        if message and self.step.reports(key):
            self.checker.problem(self.step.line_of(key), f"{self.step.label}: {message}")

    def refusals(self, key: str, findings) -> None:
        """Findings that refuse whatever the pump holds: a hard limit, or a soft one the
        step does not override (by its name in limits.OVERRIDE_NAMES)."""
        for f in findings:
            if f.level == "refuse":
                self.say(key, f"{f.message}; it would be refused")
            name = getattr(f, "override", None)
            if f.level == "soft" and name and name not in self.overrides:
                self.say(key, f"{f.message}; it needs override_soft_limit = {{ {name} = \"reason\" }}")

    def needs(self, key: str, findings) -> None:
        """As refusals, and the confirmations the step does not give (findings certain offline)."""
        self.refusals(key, findings)
        confirmed = self.step.args.get("confirm") or []
        for f in findings:
            name = (f.flag or "").removeprefix("--confirm-")
            if f.level == "confirm" and name and name not in confirmed:
                self.say(key, f"{f.message}; it needs confirm = [\"{name}\"]")


def _step_values(checker: _Checker, plan: Plan, step: Step, entry, dosing, limits) -> None:
    report = _StepReport(checker, step)
    if step.action == "program":
        _program_values(checker, plan, step.args, entry, dosing, limits, report)
    if step.action == "refill":
        _refill_values(checker, step, entry, dosing, limits, report)
    if step.action == "bolus":
        _bolus_values(checker, step.args, entry, dosing, limits, report)
    if step.action == "ptm-set":
        _ptm_values(checker, step.args, entry, dosing, limits, report)


def _program_values(checker: _Checker, plan: Plan, args: dict, entry, dosing, limits, report: _StepReport) -> None:
    code = entry.code
    if plan_relative.is_relative(args.get("dose")):  # what depends only on the change
        text = args["dose"]
        report.say("dose", checker._try(("relative", text, code), lambda: plan_relative.parse(text, entry)))
        relative = checker._value(("relative", text, code))
        if relative is not None:
            checker._try(("relative needs", text, code), lambda: plan_relative.offline_findings(relative, entry))
            report.needs("dose", checker._value(("relative needs", text, code)))
    elif isinstance(args.get("dose"), str) and not plan_relative.looks_relative(args["dose"]):
        text = args["dose"]
        report.say("dose", checker._try(("rate", text, code), lambda: dosing.parse_dose_rate(text, entry, "dose")))
        dose = checker._value(("rate", text, code))
        if dose is not None:
            report.refusals("dose", limits.check_daily_total(entry, dose))
    if isinstance(args.get("schedule"), str) and args.get("mode") == "flex":
        path = Path(args["schedule"])
        path = path if path.is_absolute() else Path(plan.path).parent / path  # relative to the plan
        report.say("schedule", checker._try(("schedule", str(path), code),
                                            lambda: dosing.load_schedule(str(path), entry)))
        sched = checker._value(("schedule", str(path), code))
        if sched is not None:
            total = dosing.plan_summary(sched, entry.concentrations_ng_per_ml[0])["daily_dose_ng_per_day"]
            report.refusals("schedule", limits.check_daily_total(entry, total, "the schedule's 24-hour total"))


def _refill_values(checker: _Checker, step: Step, entry, dosing, limits, report: _StepReport) -> None:
    """A refill's values are in the drug it puts in: the new one when it names one."""
    args = step.args
    new = checker.library.for_code(step.refill_drug_code) if step.refill_drug_code else entry
    if "drug" in args and new is None:
        return  # an unknown drug, reported with its line
    if isinstance(args.get("concentration"), str):
        text = args["concentration"]
        report.say("concentration", checker._try(("conc", text, new.code),
                                                 lambda: dosing.parse_concentration(text, new, "concentration")))
        conc = checker._value(("conc", text, new.code))
        if conc is not None:
            report.refusals("concentration", limits.check_concentration(new, conc))
    if isinstance(args.get("dose"), str) and not plan_relative.looks_relative(args["dose"]):  # (refused as such)
        text = args["dose"]
        report.say("dose", checker._try(("rate", text, new.code), lambda: dosing.parse_dose_rate(text, new, "dose")))
        dose = checker._value(("rate", text, new.code))
        if dose is not None:
            report.refusals("dose", limits.check_daily_total(new, dose))
    elif new.code != entry.code and "dose" not in args:
        report.say("drug", f"changing the drug from {entry.name} to {new.name} needs dose = \"...\" in "
                   f"{new.dose_unit}")


def _bolus_values(checker: _Checker, args: dict, entry, dosing, limits, report: _StepReport) -> None:
    if not isinstance(args.get("dose"), str) or plan_relative.looks_relative(args["dose"]):  # (refused as such)
        return
    text = args["dose"]
    report.say("dose", checker._try(("mass", text, entry.code), lambda: dosing.parse_dose(text, entry, "dose")))
    dose = checker._value(("mass", text, entry.code))
    # a single bolus above the whole 24-hour hard limit can never be given
    if dose is not None and dose > entry.hard_max_ng_per_day:
        report.say("dose", f"a bolus of {limits.fmt(dose, entry.mass_unit)} alone is above the 24-hour hard limit "
                   f"{limits.fmt(entry.hard_max_ng_per_day, entry.dose_unit)} for {entry.name}; it would be refused")


def _ptm_values(checker: _Checker, args: dict, entry, dosing, limits, report: _StepReport) -> None:
    """Patient-bolus limits against the drug library, offline: the dose in the drug's mass unit, and
    (all four given) the library's widest limits and the worst case a day with no program at all
    (any program only adds to it; the pump's own program is counted at run time)."""
    from protocol import bodies

    from .ptm import MAX_PER_DAY

    if not isinstance(args.get("dose"), str) or plan_relative.looks_relative(args["dose"]):  # (refused as such)
        return
    text = args["dose"]
    report.say("dose", checker._try(("mass", text, entry.code), lambda: dosing.parse_dose(text, entry, "dose")))
    dose = checker._value(("mass", text, entry.code))
    if dose is None or not all(isinstance(args.get(k), str) for k in ("lockout", "duration")):
        return
    n = args.get("max_per_day")
    lockout = checker._value(("duration", "lockout", args["lockout"]))
    duration = checker._value(("duration", "duration", args["duration"]))
    counted = isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_PER_DAY  # else reported as such
    if not counted or lockout is None or duration is None:
        return
    assert isinstance(n, int)
    new = bodies.PtmLimits(enabled=1, dose_ng=dose, duration_s=duration, lockout_s=lockout, max_per_day=n)
    report.refusals("dose", limits.check_ptm_limits(entry, new, daily_dose_ng_per_day=0))
