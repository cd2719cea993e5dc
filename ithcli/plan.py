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

A plan may take its targets from a ward emulator's manifest (`ith-emulator --pumps N`
prints its path first): `targets_from = "ward.json"` in [plan] (relative to the plan)
makes every pump of it a target, after any [[target]] tables: its port the pump's URL,
its serial and its drug the manifest's (ithcli/plan_targets.py). A manifest that cannot
be read or is not one is a one-line error (exit 2); nothing is sent.

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
    program        exactly one of dose = "450 mcg/day" (or relative: "+10%", "-50 mcg/day"),
                   flow = "0.25 mL/day", stop = true, mode = "minimum", mode = "flex" with
                   schedule = "FILE" (relative to the plan)
    refill         volume, concentration (an allowed one of the drug), and
                   optionally drug (a new drug: then dose is needed), withdrawn, dose,
                   bridge = true | false (the choice a new drug or concentration needs on a
                   pump with a catheter recorded; preflight refuses the step without it)
    bolus          dose = "50 mcg", over = "30 min" (1 min to 24 h)
    priming-bolus  confirm = ["monitoring"] (required), over (default: the shortest the
                   mechanism allows); the volume is the pump's priming due, never written
    catheter       event = "implant" | "revise" | "correct", length = "80 cm" (cm or mm),
                   model = "STANDARD" (an implant needs it; else the recorded one),
                   replaced = "15 cm" (a revision, and only a revision)
    clock-set      to = "2030-03-01T08:00:00Z" (with its UTC offset; or a TOML offset
                   date-time), or nothing: this computer's time; confirm = ["clock-step"]
                   for a step over a day
    ptm-set        off = true, or all of dose = "0.2 mg", lockout = "60 min",
                   max_per_day = 4, duration = "10 min"
    mri-checklist  field = "1.5T" or "3T", gradient = T/m (a number), auto_exit = "4h"
    mri-enter      field, gradient, auto_exit, confirm = ["withdrawal-risk"]
    mri-exit, mri-verify

Write steps that carry a dose, a concentration or a bolus (program with dose, flow
or schedule; refill; bolus) need the target's drug: every such value is parsed in
that drug's own unit from the drug library (a mg/day dose of a mcg/day drug is
refused here, never converted), and preflight refuses a pump that holds another
drug before anything is sent to it. After a refill with drug = "...", the later
steps are checked in the new drug's unit.

program, refill, bolus, priming-bolus and ptm-set also take (ptm-set: overrides only):

    override_soft_limit = { NAME = "reason", ... }   NAME from limits.OVERRIDE_NAMES
        (DAILY_MAX, STEP, ...; any case, '-' or '_'): each reason overrides only the
        limit it names, and is audited. A bare string is refused.
    confirm = ["tenfold", ...]   limits.CONFIRM_FLAGS without "--confirm-"
        (tenfold, withdrawal-risk, restart, empty-before-visit, fill-gap; monitoring
        only for priming-bolus, clock-step only for clock-set): named in the plan, step
        by step. `batch run` shows the whole change and asks once (unless --yes); that one
        answer never stands in for any of these.

A program step's dose may be relative to the dose the pump delivers when the step runs
(ithcli/plan_relative.py): dose = "+10%" or "-25%", or a change in the drug's own unit,
"+50 mcg/day". The sign makes it relative. The result is exact, on the wire's grid (whole
ng/day, rounded toward the dose in force), shown as its own row and checked like any other
dose; a pump delivering nothing or running a flex or minimum program refuses it, and so does a
result at or below zero. Offline: what depends only on the change (the largest step in percent
or in the unit, a 10x change, a large cut of a withdrawal-risk drug) and what it needs.

Per-target values: a target may give its own values for any step, in a table named after the
step's number under the target (after its [[target]] lines):

    [[target]]
    port = "/dev/ttyUSB1"
    serial = "BAC-0002"
    drug = "baclofen"
    dose = "+5%"               # short for the plan's one program step: [target.step.N] dose

    [target.step.3]            # this target's own values for step 3
    volume = "20 mL"
    confirm = ["fill-gap"]

