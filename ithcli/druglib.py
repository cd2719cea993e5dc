"""The drug library: per-drug units and limits, loaded from TOML and checked strictly.

The shipped library is ithcli/drug_library.toml; a clinic's own replaces it with
--drug-library FILE (env ITHCLI_DRUG_LIBRARY). A malformed library is refused
whole, with the file, the entry and the field named: a half-read library that
quietly dropped a limit would be worse than none.
"""
from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import NoReturn

from .errors import UsageError

DOSE_UNITS = ("mg/day", "mcg/day")


@dataclass(frozen=True)
class PatientBolusLimits:
    """The widest patient-bolus limits a clinician may program for a drug
    (docs/clinical.md#patient-boluses)."""

    max_dose_ng: int  # per activation
    min_lockout_s: int  # between two granted activations
    max_per_day: int  # granted in any rolling 24 hours


@dataclass(frozen=True)
class DrugEntry:
    name: str  # library key, e.g. "baclofen"
    code: str  # protocol Drug name, e.g. "BACLOFEN"
    dose_unit: str  # "mg/day" or "mcg/day"
    concentrations_ng_per_ml: tuple[int, ...]
    usual_start_ng_per_day: tuple[int, int]
    soft_max_ng_per_day: int
    hard_max_ng_per_day: int
    max_step_increase_ng_per_day: int | None
    max_step_increase_percent: Decimal | None
    max_increases_per_window: int | None
    window_days: int | None
    withdrawal_risk: bool
    sources: tuple[str, ...]
    # escalation budgets: (soft, hard) largest rise over a rolling window against the dose
    # in force at the window's start; percent of it, or absolute in ng/day (docs/clinical.md)
    rise_percent: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)  # window hours ->
    rise_absolute: dict[int, tuple[int, int]] = field(default_factory=dict)  # window hours -> ng/day
    #: baclofen: the 24-hour percent budget by spasticity origin ("spinal", "cerebral")
    rise_24h_percent_by_origin: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    hard_step_increase_ng_per_day: int | None = None
    hard_increases_per_window: int | None = None
    #: delivery interrupted longer than this: resume at or below the usual starting dose
    interruption_hours: int | None = None
    #: None: the library does not allow patient-activated boluses of this drug
    patient_bolus: PatientBolusLimits | None = None

    def rise_budgets(self, origin: str | None = None) -> list[tuple[int, str, tuple]]:
        """(window hours, "percent" or "absolute", (soft, hard)) for every budget of this drug;
        baclofen's 24-hour percent follows the spasticity origin, the stricter one when unknown."""
        percent = dict(self.rise_percent)
        if self.rise_24h_percent_by_origin:
            by = self.rise_24h_percent_by_origin
            if origin in by:
                percent[24] = by[origin]
            else:
                percent[24] = (min(s for s, _ in by.values()), min(h for _, h in by.values()))
        out: list[tuple[int, str, tuple]] = [(hours, "percent", limits) for hours, limits in percent.items()]
        out += [(hours, "absolute", limits) for hours, limits in self.rise_absolute.items()]
        return sorted(out, key=lambda b: (b[0], b[1]))

    @property
    def mass_unit(self) -> str:
        return self.dose_unit.split("/")[0]

    @property
    def concentration_unit(self) -> str:
        return f"{self.mass_unit}/mL"


@dataclass(frozen=True)
class DrugLibrary:
    path: str
    version: str
    name: str
    drugs: dict[str, DrugEntry]  # keyed by protocol Drug name

    def for_code(self, code: str) -> DrugEntry | None:
        return self.drugs.get(code)


def load(path: str | None = None) -> DrugLibrary:
    if path:
        where = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"drug library {where}: cannot read: {exc.strerror or exc}") from None
    else:
        where = "built-in drug_library.toml"
        raw = resources.files("ithcli").joinpath("drug_library.toml").read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"drug library {where}: not valid TOML: {exc}") from None
    return _parse(where, data)


