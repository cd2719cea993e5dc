"""The live monitor's readings: one poll of the pump -> one dict (the `monitor --json` line).

A thin layer over ithcli.api's Pump: an unconfirmed write is settled before the first
reading (Pump.reconcile), each reading is Pump.status(settle=False) timed alone, the
program is read again when the pump applied a write, and the log is read on from the
last reading's event count. No rendering here (commands/monitor.py draws them). Every reading carries its
time and its age; data older than the stale threshold is marked stale, and a
failed poll says how old the last good data is, so nothing old passes as fresh.
The pump is pinned: the session refuses, at the handshake, any pump but the one it first
opened with, so another pump answering on the port after a reconnect (a reused pty, a
switched line) ends the monitor naming both serials (WrongPump, exit 11); nothing is read
from it, and its figures never pass as the first pump's.
Dates (projections, battery, log events) are on this computer's calendar, moved by
the pump clock's skew measured at each reading ("pump_clock").
"""
from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .catheter import bridge_running
from .errors import AuthError, DeviceRejected, LinkError, PumpProtocolError, WrongPump
from .status import hhmm, iso

if TYPE_CHECKING:
    from protocol.bodies import Program

    from .api import Pump, Status

#: errors a monitor shows and retries (up to --max-failures in a row); anything else ends it,
#: and so does another pump answering on the port (WrongPump: asking again cannot bring ours back)
RETRIED = (LinkError, PumpProtocolError, DeviceRejected, AuthError)


def age_s(since_monotonic: float, now: float | None = None) -> Decimal:
    now = time.monotonic() if now is None else now
    return Decimal(max(0, int((now - since_monotonic) * 10))) / 10


def active_step(program: Program, pump_time: int, dose_unit: str) -> dict | None:
    """The step of the program running at pump_time (minute of the UTC day), with its end."""
    from protocol.therapy import MINUTES_PER_DAY
    from protocol.therapy import active_step as index_of

    from .status import quantity

    steps = program.steps
    if not steps:
        return None
    starts = [s.start_minute for s in steps]
    minute = pump_time % 86_400 // 60
    i = index_of(starts, minute)
    end = starts[i + 1] if i + 1 < len(starts) else MINUTES_PER_DAY
    step = steps[i]
    return {"index": i + 1, "of": len(steps), "start": hhmm(step.start_minute),
            "end": "24:00" if end == MINUTES_PER_DAY else hhmm(end),
            "dose": quantity(step.dose_ng_per_day, dose_unit),
            "rate_ml_per_day": Decimal(step.rate_nl_per_day) / 1_000_000}


