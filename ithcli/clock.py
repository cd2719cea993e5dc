"""The pump's clock: read it against this computer's and set it (a CLOCK write).

    reading = clock_reading(raw, read_at)              # pump time, this computer's, skew
    change = clock_change(session, state, to=None)     # checks; raises on refusal
    operations.apply_change(session, state, change)     # PREPARE, echo, COMMIT, read back

Setting it to this computer's time takes that time when the PREPARE is built (not when
it was checked), so a confirmation prompt's seconds do not count. The pump moves its
clock by the step at COMMIT and logs CLOCK_SET (old and new times); every window the
limits read from its log is measured across it (ithcli/history.py on_current_clock), and
`ithcli log` shows the events before it moved by its step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import protocol
from protocol import bodies

from . import write_kinds
from .calendar import (
    CLOCK_SKEW_THRESHOLD_S,
    ON_CALENDAR,
    duration_text,
    iso,
    measure_skew,
    past_threshold,
    skew_text,
    warning,
)
from .errors import UsageError
from .history import set_step
from .localtime import fmt_time

if TYPE_CHECKING:
    from .app import PumpSession
    from .operations import Change, PumpState
    from .writes import Verified

#: a step this small (s) is not sent: the clocks agree to what either can measure
CLOCK_UNCHANGED_S = 1


def clock_reading(raw: bodies.Status, read_at: int, serial: str | None = None, emulated: bool = False) -> dict:
    """`ithcli clock show`: the pump's time, this computer's when the reply arrived, the skew."""
    skew = measure_skew(raw.pump_time, read_at)
    return {"serial_number": serial or raw.serial_number, "emulated": emulated,
            "pump_time": iso(raw.pump_time), "computer_time": iso(read_at), "skew_s": skew,
            "skew": skew_text(skew), "threshold_s": CLOCK_SKEW_THRESHOLD_S, "past_threshold": past_threshold(skew),
            "warning": warning(skew)}


def parse_when(text: str, option: str = "--to") -> int:
    """An ISO 8601 date-time with an explicit UTC offset ('2026-03-01T08:00:00+01:00', '...Z')
    -> seconds since the epoch. A time without its offset is refused: whose local time is it?"""
    try:
        when = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 date-time (e.g. 2026-03-01T08:00:00Z)") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise UsageError(f"{option} {text!r} has no UTC offset: give it explicitly (e.g. {text}Z for UTC, or "
                         f"{text}+01:00). Nothing was sent")
    return math.floor(when.timestamp())


def clock_change(session: PumpSession, state: PumpState, *, to: str | None = None,
                 confirmed: frozenset[str] | set[str] = frozenset(), now: float | None = None) -> Change:
    """Set the pump's clock to `to` (ISO 8601 with its offset), or to this computer's time (None)."""
    from . import limits
    from .operations import Change
    from .writes import Expect, WriteRequest

    raw = state.raw
    read_at = session.last_read_at or int(time.time())
    wall = time.time() if now is None else now
    new_time = parse_when(to) if to is not None else None
    planned = new_time if new_time is not None else math.floor(wall)
    # the pump's clock now, as the read predicts it; to this computer's time: minus the skew
    step = planned - (raw.pump_time + int(wall - read_at))
    skew = measure_skew(raw.pump_time, read_at)
    target_skew = planned - math.floor(wall)
    describe: dict[str, Any] = {
        "serial_number": raw.serial_number,
        "before": {"pump_time": iso(raw.pump_time), "skew_s": skew},
        "requested": {"time": iso(planned) if new_time is not None else None,
                      "to_this_computer": new_time is None, "skew_s": target_skew},
        "step_s": step, "dates_on": ON_CALENDAR,
    }
    if abs(step) <= CLOCK_UNCHANGED_S and new_time is None:
        return Change("clock", None, describe | {"after": describe["before"]}, [], unit=_unit(state))
    # the pump takes a clock set in MRI-safe mode too (it delivers nothing), not at end of service
    findings = limits.check_writable(raw, what="set the clock", in_mri_safe_mode=True)
    findings += limits.check_clock_set(new_time=planned, step_s=step, target_skew_s=target_skew,
                                       flex=raw.mode == protocol.InfusionMode.FLEX)
    warnings = limits.settle(findings, confirmed=set(confirmed))
    describe["warnings"] = [w.as_dict() for w in warnings]
    target = write_kinds.ClockTarget(new_time, raw.pump_time, read_at)
    request = WriteRequest(kind=write_kinds.CLOCK.bound(target), prepare=target.prepare,
                           expect=Expect(program=state.program), describe=describe)
    # the table and the question are for people: in their zone (localtime.py)
    shown = fmt_time(planned) if new_time is not None else "this computer's time"
    rows = [("Pump clock", fmt_time(raw.pump_time), shown),
            ("Against this computer", skew_text(skew), skew_text(target_skew)),
            ("Step", "-", step_text(step))]
    question = f"Set the clock of {raw.serial_number} to {shown} (a step of {step_text(step)})?"
    return Change("clock", request, describe, warnings, rows, question, {}, set(confirmed), _unit(state))


def _unit(state: PumpState) -> str:
    return state.entry.dose_unit if state.entry else "mcg/day"


def step_text(step_s: int) -> str:
    """'forward 2 days', 'back 1 h 30 min', 'none'."""
    if step_s == 0:
        return "none"
    return f"{'forward' if step_s > 0 else 'back'} {duration_text(step_s)} ({step_s:+d} s)"


def clock_after(session: PumpSession, readback: Verified, target: write_kinds.ClockTarget | None) -> dict[str, Any]:
    """The verified result's clock fields (write_kinds.Clock.after); the set is audited with the
    time sent and the step the pump applied."""
    now = target.now() if target is not None else time.time()
    status = readback.status
    after = {"pump_time": iso(status.pump_time), "skew_s": measure_skew(status.pump_time, math.floor(now))}
    time_set = iso(target.sent_time) if target is not None else None
    step = readback.echo.clock_step_s
    session.record("clock-set", txid=readback.txid, time_set=time_set, step_s=step, pump_time_after=after["pump_time"])
    return {"after": after, "time_set": time_set, "step_s": step}


def clock_sets(pairs: list[tuple[bodies.Event, bodies.Event]]) -> list[dict[str, Any]]:
    """The CLOCK_SET events of a log read, given as (event, the same on the clock as it is now:
    history.on_current_clock): when (the new clock), the step."""
    out = []
    for e, m in pairs:
        if e.type == protocol.EventType.CLOCK_SET:
            step = set_step(e.arg1, e.arg2)
            out.append({"index": e.index, "time": iso(m.time), "step_s": step, "step": step_text(step)})
    return out


@dataclass(frozen=True)
class ClockReading:
    """The pump's clock against this computer's (`Pump.clock()`, `ithcli --json clock show`).
    Times are ISO 8601 UTC; skew_s = pump - this computer (+: the pump's clock is ahead)."""

    pump_time: str
    computer_time: str
    skew_s: int
    warning: str | None  # None within CLOCK_SKEW_THRESHOLD_S
    data: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_view(cls, v: dict[str, Any]) -> ClockReading:
        return cls(v["pump_time"], v["computer_time"], v["skew_s"], v["warning"], v)
