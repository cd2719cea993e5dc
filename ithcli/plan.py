"""Batch plan files: parsed and checked whole, offline, before anything is sent.

A plan (TOML) names targets (a port, the serial number expected there and the
drug the pump holds) and steps run on every target in order:

    [plan]
    version = 1
    name = "Ward 3 baclofen dose change"

    [[target]]
    port = "/dev/ttyUSB0"
    serial = "BAC-0001"
    drug = "baclofen"          # the pump's drug, by its drug library name

    [[step]]
    action = "program"
    dose = "450 mcg/day"
    override_soft_limit = { STEP_PERCENT = "agreed with Dr Smith, clinic note 4411" }
    confirm = ["tenfold"]

    [[step]]
    action = "assert"
    check = "reservoir_ml >= 5"

Actions and their fields:

    interrogate
    assert         check = "FIELD OP VALUE": FIELD an interrogate --json field (dotted
                   for nested ones: battery.percent; {value, unit} fields compare
                   their value), OP one of >= <= > < == !=, VALUE of the field's type
                   (a number; a word, only == and !=; true or false; an ISO date)
    program        exactly one of dose = "450 mcg/day", flow = "0.25 mL/day",
                   stop = true, mode = "minimum", mode = "flex" with schedule = "FILE"
                   (relative to the plan)
    refill         volume, concentration (an allowed one of the drug), and
                   optionally drug (a new drug: then dose is needed), withdrawn, dose
    bolus          dose = "50 mcg", over = "30 min" (1 min to 24 h)
    mri-checklist  field = "1.5T" or "3T", gradient = T/m (a number), auto_exit = "4h"
    mri-enter      field, gradient, auto_exit, confirm = ["withdrawal-risk"]
    mri-exit, mri-verify

Write steps that carry a dose, a concentration or a bolus (program with dose, flow
or schedule; refill; bolus) need the target's drug: every such value is parsed in
that drug's own unit from the drug library (a mg/day dose of a mcg/day drug is
refused here, never converted), and preflight refuses a pump that holds another
drug before anything is sent to it. After a refill with drug = "...", the later
steps are checked in the new drug's unit.

program, refill and bolus also take:

    override_soft_limit = { NAME = "reason", ... }   NAME from limits.OVERRIDE_NAMES
        (DAILY_MAX, STEP, ...; any case, '-' or '_'): each reason overrides only the
        limit it names, and is audited. A bare string is refused.
    confirm = ["tenfold", ...]   limits.CONFIRM_FLAGS without "--confirm-"
        (tenfold, withdrawal-risk, restart, empty-before-visit, fill-gap): the plan
        is the confirmation, so nothing is asked.

Every problem in the file is collected and reported at once, each with its file,
line and what was expected (an unknown action is one problem among the others);
a plan with any problem touches no pump.
"""
from __future__ import annotations

import difflib
import functools
import json
import operator
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import IthcliError, UsageError
from .limits import CONFIRM_FLAGS, OVERRIDE_NAMES

ACTIONS = {
    # action: (allowed keys besides "action", required keys)
    "interrogate": (set(), set()),
    "assert": ({"check"}, {"check"}),
    "program": ({"dose", "flow", "mode", "schedule", "stop", "override_soft_limit", "confirm"}, set()),
    "refill": ({"volume", "concentration", "drug", "withdrawn", "dose", "override_soft_limit", "confirm"},
               {"volume", "concentration"}),
    "bolus": ({"dose", "over", "override_soft_limit", "confirm"}, {"dose", "over"}),
    "mri-checklist": ({"field", "gradient", "auto_exit"}, set()),
    "mri-enter": ({"field", "gradient", "auto_exit", "confirm"}, set()),
    "mri-exit": (set(), set()),
    "mri-verify": (set(), set()),
}
#: a plan's confirmation names: the CLI's --confirm-NAME flags without "--confirm-"
CONFIRMATIONS = {flag.removeprefix("--confirm-"): flag for flag in CONFIRM_FLAGS}
#: a bolus runs from 1 min to 24 h (as ithcli bolus / operations.bolus_change refuse otherwise)
BOLUS_SECONDS = (60, 86_400)
#: what each field of a step must be, and an example for the message
#: field -> (the type(s) it takes, an example)
_SHAPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "dose": (str, '"450 mcg/day" (a bolus: "50 mcg")'), "flow": (str, '"0.25 mL/day"'),
    "mode": (str, '"minimum" or "flex"'), "schedule": (str, '"flex-schedule.toml"'),
    "stop": (bool, "true"), "volume": (str, '"18 mL"'), "withdrawn": (str, '"2.5 mL"'),
    "concentration": (str, '"2000 mcg/mL"'), "drug": (str, '"baclofen"'), "over": (str, '"30 min"'),
    "field": (str, '"1.5T" or "3T"'), "auto_exit": (str, '"4h"'), "check": (str, '"reservoir_ml >= 5"'),
    "gradient": ((int, float), "a number of T/m, e.g. 20"), "confirm": (list, '["tenfold"]'),
    "override_soft_limit": (dict, '{ DAILY_MAX = "reason" }'),
}
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


