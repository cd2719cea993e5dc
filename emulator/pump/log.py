"""The event log: a ring of LogEvents with absolute, ever-increasing indexes.

Like the pump's flash log: when the ring is full the oldest event goes, and the
index keeps counting, so READ_LOG can say which events were lost.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from protocol import EventType, Priority, bodies

from .integers import check_uint

LOG_CAPACITY = 4096


@dataclass(frozen=True)
class LogEvent:
    index: int
    time: int
    type: EventType
    priority: Priority
    arg1: int = 0
    arg2: int = 0

    def body(self) -> bodies.Event:
        """The protocol's Event struct."""
        return bodies.Event(self.index, self.time, self.type, self.priority, self.arg1, self.arg2)

    def to_list(self) -> list:
        """The event as a row of the state file."""
        return [self.index, self.time, self.type.name, self.priority.name, self.arg1, self.arg2]

    @classmethod
    def from_list(cls, row: list) -> LogEvent:
        index, time_, type_, prio, arg1, arg2 = row
        return cls(check_uint(index, 32), check_uint(time_, 63), EventType[type_], Priority[prio],
                   check_uint(arg1, 32), check_uint(arg2, 32))


class EventLog:
    """A ring buffer with absolute, ever-increasing indexes (like the pump's flash log)."""

    def __init__(self, capacity: int = LOG_CAPACITY):
        self.events: deque[LogEvent] = deque(maxlen=capacity)
        self.count = 0  # the index the next event gets

    @property
    def oldest_index(self) -> int:
        return self.count - len(self.events)

    def append(self, time_: int, type_: EventType, priority: Priority, arg1: int = 0, arg2: int = 0) -> LogEvent:
        event = LogEvent(self.count, time_, type_, priority, arg1, arg2)
        self.events.append(event)
        self.count += 1
        return event

    def read(self, first_index: int, max_count: int) -> list[LogEvent]:
        start = max(first_index, self.oldest_index)
        offset = start - self.oldest_index
        return [self.events[i] for i in range(offset, min(offset + max_count, len(self.events)))]
