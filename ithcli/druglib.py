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
    "interruption_hours",
})


def _parse_entry(fail: Callable[[str, str, str], NoReturn], name: str, entry: object) -> DrugEntry:
    """One [drugs.NAME] table, checked whole (the caller checks codes across entries)."""
    from protocol import Drug, Quantity, UnitError

    label = f"drugs.{name}"
    if not isinstance(entry, dict):
        fail(label, name, "expected a table")
    for key in entry:
        if key not in _ENTRY_FIELDS:
            fail(label, key, "unknown field (typo?)")

    def need(field, kind):
        if field not in entry:
            fail(label, field, "missing")
        if not isinstance(entry[field], kind) or isinstance(entry[field], bool) and kind is not bool:
            fail(label, field, f"expected {kind.__name__}, got {entry[field]!r}")
        return entry[field]

    def qty(field, dimension, text=None, unit=None):
        text = entry.get(field) if text is None else text
        if not isinstance(text, str):
            fail(label, field, f"expected a quantity such as '1 {unit or 'mg/day'}', got {text!r}")
        try:
            q = Quantity.parse(text, dimension)
            value = q.to_base()
        except UnitError as exc:
            fail(label, field, str(exc))
        if unit and q.unit != unit:
            fail(label, field, f"{text!r} must be in {unit}, the drug's own unit")
        return value

    code = need("code", str)
    if code not in Drug.__members__ or code == "NONE":
        fail(label, "code", f"unknown drug code {code!r}")
    unit = need("dose_unit", str)
    if unit not in DOSE_UNITS:
        fail(label, "dose_unit", f"must be one of {', '.join(DOSE_UNITS)}, got {unit!r}")
    conc_unit = unit.split("/")[0] + "/mL"
    concs = need("concentrations", list)
    if not concs:
        fail(label, "concentrations", "empty: at least one allowed concentration is required")
    conc_values = tuple(qty("concentrations", "concentration", c, conc_unit) for c in concs)
    start = need("usual_start", list)
    if len(start) != 2:
        fail(label, "usual_start", "expected [low, high]")
    start_values = tuple(qty("usual_start", "dose_rate", s, unit) for s in start)
    soft = qty("soft_max_daily", "dose_rate", unit=unit)
    hard = qty("hard_max_daily", "dose_rate", unit=unit)
    if soft > hard:
        fail(label, "soft_max_daily", "is above hard_max_daily")
    if hard <= 0:
        fail(label, "hard_max_daily", "must be above zero")
    step = qty("max_step_increase", "dose_rate", unit=unit) if "max_step_increase" in entry else None
    pct = None
    if "max_step_increase_percent" in entry:
        raw_pct = entry["max_step_increase_percent"]
        if isinstance(raw_pct, bool) or not isinstance(raw_pct, (int, float)) or not 0 < raw_pct <= 1000:
            fail(label, "max_step_increase_percent", f"expected a number in (0, 1000], got {raw_pct!r}")
        pct = Decimal(str(raw_pct))
    per_window = entry.get("max_increases_per_window")
    window = entry.get("window_days")
    if (per_window is None and "hard_increases_per_window" not in entry) != (window is None):
        fail(label, "window_days", "max_increases_per_window (or hard_increases_per_window) and window_days "
             "go together")
    for key, value in (("max_increases_per_window", per_window), ("window_days", window)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            fail(label, key, f"expected a whole number >= 1, got {value!r}")
    risk = need("withdrawal_risk", bool)
    sources = entry.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        fail(label, "sources", "expected a list of strings")
    def pair(field, value, parse):
        if not isinstance(value, list) or len(value) != 2:
            fail(label, field, f"expected [soft, hard], got {value!r}")
        soft_v, hard_v = (parse(v) for v in value)
        if soft_v > hard_v:
            fail(label, field, "the soft value is above the hard one")
        return soft_v, hard_v

    def percent(field):
        def parse(v):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1000:
                fail(label, field, f"expected percentages in (0, 1000], got {v!r}")
            return Decimal(str(v))
        return parse

    rise_percent, rise_absolute = {}, {}
    for hours, suffix in ((24, "24h"), (168, "7d")):
        if f"rise_{suffix}_percent" in entry:
            rise_percent[hours] = pair(f"rise_{suffix}_percent", entry[f"rise_{suffix}_percent"],
                                       percent(f"rise_{suffix}_percent"))
        if f"rise_{suffix}" in entry:
            rise_absolute[hours] = pair(f"rise_{suffix}", entry[f"rise_{suffix}"],
                                        lambda v, f=f"rise_{suffix}": qty(f, "dose_rate", v, unit))
    by_origin = {}
    if "rise_24h_percent_by_origin" in entry:
        raw_by = entry["rise_24h_percent_by_origin"]
        if not isinstance(raw_by, dict) or set(raw_by) != {"spinal", "cerebral"}:
            fail(label, "rise_24h_percent_by_origin", "expected a table with spinal and cerebral")
        if "rise_24h_percent" in entry:
            fail(label, "rise_24h_percent", "give either it or rise_24h_percent_by_origin")
        by_origin = {k: pair("rise_24h_percent_by_origin", v, percent("rise_24h_percent_by_origin"))
                     for k, v in raw_by.items()}
    hard_step = (qty("hard_step_increase", "dose_rate", unit=unit) if "hard_step_increase" in entry else None)
    if hard_step is not None and step is not None and step > hard_step:
        fail(label, "max_step_increase", "is above hard_step_increase")
    hard_per_window = entry.get("hard_increases_per_window")
    interruption = entry.get("interruption_hours")
    for key, value in (("hard_increases_per_window", hard_per_window), ("interruption_hours", interruption)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            fail(label, key, f"expected a whole number >= 1, got {value!r}")
    if hard_per_window is not None and window is None:
        fail(label, "hard_increases_per_window", "needs window_days")
    if hard_per_window is not None and per_window is not None and per_window > hard_per_window:
        fail(label, "max_increases_per_window", "is above hard_increases_per_window")
    return DrugEntry(
        name=name, code=code, dose_unit=unit, concentrations_ng_per_ml=conc_values,
        usual_start_ng_per_day=start_values, soft_max_ng_per_day=soft, hard_max_ng_per_day=hard,
        max_step_increase_ng_per_day=step, max_step_increase_percent=pct,
        max_increases_per_window=per_window, window_days=window, withdrawal_risk=risk,
        sources=tuple(sources), rise_percent=rise_percent, rise_absolute=rise_absolute,
        rise_24h_percent_by_origin=by_origin, hard_step_increase_ng_per_day=hard_step,
        hard_increases_per_window=hard_per_window, interruption_hours=interruption,
    )
