"""--ward FILE: a mixed ward in TOML, read into one option set per pump.

    [[pump]]                      # one table per pump (or per `count` identical pumps)
    model = "peristaltic-40"
    drug = "baclofen"
    concentration = "2000 mcg/mL"
    volume = "18 mL"
    flow = "0.25 mL/day"
    serial = "WARD-001"           # optional: else a new unique one (never with count > 1)
    count = 1                     # optional: this many pumps like it

Keys are the single-pump options' names without their dashes (model, drug, concentration,
volume, flow, serial, low-alarm, battery-days, stall-recovery, catheter-mm); an omitted one
takes the command line's value, else the single-pump default. Each value goes through the same
argparse type and choices as its option, so a refusal reads as the option's would, after
"FILE: pump N: " (N counts from 1 in file order, counts expanded).
"""
from __future__ import annotations

import argparse
import tomllib

#: what a [[pump]] table may hold besides `count`: the option names of emulator/__main__.py
KEYS = ("model", "drug", "concentration", "volume", "flow", "serial", "low-alarm", "battery-days",
        "stall-recovery", "catheter-mm")


class WardFileError(Exception):
    """The ward file cannot be used: one line, said as the option's own refusal would be."""


def read(parser: argparse.ArgumentParser, path: str, max_pumps: int) -> list[dict]:
    """One dict per pump: argparse dest -> parsed value, only for the keys its table gives."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise WardFileError(f"--ward {path}: cannot read it: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WardFileError(f"--ward {path}: not TOML: {exc}") from None
    unknown = sorted(set(data) - {"pump"})
    if unknown:
        raise WardFileError(f"--ward {path}: unknown table or key {unknown[0]!r} (a ward file holds [[pump]] tables)")
    tables = data.get("pump")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise WardFileError(f"--ward {path}: no pumps: give one [[pump]] table per pump")
    pumps: list[dict] = []
    for table in tables:
        where = f"--ward {path}: pump {len(pumps) + 1}: "
        count = _count(table.get("count", 1), where)
        options = _options(parser, table, where)
        if count > 1 and "serial" in options:
            raise WardFileError(f"{where}a serial belongs to one pump: drop 'serial' or 'count'")
        if len(pumps) + count > max_pumps:
            raise WardFileError(f"--ward {path}: more than {max_pumps} pumps")
        pumps += [dict(options) for _ in range(count)]
    _check_unique_serials(pumps, path)
    return pumps


def _count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise WardFileError(f"{where}'count' must be a whole number from 1")
    return value


def _options(parser: argparse.ArgumentParser, table: dict, where: str) -> dict:
    actions = {a.dest: a for a in parser._actions}
    options = {}
    for key, value in table.items():
        if key == "count":
            continue
        if key not in KEYS:
            raise WardFileError(f"{where}unknown key {key!r} (known: {', '.join(KEYS)}, count)")
        action = actions[key.replace("-", "_")]
        options[action.dest] = _parse(action, key, value, where)
    return options


def _parse(action: argparse.Action, key: str, value: object, where: str) -> object:
    """The value as its option would parse it, or the option's own message."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise WardFileError(f"{where}argument --{key}: give a string or a number, not {type(value).__name__}")
    text = str(value)
    try:
        parsed = action.type(text) if callable(action.type) else text
    except argparse.ArgumentTypeError as exc:
        raise WardFileError(f"{where}argument --{key}: {exc}") from None
    if action.choices is not None and parsed not in action.choices:
        choices = ", ".join(repr(c) for c in action.choices)
        raise WardFileError(f"{where}argument --{key}: invalid choice: {text!r} (choose from {choices})")
    return parsed


def _check_unique_serials(pumps: list[dict], path: str) -> None:
    seen: dict[str, int] = {}
    for number, options in enumerate(pumps, 1):
        serial = options.get("serial")
        if serial is None:
            continue
        if serial in seen:
            raise WardFileError(f"--ward {path}: pump {number}: serial {serial!r} is pump {seen[serial]}'s too")
        seen[serial] = number
