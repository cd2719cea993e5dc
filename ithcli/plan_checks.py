"""A plan's field values that need no drug: assert checks, overrides and confirmations.

Split out of plan.py (which re-exports every public name here): these are pure
functions of a value, so the checker calls them per step and the batch runner
calls evaluate_check on each interrogate result.
"""
from __future__ import annotations

import difflib
import functools
import json
import operator
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .errors import UsageError
from .limits import CONFIRM_FLAGS, OVERRIDE_NAMES

#: a plan's confirmation names: the CLI's --confirm-NAME flags without "--confirm-"
CONFIRMATIONS = {flag.removeprefix("--confirm-"): flag for flag in CONFIRM_FLAGS}
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
        "!=": operator.ne}
_CHECK = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")

#: every field of the interrogate result (status.describe) an assert can compare, by kind:
#: number, quantity ({value, unit}: compared by value), text (== and != only), bool, date
#: (ISO 8601, compared as times); list and table fields cannot be compared themselves.
#: tests/test_plan_validate.py checks this against status.describe, field by field.
STATUS_FIELDS: dict[str, str] = {
    "serial_number": "text", "model": "text", "design": "text", "firmware": "text", "emulated": "bool",
    "port": "text", "drug": "text", "drug_in_library": "bool", "concentration": "quantity", "mode": "text",
    "daily_dose": "quantity", "flow_ml_per_day": "number", "current_rate_ml_per_day": "number",
    "reservoir_ml": "number", "reservoir_capacity_ml": "number", "low_reservoir_alarm_ml": "number",
    "projected_low_reservoir_date": "date", "projected_empty_date": "date",
    "battery": "table", "battery.state": "text", "battery.percent": "number", "battery.eri_date": "date",
    "battery.replace_by": "date", "battery.replace_by_computed": "date", "battery.replace_by_mismatch": "bool",
    "alarms": "list", "mri_mode": "text", "mri_auto_exit_at": "date", "bolus_remaining": "quantity",
    "last_programming": "table", "last_programming.txid": "number", "last_programming.at": "date",
    "event_count": "number", "pump_time": "date", "clock_skew_s": "number", "read_at": "date",
    "pump_clock": "table", "pump_clock.pump_time": "date", "pump_clock.read_at": "date",
    "pump_clock.skew_s": "number", "pump_clock.threshold_s": "number", "pump_clock.dates_on": "text",
    "pump_clock.dates_shifted_s": "number", "pump_clock.warning": "text",
}
#: patient-activated boluses (ithcli/ptm.py): the limits, the worst case a day, the use in 24 hours
STATUS_FIELDS |= {"ptm": "table", "ptm.enabled": "bool", "ptm.dose": "quantity", "ptm.duration_s": "number",
                  "ptm.lockout_s": "number", "ptm.max_per_day": "number", "ptm.worst_case_daily": "quantity",
                  "ptm.granted_24h": "number", "ptm.refused_24h": "number", "ptm.last_granted_at": "date"}
#: the catheter record (ithcli/catheter_ops.py): lengths in cm, volumes in mL
STATUS_FIELDS |= {"catheter": "table", "catheter.recorded": "bool", "catheter.action": "text",
                  "catheter.model": "text", "catheter.length_cm": "number", "catheter.replaced_cm": "number",
                  "catheter.dead_space_ml": "number", "catheter.priming_due_ml": "number", "catheter.primed": "bool",
                  "catheter.recorded_at": "date"}
#: the patient record (ithcli/patient.py; null when none is recorded): a plan may check it is the right patient
STATUS_FIELDS |= {"patient": "table", "patient.id": "text", "patient.initials": "text", "patient.born": "text",
                  "patient.spasticity_origin": "text", "patient.recorded_at": "date"}
for _name in [n for n, k in STATUS_FIELDS.items() if k == "quantity"]:
    STATUS_FIELDS[f"{_name}.value"] = "number"
    STATUS_FIELDS[f"{_name}.unit"] = "text"


@functools.cache
def _enumerations() -> dict[str, tuple[str, ...]]:
    """The values the pump can report for the text fields that have a fixed set."""
    from protocol import BatteryState, Drug, InfusionMode, MriMode
    from protocol.models import MODELS

    return {"mode": tuple(m.name.lower() for m in InfusionMode), "drug": tuple(d.name.lower() for d in Drug),
            "mri_mode": tuple(m.name.lower() for m in MriMode),
            "battery.state": tuple(s.name.lower() for s in BatteryState),
            "model": tuple(spec.name for spec in MODELS.values()),
            "design": tuple(sorted({spec.design for spec in MODELS.values()}))}


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- assert checks -------------------------------------------------------------------

def parse_check(text: str) -> tuple[str, str, str] | None:
    """'reservoir_ml >= 5' -> ('reservoir_ml', '>=', '5'); None when it is not FIELD OP VALUE."""
    match = _CHECK.match(text)
    return (match[1], match[2], match[3]) if match else None


def _date(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def check_value(kind: str | None, raw: str) -> Any:
    """The check's VALUE as the field's kind compares it; ValueError says why it cannot be."""
    quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'"
    text = raw[1:-1] if quoted else raw
    if kind in ("number", "quantity"):
        if quoted or not _NUMBER.match(text):
            raise ValueError(f"{raw!r} is not a number")
        return Decimal(text)
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"{raw!r} is not true or false")
        return text == "true"
    if kind == "date":
        try:
            return _date(text)
        except ValueError:
            raise ValueError(f"{raw!r} is not an ISO date or time (e.g. 2027-01-15 or 2027-01-15T08:00:00Z)") from None
    if kind == "text":
        return text
    # a field outside STATUS_FIELDS (validation refuses it; at run time, read it as written)
    if not quoted and _NUMBER.match(text):
        return Decimal(text)
    return {"true": True, "false": False}.get(text, text) if not quoted else text


