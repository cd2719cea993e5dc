"""One object per write kind: its PREPARE command, what its read-back must show beyond
the program, and how its verified result is reported.

writes.execute() runs every kind the same way (PREPARE, echo compared, journal,
COMMIT once, read back) and asks the request's kind for what differs; nothing else
switches on the kind. A new write (the pump's clock, a catheter record...) is one
more class here and one function that builds its request and checks its limits.

    PROGRAM, REFILL, BOLUS, EMPTY, MRI_ENTER, MRI_EXIT, CLOCK, PTM, PATIENT
    CATHETER, PRIMING (a BOLUS on the wire), REFILL_BRIDGE (a REFILL with its bridge bolus)
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import protocol
from protocol import bodies
from protocol.bodies import Committed, Prepared, Status, as_dict

if TYPE_CHECKING:
    from .app import PumpSession
    from .operations import Change, PumpState
    from .writes import Verified

DAY_NL_DIVISOR = 86_400_000  # nL/day * s -> uL


class WriteKind:
    """The parts of a write that differ from kind to kind."""

    #: the journal's and the audit log's name for it
    name: str = ""
    #: the PREPARE_* command that carries it
    command: protocol.Command
    #: what the pump's echo calls it (an emptied reservoir is a refill of nothing on the wire)
    wire: protocol.WriteKind

    def readback_problems(self, echo: Prepared, committed: Committed, status: Status) -> list[str]:
        """What the status read back shows against this kind's echo (the program is compared
        for every kind by writes.execute)."""
        return []

    def echo_problems(self, echo: Prepared) -> list[str]:
        """What the echo shows against what was meant beyond the Expect fields compared for every
        kind (a clock step, which depends on when the PREPARE arrived); nothing by default."""
        return []

    def after(self, session: PumpSession, state: PumpState, change: Change, readback: Verified) -> dict[str, Any]:
        """The verified result's fields beyond the common ones (command, txid, before...)."""
        return {}

    def __repr__(self) -> str:
        return f"<write kind {self.name}>"


class Program(WriteKind):
    name, command, wire = "PROGRAM", protocol.Command.PREPARE_PROGRAM, protocol.WriteKind.PROGRAM

    def after(self, session, state, change, readback):
        from .status import program_view

        return {"after": program_view(readback.program.program, change.unit)}


class Refill(WriteKind):
    name, command, wire = "REFILL", protocol.Command.PREPARE_REFILL, protocol.WriteKind.REFILL

    def readback_problems(self, echo, committed, status):
        # the reservoir drains from the fill volume from applied_at on: allow that much, no more
        elapsed = max(0, status.pump_time - committed.applied_at)
        drained_ul = echo.program.daily_volume_nl_per_day * elapsed // DAY_NL_DIVISOR + 1
        if echo.reservoir_ul - drained_ul <= status.reservoir_ul <= echo.reservoir_ul:
            return []
        return [f"reservoir_ul: expected {echo.reservoir_ul} (less {drained_ul} delivered since), "
                f"pump has {status.reservoir_ul}"]

    def after(self, session, state, change, readback):
        from .status import describe, program_view

        now = describe(readback.status, session.library, read_at=state.raw.pump_time, port=session.port or "",
                       emulated=session.emulated, skew_s=state.described["clock_skew_s"])
        return {"after": program_view(readback.program.program, change.unit)
                | {"reservoir_ml": now["reservoir_ml"],
                   "projected_low_reservoir_date": now["projected_low_reservoir_date"]}}


class Empty(Refill):
    """The reservoir recorded as emptied: a refill of 0 mL with delivery stopped."""

    name = "EMPTY"

    def after(self, session, state, change, readback):
        status = readback.status
        return {"after": {"reservoir_ml": Decimal(status.reservoir_ul) / 1000,
                          "mode": status.mode.name.lower()}}


class Bolus(WriteKind):
    name, command, wire = "BOLUS", protocol.Command.PREPARE_BOLUS, protocol.WriteKind.BOLUS

    def readback_problems(self, echo, committed, status):
        if status.bolus_remaining_ng > echo.bolus_dose_ng:
            return [f"bolus_remaining_ng: {status.bolus_remaining_ng} is more than the "
                    f"{echo.bolus_dose_ng} prepared"]
        return []

    def after(self, session, state, change, readback):
        from .status import quantity

        mass = change.describe["dose"]["unit"]
        remaining = quantity(readback.status.bolus_remaining_ng, mass)
        daily = change.describe["daily_dose"]
        return {"bolus_remaining": remaining,
                "before": {"daily_dose": daily, "bolus_remaining": quantity(state.raw.bolus_remaining_ng, mass)},
                "after": {"daily_dose": daily, "bolus_remaining": remaining}}


