"""The pump's clock as a clinician sets it (docs/protocol.md, "Setting the clock").

Pump time is the injected clock plus a persisted step. A CLOCK write moves pump time by
its step at COMMIT without delivering anything (the reservoir drains by elapsed time, not
by clock time), and moves every running timer's deadline by the same step so that each
keeps its length: the MRI automatic exit, a stall's recovery, scheduled field changes, a
bolus, the patient-bolus lockout and 24-hour window, the coalesced routine events.
Flex schedules read the new time of day at once.
"""
from __future__ import annotations

from typing import Protocol

from protocol import EventType
from protocol.messages import MAX_CLOCK_STEP_S

from .core import PumpCore

U32_MASK = 0xFFFF_FFFF


class Shifts(Protocol):
    def shift(self, step_s: int) -> None:
        """The clock moved by step_s: move every running deadline by as much."""


class ClockStep:
    """The step between the injected clock and pump time, and the parts with deadlines."""

    def __init__(self, core: PumpCore, parts: list[Shifts]) -> None:
        self.core = core
        self.parts = parts
        self.step_s = 0  # persisted: pump time = injected clock + step_s

    def set(self, step_s: int) -> None:
        """COMMIT of a CLOCK write: pump time moves by step_s; CLOCK_SET logged at the new time
        (arg1 the old time, arg2 the new one, each the low 32 bits)."""
        core = self.core
        old = core.time
        core.time = old + step_s
        self.step_s += step_s
        for part in self.parts:
            part.shift(step_s)
        core.log_event(EventType.CLOCK_SET, arg1=old & U32_MASK, arg2=core.time & U32_MASK)

    def load(self, value: object) -> None:
        """The state file's "clock_step_s" (None: a file from before protocol version 4)."""
        if value is None:
            return
        # a sum of steps each within MAX_CLOCK_STEP_S: bounded by pump times, which are non-negative
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 2**62:
            raise ValueError(f"clock step {value!r} is not a whole number of seconds")
        self.step_s = value


__all__ = ["MAX_CLOCK_STEP_S", "ClockStep", "Shifts"]
