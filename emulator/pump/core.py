"""What every part of the pump shares: its time, its event log, its alarms, why
delivery is suspended, and the change counter the server saves on.

The parts (delivery, battery, MRI, transactions, routine events) log, alarm and
suspend through one PumpCore, so an event is logged the same way whichever part
causes it, and every change moves the counter.
"""
from __future__ import annotations

from protocol import ALARM_PRIORITY, Alarm, ErrorReason, EventType, Priority

from .log import EventLog, LogEvent

# reasons delivery is suspended, with the alarm bit logged in DELIVERY_STOPPED.arg1
SUSPEND_EMPTY = "reservoir_empty"
SUSPEND_EOS = "battery_eos"
SUSPEND_MRI = "mri_safe"  # MRI-safe mode: motor parked / valves closed (no alarm)
SUSPEND_STALL = "motor_stall"
SUSPEND_ALARM = {SUSPEND_EMPTY: Alarm.EMPTY_RESERVOIR, SUSPEND_EOS: Alarm.EOS, SUSPEND_STALL: Alarm.MOTOR_STALL}
SUSPEND_REASONS = frozenset({SUSPEND_EMPTY, SUSPEND_EOS, SUSPEND_MRI, SUSPEND_STALL})


class Refusal(Exception):
    """A request the pump understood and refuses: the handler turns it into an ERROR reply."""

    def __init__(self, reason: ErrorReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class PumpCore:
    """The pump's time, log, alarms and suspensions. Set up by Pump.new() or the store."""

    def __init__(self) -> None:
        self.time: int  # pump time, whole seconds since the Unix epoch
        self.log = EventLog()
        self.alarms = Alarm(0)
        self.suspended: set[str] = set()
        #: bumped on every change other than the passing of time; the server saves when it moves
        self.changes = 0
        #: bumped when only a count moved (a session opened): saved with the next change, or on a tick (server.py)
        self.counted = 0

    @property
    def delivering(self) -> bool:
        return not self.suspended

    def log_event(self, type_: EventType, priority: Priority = Priority.NONE, arg1: int = 0,
                  arg2: int = 0) -> LogEvent:
        self.changes += 1
        return self.log.append(self.time, type_, priority, arg1, arg2)

    def raise_alarm(self, alarm: Alarm) -> None:
        if not self.alarms & alarm:
            self.alarms |= alarm
            self.log_event(EventType.ALARM_RAISED, ALARM_PRIORITY[alarm], int(alarm))

    def clear_alarm(self, alarm: Alarm) -> None:
        if self.alarms & alarm:
            self.alarms &= ~alarm
            self.log_event(EventType.ALARM_CLEARED, ALARM_PRIORITY[alarm], int(alarm))

    def suspend(self, reason: str) -> None:
        """Stop delivery for `reason` (logs DELIVERY_STOPPED when it was running)."""
        if reason in self.suspended:
            return
        was_running = not self.suspended
        self.suspended.add(reason)
        self.changes += 1
        if was_running:
            self.log_event(EventType.DELIVERY_STOPPED, arg1=int(SUSPEND_ALARM.get(reason, 0)))

    def resume(self, reason: str) -> None:
        """Lift one suspension (logs DELIVERY_RESUMED when none is left)."""
        if reason not in self.suspended:
            return
        self.suspended.discard(reason)
        self.changes += 1
        if not self.suspended:
            self.log_event(EventType.DELIVERY_RESUMED)