@dataclass
class Step:
    number: int
    action: str
    args: dict[str, Any]
    line: int  # of its [[step]] header
    key_lines: dict[str, int] = field(default_factory=dict)
    #: a refill that changes the drug: the new drug's library code
    refill_drug_code: str | None = None

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    @property
    def carries_dose(self) -> bool:
        """A write whose values are in a drug's unit or depend on its concentration."""
        if self.action == "program":
            return any(k in self.args for k in ("dose", "flow", "schedule"))
        return self.action in ("refill", "bolus")


@dataclass
class Target:
    number: int
    port: str
    serial: str
    drug: str | None
    line: int
    #: the drug's protocol code (e.g. "MORPHINE") from the drug library, compared with the pump's
    drug_code: str | None = None


@dataclass
class Plan:
    path: str
    name: str
    targets: list[Target]
    steps: list[Step]
    problems: list[str] = field(default_factory=list)

    def drug_at(self, target: Target, step_number: int) -> str | None:
        """The drug code the pump should hold when step_number runs: the target's, or the one
        the last refill with drug = "..." before it put in."""
        code = target.drug_code
        for step in self.steps:
            if step.number >= step_number:
                break
            code = step.refill_drug_code or code
        return code


class _Lines:
    """Where things are in the file: tomllib gives values, not positions."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self._headers: dict[str, list[int]] = {}

    def header(self, table: str, index: int) -> int:
        """The line of the index-th [[table]] (found once per table: a plan of many
        targets asks for each of them)."""
        numbers = self._headers.get(table)
        if numbers is None:
            pattern = re.compile(rf"^\s*\[\[\s*{table}\s*\]\]")
            numbers = self._headers[table] = [n for n, line in enumerate(self.lines, start=1) if pattern.match(line)]
        return numbers[index] if index < len(numbers) else 1

    def table(self, name: str) -> int:
        """The line of the first [name] or [[name]] header (1 if none: a top-level key)."""
        pattern = re.compile(rf"^\s*\[\[?\s*{re.escape(name)}\s*[\].]")
        return next((n for n, line in enumerate(self.lines, start=1) if pattern.match(line)), 1)

    def key(self, start: int, key: str) -> int:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, len(self.lines) + 1):
            line = self.lines[number - 1]
            if number > start and re.match(r"^\s*\[", line):
                break
            if pattern.match(line):
                return number
        return start


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


def parse_confirmations(value: Any, action: str) -> tuple[list[str], list[str]]:
    """A step's confirm list -> (names, problems); names as in CONFIRMATIONS."""
    names = ", ".join(CONFIRMATIONS)
    if not isinstance(value, list):
        return [], [f"confirm must be a list of {names}"]
    out, problems = [], []
    for item in value:
        name = item.strip().lower().replace("_", "-").removeprefix("--confirm-") if isinstance(item, str) else None
        if name not in CONFIRMATIONS:
            problems.append(f"confirm: unknown confirmation {item!r}{_did_you_mean(name or '', CONFIRMATIONS)}; "
                            f"expected {names}")
        elif action == "mri-enter" and name != "withdrawal-risk":
            problems.append(f"confirm: {name!r} does not apply to mri-enter (only \"withdrawal-risk\")")
        elif name not in out:
            out.append(name)
    return out, problems


