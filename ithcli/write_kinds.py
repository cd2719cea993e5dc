"""One object per write kind: its PREPARE command, what its read-back must show beyond
the program, and how its verified result is reported.

writes.execute() runs every kind the same way (PREPARE, echo compared, journal,
COMMIT once, read back) and asks the request's kind for what differs; nothing else
switches on the kind. A new write (the pump's clock, a catheter record...) is one
more class here and one function that builds its request and checks its limits.

    PROGRAM, REFILL, BOLUS, EMPTY, MRI_ENTER, MRI_EXIT
"""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import protocol
from protocol.bodies import Committed, Prepared, Status

if TYPE_CHECKING:
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

    def after(self, app: Any, state: Any, change: Any, readback: Verified) -> dict[str, Any]:
        """The verified result's fields beyond the common ones (command, txid, before...)."""
        return {}

    def __repr__(self) -> str:
        return f"<write kind {self.name}>"


class Program(WriteKind):
    name, command, wire = "PROGRAM", protocol.Command.PREPARE_PROGRAM, protocol.WriteKind.PROGRAM

    def after(self, app, state, change, readback):
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

    def after(self, app, state, change, readback):
        from .status import describe, program_view

        now = describe(readback.status, app.library(), read_at=state.raw.pump_time, port=app.port or "",
                       emulated=app.emulated, skew_s=state.described["clock_skew_s"])
        return {"after": program_view(readback.program.program, change.unit)
                | {"reservoir_ml": now["reservoir_ml"],
                   "projected_low_reservoir_date": now["projected_low_reservoir_date"]}}


class Empty(Refill):
    """The reservoir recorded as emptied: a refill of 0 mL with delivery stopped."""

    name = "EMPTY"

    def after(self, app, state, change, readback):
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

    def after(self, app, state, change, readback):
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


PROGRAM, REFILL, EMPTY, BOLUS = Program(), Refill(), Empty(), Bolus()
MRI_ENTER, MRI_EXIT = MriEnter(), MriExit()