Any field the step's action takes, except drug (a refill's new drug is the plan's) and a
from_order step's (the order gives them). A value replaces the step's; for program, the way
of setting it (dose, flow, stop, mode, schedule) is replaced as a whole; confirm adds to the
step's list and override_soft_limit to its table (the target's reason for a name it repeats).
Each target's own step is checked whole (its problems named "target N (SERIAL), step M"); a
step every target gives values for may leave out what they give.

Orders (ithcli/orders.py): a target may name its prescriber's order, order = "FILE"
(relative to the plan; its pump must be the target's serial). Its program, refill or
bolus step (the order's kind; a target's order governs only that one) is then checked
against the order and the pump as `--order` does: a value the step gives must agree with
the order, and with from_order = true the step gives none and takes each target's own.
A run the clinic policy wants double-checked is verified whole: `ithcli batch run PLAN
--check-request FILE`, `ithcli verify FILE`, `ithcli batch run PLAN --verified-by FILE`.

Every problem in the file is collected and reported at once, each with its file,
line and what was expected (an unknown action is one problem among the others);
a plan with any problem touches no pump.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import plan_doses, plan_relative, plan_steps
from .errors import IthcliError, UsageError
from .orders import Order, load_order

# the drug-free value checks live in plan_checks; imported here under their old names
# (batch, tests and other tools import them from ithcli.plan)
from .plan_checks import (
    CONFIRMATIONS,
    STATUS_FIELDS,
    _did_you_mean,
    check_problem,
    check_value,
    evaluate_check,
    parse_check,
    parse_confirmations,
    parse_overrides,
)
from .plan_steps import ACTIONS, BOLUS_SECONDS, ORDERED_ACTIONS, SHAPES, WRITE_ACTIONS
from .plan_targets import manifest_targets

__all__ = ["ACTIONS", "BOLUS_SECONDS", "CONFIRMATIONS", "STATUS_FIELDS", "WRITE_ACTIONS", "Plan", "PlanError", "Step",
           "Target", "UsageError", "check_problem", "check_value", "evaluate_check", "load", "parse_check",
           "parse_confirmations", "parse_overrides"]

@dataclass
class Step:
    number: int
    action: str
    args: dict[str, Any]
    line: int  # of its [[step]] header
    key_lines: dict[str, int] = field(default_factory=dict)
    #: a refill that changes the drug: the new drug's library code
    refill_drug_code: str | None = None
    #: a target's own version of the step (its [target.step.N] values merged in): who it is for,
    #: as problems name it ("target 2 (BAC-0002), "), and the fields the target gave
    who: str = ""
    own: frozenset[str] = frozenset()

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    @property
    def label(self) -> str:
        """How problems and refusals name it: "step 2 (program)", "target 1 (P-1), step 2 (program)"."""
        return f"{self.who}step {self.number} ({self.action})"

    def reports(self, key: str) -> bool:
        """Whether a problem about `key` is this step's to report: a target's own version reports
        what the target gave and what the whole lacks; the step's own fields are the step's."""
        return not self.who or key in self.own or key == "action"

    @property
    def carries_dose(self) -> bool:
        """A write whose values are in a drug's unit or depend on its concentration (from_order: the
        order's values, checked against the pump when the step runs)."""
        if self.args.get("from_order"):
            return False
        if self.action == "program":
            return any(k in self.args for k in ("dose", "flow", "schedule"))
        if self.action == "ptm-set":
            return "dose" in self.args
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
    #: the prescriber's order for this pump (order = "FILE"), checked as `--order` does
    order: Order | None = None
    #: its own version of each step it gives values for ([target.step.N], or dose = for the one
    #: program step), by step number: Plan.step_for
    steps: dict[int, Step] = field(default_factory=dict)


@dataclass
class Plan:
    path: str
    name: str
    targets: list[Target]
    steps: list[Step]
    problems: list[str] = field(default_factory=list)

    def step_for(self, target: Target, step: Step) -> Step:
        """The step as it runs on this target: the target's own version, or the plan's."""
        return target.steps.get(step.number, step)

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

    def target_table(self, index: int, number: str) -> int:
        """The line of the index-th target's [target.step.N] header; else its `step = {...}` line
        (the inline form); else the target's own header line."""
        start = self.header("target", index)
        following = self.header("target", index + 1)
        end = following if following > start else len(self.lines) + 1
        pattern = re.compile(rf'^\s*\[\s*target\s*\.\s*step\s*\.\s*"?{re.escape(number)}"?\s*\]')
        found = next((n for n in range(start, end) if pattern.match(self.lines[n - 1])), None)
        return found if found is not None else self.key(start, "step")

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
        raw = data.get("step")
        self.raw_steps = [s if isinstance(s, dict) else {} for s in raw] if isinstance(raw, list) else []
        #: each target's own values ([target.step.N], dose = ...) by target number, then step number:
        #: (the values as written, the line of their table, the line of each value)
        self.target_values: dict[int, dict[int, tuple[dict, int, dict[str, int]]]] = {}
        #: the steps every target gives its own values for: each target's version is checked whole
        self.given_by_all: set[int] = set()
        self.listed_line = 1  # the line of [plan] targets_from: where its targets' problems are

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
        listed: list[dict] = []  # targets_from: every pump of a ward manifest (plan_targets.py)
        if isinstance(meta, dict):
            for key in meta:
                if key not in ("version", "name", "targets_from"):
                    self.problem(self.lines.key(at, key),
                                 f"[plan]: unknown field {key!r} (expected version, name, targets_from)")
            if "targets_from" in meta:
                line = self.lines.key(at, "targets_from")
                listed, wrong = manifest_targets(self.where, line, meta["targets_from"])
                if wrong:
                    self.problem(line, wrong)
                self.listed_line = line
                self.raw_targets = self.raw_targets + listed
            if "name" in meta:
                if isinstance(meta["name"], str):
                    name = meta["name"]
                else:
                    self.problem(self.lines.key(at, "name"), "[plan]: name must be a string")
        targets = self._targets(data.get("target"), listed)
        if targets and len(self.target_values) == len(targets):
            self.given_by_all = set.intersection(*(set(v) for v in self.target_values.values()))
        steps = self._steps(data.get("step"))
        plan = Plan(self.where, name, targets, steps)
        self._target_steps(plan)
        self._orders_fit(plan)
        # the drug: required where doses are, and every value in its unit (plan_doses)
        plan_doses.needs_drug(self, plan)
        plan_doses.check_values(self, plan)
        plan.problems = [f"{self.where}:{line}: {message}" for line, message in sorted(self.problems)]
        if plan.problems:
            raise PlanError(plan)
        return plan

    # --- targets -------------------------------------------------------------------
    def _targets(self, raw, listed: list[dict]) -> list[Target]:
        """The [[target]] tables, then the pumps of targets_from (each on that key's line)."""
        if raw is None and listed:
            raw = []
        if not isinstance(raw, list) or not (raw or listed):
            self.problem(1, "expected at least one [[target]] with port, serial and drug (or targets_from)")
            return []
        targets: list[Target] = []
        ports: dict[str, int] = {}
        serials: dict[str, int] = {}
        for i, t in enumerate(raw + listed):
            number = i + 1
            line = self.lines.header("target", i) if i < len(raw) else self.listed_line
            if not isinstance(t, dict):
                self.problem(line, f"target {number}: expected a [[target]] table")
                continue
            for key in t:
                if key not in TARGET_FIELDS:
                    self.problem(self.lines.key(line, key), f"target {number}: unknown field {key!r}"
                                 f"{_did_you_mean(key, TARGET_FIELDS)} (expected {', '.join(TARGET_FIELDS)})")
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
                                  line, code, self._order(number, line, t)))
            values = self._values(number, i, line, t)
            if values:
                self.target_values[number] = values
        return targets

    def _values(self, number: int, index: int, line: int, t: dict) -> dict[int, tuple[dict, int, dict[str, int]]]:
        """A target's own values, by step number: [target.step.N] tables, and dose = ... for the
        plan's one program step."""
        out: dict[int, tuple[dict, int, dict[str, int]]] = {}
        given = t.get("step")
        if given is not None and (not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values())):
            self.problem(self.lines.key(line, "step"), f"target {number}: its own values go in tables "
                         "[target.step.N] (N a step number) after its [[target]] lines")
        elif given is not None:
            for key, values in given.items():
                at = self.lines.target_table(index, str(key))
                if not str(key).isdigit() or int(key) < 1:
                    self.problem(at, f"target {number}: [target.step.{key}]: N must be a step number (1, 2, ...)")
                    continue
                out[int(key)] = (dict(values), at, {k: self.lines.key(at, k) for k in values})
        if "dose" in t:
            at = self.lines.key(line, "dose")
            programs = [n for n, s in enumerate(self.raw_steps, start=1) if s.get("action") == "program"]
            if len(programs) != 1:
                self.problem(at, f"target {number}: dose = ... is the dose of the plan's one program step, and it "
                             f"has {len(programs)}: give it for its step, [target.step.N] dose = ...")
                return out
            values, table, lines = out.get(programs[0], ({}, at, {}))
            if "dose" in values:
                self.problem(at, f"target {number}: the dose of step {programs[0]} is given twice (here and in "
                             f"[target.step.{programs[0]}])")
            else:
                out[programs[0]] = (values | {"dose": t["dose"]}, table, lines | {"dose": at})
        return out

    def _target_steps(self, plan: Plan) -> None:
        """Each target's own version of the steps it gives values for, checked whole."""
        by_number = {s.number: s for s in plan.steps}
        for t in plan.targets:
            for n, (given, at, lines) in sorted(self.target_values.get(t.number, {}).items()):
                step = by_number.get(n)
                if step is None:
                    if n > len(self.raw_steps):  # (an existing step that is wrong is reported as such)
                        self.problem(at, f"target {t.number} ({t.serial}): [target.step.{n}]: the plan has no step "
                                     f"{n} (it has {len(self.raw_steps)})")
                    continue
                who, raw = f"target {t.number} ({t.serial}), ", self.raw_steps[n - 1]
                if raw.get("from_order") is True:
                    self.problem(at, f"{who}{step.label}: from_order = true takes this target's values from its "
                                 "order: give none here")
                    continue
                refused = [k for k in given if k in _NOT_PER_TARGET and (k == "action" or k in ACTIONS[step.action][0])]
                for key in refused:  # (a field the action never takes is an unknown field, below)
                    self.problem(lines[key], f"{who}{step.label}: {key} cannot be given per target "
                                 f"({_NOT_PER_TARGET[key]})")
                own = {k: v for k, v in given.items() if k not in refused}
                key_lines = {k: step.line_of(k) for k in raw} | lines
                version = self._step(n, at, _merged(step.action, raw, own), who=who, own=frozenset(own),
                                     key_lines=key_lines)
                if version is not None:
                    t.steps[n] = version

    def _order(self, number: int, line: int, t: dict) -> Order | None:
        given = t.get("order")
        if given is None:
            return None
        at = self.lines.key(line, "order")
        if not isinstance(given, str) or not given:
            self.problem(at, f"target {number}: order must be \"FILE\" (an order file, relative to the plan)")
            return None
        try:
            order = load_order(Path(self.where).parent / given)
        except UsageError as exc:
            self.problem(at, f"target {number}: {exc.message}")
            return None
        if order.pump != t.get("serial"):
            self.problem(at, f"target {number}: {order.label} is for pump {order.pump}, not {t.get('serial')}")
        return order

    def _orders_fit(self, plan: Plan) -> None:
        """A target's order governs its one step of the order's kind; from_order needs every target's."""
        ordered = [s for s in plan.steps if s.action in ORDERED_ACTIONS]
        with_orders = [t for t in plan.targets if t.order is not None]
        if with_orders and len(ordered) > 1:
            self.problem(ordered[1].line, f"step {ordered[1].number} ({ordered[1].action}): a plan with orders has "
                         "one program, refill or bolus step (an order is one change)")
        for step in ordered:
            for t in plan.targets:
                if t.order is not None and t.order.kind != step.action:
                    self.problem(step.line, f"step {step.number} ({step.action}): target {t.number}'s "
                                 f"{t.order.label} orders a {t.order.kind}, not a {step.action}")
                elif step.args.get("from_order") and t.order is None:
                    self.problem(step.line, f"step {step.number} ({step.action}): from_order = true, but "
                                 f"target {t.number} ({t.serial}) names no order")

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

    def _step(self, number: int, line: int, s: dict, *, who: str = "", own: frozenset[str] = frozenset(),
              key_lines: dict[str, int] | None = None) -> Step | None:
        """A step as written (or, with `who`, a target's own version of it: `own` the fields the
        target gave, `key_lines` where each field is)."""
        lines = self.lines
        action = s.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            what = ("missing action" if action is None else f"unknown action {action!r}"
                    + (_did_you_mean(action, ACTIONS) if isinstance(action, str) else ""))
            self.problem(lines.key(line, "action"), f"step {number}: {what}; expected one of {', '.join(ACTIONS)}")
            return None
        step = Step(number, action, {}, line, key_lines if key_lines is not None else
                    {k: lines.key(line, k) for k in s}, who=who, own=own)
        # every target gives its own values for it: what the step lacks, each target's version is checked for
        whole = bool(who) or number not in self.given_by_all

        def say(key: str, message: str | None) -> None:
            if message and step.reports(key) and (whole or key != "action"):
                self.problem(step.line_of(key), f"{step.label}: {message}")

        allowed, required = ACTIONS[action]
        for key in s:
            if key != "action" and key not in allowed and (action, key) != ("bolus", "priming"):  # plan_steps says
                say(key, f"unknown field {key!r}{_did_you_mean(key, allowed)}"
                    + (f"; expected {', '.join(sorted(allowed))}" if allowed else "; it takes none"))
        for key in sorted(required - set(s)) if s.get("from_order") is not True and whole else ():
            self.problem(line, f"{step.label}: missing field {key!r}")
        args: dict[str, Any] = {}
        for key, value in s.items():
            if key == "action" or key not in allowed:
                continue
            kind, example = SHAPES[key]
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
        plan_steps.write_shape(action, s, args, say, self._try)
        if action == "program":
            plan_steps.program_shape(s, say)
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
        for key, dimension in (("dose", "dose" if action in ("bolus", "ptm-set") else "dose_rate"),
                               ("concentration", "concentration")):
            if key == "dose" and plan_relative.is_relative(args.get(key)):  # "+10%": a change, not a dose
                text = args[key]
                say(key, self._try(("relative", text), lambda t=text: plan_relative.parse(t)) if action == "program"
                    else f"dose {text!r}: a relative dose is for a program step; a {action}'s dose is the dose itself")
            elif key == "dose" and isinstance(args.get(key), str) and args[key].strip().endswith("%"):
                bare = args[key].strip()
                say(key, f"dose {bare!r}: a relative dose has its sign, \"+{bare}\" or \"-{bare}\""
                    if action == "program" else f"dose {bare!r}: a {action}'s dose is the dose itself, in its unit")
            elif key in args:
                say(key, self._try((dimension, args[key]), lambda k=key, d=dimension: dosing._parse(args[k], d, k)))
        if action == "refill" and "drug" in args:
            entry = self.by_name.get(args["drug"].lower())
            if entry is None:
                say("drug", self._unknown_drug(args["drug"]))
            else:
                step.refill_drug_code = entry.code

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


