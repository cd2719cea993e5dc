"""A program step's relative dose: a change of the dose the pump delivers when the step runs.

    dose = "+10%"          10 % more than the pump's 24-hour total at that moment
    dose = "-25 %"         a quarter less
    dose = "+50 mcg/day"   50 mcg/day more, in the drug's own unit (a mg/day change of a
                           mcg/day drug is refused, never converted, as any dose is)

The sign is what makes a dose relative, so it is required. The result is computed exactly,
then put on the wire's grid (whole ng/day) rounded toward the dose in force, so the change is
never larger than the one asked for; the row shows it exactly, and says so when it was rounded.
Refused when the step runs: a pump delivering nothing (there is nothing to be relative to),
a flex or minimum-rate program (a dose sets one continuous rate: relative to which of its
rates?), a result at or below zero (to stop delivery: stop = true), and a change that rounds
away to nothing. The result is then checked like any other dose (api.Pump.check_program).

Offline (plan_doses), what depends only on the percent or the difference: limits.check_change's
step rules (the largest step, in percent or in the drug's unit), a 10x change and a large cut of
a withdrawal-risk drug, each needing what the plan must then say.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from .errors import SafetyError, UsageError

_RELATIVE = re.compile(r"^\s*([+-])\s*([0-9]+(?:\.[0-9]+)?)\s*(%|[^\s0-9.,+-].*?)\s*$")
#: the step rules that depend only on the ratio of the new dose to the old (a percent), or
#: only on their difference (a dose): the ones a relative dose can be checked against offline
_PERCENT_RULES: tuple[str, ...] = ("step-percent", "tenfold", "withdrawal")
_DELTA_RULES: tuple[str, ...] = ("step-size",)


def is_relative(text: Any) -> bool:
    """A dose written with its sign ("+10%", "-0.5 mg/day"): a change, not a dose."""
    return isinstance(text, str) and text.strip()[:1] in ("+", "-")


def looks_relative(text: Any) -> bool:
    """A change, or a percent without its sign ("10%": refused as such, not as a unit)."""
    return is_relative(text) or isinstance(text, str) and text.strip().endswith("%")


@dataclass(frozen=True)
class Relative:
    text: str  # as written
    sign: int  # +1 or -1
    amount: Decimal  # the percent, or the dose's value
    unit: str  # "%" or a dose-rate unit (mg/day, mcg/day)
    delta_ng: int | None = None  # a dose: the change in ng/day

    @property
    def percent(self) -> bool:
        return self.unit == "%"

    @property
    def shown(self) -> str:
        """'+10 %', '-0.5 mg/day'."""
        return f"{'+' if self.sign > 0 else '-'}{format(self.amount, 'f')} {self.unit}"


def parse(text: str, entry=None, option: str = "dose") -> Relative:
    """'+10%' or '-50 mcg/day' -> Relative; UsageError (SafetyError for a foreign dose unit)
    saying why not. With the drug's library entry a dose is parsed in its unit."""
    from protocol import Quantity, UnitError

    match = _RELATIVE.match(text)
    if not match:
        raise UsageError(f"{option} {text!r} is not a relative dose: write \"+10%\", \"-25%\" or a change in the "
                         "drug's unit such as \"+50 mcg/day\"")
    sign = 1 if match[1] == "+" else -1
    amount, unit = Decimal(match[2]), match[3]
    if amount == 0:
        raise UsageError(f"{option} {text!r} changes nothing: give the change, or leave the step out")
    if unit == "%":
        if sign < 0 and amount >= 100:
            raise SafetyError(f"{option} {text!r} takes the dose to nothing or below: to stop delivery write "
                              "stop = true")
        return Relative(text, sign, amount, "%")
    try:
        q = Quantity.parse(f"{match[2]} {unit}", "dose_rate")
    except UnitError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None
    if entry is not None and q.unit != entry.dose_unit:
        raise SafetyError(f"{option} {text!r}: {entry.name} is dosed in {entry.dose_unit}; a change in {q.unit} "
                          "is refused (a mg/mcg slip is a 1000x error)")
    try:
        delta = q.to_base()
    except UnitError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from None
    return Relative(text, sign, q.value, q.unit, sign * delta)