def _parse(where: str, data: dict) -> DrugLibrary:
    def fail(entry: str, field: str, why: str) -> NoReturn:
        raise UsageError(f"drug library {where}: {entry}: field '{field}': {why}")

    meta = data.get("library")
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), str):
        fail("[library]", "version", "missing (a version string is required)")
    drugs_raw = data.get("drugs")
    if not isinstance(drugs_raw, dict) or not drugs_raw:
        fail("[drugs]", "drugs", "no drugs defined")
    drugs: dict[str, DrugEntry] = {}
    for name, entry in drugs_raw.items():
        parsed = _parse_entry(fail, name, entry)
        if parsed.code in drugs:
            fail(f"drugs.{name}", "code", f"{parsed.code} is defined twice")
        drugs[parsed.code] = parsed
    return DrugLibrary(where, meta["version"], str(meta.get("name", "")), drugs)


#: the fields a drug entry may have
_ENTRY_FIELDS = frozenset({
    "code", "dose_unit", "concentrations", "usual_start", "soft_max_daily", "hard_max_daily",
    "max_step_increase", "max_step_increase_percent", "max_increases_per_window",
    "window_days", "withdrawal_risk", "sources", "rise_24h_percent", "rise_7d_percent", "rise_24h",
    "rise_7d", "rise_24h_percent_by_origin", "hard_step_increase", "hard_increases_per_window",
    "interruption_hours", "patient_bolus",
})


def _parse_entry(fail: Callable[[str, str, str], NoReturn], name: str, entry: object) -> DrugEntry:
    """One [drugs.NAME] table, checked whole (the caller checks codes across entries).

    Its fields are checked in a fixed order, so a library with several faults is always
    refused for the same one."""
    label = f"drugs.{name}"
    if not isinstance(entry, dict):
        fail(label, name, "expected a table")
    for key in entry:
        if key not in _ENTRY_FIELDS:
            fail(label, key, "unknown field (typo?)")
    fields = _EntryFields(fail, label, entry)
    code, unit = _code_and_unit(fields)
    conc_values, start_values = _concentrations_and_start(fields, unit)
    soft, hard = _daily_maxima(fields, unit)
    step, pct = _step_limits(fields, unit)
    per_window, window = _increase_window(fields)
    risk = fields.need("withdrawal_risk", bool)
    sources = fields.entry.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        fields.fail("sources", "expected a list of strings")
    rise_percent, rise_absolute = _rise_budgets(fields, unit)
    by_origin = _rise_by_origin(fields)
    hard_step, hard_per_window, interruption = _hard_limits(fields, unit, step=step, per_window=per_window,
                                                            window=window)
    return DrugEntry(
        name=name, code=code, dose_unit=unit, concentrations_ng_per_ml=conc_values,
        usual_start_ng_per_day=start_values, soft_max_ng_per_day=soft, hard_max_ng_per_day=hard,
        max_step_increase_ng_per_day=step, max_step_increase_percent=pct,
        max_increases_per_window=per_window, window_days=window, withdrawal_risk=risk,
        sources=tuple(sources), rise_percent=rise_percent, rise_absolute=rise_absolute,
        rise_24h_percent_by_origin=by_origin, hard_step_increase_ng_per_day=hard_step,
        hard_increases_per_window=hard_per_window, interruption_hours=interruption,
        patient_bolus=_patient_bolus(fields, unit),
    )