# --- loading and checking -----------------------------------------------------------------

def load(path: str, library=None) -> Plan:
    """Parse and check a plan against the drug library (the built-in one unless given);
    raise PlanError listing every problem, each with file:line."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"plan {where}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"plan {where}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"\(at line (\d+)", str(exc))
        plan = Plan(where, "", [], [], [f"{where}:{at.group(1) if at else 1}: not valid TOML: {exc}"])
        raise PlanError(plan) from None
    if library is None:
        from . import druglib

        library = druglib.load()
    return _Checker(where, text, data, library).run()


class _Checker:
    """One pass over a parsed plan that finds every problem. Work per target is a few
    dictionary look-ups; every value is parsed once per drug, not once per target."""

    def __init__(self, where: str, text: str, data: dict, library):
        self.where = where
        self.lines = _Lines(text)
        self.data = data
        self.library = library
        self.by_name = {e.name.lower(): e for e in library.drugs.values()}
        self.problems: set[tuple[int, str]] = set()
        self._memo: dict[tuple, str | None] = {}  # (kind, value, ...) -> its problem, or None
        self._parsed: dict[tuple, Any] = {}  # (kind, value, ...) -> what it parsed to
        raw = data.get("target")
        self.raw_targets = [t if isinstance(t, dict) else {} for t in raw] if isinstance(raw, list) else []

    def problem(self, line: int, message: str) -> None:
        self.problems.add((line, message))

    def run(self) -> Plan:
        data = self.data
        for key in data:
            if key not in ("plan", "target", "step"):
                self.problem(self.lines.table(key),
                             f"unknown table [{key}]; expected [plan], [[target]] and [[step]]")
        meta = data.get("plan")
        name, at = Path(self.where).stem, self.lines.table("plan")
        if not isinstance(meta, dict) or meta.get("version") != 1:
            self.problem(self.lines.key(at, "version"), "expected [plan] with version = 1")
        if isinstance(meta, dict):
            for key in meta:
                if key not in ("version", "name"):
                    self.problem(self.lines.key(at, key), f"[plan]: unknown field {key!r} (expected version, name)")
            if "name" in meta:
                if isinstance(meta["name"], str):
                    name = meta["name"]
                else:
                    self.problem(self.lines.key(at, "name"), "[plan]: name must be a string")
        targets = self._targets(data.get("target"))
        steps = self._steps(data.get("step"))
        plan = Plan(self.where, name, targets, steps)
        self._needs_drug(plan)
        self._values(plan)
        plan.problems = [f"{self.where}:{line}: {message}" for line, message in sorted(self.problems)]
        if plan.problems:
            raise PlanError(plan)
        return plan

    # --- targets -------------------------------------------------------------------
    def _targets(self, raw) -> list[Target]:
        if not isinstance(raw, list) or not raw:
            self.problem(1, "expected at least one [[target]] with port, serial and drug")
            return []
        targets: list[Target] = []
        ports: dict[str, int] = {}
        serials: dict[str, int] = {}
        for i, t in enumerate(raw):
            number, line = i + 1, self.lines.header("target", i)
            if not isinstance(t, dict):
                self.problem(line, f"target {number}: expected a [[target]] table")
                continue
            for key in t:
                if key not in ("port", "serial", "drug"):
                    self.problem(self.lines.key(line, key), f"target {number}: unknown field {key!r}"
                                 f"{_did_you_mean(key, ('port', 'serial', 'drug'))} (expected port, serial, drug)")
            for key in ("port", "serial"):
                if not isinstance(t.get(key), str) or not t.get(key):
                    self.problem(line, f"target {number}: expected {key} = \"...\"")
            port, serial, drug = t.get("port"), t.get("serial"), t.get("drug")
            if isinstance(port, str) and port:
                if port in ports:
                    self.problem(self.lines.key(line, "port"),
                                 f"target {number}: port {port!r} already used by target {ports[port]}")
                ports.setdefault(port, number)
            if isinstance(serial, str) and serial:
                if serial in serials:
                    self.problem(self.lines.key(line, "serial"),
                                 f"target {number}: serial {serial!r} already used by target {serials[serial]} "
                                 "(the journal follows each pump by its serial number)")
                serials.setdefault(serial, number)
            code = None
            if drug is not None:
                entry = self.by_name.get(drug.lower()) if isinstance(drug, str) else None
                if entry is None:
                    self.problem(self.lines.key(line, "drug"), f"target {number}: {self._unknown_drug(drug)}")
                else:
                    code = entry.code
            targets.append(Target(number, str(port), str(serial), drug if isinstance(drug, str) else None,
                                  line, code))
        return targets

    def _unknown_drug(self, drug) -> str | None:  # a problem text (memoised with the others)
        if not isinstance(drug, str):
            return "drug must be a drug library name such as \"baclofen\""
        return self._memo_call(("unknown drug", drug), lambda: (
            f"drug {drug!r} is not in the drug library{_did_you_mean(drug.lower(), self.by_name)} "
            f"({', '.join(self.by_name)})"))

    # --- steps: their shape, and every value that does not depend on the drug -------------
    def _steps(self, raw) -> list[Step]:
        if not isinstance(raw, list) or not raw:
            self.problem(1, "expected at least one [[step]]")
            return []
        steps: list[Step] = []
        for i, s in enumerate(raw):
            number, line = i + 1, self.lines.header("step", i)
            if not isinstance(s, dict):
                self.problem(line, f"step {number}: expected a [[step]] table")
                continue
            step = self._step(number, line, s)
            if step is not None:
                steps.append(step)
        return steps

    def _step(self, number: int, line: int, s: dict) -> Step | None:
        lines = self.lines
        action = s.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            what = ("missing action" if action is None else f"unknown action {action!r}"
                    + (_did_you_mean(action, ACTIONS) if isinstance(action, str) else ""))
            self.problem(lines.key(line, "action"), f"step {number}: {what}; expected one of {', '.join(ACTIONS)}")
            return None
        step = Step(number, action, {}, line, {k: lines.key(line, k) for k in s})

        def say(key: str, message: str | None) -> None:
            if message:
                self.problem(step.line_of(key), f"step {number} ({action}): {message}")

        allowed, required = ACTIONS[action]
        for key in s:
            if key != "action" and key not in allowed:
                say(key, f"unknown field {key!r}{_did_you_mean(key, allowed)}"
                    + (f"; expected {', '.join(sorted(allowed))}" if allowed else "; it takes none"))
        for key in sorted(required - set(s)):
            self.problem(line, f"step {number} ({action}): missing field {key!r}")
        args: dict[str, Any] = {}
        for key, value in s.items():
            if key == "action" or key not in allowed:
                continue
            kind, example = _SHAPES[key]
            if key == "override_soft_limit" and not isinstance(value, dict):
                for message in parse_overrides(value)[1]:
                    say(key, message)
                continue
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                say(key, f"{key} must be {example}")
                continue
            args[key] = value
        step.args = args
        self._shape(step, args, say)
        if action == "program":
            self._program_shape(s, say)
        return step

    def _shape(self, step: Step, args: dict, say) -> None:
        from . import dosing, mri

        action = step.action
        if "override_soft_limit" in args:
            args["override_soft_limit"], problems = parse_overrides(args["override_soft_limit"])
            for problem in problems:
                say("override_soft_limit", problem)
        if "confirm" in args:
            args["confirm"], problems = parse_confirmations(args["confirm"], action)
            for problem in problems:
                say("confirm", problem)
        if action == "assert" and "check" in args:
            message = self._memo_call(("check", args["check"]), lambda: check_problem(args["check"]))
            if message:
                say("check", message)
        if "auto_exit" in args:
            message = self._try(("auto_exit", args["auto_exit"]), lambda: mri.parse_auto_exit(args["auto_exit"]))
            if message:
                say("auto_exit", message)
        if "field" in args:
            message = self._try(("field", args["field"]), lambda: mri.parse_field(args["field"]))
            if message:
                say("field", message)
        if "gradient" in args and not args["gradient"] > 0:
            say("gradient", f"gradient {args['gradient']!r} must be above 0 T/m")
        for key in ("volume", "withdrawn"):
            if key in args:
                message = self._try(("volume", args[key], key), lambda k=key: dosing.parse_volume(args[k], k))
                if message:
                    say(key, message)
        if action == "refill" and "volume" in args and self._value(("volume", args["volume"], "volume")) == 0:
            say("volume", "a refill of 0 mL is refused (to record an emptied pump use ithcli empty)")
        if "flow" in args:
            message = self._try(("flow", args["flow"]), lambda: dosing.parse_flow(args["flow"], "flow"))
            if message:
                say("flow", message)
        if action == "bolus" and "over" in args:
            message = self._try(("over", args["over"]), lambda: dosing.parse_duration(args["over"], "over"))
            seconds = self._value(("over", args["over"]))
            if message:
                say("over", message)
            elif not BOLUS_SECONDS[0] <= seconds <= BOLUS_SECONDS[1]:
                say("over", f"over {args['over']!r}: a bolus runs from 1 min to 24 h")
        # a dose or concentration is parsed in its drug's unit below; here, whatever the drug
        # (none named, or an unknown one), that it is a quantity at all
        for key, dimension in (("dose", "dose" if action == "bolus" else "dose_rate"),
                               ("concentration", "concentration")):
            if key in args:
                say(key, self._try((dimension, args[key]), lambda k=key, d=dimension: dosing._parse(args[k], d, k)))
        if action == "refill" and "drug" in args:
            entry = self.by_name.get(args["drug"].lower())
            if entry is None:
                say("drug", self._unknown_drug(args["drug"]))
            else:
                step.refill_drug_code = entry.code

    def _program_shape(self, s: dict, say) -> None:
        """Exactly one way to set the program (counted over the fields given, whatever their values)."""
        mode = s.get("mode") if isinstance(s.get("mode"), str) else None
        if s.get("stop") is False:
            say("stop", "stop = false does nothing: write stop = true or leave it out")
        ways = [k for k in ("dose", "flow", "stop") if k in s] + (
            [f"mode = {mode!r}" if mode else "mode"] if "mode" in s else [])
        if len(ways) != 1:
            say("action", 'give exactly one of dose, flow, stop = true, mode = "minimum", mode = "flex" with '
                "schedule" + (f" (got {', '.join(ways)})" if ways else ""))
        if mode is not None and mode not in ("flex", "minimum"):
            say("mode", f"mode {mode!r} must be \"flex\" (with schedule) or \"minimum\"; a continuous dose is "
                "dose = \"...\"")
        if mode == "flex" and "schedule" not in s:
            say("mode", 'mode = "flex" needs schedule = "FILE"')
        if "schedule" in s and mode != "flex":
            say("schedule", 'schedule goes with mode = "flex"')

    # --- the drug: required where doses are, and every value in its unit -------------------
    def _needs_drug(self, plan: Plan) -> None:
        dosing_steps = [s for s in plan.steps if s.carries_dose]
        if not dosing_steps:
            return
        names = ", ".join(f"{s.number} ({s.action})" for s in dosing_steps)
        which = f"step {names} carries" if len(dosing_steps) == 1 else f"steps {names} carry"
        example = next(iter(self.by_name), "baclofen")
        for t in plan.targets:
            if "drug" not in self.raw_targets[t.number - 1]:  # a wrong one is reported already
                self.problem(t.line, f"target {t.number} ({t.serial}): no drug: {which} a dose, a concentration or "
                             f"a bolus, so the plan must name the drug the pump holds (e.g. drug = \"{example}\")")

    def _values(self, plan: Plan) -> None:
        from . import dosing, limits

        starts = {t.drug_code for t in plan.targets if t.drug_code}
        for start in sorted(starts):
            code: str | None = start
            for step in plan.steps:
                entry = self.library.for_code(code) if code else None
                if entry is not None and step.carries_dose:
                    self._step_values(plan, step, entry, dosing, limits)
                if step.action == "refill" and "drug" in step.args:
                    code = step.refill_drug_code  # None (unknown drug, reported): later steps unchecked

    def _step_values(self, plan: Plan, step: Step, entry, dosing, limits) -> None:
        args, number, action = step.args, step.number, step.action

        def say(key: str, message: str | None) -> None:
            if message:
                self.problem(step.line_of(key), f"step {number} ({action}): {message}")

        overrides = args.get("override_soft_limit") or {}

        def refusals(key: str, findings) -> None:
            """Findings that refuse whatever the pump holds: a hard limit, or a soft one the
            step does not override (by its name in limits.OVERRIDE_NAMES)."""
            for f in findings:
                if f.level == "refuse":
                    say(key, f"{f.message}; it would be refused")
                name = getattr(f, "override", None)
                if f.level == "soft" and name and name not in overrides:
                    say(key, f"{f.message}; it needs override_soft_limit = {{ {name} = \"reason\" }}")

        code = entry.code
        if action == "program" and isinstance(args.get("dose"), str):
            text = args["dose"]
            say("dose", self._try(("rate", text, code), lambda: dosing.parse_dose_rate(text, entry, "dose")))
            dose = self._value(("rate", text, code))
            if dose is not None:
                refusals("dose", limits.check_daily_total(entry, dose))
        if action == "program" and isinstance(args.get("schedule"), str) and args.get("mode") == "flex":
            path = Path(args["schedule"])
            path = path if path.is_absolute() else Path(plan.path).parent / path
            say("schedule", self._try(("schedule", str(path), code), lambda: dosing.load_schedule(str(path), entry)))
            sched = self._value(("schedule", str(path), code))
            if sched is not None:
                total = dosing.plan_summary(sched, entry.concentrations_ng_per_ml[0])["daily_dose_ng_per_day"]
                refusals("schedule", limits.check_daily_total(entry, total, "the schedule's 24-hour total"))
        if action == "refill":
            new = self.library.for_code(step.refill_drug_code) if step.refill_drug_code else entry
            if "drug" in args and new is None:
                return  # an unknown drug, reported with its line
            if isinstance(args.get("concentration"), str):
                text = args["concentration"]
                say("concentration", self._try(("conc", text, new.code),
                                               lambda: dosing.parse_concentration(text, new, "concentration")))
                conc = self._value(("conc", text, new.code))
                if conc is not None:
                    refusals("concentration", limits.check_concentration(new, conc))
            if isinstance(args.get("dose"), str):
                text = args["dose"]
                say("dose", self._try(("rate", text, new.code), lambda: dosing.parse_dose_rate(text, new, "dose")))
                dose = self._value(("rate", text, new.code))
                if dose is not None:
                    refusals("dose", limits.check_daily_total(new, dose))
            elif new.code != code:
                say("drug", f"changing the drug from {entry.name} to {new.name} needs dose = \"...\" in "
                    f"{new.dose_unit}")
        if action == "bolus" and isinstance(args.get("dose"), str):
            text = args["dose"]
            say("dose", self._try(("mass", text, code), lambda: dosing.parse_dose(text, entry, "dose")))
            dose = self._value(("mass", text, code))
            if dose is not None and dose > entry.hard_max_ng_per_day:
                say("dose", f"a bolus of {limits.fmt(dose, entry.mass_unit)} alone is above the 24-hour hard limit "
                    f"{limits.fmt(entry.hard_max_ng_per_day, entry.dose_unit)} for {entry.name}; it would be refused")

    # --- each distinct value parsed once -----------------------------------------------
    def _try(self, key: tuple, parse) -> str | None:
        """Run parse once per key; the problem it raised (None if it parsed)."""
        if key not in self._memo:
            try:
                self._parsed[key] = parse()
                self._memo[key] = None
            except IthcliError as exc:
                self._parsed[key] = None
                self._memo[key] = exc.message
        return self._memo[key]

    def _memo_call(self, key: tuple, fn) -> str | None:
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def _value(self, key: tuple):
        """What _try's parse returned for key (None if it failed)."""
        return self._parsed.get(key)


class PlanError(UsageError):
    """Every problem of a plan, one per line after the first."""

    def __init__(self, plan: Plan):
        count = len(plan.problems)
        super().__init__(
            f"plan {plan.path} has {count} problem{'s' if count != 1 else ''}; nothing was sent:\n  "
            + "\n  ".join(plan.problems),
            details={"problems": plan.problems},
        )
        self.plan = plan