class MriEnter(WriteKind):
    name, command, wire = "MRI_ENTER", protocol.Command.PREPARE_MRI_ENTER, protocol.WriteKind.MRI_ENTER

    def readback_problems(self, echo, committed, status):
        out = []
        if status.mri_mode != protocol.MriMode.SAFE:
            out.append(f"mri_mode: expected SAFE, pump has {status.mri_mode.name}")
        elif status.mri_auto_exit_at != committed.applied_at + echo.mri_auto_exit_s:
            out.append(f"mri_auto_exit_at: expected {committed.applied_at + echo.mri_auto_exit_s}, "
                       f"pump has {status.mri_auto_exit_at}")
        if status.current_rate_nl_per_day != 0:
            out.append(f"current_rate_nl_per_day: expected 0 in MRI-safe mode, pump has "
                       f"{status.current_rate_nl_per_day}")
        return out


class MriExit(WriteKind):
    name, command, wire = "MRI_EXIT", protocol.Command.PREPARE_MRI_EXIT, protocol.WriteKind.MRI_EXIT

    def readback_problems(self, echo, committed, status):
        if status.mri_mode != protocol.MriMode.OFF:
            return [f"mri_mode: expected OFF, pump has {status.mri_mode.name}"]
        return []


class Clock(WriteKind):
    """The pump's clock set (ithcli/clock.py). The step the pump echoes depends on its time when the
    PREPARE arrives, so it is compared with what the read predicts, allowing for the seconds the
    exchange took; the read-back finds the pump's time where it was set, give or take the same.
    CLOCK names the kind; each write binds its own target (`CLOCK.bound(target)`)."""

    name, command, wire = "CLOCK", protocol.Command.PREPARE_CLOCK, protocol.WriteKind.CLOCK
    #: seconds of rounding allowed on top of the seconds measured (both clocks count whole seconds)
    SLACK_S = 2

    def __init__(self, target: ClockTarget | None = None) -> None:
        self.target = target

    def bound(self, target: ClockTarget) -> Clock:
        return Clock(target)

    def echo_problems(self, echo):
        t = self.target
        if t is None or not t.sent_at:
            return []
        elapsed = max(0.0, t.sent_at - t.read_at)  # between the status read and the PREPARE
        predicted = t.sent_time - (t.read_pump_time + int(elapsed))
        if abs(echo.clock_step_s - predicted) <= math.ceil(elapsed) + self.SLACK_S:
            return []
        return [f"clock_step_s: expected about {predicted} (within {math.ceil(elapsed) + self.SLACK_S} s), "
                f"pump echoed {echo.clock_step_s}"]

    def readback_problems(self, echo, committed, status):
        t = self.target
        if t is None or not t.sent_at:
            return []
        since = math.ceil(max(0.0, t.now() - t.sent_at))  # PREPARE to read-back, on this computer's clock
        low, high = t.sent_time - self.SLACK_S, t.sent_time + since + self.SLACK_S
        if low <= status.pump_time <= high:
            return []
        return [f"pump_time: expected {t.sent_time} to {t.sent_time + since} (set, plus the {since} s since), "
                f"pump has {status.pump_time}"]

    def after(self, session, state, change, readback):
        from .clock import clock_after

        return clock_after(session, readback, self.target)


@dataclass
class ClockTarget:
    """The time a CLOCK write sets, fixed when its PREPARE is built (`prepare`, given as the
    request's prepare): `new_time`, or None for this computer's time at that moment, so the
    seconds spent on a confirmation prompt do not count against it."""

    new_time: int | None
    read_pump_time: int  # the pump's clock in the status the change was checked against
    read_at: float  # this computer's clock when that status arrived
    now: Callable[[], float] = time.time
    sent_time: int = 0  # the time sent in PREPARE_CLOCK (0: not sent yet)
    sent_at: float = 0.0  # this computer's clock when it was sent

    def prepare(self, *, txid: int, based_on_txid: int) -> bodies.PrepareClockRequest:
        self.sent_at = self.now()
        self.sent_time = self.new_time if self.new_time is not None else math.floor(self.sent_at)
        return bodies.PrepareClockRequest(txid=txid, based_on_txid=based_on_txid, new_time=self.sent_time)


class Ptm(WriteKind):
    """The limits of patient-activated boluses (ithcli/ptm.py): the echo's `ptm` is compared as a
    field of Expect; the read-back must hold exactly the limits echoed."""

    name, command, wire = "PTM", protocol.Command.PREPARE_PTM, protocol.WriteKind.PTM

    def readback_problems(self, echo, committed, status):
        if status.ptm == echo.ptm:
            return []
        from .writes import _differences

        return _differences(as_dict(echo.ptm), as_dict(status.ptm), "ptm.")

    def after(self, session, state, change, readback):
        from .ptm import ptm_view

        status = readback.status
        return {"after": ptm_view(status.ptm, status.ptm_use, change.unit, state.described["clock_skew_s"],
                                  status.daily_dose_ng_per_day)}