class _EntryFields:
    """One drug entry's fields, read with their checks: any fault refuses the whole library."""

    def __init__(self, fail: Callable[[str, str, str], NoReturn], label: str, entry: dict):
        self._fail = fail
        self.label = label  # "drugs.NAME", as the refusal names the entry
        self.entry = entry

    def fail(self, field: str, why: str) -> NoReturn:
        self._fail(self.label, field, why)

    def need(self, field, kind):
        """A required field of this type (a bool is not taken for an int)."""
        entry = self.entry
        if field not in entry:
            self.fail(field, "missing")
        if not isinstance(entry[field], kind) or isinstance(entry[field], bool) and kind is not bool:
            self.fail(field, f"expected {kind.__name__}, got {entry[field]!r}")
        return entry[field]

    def qty(self, field, dimension, text=None, unit=None):
        """A quantity in base units: the field's own text, or `text` (an item of a list field)."""
        from protocol import Quantity, UnitError

        text = self.entry.get(field) if text is None else text
        if not isinstance(text, str):
            self.fail(field, f"expected a quantity such as '1 {unit or 'mg/day'}', got {text!r}")
        try:
            q = Quantity.parse(text, dimension)
            value = q.to_base()
        except UnitError as exc:
            self.fail(field, str(exc))
        if unit and q.unit != unit:
            self.fail(field, f"{text!r} must be in {unit}, the drug's own unit")
        return value

    def pair(self, field, value, parse):
        """[soft, hard], each read by parse, the soft one not above the hard one."""
        if not isinstance(value, list) or len(value) != 2:
            self.fail(field, f"expected [soft, hard], got {value!r}")
        soft_v, hard_v = (parse(v) for v in value)
        if soft_v > hard_v:
            self.fail(field, "the soft value is above the hard one")
        return soft_v, hard_v

    def percent(self, field):
        """A reader of one percentage of `field`, in (0, 1000]."""
        def parse(v):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1000:
                self.fail(field, f"expected percentages in (0, 1000], got {v!r}")
            return Decimal(str(v))
        return parse

    def whole(self, field, value) -> None:
        """A count given (not None) must be a whole number >= 1."""
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            self.fail(field, f"expected a whole number >= 1, got {value!r}")


def _code_and_unit(fields: _EntryFields) -> tuple[str, str]:
    from protocol import Drug

    code = fields.need("code", str)
    if code not in Drug.__members__ or code == "NONE":
        fields.fail("code", f"unknown drug code {code!r}")
    unit = fields.need("dose_unit", str)
    if unit not in DOSE_UNITS:
        fields.fail("dose_unit", f"must be one of {', '.join(DOSE_UNITS)}, got {unit!r}")
    return code, unit


def _concentrations_and_start(fields: _EntryFields, unit: str) -> tuple[tuple[int, ...], tuple[int, int]]:
    """The allowed concentrations (ng/mL) and the usual starting dose [low, high] (ng/day)."""
    conc_unit = unit.split("/")[0] + "/mL"
    concs = fields.need("concentrations", list)
    if not concs:
        fields.fail("concentrations", "empty: at least one allowed concentration is required")
    conc_values = tuple(fields.qty("concentrations", "concentration", c, conc_unit) for c in concs)
    start = fields.need("usual_start", list)
    if len(start) != 2:
        fields.fail("usual_start", "expected [low, high]")
    low, high = (fields.qty("usual_start", "dose_rate", s, unit) for s in start)
    return conc_values, (low, high)


def _daily_maxima(fields: _EntryFields, unit: str) -> tuple[int, int]:
    soft = fields.qty("soft_max_daily", "dose_rate", unit=unit)
    hard = fields.qty("hard_max_daily", "dose_rate", unit=unit)
    if soft > hard:
        fields.fail("soft_max_daily", "is above hard_max_daily")
    if hard <= 0:
        fields.fail("hard_max_daily", "must be above zero")
    return soft, hard


def _step_limits(fields: _EntryFields, unit: str) -> tuple[int | None, Decimal | None]:
    """The largest single increase: absolute (ng/day) and as a percent, each optional."""
    entry = fields.entry
    step = fields.qty("max_step_increase", "dose_rate", unit=unit) if "max_step_increase" in entry else None
    pct = None
    if "max_step_increase_percent" in entry:
        raw_pct = entry["max_step_increase_percent"]
        if isinstance(raw_pct, bool) or not isinstance(raw_pct, (int, float)) or not 0 < raw_pct <= 1000:
            fields.fail("max_step_increase_percent", f"expected a number in (0, 1000], got {raw_pct!r}")
        pct = Decimal(str(raw_pct))
    return step, pct


def _increase_window(fields: _EntryFields) -> tuple[int | None, int | None]:
    """The soft limit on increases and the window (days) they are counted over: both or neither."""
    entry = fields.entry
    per_window = entry.get("max_increases_per_window")
    window = entry.get("window_days")
    if (per_window is None and "hard_increases_per_window" not in entry) != (window is None):
        fields.fail("window_days", "max_increases_per_window (or hard_increases_per_window) and window_days "
                    "go together")
    for key, value in (("max_increases_per_window", per_window), ("window_days", window)):
        fields.whole(key, value)
    return per_window, window


