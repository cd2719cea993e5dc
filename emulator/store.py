"""--state FILE: the pump's memory, saved atomically as JSON.

A save is complete or absent, never half-written: write a temporary file in the
same directory, fsync it, os.replace() it over the old one, fsync the directory.
The server saves after every change and before replying, so a kill -9 loses
nothing that was acknowledged. `saved_at` (wall clock) lets a restart continue
the pump clock over the time the emulator was down.

The file's "pump" object is written by pump_to_dict() and read, every field
checked, by pump_from_dict(): the one place that knows the format.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable

from protocol import Alarm, BatteryState, Drug, MriMode, WriteKind, bodies
from protocol.models import MODELS_BY_NAME

from .program import DAY, Program
from .pump import Pump, valid_serial
from .pump.battery import Battery
from .pump.core import SUSPEND_MRI, SUSPEND_REASONS, SUSPEND_STALL, PumpCore
from .pump.delivery import NL_PER_UL, Bolus, Delivery
from .pump.integers import check_uint
from .pump.log import LOG_CAPACITY, EventLog, LogEvent
from .pump.mri import DEFAULT_STALL_RECOVERY_S, MAX_SCENARIO_EVENTS, MAX_STALL_RECOVERY_S, FieldChange, Mri, check_field
from .pump.transactions import APPLIED_HISTORY, Applied, Transactions
from .security_state import FailureLog, SessionLog

FORMAT = "ith-emulator-state"
VERSION = 5  # 2: dose-based program steps, applied-transaction history, running bolus
#            3: MRI-safe mode's recorded program, the static field, the motor's stall
#            4: the catheter record and its column, patient-bolus limits and activations, the clock step
#            5: the patient record
#: older versions read by filling in what they could not hold (version 1 is refused)
MIGRATE_FROM = 2
#: what version 4 added: absent from an older file (no catheter recorded, PTM off, step 0), required since
ADDED_IN_4 = ("catheter", "ptm", "clock_step_s")
#: what version 5 added: absent from an older file (no patient recorded), required since
ADDED_IN_5 = ("patient",)
#: what a file of each version must hold beyond version 3's
REQUIRED_SINCE = {4: ADDED_IN_4, 5: ADDED_IN_5}


class StateError(Exception):
    """The state file cannot be used; the emulator refuses to start fresh over it."""


def save(path: str, pump: Pump, *, wall: float | None = None) -> None:
    data = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": time.time() if wall is None else wall,
        "pump": pump_to_dict(pump),
    }
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ith-state-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: str, clock=None) -> tuple[Pump, float]:
    """(pump as saved, wall time of the save). Raises StateError with a one-line reason."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"state file {path} is corrupt (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(f"{path} is not an ith-emulator state file")
    if data.get("version") not in range(MIGRATE_FROM, VERSION + 1) or isinstance(data.get("version"), bool):
        raise StateError(f"state file {path} has version {data.get('version')!r}, expected {VERSION}")
    saved_at = data.get("saved_at")
    if not isinstance(saved_at, (int, float)) or isinstance(saved_at, bool):
        raise StateError(f"state file {path} is corrupt (no saved_at)")
    try:
        if data["version"] == MIGRATE_FROM:
            _migrate_2(data["pump"])
        missing = [name for since, names in REQUIRED_SINCE.items() if data["version"] >= since
                   for name in names if name not in data["pump"]]
        if missing:
            raise KeyError(missing[0])  # a file of a version that holds them, without them, is corrupt
        pump = pump_from_dict(data["pump"], clock=clock)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise StateError(f"state file {path} is corrupt ({detail})") from None
    return pump, float(saved_at)


def _migrate_2(pump: dict) -> None:
    """Version 2 had no MRI-safe mode (it could not be entered), no field and no stall."""
    if not isinstance(pump, dict):
        raise TypeError("pump is not an object")
    pump.setdefault("mri_program", None)
    pump.setdefault("field", {"tesla": 0.0, "gradient_t_per_m": 0.0})
    pump.setdefault("stall", {"stalled": False, "recovery_at": None, "needs_interrogation": False})
    pump.setdefault("stall_recovery_s", DEFAULT_STALL_RECOVERY_S)
    pump.setdefault("scenario", [])


# --- the "pump" object ---------------------------------------------------------------


def pump_to_dict(pump: Pump) -> dict:
    core, delivery, battery, mri = pump.core, pump.delivery, pump.battery, pump.mri
    transactions, routine = pump.transactions, pump.routine
    return {
        "model": pump.spec.name,
        "serial": pump.serial,
        "firmware": bodies.as_dict(pump.firmware),
        "drug": delivery.drug.name,
        "concentration_ng_per_ml": delivery.concentration_ng_per_ml,
        "program": delivery.program.to_dict(),
        "reservoir_nl": delivery.reservoir_nl,
        "delivery_remainder": delivery.delivery_remainder,
        "delivered_nl": delivery.delivered_nl,
        "low_reservoir_alarm_ul": delivery.low_reservoir_alarm_ul,
        "battery_charge": battery.charge,
        "battery_capacity": battery.capacity,
        "battery_state": battery.state.name,
        "eri_time": battery.eri_time,
        "eos_time": battery.eos_time,
        "alarms": [a.name for a in Alarm if core.alarms & a],
        "suspended": sorted(core.suspended),
        "pump_time": core.time,
        "mri_mode": mri.mode.name,
        "mri_auto_exit_at": mri.auto_exit_at,
        "mri_program": mri.recorded_program.to_dict() if mri.recorded_program else None,
        "field": {"tesla": mri.field_tesla, "gradient_t_per_m": mri.field_gradient_t_per_m},
        "stall": {"stalled": mri.stalled, "recovery_at": mri.stall_recovery_at,
                  "needs_interrogation": mri.stall_needs_interrogation},
        "stall_recovery_s": mri.stall_recovery_s,
        "scenario": [c.to_list() for c in mri.scenario],
        "last_txid": transactions.last_txid,
        "last_programmed_at": transactions.last_programmed_at,
        # the pending transaction is volatile (lost on restart, like on a reset): not saved
        "applied": [[a.txid, a.kind.name, a.applied_at] for a in transactions.applied],
        "bolus": delivery.bolus.to_dict() if delivery.bolus else None,
        "auth": routine.auth.to_dict(),
        "sessions": routine.sessions.to_dict(),
        "catheter": pump.catheter.to_dict(),
        "ptm": pump.ptm.to_dict(),
        "clock_step_s": pump.clock_step.step_s,
        "patient": pump.patient.to_dict(),
        "log": {
            "capacity": core.log.events.maxlen,
            "count": core.log.count,
            "events": [e.to_list() for e in core.log.events],
        },
    }


def pump_from_dict(data: dict, clock: Callable[[], int] | None = None) -> Pump:
    """Rebuild a saved pump; raises ValueError/KeyError/TypeError on anything inconsistent.

    Does not log POWER_ON: the caller advances the clock over the downtime first,
    then calls power_on(restored=True). Fields are checked in the order they are
    listed in pump_to_dict(), so a broken file always names the same first fault.
    """
    spec = MODELS_BY_NAME[data["model"]]
    serial = data["serial"]
    if not isinstance(serial, str) or not valid_serial(serial):
        raise ValueError(f"bad serial {serial!r}")
    pump = Pump(spec, serial, clock)
    firmware = data["firmware"]
    pump.firmware = bodies.Firmware(*(check_uint(firmware[k], 8) for k in ("major", "minor", "patch")))
    _read_delivery(pump.delivery, data)
    _read_battery(pump.battery, data)
    _read_core(pump.core, data)
    _read_mri(pump.mri, data)
    _read_stall(pump.mri, data)
    _read_transactions(pump.transactions, data)
    pump.delivery.bolus = Bolus.from_dict(data["bolus"]) if data["bolus"] is not None else None
    pump.routine.auth = FailureLog.from_dict(data.get("auth"))  # absent in files from before the secure link
    pump.routine.sessions = SessionLog.from_dict(data.get("sessions"))  # absent before protocol version 3
    # absent before protocol version 4: no catheter recorded, patient boluses off, no clock step
    pump.catheter.load(data.get("catheter"))
    pump.ptm.load(data.get("ptm"))
    pump.clock_step.load(data.get("clock_step_s"))
    pump.patient.load(data.get("patient"))  # absent before protocol version 5: no patient recorded
    pump.core.log = _read_log(data["log"])
    return pump


def _read_delivery(delivery: Delivery, data: dict) -> None:
    delivery.drug = Drug[data["drug"]]
    delivery.concentration_ng_per_ml = check_uint(data["concentration_ng_per_ml"], 32)
    delivery.program = Program.from_dict(data["program"])
    delivery.reservoir_nl = check_uint(data["reservoir_nl"], 64)
    if delivery.reservoir_nl > delivery.spec.capacity_ul * NL_PER_UL:
        raise ValueError("reservoir exceeds the capacity")
    delivery.delivery_remainder = check_uint(data["delivery_remainder"], 64)
    if delivery.delivery_remainder >= DAY:
        raise ValueError("delivery remainder out of range")
    delivery.delivered_nl = check_uint(data["delivered_nl"], 64)
    delivery.low_reservoir_alarm_ul = check_uint(data["low_reservoir_alarm_ul"], 32)


def _read_battery(battery: Battery, data: dict) -> None:
    battery.charge = check_uint(data["battery_charge"], 80)
    battery.capacity = check_uint(data["battery_capacity"], 80)
    if battery.capacity == 0 or battery.charge > battery.capacity:
        raise ValueError("battery charge exceeds its capacity")
    battery.state = BatteryState[data["battery_state"]]
    battery.eri_time = check_uint(data["eri_time"], 63)
    battery.eos_time = check_uint(data["eos_time"], 63)


def _read_core(core: PumpCore, data: dict) -> None:
    """Alarms, suspensions and pump time."""
    alarms = Alarm(0)
    for name in data["alarms"]:
        alarms |= Alarm[name]
    core.alarms = alarms
    core.suspended = set(data["suspended"])
    if not core.suspended <= SUSPEND_REASONS:
        raise ValueError(f"unknown suspension reasons {sorted(core.suspended)}")
    core.time = check_uint(data["pump_time"], 63)


def _read_mri(mri: Mri, data: dict) -> None:
    """MRI-safe mode and the field; checked against the suspensions already read."""
    mri.mode = MriMode[data["mri_mode"]]
    mri.auto_exit_at = check_uint(data["mri_auto_exit_at"], 63)
    mri.recorded_program = Program.from_dict(data["mri_program"]) if data["mri_program"] is not None else None
    safe = mri.mode is MriMode.SAFE
    if safe != (mri.recorded_program is not None) or safe != (SUSPEND_MRI in mri.core.suspended) \
            or safe != (mri.auto_exit_at > 0):
        raise ValueError("MRI-safe mode, its recorded program, timer and suspension disagree")
    field = data["field"]
    mri.field_tesla, mri.field_gradient_t_per_m = check_field(field["tesla"], field["gradient_t_per_m"])


def _read_stall(mri: Mri, data: dict) -> None:
    """The motor's stall, its recovery and the scheduled field changes."""
    stall = data["stall"]
    mri.stalled = stall["stalled"] is True
    recovery = stall["recovery_at"]
    mri.stall_recovery_at = None if recovery is None else check_uint(recovery, 63)
    mri.stall_needs_interrogation = stall["needs_interrogation"] is True
    core = mri.core
    if mri.stalled != (SUSPEND_STALL in core.suspended) or mri.stalled != bool(core.alarms & Alarm.MOTOR_STALL):
        raise ValueError("motor stall, its alarm and its suspension disagree")
    if not mri.stalled and (recovery is not None or mri.stall_needs_interrogation):
        raise ValueError("stall recovery scheduled for a motor that is not stalled")
    mri.stall_recovery_s = check_uint(data["stall_recovery_s"], 32)
    if mri.stall_recovery_s > MAX_STALL_RECOVERY_S:
        raise ValueError("stall recovery time out of range")
    if len(data["scenario"]) > MAX_SCENARIO_EVENTS:
        raise ValueError("too many scheduled field changes")
    mri.scenario = [FieldChange.from_list(row) for row in data["scenario"]]
    if [c.at for c in mri.scenario] != sorted(c.at for c in mri.scenario):
        raise ValueError("scheduled field changes out of order")


def _read_transactions(transactions: Transactions, data: dict) -> None:
    transactions.last_txid = check_uint(data["last_txid"], 32)
    transactions.last_programmed_at = check_uint(data["last_programmed_at"], 63)
    applied = data["applied"]
    if not isinstance(applied, list) or len(applied) > APPLIED_HISTORY:
        raise ValueError("applied-transaction history is not a list of at most 16")
    for row in applied:
        txid, kind, at = row
        transactions.applied.append(Applied(check_uint(txid, 32), WriteKind[kind], check_uint(at, 63)))


def _read_log(log: dict) -> EventLog:
    capacity = check_uint(log["capacity"], 32) or LOG_CAPACITY
    ring = EventLog(capacity)
    events = [LogEvent.from_list(row) for row in log["events"]]
    count = check_uint(log["count"], 32)
    if len(events) > capacity or count < len(events):
        raise ValueError("event log does not fit its ring buffer")
    for offset, event in enumerate(events):
        if event.index != count - len(events) + offset:
            raise ValueError(f"event log index {event.index} out of sequence")
    ring.events.extend(events)
    ring.count = count
    return ring