@dataclass(frozen=True)
class Resolved:
    """A relative dose on one pump: the dose in force, the exact result, what is sent."""

    relative: Relative
    current_ng: int  # the pump's 24-hour total when the step runs
    exact_ng: Decimal  # current changed exactly as asked (ng/day, may have a fraction)
    new_ng: int  # on the wire's grid: whole ng/day, rounded toward current_ng
    unit: str  # the drug's dose unit

    @property
    def rounded(self) -> bool:
        return self.exact_ng != self.new_ng

    @property
    def dose_text(self) -> str:
        """The absolute dose to check and send, exactly (e.g. '2.2 mg/day')."""
        return _fmt(self.new_ng, self.unit)

    def row(self) -> tuple[str, str, str]:
        """The before/after row that says how the dose was computed (shown, and double-checked)."""
        after = self.dose_text
        if self.rounded:
            after += f" ({_fmt_exact(self.exact_ng, self.unit)} exactly; the pump takes whole ng/day)"
        return (f"Dose asked ({self.relative.shown})", _fmt(self.current_ng, self.unit), after)

    def as_dict(self) -> dict[str, Any]:
        from protocol import Quantity

        def q(ng: int) -> dict[str, Any]:
            value = Quantity.from_base(ng, self.unit)
            return {"value": value.value, "unit": value.unit}

        return {"given": self.relative.text, "of": q(self.current_ng), "dose": q(self.new_ng),
                "exact": {"value": self.exact_ng / _factor(self.unit), "unit": self.unit}, "rounded": self.rounded}


def resolve(relative: Relative, *, current_ng: int, mode: str, unit: str) -> Resolved:
    """The dose a relative one comes to on a pump delivering current_ng a day in `mode`
    (protocol InfusionMode name); SafetyError when it cannot be one (see the module)."""
    mode = mode.upper()
    if mode in ("FLEX", "MINIMUM"):
        what = "a flex schedule" if mode == "FLEX" else "the minimum rate"
        raise SafetyError(f"dose {relative.text!r}: the pump runs {what}, and a dose sets one continuous rate: "
                          "give the dose itself (dose = \"...\") or a schedule. Nothing was sent")
    if mode == "STOPPED" or current_ng <= 0:
        raise SafetyError(f"dose {relative.text!r}: the pump delivers nothing now, so there is nothing to be "
                          "relative to: give the dose itself (dose = \"...\"). Nothing was sent")
    if relative.percent:
        exact = Decimal(current_ng) * (100 + relative.sign * relative.amount) / 100
    else:
        assert relative.delta_ng is not None
        exact = Decimal(current_ng + relative.delta_ng)
    if exact <= 0:
        raise SafetyError(f"dose {relative.text!r} of {_fmt(current_ng, unit)} is {_fmt_exact(exact, unit)}: at or "
                          "below nothing. To stop delivery write stop = true. Nothing was sent")
    new = int(exact.to_integral_value(ROUND_FLOOR if exact > current_ng else ROUND_CEILING))
    if new == current_ng:
        raise SafetyError(f"dose {relative.text!r} of {_fmt(current_ng, unit)} is {_fmt_exact(exact, unit)}, which "
                          "rounds to the dose in force (the pump takes whole ng/day): nothing to change. "
                          "Nothing was sent")
    return Resolved(relative, current_ng, exact, new, unit)


def offline_findings(relative: Relative, entry) -> list:
    """What this change needs on any pump holding `entry`'s drug, whatever it delivers: the
    findings of limits.check_change that depend only on the percent or the difference."""
    from . import limits

    base = 10 ** 12  # any dose in force: only the rules that do not depend on it are kept
    if relative.percent:
        new = int(Decimal(base) * (100 + relative.sign * relative.amount) / 100)
        rules = _PERCENT_RULES
    else:
        assert relative.delta_ng is not None
        new, rules = base + relative.delta_ng, _DELTA_RULES
    findings = limits.check_change(entry, current=base, new=new, mode="CONTINUOUS")
    out = []
    for f in findings:
        if f.rule not in rules or f.level == "warn":
            continue
        if f.rule == "tenfold":  # its own message names the doses: here there are none yet
            f = replace(f, message=f"{relative.shown} makes the dose 10x or more away from the one in force: check "
                        "for a slip")
        elif f.rule == "withdrawal":
            f = replace(f, message=f"{relative.shown} cuts {entry.name}, which carries a withdrawal risk, by "
                        f"{limits.WITHDRAWAL_CUT_PERCENT} % or more")
        out.append(f)
    return out


def _factor(unit: str) -> int:
    from protocol.units import UNITS

    return UNITS["dose_rate"][unit]


def _fmt(ng: int, unit: str) -> str:
    from protocol import Quantity

    return str(Quantity.from_base(ng, unit))


def _fmt_exact(ng: Decimal, unit: str) -> str:
    value = (ng / _factor(unit)).normalize()
    return f"{format(value, 'f')} {unit}"
