"""Batch plan files: parsed and schema-checked before anything is sent.

A plan (TOML) names targets (a port and the serial number expected there) and
steps run on every target in order. Every problem in the file is collected and
reported at once, each with its file, line and what was expected; a plan with
any problem touches no pump.

    [plan]
    version = 1
    name = "Ward 3 baclofen concentration change"

    [[target]]
    port = "/dev/ttyUSB0"
    serial = "BAC-0001"
    drug = "baclofen"          # optional: checked offline and against the pump

    [[step]]
    action = "program"
    dose = "450 mcg/day"

    [[step]]
    action = "assert"
    check = "reservoir_ml >= 5"
"""
from __future__ import annotations

import operator
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

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
CONFIRMATIONS = {"tenfold": "--confirm-tenfold", "withdrawal-risk": "--confirm-withdrawal-risk",
                 "restart": "--confirm-restart"}
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
        "!=": operator.ne}
_CHECK = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


@dataclass
class Step:
    number: int
    action: str
    args: dict[str, Any]
    line: int  # of its [[step]] header
    key_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


@dataclass
class Target:
    number: int
    port: str
    serial: str
    drug: str | None
    line: int


@dataclass
class Plan:
    path: str
    name: str
    targets: list[Target]
    steps: list[Step]
    problems: list[str] = field(default_factory=list)


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

    def key(self, start: int, key: str) -> int:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, len(self.lines) + 1):
            line = self.lines[number - 1]
            if number > start and re.match(r"^\s*\[", line):
                break
            if pattern.match(line):
                return number
        return start


def parse_check(text: str) -> tuple[str, str, Any] | None:
    match = _CHECK.match(text)
    if not match:
        return None
    path, op, raw = match.groups()
    try:
        value: Any = float(raw) if "." in raw else int(raw)
    except ValueError:
        value = raw.strip("\"'")
    return path, op, value


def evaluate_check(check: str, status: dict) -> tuple[bool, Any]:
    """Evaluate 'reservoir_ml >= 5' against an interrogate result; (passed, actual)."""
    path, op, wanted = parse_check(check)
    value: Any = status
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise UsageError(f"assert {check!r}: status has no field {path!r}")
        value = value[part]
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    try:
        return bool(_OPS[op](value, wanted)), value
    except TypeError:
        return False, value


def load(path: str) -> Plan:
    """Parse and schema-check a plan; raise UsageError listing every problem."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"plan {where}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not valid TOML: {exc}") from None
    lines = _Lines(text)
    problems: list[str] = []

    def problem(line: int, message: str) -> None:
        problems.append(f"{where}:{line}: {message}")

    for key in data:
        if key not in ("plan", "target", "step"):
            problem(1, f"unknown table [{key}]; expected [plan], [[target]] and [[step]]")
    meta = data.get("plan", {})
    if not isinstance(meta, dict) or meta.get("version") != 1:
        problem(1, "expected [plan] with version = 1")
    targets: list[Target] = []
    raw_targets = data.get("target", [])
    if not isinstance(raw_targets, list) or not raw_targets:
        problem(1, "expected at least one [[target]] with port and serial")
        raw_targets = []
    seen_ports: dict[str, int] = {}
    for i, t in enumerate(raw_targets):
        line = lines.header("target", i)
        for key in t:
            if key not in ("port", "serial", "drug"):
                problem(lines.key(line, key), f"target {i + 1}: unknown field {key!r} (expected port, serial, drug)")
        for key in ("port", "serial"):
            if not isinstance(t.get(key), str) or not t.get(key):
                problem(line, f"target {i + 1}: expected {key} = \"...\"")
        port = t.get("port")
        if isinstance(port, str) and port in seen_ports:
            problem(lines.key(line, "port"), f"target {i + 1}: port {port!r} already used by target {seen_ports[port]}")
        elif isinstance(port, str):
            seen_ports[port] = i + 1
        drug = t.get("drug")
        if drug is not None and not isinstance(drug, str):
            problem(lines.key(line, "drug"), f"target {i + 1}: drug must be a name such as \"baclofen\"")
        targets.append(Target(i + 1, str(port), str(t.get("serial")), drug, line))
    steps: list[Step] = []
    raw_steps = data.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        problem(1, "expected at least one [[step]]")
        raw_steps = []
    for i, s in enumerate(raw_steps):
        line = lines.header("step", i)
        action = s.get("action")
        if action not in ACTIONS:
            problem(lines.key(line, "action"),
                    f"step {i + 1}: unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
            continue
        allowed, required = ACTIONS[action]
        for key in s:
            if key != "action" and key not in allowed:
                problem(lines.key(line, key), f"step {i + 1} ({action}): unknown field {key!r}"
                        + (f"; expected {', '.join(sorted(allowed))}" if allowed else ""))
        for key in sorted(required - set(s)):
            problem(line, f"step {i + 1} ({action}): missing field {key!r}")
        for key, value in s.items():
            if key in ("stop",):
                if not isinstance(value, bool):
                    problem(lines.key(line, key), f"step {i + 1}: {key} must be true or false")
            elif key == "confirm":
                if not isinstance(value, list) or any(v not in CONFIRMATIONS for v in value):
                    problem(lines.key(line, key),
                            f"step {i + 1}: confirm must be a list of {', '.join(CONFIRMATIONS)}")
            elif key == "gradient":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    problem(lines.key(line, key), f"step {i + 1}: gradient must be a number of T/m")
            elif key != "action" and not isinstance(value, str):
                problem(lines.key(line, key), f"step {i + 1}: {key} must be a string such as \"450 mcg/day\"")
        if isinstance(s.get("auto_exit"), str):
            from .mri import parse_auto_exit

            try:
                parse_auto_exit(s["auto_exit"])
            except UsageError as exc:
                problem(lines.key(line, "auto_exit"), f"step {i + 1} ({action}): {exc.message}")
        if isinstance(s.get("field"), str):
            from .mri import parse_field

            try:
                parse_field(s["field"])
            except UsageError as exc:
                problem(lines.key(line, "field"), f"step {i + 1} ({action}): {exc.message}")
        if action == "assert" and isinstance(s.get("check"), str) and parse_check(s["check"]) is None:
            problem(lines.key(line, "check"),
                    f"step {i + 1}: check {s['check']!r} must read FIELD OP VALUE, e.g. \"reservoir_ml >= 5\"")
        if action == "program":
            given = [k for k in ("dose", "flow", "stop", "mode") if k in s]
            if len(given) != 1 and not (set(given) == {"mode"} or given == ["mode"]):
                problem(line, f"step {i + 1} (program): give exactly one of dose, flow, stop, mode")
            if s.get("mode") == "flex" and "schedule" not in s:
                problem(line, f"step {i + 1} (program): mode = \"flex\" needs schedule = \"FILE\"")
            if s.get("mode") not in (None, "flex", "minimum"):
                problem(lines.key(line, "mode"), f"step {i + 1} (program): mode must be \"flex\" or \"minimum\"")
        steps.append(Step(i + 1, action, {k: v for k, v in s.items() if k != "action"}, line,
                          {k: lines.key(line, k) for k in s}))
    plan = Plan(where, str(meta.get("name", Path(where).stem)) if isinstance(meta, dict) else "", targets, steps,
                problems)
    if problems:
        raise PlanError(plan)
    return plan


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