class Patient(WriteKind):
    """The patient record, recorded or corrected (ithcli/patient.py): the echo's `patient` is compared
    as a field of Expect (all but its recorded_at); the read-back must hold exactly the record echoed,
    recorded when the COMMIT applied it."""

    name, command, wire = "PATIENT", protocol.Command.PREPARE_PATIENT, protocol.WriteKind.PATIENT

    def readback_problems(self, echo, committed, status):
        from .writes import _differences

        want, got = as_dict(echo.patient), as_dict(status.patient)
        want["recorded_at"] = committed.applied_at
        return _differences(want, got, "patient.")

    def after(self, session, state, change, readback):
        from .patient import patient_after

        return {"after": {"patient": patient_after(state, readback.status)}}


PROGRAM, REFILL, EMPTY, BOLUS = Program(), Refill(), Empty(), Bolus()
MRI_ENTER, MRI_EXIT = MriEnter(), MriExit()
CLOCK, PTM, PATIENT = Clock(), Ptm(), Patient()


# --- the catheter record, the priming bolus, a refill's bridge (ithcli/catheter_ops.py) ---------

class Catheter(WriteKind):
    """An implant, a revision or a correction of the catheter record."""

    name, command, wire = "CATHETER", protocol.Command.PREPARE_CATHETER, protocol.WriteKind.CATHETER

    def readback_problems(self, echo, committed, status):
        from protocol.bodies import as_dict

        # the echo's recorded_at is PREPARE's time; the pump records the COMMIT's (a pump whose
        # clock moved a second between the two is not a failed write)
        want, got = as_dict(echo.catheter) | {"recorded_at": committed.applied_at}, as_dict(status.catheter)
        return [f"catheter.{key}: expected {_named(value)}, pump has {_named(got[key])}"
                for key, value in want.items() if got[key] != value]

    def after(self, session, state, change, readback):
        return {"after": {"catheter": _catheter_after(state, readback)}}


class Priming(Bolus):
    """A priming bolus: a BOLUS on the wire; once committed nothing is left to prime."""

    name = "PRIMING"

    def readback_problems(self, echo, committed, status):
        out = super().readback_problems(echo, committed, status)
        if status.catheter.priming_due_nl != 0:
            out.append(f"catheter.priming_due_nl: expected 0 once primed, pump has {status.catheter.priming_due_nl}")
        return out

    def after(self, session, state, change, readback):
        out = super().after(session, state, change, readback)
        out["after"]["catheter"] = _catheter_after(state, readback)
        return out


class RefillBridge(Refill):
    """A refill with a bridge bolus: the dead space moves at the old rate instead of the program."""

    def readback_problems(self, echo, committed, status):
        elapsed = max(0, status.pump_time - committed.applied_at)
        bridge_rate = -(-echo.bolus_volume_nl * 86_400 // max(1, echo.bolus_duration_s))
        rate = max(bridge_rate, echo.program.daily_volume_nl_per_day)
        drained_ul = rate * elapsed // DAY_NL_DIVISOR + 1
        out = []
        if not echo.reservoir_ul - drained_ul <= status.reservoir_ul <= echo.reservoir_ul:
            out.append(f"reservoir_ul: expected {echo.reservoir_ul} (less {drained_ul} delivered since), "
                       f"pump has {status.reservoir_ul}")
        if status.bolus_remaining_ng > echo.bolus_dose_ng:
            out.append(f"bolus_remaining_ng: {status.bolus_remaining_ng} is more than the {echo.bolus_dose_ng} "
                       "of the bridge prepared")
        return out

    def after(self, session, state, change, readback):
        out = super().after(session, state, change, readback)
        out["bridge_remaining"] = change.describe["bridge"]["dose"] | {
            "value": _remaining(readback.status.bolus_remaining_ng, change.describe["bridge"]["dose"]["unit"])}
        return out


def _catheter_after(state: PumpState, readback: Verified) -> dict[str, Any]:
    """The catheter record read back, with the time the pump recorded it on this computer's
    calendar (moved by the session's skew, as interrogate shows it)."""
    from .calendar import iso, to_calendar
    from .catheter_ops import catheter_view

    record = readback.status.catheter
    return catheter_view(record, iso(to_calendar(record.recorded_at, state.described["clock_skew_s"])))


def _named(value: Any) -> str:
    name = getattr(value, "name", None)
    return name if name else repr(value)


def _remaining(ng: int, unit: str) -> Any:
    from .status import quantity

    return quantity(ng, unit)["value"]


CATHETER, PRIMING, REFILL_BRIDGE = Catheter(), Priming(), RefillBridge()
