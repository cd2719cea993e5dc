"""Orders: what the prescriber decided, in a file, checked against the pump before anything else.

    [order]
    version = 1
    id = "RX-2026-1142"               # the clinic's order number
    patient = "MRN-0042117"           # the patient's identifier, as recorded on the pump
    pump = "BAC-0001"                 # the pump's serial number
    drug = "baclofen"                 # drug library name
    concentration = "500 mcg/mL"      # program/bolus: what the pump holds; refill: the syringe
    prescriber = "Dr Ada Prescriber"
    written = 2026-11-30              # TOML dates; valid from `written` to `valid_until`, inclusive
    valid_until = 2026-12-14

    [program]                         # exactly one of [program], [refill], [bolus]
    dose = "450 mcg/day"              # or flow = "...", stop = true, mode = "minimum",
                                      # mode = "flex" with schedule = "FILE" (relative to the order)
    [refill]
    volume = "20 mL"
    dose = "450 mcg/day"              # optional: the program with the new contents
    previous_drug = "morphine"        # a change of drug or concentration: what the pump holds
    previous_concentration = "10 mg/mL"   #   now (absent: the pump must hold the order's)
    bridge = true                     # optional: the bridge-bolus choice of a change

    [bolus]
    dose = "50 mcg"
    over = "30 min"

    [overrides]                       # soft limits the prescriber authorises, with reasons
    RISE_24H = "titration agreed at the 11-28 review"

`ithcli program|refill|bolus --order FILE` loads it (load_order), refuses an order out
of its dates (check_dates), reads the pump and refuses a mismatch of serial, patient,
drug or concentration, naming each (check_pump), and then programs exactly the order:
an option given on the command line that differs from it is refused (arguments). The
order's content and the SHA-256 of its file go into the audit log (audit_record).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol import Quantity, UnitError

from .errors import SafetyError, UsageError
from .limits import OVERRIDE_NAMES, normalise_override

if TYPE_CHECKING:
    from .druglib import DrugLibrary
    from .therapy_change import PumpState

KINDS = ("program", "refill", "bolus")
_HEAD = {"version", "id", "patient", "pump", "drug", "concentration", "prescriber", "written", "valid_until"}
#: each kind's fields, and the dimension a quantity among them is parsed in (None: not a quantity)
_FIELDS: dict[str, dict[str, str | None]] = {
    "program": {"dose": "dose_rate", "flow": "flow", "stop": None, "mode": None, "schedule": None},
    "refill": {"volume": "volume", "dose": "dose_rate", "previous_drug": None, "previous_concentration":
               "concentration", "bridge": None},
    "bolus": {"dose": "dose", "over": "duration"},
}


@dataclass(frozen=True)
class Order:
    path: str
    sha256: str  # of the order file's bytes
    id: str
    patient: str
    pump: str
    drug: str  # drug library name, lower case
    concentration: str
    prescriber: str
    written: dt.date
    valid_until: dt.date
    kind: str  # "program", "refill" or "bolus"
    change: dict[str, Any]  # the kind's table, as written
    overrides: dict[str, str]  # NAME -> the prescriber's reason
    schedule_sha256: str | None = None  # a flex program's schedule file
    content: dict[str, Any] = field(default_factory=dict)  # the whole file, as plain data (audit)

    @property
    def label(self) -> str:
        return f"order {self.id}"


def load_order(path: str | os.PathLike[str]) -> Order:
    """Read and check an order file whole; UsageError naming the file and every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"order {path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"order {path}: not valid TOML: {exc}") from None
    problems: list[str] = []
    head = _head(data, problems)
    kind, change = _change(data, problems)
    overrides = _overrides(data.get("overrides", {}), problems)
    for key in data:
        if key not in ("order", "overrides", *KINDS):
            problems.append(f"unknown table [{key}]")
    schedule_sha = None
    if kind == "program" and isinstance(change.get("schedule"), str):
        schedule = path.parent / change["schedule"]
        change = {**change, "schedule": str(schedule)}
        try:
            schedule_sha = hashlib.sha256(schedule.read_bytes()).hexdigest()
        except OSError as exc:
            problems.append(f"[program] schedule {schedule}: cannot read: {exc.strerror or exc}")
    if problems:
        raise UsageError(f"order {path}: " + "; ".join(problems) + ". Nothing was sent")
    return Order(str(path), hashlib.sha256(raw).hexdigest(), head["id"], head["patient"], head["pump"],
                 head["drug"].lower(), head["concentration"], head["prescriber"], head["written"],
                 head["valid_until"], kind, change, overrides, schedule_sha, _plain(data))