def check_problem(check: str, enumerations: dict | None = None) -> str | None:
    """What is wrong with an assert's check, offline; None when it can be evaluated."""
    parsed = parse_check(check)
    if parsed is None:
        return f"check {check!r} must read FIELD OP VALUE, e.g. \"reservoir_ml >= 5\""
    path, op, raw = parsed
    kind = STATUS_FIELDS.get(path)
    if kind is None:
        return (f"check {check!r}: the status has no field {path!r}{_did_you_mean(path, STATUS_FIELDS)} "
                "(see interrogate --json)")
    if kind in ("list", "table"):
        parts = [p for p in STATUS_FIELDS if p.startswith(path + ".")]
        return (f"check {check!r}: {path} is a {kind} and cannot be compared"
                + (f"; compare one of {', '.join(parts)}" if parts else ""))
    if kind in ("text", "bool") and op not in ("==", "!="):
        return f"check {check!r}: {path} is {'a word' if kind == 'text' else 'true or false'}: compare it with == or !="
    try:
        value = check_value(kind, raw)
    except ValueError as exc:
        return f"check {check!r}: {path} is {_KIND_WORDS[kind]}; {exc}"
    allowed = (enumerations if enumerations is not None else _enumerations()).get(path)
    if allowed and value not in allowed:
        return f"check {check!r}: {path} is one of {', '.join(allowed)}; {value!r} never matches"
    return None


_KIND_WORDS = {"number": "a number", "quantity": "a quantity compared by its value (a number)", "text": "a word",
               "bool": "true or false", "date": "a date"}


def evaluate_check(check: str, status: dict) -> tuple[bool, Any]:
    """Evaluate 'reservoir_ml >= 5' against an interrogate result; (passed, actual)."""
    parsed = parse_check(check)
    if parsed is None:
        raise UsageError(f"assert {check!r}: must read FIELD OP VALUE")
    path, op, raw = parsed
    value: Any = status
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise UsageError(f"assert {check!r}: status has no field {path!r}")
        value = value[part]
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    kind = STATUS_FIELDS.get(path)
    try:
        wanted = check_value(kind, raw)
    except ValueError as exc:
        raise UsageError(f"assert {check!r}: {exc}") from None
    actual = value
    if kind == "date":
        if value is None:
            return False, None  # unknown: no comparison holds
        actual = _date(value)
    try:
        return bool(_OPS[op](actual, wanted)), value
    except TypeError:
        return False, value


# --- overrides and confirmations ---------------------------------------------------------

def _override_form(reason: str = "reason") -> str:
    return f"override_soft_limit = {{ NAME = {json.dumps(reason)} }} with NAME one of {', '.join(OVERRIDE_NAMES)}"


def parse_overrides(value: Any) -> tuple[dict[str, str], list[str]]:
    """A step's override_soft_limit table -> ({NAME: reason}, problems); names normalised to
    limits.OVERRIDE_NAMES' form (upper case, '_')."""
    if isinstance(value, str):
        return {}, [f"override_soft_limit must name the limit it overrides: write "
                    f"{_override_form(value.strip() or 'reason')}"]
    if not isinstance(value, dict):
        return {}, [f"override_soft_limit must be a table: {_override_form()}"]
    if not value:
        return {}, [f"override_soft_limit names no limit: {_override_form()}"]
    out: dict[str, str] = {}
    problems = []
    for key, reason in value.items():
        name = str(key).strip().upper().replace("-", "_")
        if name not in OVERRIDE_NAMES:
            problems.append(f"override_soft_limit: unknown limit {key!r}{_did_you_mean(name, OVERRIDE_NAMES)}; "
                            f"limits: {', '.join(OVERRIDE_NAMES)}")
        elif name in out:
            problems.append(f"override_soft_limit: {name} is named twice")
        elif not isinstance(reason, str) or not reason.strip():
            problems.append(f"override_soft_limit: {name} needs a reason, e.g. {name} = \"agreed with Dr X\"")
        else:
            out[name] = reason.strip()
    return out, problems


_DOSING = ("tenfold", "withdrawal-risk", "restart", "empty-before-visit", "fill-gap")
#: the confirmations each write action can need (another one never applies to it)
ACTION_CONFIRMATIONS = {"program": _DOSING, "refill": _DOSING, "bolus": _DOSING, "mri-enter": ("withdrawal-risk",),
                        "priming-bolus": ("monitoring",), "clock-set": ("clock-step",)}
_WHERE = {"monitoring": 'it goes with action = "priming-bolus"', "clock-step": 'it goes with action = "clock-set"'}


def parse_confirmations(value: Any, action: str) -> tuple[list[str], list[str]]:
    """A step's confirm list -> (names, problems); names as in CONFIRMATIONS."""
    names = ", ".join(CONFIRMATIONS)
    if not isinstance(value, list):
        return [], [f"confirm must be a list of {names}"]
    allowed = ACTION_CONFIRMATIONS.get(action, tuple(CONFIRMATIONS))
    out, problems = [], []
    for item in value:
        name = item.strip().lower().replace("_", "-").removeprefix("--confirm-") if isinstance(item, str) else None
        if name not in CONFIRMATIONS:
            problems.append(f"confirm: unknown confirmation {item!r}{_did_you_mean(name or '', CONFIRMATIONS)}; "
                            f"expected {names}")
        elif name not in allowed:
            only = " or ".join(f'"{a}"' for a in allowed)
            problems.append(f"confirm: {name!r} does not apply to {action} (only {only})"
                            + (f"; {_WHERE[name]}" if name in _WHERE else ""))
        elif name not in out:
            out.append(name)
    return out, problems