class Monitor:
    """Polls one pump; `poll()` returns a reading dict, good or failed, never raises a RETRIED
    error unless max_failures readings in a row have failed."""

    def __init__(self, pump: Pump, *, stale_after: float, max_failures: int):
        self.pump = pump
        self.stale_after = stale_after
        self.max_failures = max_failures
        self.readings = 0
        self.failures = 0  # in a row
        self.failed_total = 0
        self.last_good: dict | None = None
        self.last_good_at: float | None = None  # monotonic
        self.history: list[dict] = []  # alarm events seen while monitoring, oldest first
        self._program: Program | None = None  # READ_PROGRAM's, read again when last_txid moves
        self._program_txid: int | None = None
        self._event_count: int | None = None
        self._alarms: set[str] | None = None

    # --- link health ------------------------------------------------------------
    def link(self, rtt_ms: int | None = None) -> dict[str, Any]:
        stats = self.pump.link_stats()  # over every link opened: a reconnect keeps the counts
        return {"round_trip_ms": rtt_ms if rtt_ms is not None else (self.last_good or {}).get("link", {}).get(
                    "round_trip_ms"),
                "corrupt_frames": stats.corrupt_frames, "retries": stats.retries,
                "consecutive_failures": self.failures, "failed_readings": self.failed_total}

    # --- one reading -------------------------------------------------------------
    def poll(self) -> dict[str, Any]:
        self.readings += 1
        attempted = time.time()
        try:
            return self._good(self._read())
        except WrongPump as exc:
            # the session refuses any pump but the one it first opened with (or --expect-serial's),
            # at the handshake of a reconnect or of a new session: nothing was sent to this one
            stopped = WrongPump(f"monitor stopped: {exc.message}", details={**exc.details, "reading": self.readings})
            stopped.json_line = True
            raise stopped from None
        except RETRIED as exc:
            if isinstance(exc, AuthError) and self.last_good is None:
                raise  # no key, or the wrong one: asking again cannot help
            self.failures += 1
            self.failed_total += 1
            if self.failures >= self.max_failures:
                error = LinkError(f"monitor stopped: {self.failures} readings in a row failed; the last: "
                                  f"{exc.message}", details={"reading": self.readings})
                error.json_line = True
                raise error from None
            self.pump.disconnect()  # a fresh session next time (and a fresh port, but the private emulator's)
            reading = {"reading": self.readings, "ok": False, "attempted_at": iso(attempted),
                       "error": {"kind": exc.kind, "message": exc.message},
                       "max_failures": self.max_failures}
            reading |= self._freshness(self.last_good_at)
            reading["last_good_read_at"] = self.last_good["read_at"] if self.last_good else None
            reading["link"] = self.link()
            return reading

    def _read(self) -> tuple[Status, list[dict[str, Any]], int]:
        pump = self.pump
        pump.open()  # the session first: round_trip_ms times INTERROGATE alone, not a handshake
        if self.last_good is None:
            pump.reconcile()  # an unconfirmed write is settled by the first read, not by every one
        started = time.monotonic()
        reading = pump.status(settle=False)
        rtt_ms = int((time.monotonic() - started) * 1000)
        if self._program is None or reading.last_txid != self._program_txid:
            self._program = pump.program(reading=reading).raw
            self._program_txid = reading.last_txid
        events: list[dict[str, Any]] = []
        if self._event_count is not None and reading.event_count > self._event_count:
            # on the calendar by the skew measured at this reading, as its other dates are
            events = [e.data for e in pump.log(self._event_count, reading=reading)]
        self._event_count = reading.event_count
        return reading, events, rtt_ms

    def _good(self, read: tuple[Status, list[dict[str, Any]], int]) -> dict[str, Any]:
        now, events, rtt_ms = read
        status, raw = now.data, now.raw
        self.failures = 0
        self.last_good_at = time.monotonic()
        unit = status["daily_dose"]["unit"]
        names = {a["name"] for a in status["alarms"]}
        raised = [a for a in status["alarms"] if self._alarms is not None and a["name"] not in self._alarms]
        cleared = sorted(self._alarms - names) if self._alarms is not None else []
        self._alarms = names
        for e in events:
            if e.get("alarm") is not None or e["priority"] != "none":
                self.history.append(e)
        del self.history[:-50]
        program = self._program  # _read has read it
        step = active_step(program, raw.pump_time, unit) if program is not None else None
        if status["mode"] == "stopped":
            delivery = "stopped"
        elif bridge_running(raw):
            delivery = "bridge bolus"  # the old contents at the old rate; the program waits
        elif status["current_rate_ml_per_day"] == 0:
            delivery = "suspended"
        else:
            delivery = "running"
        reading = {
            "reading": self.readings,
            "ok": True,
            "serial_number": status["serial_number"],
            "model": status["model"],
            "emulated": status["emulated"],
            "drug": status["drug"],
            "read_at": status["read_at"],
            "pump_time": status["pump_time"],
            "clock_skew_s": status["clock_skew_s"],
            "pump_clock": status["pump_clock"],
            **self._freshness(self.last_good_at),
            "mode": status["mode"],
            "delivery": delivery,
            "daily_dose": status["daily_dose"],
            "flow_ml_per_day": status["flow_ml_per_day"],
            "current_rate_ml_per_day": status["current_rate_ml_per_day"],
            "active_step": step,
            "bolus_remaining": status["bolus_remaining"],
            "ptm": status["ptm"],  # patient boluses: limits, granted and refused in the last 24 hours
            "reservoir_ml": status["reservoir_ml"],
            "reservoir_capacity_ml": status["reservoir_capacity_ml"],
            "low_reservoir_alarm_ml": status["low_reservoir_alarm_ml"],
            "projected_low_reservoir_date": status["projected_low_reservoir_date"],
            "projected_empty_date": status["projected_empty_date"],
            "alarms": status["alarms"],
            "alarms_raised": raised,
            "alarms_cleared": cleared,
            "events": events,
            "battery": status["battery"],
            "mri_mode": status["mri_mode"],
            "link": self.link(rtt_ms),
        }
        self.last_good = reading
        return reading

    def _freshness(self, since: float | None) -> dict[str, Any]:
        if since is None:
            return {"age_s": None, "stale": True, "stale_after_s": _dec(self.stale_after)}
        seconds = time.monotonic() - since
        return {"age_s": age_s(since), "stale": seconds > self.stale_after, "stale_after_s": _dec(self.stale_after)}


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))