def _rise_budgets(fields: _EntryFields, unit: str) -> tuple[dict, dict]:
    """Escalation budgets by window hours: percent ones and absolute ones (ng/day)."""
    entry = fields.entry
    rise_percent, rise_absolute = {}, {}
    for hours, suffix in ((24, "24h"), (168, "7d")):
        if f"rise_{suffix}_percent" in entry:
            rise_percent[hours] = fields.pair(f"rise_{suffix}_percent", entry[f"rise_{suffix}_percent"],
                                              fields.percent(f"rise_{suffix}_percent"))
        if f"rise_{suffix}" in entry:
            rise_absolute[hours] = fields.pair(f"rise_{suffix}", entry[f"rise_{suffix}"],
                                               lambda v, f=f"rise_{suffix}": fields.qty(f, "dose_rate", v, unit))
    return rise_percent, rise_absolute


def _rise_by_origin(fields: _EntryFields) -> dict:
    """Baclofen's 24-hour percent budget by spasticity origin, instead of rise_24h_percent."""
    entry = fields.entry
    if "rise_24h_percent_by_origin" not in entry:
        return {}
    raw_by = entry["rise_24h_percent_by_origin"]
    if not isinstance(raw_by, dict) or set(raw_by) != {"spinal", "cerebral"}:
        fields.fail("rise_24h_percent_by_origin", "expected a table with spinal and cerebral")
    if "rise_24h_percent" in entry:
        fields.fail("rise_24h_percent", "give either it or rise_24h_percent_by_origin")
    return {k: fields.pair("rise_24h_percent_by_origin", v, fields.percent("rise_24h_percent_by_origin"))
            for k, v in raw_by.items()}


def _hard_limits(fields: _EntryFields, unit: str, *, step: int | None, per_window: int | None,
                 window: int | None) -> tuple[int | None, int | None, int | None]:
    """The hard step and increase-count limits (never below their soft ones) and the
    interruption length after which delivery resumes at the starting dose."""
    entry = fields.entry
    hard_step = (fields.qty("hard_step_increase", "dose_rate", unit=unit) if "hard_step_increase" in entry else None)
    if hard_step is not None and step is not None and step > hard_step:
        fields.fail("max_step_increase", "is above hard_step_increase")
    hard_per_window = entry.get("hard_increases_per_window")
    interruption = entry.get("interruption_hours")
    for key, value in (("hard_increases_per_window", hard_per_window), ("interruption_hours", interruption)):
        fields.whole(key, value)
    if hard_per_window is not None and window is None:
        fields.fail("hard_increases_per_window", "needs window_days")
    if hard_per_window is not None and per_window is not None and per_window > hard_per_window:
        fields.fail("max_increases_per_window", "is above hard_increases_per_window")
    return hard_step, hard_per_window, interruption


def _patient_bolus(fields: _EntryFields, unit: str) -> PatientBolusLimits | None:
    """`patient_bolus = false` (or absent: not allowed), or the widest limits a clinician may set:
    { max_dose = "0.5 mg", min_lockout_minutes = 60, max_per_day = 6 }."""
    raw = fields.entry.get("patient_bolus", False)
    if raw is False:
        return None
    keys = {"max_dose", "min_lockout_minutes", "max_per_day"}
    if not isinstance(raw, dict) or set(raw) != keys:
        fields.fail("patient_bolus", f"expected false or a table with {', '.join(sorted(keys))}, got {raw!r}")
    dose = fields.qty("patient_bolus", "dose", text=raw["max_dose"], unit=unit.split("/")[0])
    if dose <= 0:
        fields.fail("patient_bolus", "max_dose must be above zero")
    for key in ("min_lockout_minutes", "max_per_day"):
        fields.whole("patient_bolus", raw[key])
    if raw["max_per_day"] > 24:
        fields.fail("patient_bolus", f"max_per_day is at most 24, got {raw['max_per_day']}")
    return PatientBolusLimits(max_dose_ng=dose, min_lockout_s=raw["min_lockout_minutes"] * 60,
                              max_per_day=raw["max_per_day"])