TARGET_FIELDS = ("port", "serial", "drug", "order", "dose", "step")
#: a step's fields a target cannot give its own value for, and why
_NOT_PER_TARGET = {"action": "a target runs the plan's steps", "drug": "a refill's new drug is the plan's, for every "
                   "target", "from_order": "an order is per target already"}
#: the ways of setting a program: a target that gives one replaces the step's
_PROGRAM_WAYS = ("dose", "flow", "stop", "mode", "schedule")


def _merged(action: str, raw: dict, given: dict) -> dict:
    """A step as written with a target's own values: each replaces the step's (a program's way of
    being set as a whole); confirm adds to the step's list, override_soft_limit to its table."""
    base = dict(raw)
    if action == "program" and any(k in given for k in _PROGRAM_WAYS):
        base = {k: v for k, v in base.items() if k not in _PROGRAM_WAYS}
    merged = base | given
    if isinstance(raw.get("confirm"), list) and isinstance(given.get("confirm"), list):
        merged["confirm"] = raw["confirm"] + [c for c in given["confirm"] if c not in raw["confirm"]]
    if isinstance(raw.get("override_soft_limit"), dict) and isinstance(given.get("override_soft_limit"), dict):
        def named(table: dict) -> dict:
            return {str(k).strip().upper().replace("-", "_"): v for k, v in table.items()}
        merged["override_soft_limit"] = named(raw["override_soft_limit"]) | named(given["override_soft_limit"])
    return merged


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