def _head(data: dict, problems: list[str]) -> dict[str, Any]:
    head = data.get("order")
    if not isinstance(head, dict):
        problems.append("an [order] table is required")
        return {}
    if head.get("version") != 1:
        problems.append("[order] version = 1 is required")
    for key in head:
        if key not in _HEAD:
            problems.append(f"[order] {key}: unknown field")
    for key in ("id", "patient", "pump", "drug", "concentration", "prescriber"):
        if not isinstance(head.get(key), str) or not head[key].strip():
            problems.append(f"[order] {key}: required (a string)")
    for key in ("written", "valid_until"):
        if type(head.get(key)) is not dt.date:
            problems.append(f"[order] {key}: required (a TOML date, e.g. 2026-12-01)")
    if not problems and head["valid_until"] < head["written"]:
        problems.append("[order] valid_until is before written")
    if isinstance(head.get("concentration"), str):
        _quantity(head["concentration"], "concentration", "[order] concentration", problems)
    return head


def _change(data: dict, problems: list[str]) -> tuple[str, dict[str, Any]]:
    kinds = [k for k in KINDS if k in data]
    if len(kinds) != 1:
        problems.append("exactly one of [program], [refill], [bolus] is required"
                        + (f" (got {', '.join(kinds)})" if kinds else ""))
        return "", {}
    kind, change = kinds[0], data[kinds[0]]
    if not isinstance(change, dict):
        problems.append(f"[{kind}] must be a table")
        return kind, {}
    for key, value in change.items():
        if key not in _FIELDS[kind]:
            problems.append(f"[{kind}] {key}: unknown field (known: {', '.join(_FIELDS[kind])})")
        elif key in ("stop", "bridge"):
            if not isinstance(value, bool):
                problems.append(f"[{kind}] {key}: expected true or false")
        elif not isinstance(value, str):
            problems.append(f"[{kind}] {key}: expected a string")
        elif _FIELDS[kind][key]:
            _quantity(value, str(_FIELDS[kind][key]), f"[{kind}] {key}", problems)
    needed = {"refill": ("volume",), "bolus": ("dose", "over")}.get(kind, ())
    problems += [f"[{kind}] {key}: required" for key in needed if key not in change]
    if kind == "refill" and ("previous_drug" in change) != ("previous_concentration" in change) \
            and "previous_concentration" not in change:
        problems.append("[refill] previous_drug needs previous_concentration")
    return kind, change


def _overrides(table: object, problems: list[str]) -> dict[str, str]:
    if not isinstance(table, dict):
        problems.append("[overrides] must be a table of NAME = \"reason\"")
        return {}
    out = {}
    for name, reason in table.items():
        key = normalise_override(name)
        if key not in OVERRIDE_NAMES:
            problems.append(f"[overrides] {name}: not a soft limit (names: {', '.join(OVERRIDE_NAMES)})")
        elif not isinstance(reason, str) or not reason.strip():
            problems.append(f"[overrides] {name}: the prescriber's reason is required (a string)")
        else:
            out[key] = reason.strip()
    return out


