"""The pump as a pure state machine: no I/O, time only through advance_to().

One Pump (pump.py) composed of parts with one job each:

  delivery.py      the reservoir, the drug, programs and rates, the bolus (a bridge bolus
                   instead of the program); what leaves the reservoir enters the catheter
  catheter_part.py the catheter record (implant, revision, correction), the priming due,
                   and its Column (catheter.py): what leaves the tip is the patient's
  ptm.py           patient-activated boluses: the limits, the activations, their rules
  patient.py       the patient record (an opaque ID, initials, birth date, spasticity origin)
  clock_step.py    pump time = the injected clock + the step a CLOCK write set; deadlines move
  battery.py       the charge, ERI and EOS
  mri.py           MRI-safe mode, the static field, the motor's stall
  transactions.py  PREPARE_* / COMMIT, txids, the pending transaction
  write_kinds.py   one object per write kind: its PREPARE's checks, its Pending, its COMMIT
  routine.py       AUTH_FAILURE and SESSION_OPENED, counted and coalesced
  log.py           the event log ring (LogEvent, EventLog)
  core.py          what the parts share: pump time, the log, alarms, suspensions;
                   and Refusal, the error a refused request raises
  views.py         the protocol's Status struct and the control channel's state
  pump.py          Pump: builds the parts, moves time, orders what is logged

Saving and loading a pump is emulator/store.py's; test-only faults, including the
pending-write tamper, are emulator/faults.py's.

Every name the one-module emulator/pump.py had is importable from here.
"""
from .battery import BATTERY_UNIT, DESIGN_BATTERY_S, ERI_WARNING_S, Battery
from .catheter_part import Catheter
from .clock_step import ClockStep
from .core import (
    SUSPEND_ALARM,
    SUSPEND_EMPTY,
    SUSPEND_EOS,
    SUSPEND_MRI,
    SUSPEND_REASONS,
    SUSPEND_STALL,
    PumpCore,
    Refusal,
)
from .delivery import NL_PER_ML, NL_PER_UL, Bolus, Delivery, bolus_volume_nl
from .log import LOG_CAPACITY, EventLog, LogEvent
from .mri import (
    DEFAULT_GRADIENT_T_PER_M,
    DEFAULT_STALL_RECOVERY_S,
    FIELD_TESLA,
    MAX_GRADIENT_T_PER_M,
    MAX_SCENARIO_EVENTS,
    MAX_STALL_RECOVERY_S,
    FieldChange,
    Mri,
    check_field,
)
from .ptm import Outcome, PatientBoluses
from .pump import FIRMWARE, SERIAL_CHARS, Pump, valid_serial
from .routine import RoutineEvents
from .transactions import APPLIED_HISTORY, Applied, Pending, Transactions

__all__ = [
    "APPLIED_HISTORY", "BATTERY_UNIT", "DEFAULT_GRADIENT_T_PER_M", "DEFAULT_STALL_RECOVERY_S", "DESIGN_BATTERY_S",
    "ERI_WARNING_S", "FIELD_TESLA", "FIRMWARE", "LOG_CAPACITY", "MAX_GRADIENT_T_PER_M", "MAX_SCENARIO_EVENTS",
    "MAX_STALL_RECOVERY_S", "NL_PER_ML", "NL_PER_UL", "SERIAL_CHARS", "SUSPEND_ALARM", "SUSPEND_EMPTY",
    "SUSPEND_EOS", "SUSPEND_MRI", "SUSPEND_REASONS", "SUSPEND_STALL",
    "Applied", "Battery", "Bolus", "Catheter", "ClockStep", "Delivery", "EventLog", "FieldChange", "LogEvent",
    "Mri", "Outcome", "PatientBoluses", "Pending", "Pump", "PumpCore", "Refusal", "RoutineEvents", "Transactions",
    "bolus_volume_nl", "check_field", "valid_serial",
]
