"""The typed results of the public API (ithcli/api.py; docs/api.md): what a read returns
(Status, Program, Event, Catheter, Patient, LinkStats, Checklist), what a write returns (WriteResult),
and a checked change waiting to be sent (PreparedChange, PreparedMri). Quantities carry
their units. Import them from ithcli.api, which re-exports every one."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from protocol import Quantity

if TYPE_CHECKING:
    from protocol import bodies

    from . import mri
    from .limits import Finding
    from .orders import Order
    from .therapy_change import Change, PumpState
    from .writes import WriteRequest


def _quantity(q: dict[str, Any]) -> Quantity:
    """A {"value", "unit"} object of the JSON views (status.quantity) as a Quantity."""
    return Quantity(Decimal(str(q["value"])), q["unit"])


@dataclass(frozen=True)
class Status:
    """What INTERROGATE says, with units (the `ithcli --json interrogate` object in `data`).
    Dates are ISO 8601 strings on this computer's calendar (corrected by the pump clock's skew)."""

    serial_number: str
    model: str
    drug: str
    concentration: Quantity
    mode: str
    daily_dose: Quantity
    flow_ml_per_day: Decimal
    reservoir_ml: Decimal
    projected_low_reservoir_date: str | None
    projected_empty_date: str | None
    alarms: tuple[str, ...]
    mri_mode: str
    bolus_remaining: Quantity
    clock_skew_s: int
    emulated: bool
    last_txid: int  # the last write the pump applied
    event_count: int  # the pump's log holds events up to this index: log(since_index=...) reads on from it
    data: dict[str, Any] = field(repr=False, compare=False)
    raw: bodies.Status = field(repr=False, compare=False)  # the INTERROGATE reply as decoded

    @classmethod
    def from_read(cls, raw: bodies.Status, d: dict[str, Any]) -> Status:
        return cls(d["serial_number"], d["model"], d["drug"], _quantity(d["concentration"]), d["mode"],
                   _quantity(d["daily_dose"]), Decimal(str(d["flow_ml_per_day"])), Decimal(str(d["reservoir_ml"])),
                   d["projected_low_reservoir_date"], d["projected_empty_date"],
                   tuple(a["name"] for a in d["alarms"]), d["mri_mode"], _quantity(d["bolus_remaining"]),
                   d["clock_skew_s"], d["emulated"], raw.last_txid, raw.event_count, d, raw)


@dataclass(frozen=True)
class Program:
    """The program in force: its mode, drug, the 24-hour total and the steps of a day."""

    mode: str
    drug: str
    concentration: Quantity
    daily_dose: Quantity
    flow_ml_per_day: Decimal
    steps: tuple[tuple[str, Quantity], ...]  # (start "HH:MM", dose per day)
    raw: bodies.Program = field(repr=False, compare=False)  # READ_PROGRAM's program as decoded

    @classmethod
    def from_view(cls, v: dict[str, Any], raw: bodies.Program) -> Program:
        return cls(v["mode"], v["drug"], _quantity(v["concentration"]), _quantity(v["daily_dose"]),
                   Decimal(str(v["flow_ml_per_day"])), tuple((s["start"], _quantity(s["dose"])) for s in v["steps"]),
                   raw)


@dataclass(frozen=True)
class Event:
    """One entry of the pump's log; `time` on this computer's calendar, `pump_time` as logged."""

    index: int
    time: str | None
    pump_time: str | None
    type: str
    priority: str
    description: str
    arg1: int
    arg2: int
    data: dict[str, Any] = field(repr=False, compare=False)  # the `ithcli --json log` event object

    @classmethod
    def from_view(cls, v: dict[str, Any]) -> Event:
        return cls(v["index"], v["time"], v.get("pump_time"), v["type"], v["priority"], v["description"],
                   v["arg1"], v["arg2"], v)


@dataclass(frozen=True)
class LinkStats:
    """The link's health over the session (every link it opened): frames dropped as corrupt and
    reads asked again."""

    corrupt_frames: int
    retries: int


@dataclass(frozen=True)
class WriteResult:
    """A write that was verified by read-back ("verified"), or not needed ("unchanged")."""

    command: str
    serial_number: str
    outcome: str
    txid: int | None
    warnings: tuple[Finding, ...]
    data: dict[str, Any] = field(repr=False, compare=False)  # the `ithcli --json` result object

    @property
    def verified(self) -> bool:
        return self.outcome in ("verified", "unchanged")


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True)
class Catheter:
    """The pump's catheter record: lengths in cm, volumes in mL (no record: recorded False)."""

    recorded: bool
    action: str | None  # "implant" or "revision": the last one recorded
    model: str | None
    length_cm: Decimal | None
    replaced_cm: Decimal | None  # the segment the last revision replaced
    dead_space_ml: Decimal
    priming_due_ml: Decimal  # 0: primed
    recorded_at: str | None

    @property
    def primed(self) -> bool:
        return self.recorded and self.priming_due_ml == 0

    @classmethod
    def from_view(cls, v: dict[str, Any]) -> Catheter:
        return cls(v["recorded"], v["action"], v["model"], _decimal(v["length_cm"]), _decimal(v["replaced_cm"]),
                   Decimal(str(v["dead_space_ml"])),
                   Decimal(str(v["priming_due_ml"])), v["recorded_at"])


@dataclass(frozen=True)
class Patient:
    """The patient the pump records (`Pump.patient()`; protocol version 5). With none recorded,
    `recorded` is False and every other field is None."""

    recorded: bool
    patient_id: str | None  # an opaque identifier the clinic chose (its record number, never a name)
    initials: str | None
    birth_date: date | None
    spasticity_origin: str | None  # "spinal" or "cerebral" (baclofen's budget follows it); None: not recorded
    recorded_at: str | None  # when the pump recorded it, ISO 8601 on this computer's calendar

    @classmethod
    def from_view(cls, v: dict[str, Any] | None) -> Patient:
        if v is None:
            return cls(False, None, None, None, None, None)
        born = v["born"]
        try:
            birth_date = date.fromisoformat(born) if born else None
        except ValueError:  # what the pump sent is no date: not guessed at
            birth_date = None
        return cls(True, v["id"], v["initials"], birth_date, v["spasticity_origin"], v["recorded_at"])


@dataclass(frozen=True)
class Checklist:
    """An MRI checklist: the overall result (PASS, WARN, BLOCK) and each line."""

    result: str
    lines: tuple[dict[str, Any], ...]
    data: dict[str, Any] = field(repr=False, compare=False)



@dataclass(frozen=True)
class PreparedMri:
    """An MRI-safe mode change checked against the pump state read for it."""

    which: str  # "enter" or "exit"
    state: mri.MriState
    request: WriteRequest
    checklist: dict[str, Any] | None  # the pre-MRI checklist (enter)


@dataclass(frozen=True)
class PreparedChange:
    """A checked change and the pump state it was checked against (apply() sends it against
    exactly that state: the pump refuses it if anything was written since)."""

    state: PumpState
    change: Change
    #: the order it was checked against (check_*(order=...)): audited with the write
    order: Order | None = None

    @property
    def warnings(self) -> list[Finding]:
        return self.change.warnings

    @property
    def rows(self) -> list[tuple[str, str, str]]:
        return self.change.rows

    @property
    def describe(self) -> dict[str, Any]:
        return self.change.describe

    @property
    def unchanged(self) -> bool:
        return self.change.unchanged