def _quantity(text: str, dimension: str, where: str, problems: list[str]) -> Quantity | None:
    try:
        return Quantity.parse(text, dimension)
    except UnitError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _plain(value: Any) -> Any:
    """TOML data as JSON-able data (dates as ISO text), for the audit log."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


# --- checks --------------------------------------------------------------------

def check_dates(order: Order, today: dt.date | None = None) -> None:
    """Refuse an order not yet written or past its validity (this computer's calendar date)."""
    today = today or dt.date.today()
    if today < order.written:
        raise SafetyError(f"{order.label} is dated {order.written}, after today ({today}): refused. Nothing was sent")
    if today > order.valid_until:
        raise SafetyError(f"{order.label} expired on {order.valid_until} (today is {today}): ask the prescriber "
                          "for a new order. Nothing was sent")


def check_kind(order: Order, kind: str) -> None:
    if order.kind != kind:
        raise UsageError(f"{order.label} ({order.path}) orders a {order.kind}, not a {kind}. Nothing was sent")


def check_pump(order: Order, state: PumpState, library: DrugLibrary) -> None:
    """The pump against the order before any other check: its serial, the patient recorded on it,
    the drug and the concentration it holds. Every mismatch is named; SafetyError when any."""
    raw = state.raw
    found: list[str] = []
    if raw.serial_number != order.pump:
        found.append(f"pump serial {raw.serial_number} (the order's: {order.pump})")
    patient = _patient_id(raw)
    if patient is None:
        found.append(f"no patient is recorded on the pump (the order's: {order.patient}; record it with "
                     "`ithcli patient set`)")
    elif patient != order.patient:
        found.append(f"patient {patient} on the pump (the order's: {order.patient})")
    holds_drug, holds_conc = order.drug, order.concentration
    if order.kind == "refill" and "previous_drug" in order.change:
        holds_drug = str(order.change["previous_drug"]).lower()
        holds_conc = str(order.change["previous_concentration"])
    elif order.kind == "refill" and "previous_concentration" in order.change:
        holds_conc = str(order.change["previous_concentration"])
    entry = library.for_code(raw.drug.name)
    pump_drug = entry.name if entry is not None else raw.drug.name.lower()
    if pump_drug != holds_drug:
        found.append(f"drug {pump_drug} in the pump (the order's: {holds_drug})")
    else:
        ordered = Quantity.parse(holds_conc, "concentration").to_base()
        if ordered != raw.concentration_ng_per_ml:
            held = Quantity.from_base(raw.concentration_ng_per_ml, entry.concentration_unit) if entry else \
                f"{raw.concentration_ng_per_ml} ng/mL"
            found.append(f"concentration {held} in the pump (the order's: {holds_conc})")
    if found:
        raise SafetyError(f"the pump does not match {order.label}: " + "; ".join(found) + ". Nothing was sent",
                          {"order": order.id, "mismatches": found})


def _patient_id(raw: Any) -> str | None:
    record = getattr(raw, "patient", None)
    patient_id = getattr(record, "patient_id", "") if record is not None else ""
    return patient_id or None


def arguments(order: Order, given: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """The check_* arguments the order says, after refusing any given one that differs from it.
    `given`: the command line's values (None: not given); `overrides`: the operator's NAME -> reason,
    each of which the order must authorise (the prescriber's reason is the one recorded)."""
    change = order.change
    ordered = {k: v for k, v in change.items() if k not in ("previous_drug", "previous_concentration")}
    if order.kind == "refill":
        ordered["concentration"] = order.concentration
        if "previous_drug" in change and str(change["previous_drug"]).lower() != order.drug:
            ordered["drug"] = order.drug
    differ = []
    for key, value in given.items():
        if value is None or value is False and key == "stop":
            continue
        dimension = "concentration" if key == "concentration" else _FIELDS[order.kind].get(key)
        if not _same(key, value, ordered.get(key), dimension):
            said = "not in the order" if ordered.get(key) is None else f"the order's: {ordered[key]}"
            differ.append(f"{_option(key)} {value} ({said})")
    unauthorised = sorted(set(overrides) - set(order.overrides))
    if unauthorised:
        differ.append("overriding " + ", ".join(unauthorised) + " (the order does not authorise it)")
    if differ:
        raise SafetyError(f"this change differs from {order.label}: " + "; ".join(differ)
                          + ". A change that differs from the order is refused. Nothing was sent",
                          {"order": order.id, "differences": differ})
    return ordered | {"overrides": {k: f"{order.label}: {v}" for k, v in order.overrides.items()}}


def _same(key: str, given: Any, ordered: Any, dimension: str | None) -> bool:
    """A given option equals the order's: the same boolean, file, word, or quantity (compared
    exactly on the wire's scale: '0.45 mg/day' is '450 mcg/day')."""
    if ordered is None:
        return False
    if isinstance(given, bool) or isinstance(ordered, bool):
        return given is ordered
    if key == "schedule":
        return Path(str(given)).resolve() == Path(str(ordered)).resolve()
    if dimension is not None:
        try:
            return Quantity.parse(str(given), dimension).to_base() == Quantity.parse(str(ordered), dimension).to_base()
        except UnitError:
            return False
    return str(given).strip().lower() == str(ordered).strip().lower()


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def audit_record(order: Order) -> dict[str, Any]:
    """What the audit log keeps of an order: its id, the file's hash and its whole content."""
    out: dict[str, Any] = {"order_id": order.id, "order_file": order.path, "order_sha256": order.sha256,
                           "prescriber": order.prescriber, "order": order.content}
    if order.schedule_sha256:
        out["schedule_sha256"] = order.schedule_sha256
    return out
