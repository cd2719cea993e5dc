"""What the operator asked for, turned into exact integers: doses, flows, schedules.

Strict on units: a dose must be in the drug's own unit (mg/day or mcg/day); a
concentration in the matching per-mL unit. The 1000x mg/mcg slip is the classic
fatal programming error, so a correct-but-foreign unit is refused rather than
converted.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SafetyError, UsageError

if TYPE_CHECKING:
    from protocol.bodies import DeliveredStep, Program, ProgramStep


@dataclass(frozen=True)
class Plan:
    """A program to send: mode and (start_minute, dose_ng_per_day) steps."""

    mode: str  # STOPPED, CONTINUOUS, FLEX, MINIMUM (protocol InfusionMode names)
    starts: tuple[int, ...] = ()
    doses: tuple[int, ...] = ()

    def steps(self) -> tuple[ProgramStep, ...]:
        """The steps of its PREPARE request."""
        from protocol.bodies import ProgramStep

        return tuple(ProgramStep(s, d) for s, d in zip(self.starts, self.doses, strict=True))


def _parse(text: str, dimension: str, option: str):
    from protocol import Quantity, UnitError

    try:
        return Quantity.parse(text, dimension)
    except UnitError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _exact(q, option: str) -> int:
    from protocol import UnitError

    try:
        return q.to_base()
    except UnitError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _in_drug_unit(text: str, dimension: str, unit: str, entry, option: str) -> int:
    """Parse a quantity that must be in exactly `unit`, the drug's own (no conversion)."""
    q = _parse(text, dimension, option)
    if q.unit != unit:
        raise SafetyError(
            f"{option} {text!r}: {entry.name} is dosed in {unit}; a value in {q.unit} is refused "
            "(a mg/mcg slip is a 1000x error)"
        )
    return _exact(q, option)


def parse_dose_rate(text: str, entry, option: str = "--dose") -> int:
    """'450 mcg/day' -> 450000 ng/day, only in the drug's own unit."""
    return _in_drug_unit(text, "dose_rate", entry.dose_unit, entry, option)


def parse_dose(text: str, entry, option: str = "--dose") -> int:
    """A bolus: '50 mcg' -> 50000 ng, in the drug's own mass unit."""
    return _in_drug_unit(text, "dose", entry.mass_unit, entry, option)


def parse_concentration(text: str, entry, option: str = "--concentration") -> int:
    """'2000 mcg/mL' -> 2000000 ng/mL, in the drug's own per-mL unit."""
    return _in_drug_unit(text, "concentration", entry.concentration_unit, entry, option)


def parse_flow(text: str, option: str = "--flow") -> int:
    return _exact(_parse(text, "flow", option), option)


def parse_volume(text: str, option: str) -> int:
    return _exact(_parse(text, "volume", option), option)


def parse_duration(text: str, option: str) -> int:
    return _exact(_parse(text, "duration", option), option)


def parse_clock(text: str, where: str) -> int:
    """'08:30' -> 510 minutes after midnight (pump time)."""
    parts = str(text).split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise UsageError(f"{where}: start {text!r} must be HH:MM (e.g. 08:00)")
    hours, minutes = int(parts[0]), int(parts[1])
    if hours > 23 or minutes > 59:
        raise UsageError(f"{where}: start {text!r} is not a time of day")
    return hours * 60 + minutes


def load_schedule(path: str, entry) -> Plan:
    """A flex schedule file (TOML): [[step]] tables with start = "HH:MM", dose = "N unit/day"."""
    from protocol.therapy import check_schedule

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"schedule {path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"schedule {path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"step"}
    if unknown:
        raise UsageError(f"schedule {path}: unknown table(s) {', '.join(sorted(unknown))}; expected [[step]]")
    steps = data.get("step")
    if not isinstance(steps, list) or not steps:
        raise UsageError(f"schedule {path}: no [[step]] entries")
    starts, doses = [], []
    for number, step in enumerate(steps, start=1):
        where = f"schedule {path}: step {number}"
        if not isinstance(step, dict):
            raise UsageError(f"{where}: expected a table")
        extra = set(step) - {"start", "dose"}
        if extra:
            raise UsageError(f"{where}: unknown field(s) {', '.join(sorted(extra))} (expected start, dose)")
        for field in ("start", "dose"):
            if not isinstance(step.get(field), str):
                raise UsageError(f"{where}: field '{field}' is missing or not a string")
        starts.append(parse_clock(step["start"], where))
        doses.append(parse_dose_rate(step["dose"], entry, f"{where}: dose"))
    problem = check_schedule(starts)
    if problem:
        raise UsageError(f"schedule {path}: {problem}")
    return Plan("FLEX", tuple(starts), tuple(doses))


def plan_summary(plan: Plan, concentration_ng_per_ml: int) -> dict:
    """24-hour totals of a plan, computed with the same integer rules as the pump."""
    from protocol.models import MINIMUM_RATE_NL_PER_DAY
    from protocol.therapy import daily_total, dose_for_rate, rate_for_dose

    if plan.mode == "STOPPED":
        return {"daily_dose_ng_per_day": 0, "daily_volume_nl_per_day": 0, "rates": []}
    if plan.mode == "MINIMUM":
        rate = MINIMUM_RATE_NL_PER_DAY
        return {
            "daily_dose_ng_per_day": dose_for_rate(rate, concentration_ng_per_ml),
            "daily_volume_nl_per_day": rate,
            "rates": [rate],
        }
    rates = [rate_for_dose(d, concentration_ng_per_ml) for d in plan.doses]
    return {
        "daily_dose_ng_per_day": daily_total(list(plan.starts), list(plan.doses)),
        "daily_volume_nl_per_day": daily_total(list(plan.starts), rates),
        "rates": rates,
    }


def expected_steps(plan: Plan, summary: dict) -> tuple[DeliveredStep, ...]:
    """The steps the pump should echo and read back for plan (doses and computed rates)."""
    from protocol.bodies import DeliveredStep
    from protocol.models import MINIMUM_RATE_NL_PER_DAY

    if plan.mode == "STOPPED":
        return ()
    if plan.mode == "MINIMUM":
        return (DeliveredStep(0, summary["daily_dose_ng_per_day"], MINIMUM_RATE_NL_PER_DAY),)
    return tuple(DeliveredStep(s, d, r) for s, d, r in zip(plan.starts, plan.doses, summary["rates"], strict=True))


def plan_from_program(program: Program) -> Plan:
    """The plan that reproduces a program read from the pump (doses, not rates)."""
    mode = program.mode.name
    if mode in ("STOPPED", "MINIMUM"):
        return Plan(mode)
    steps = program.steps
    return Plan(mode, tuple(s.start_minute for s in steps), tuple(s.dose_ng_per_day for s in steps))
