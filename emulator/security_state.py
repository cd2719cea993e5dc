"""Routine events that cannot flush the log, and slowing down guessing: pure, clocks injected.

The pump's event log is a 4096-event ring (pump.LOG_CAPACITY). Therapy history
(program changes, boluses, refills, delivery stopped and resumed, empty reservoir,
motor stall...) must stay readable over a week however often anyone opens a
session or fails to, so the two routine event types are coalesced (protocol
version 3, docs/protocol.md "Routine events and the log"):

- `FailureLog` counts every authentication refusal since manufacture
  (INTERROGATE's auth_failures) and decides when one AUTH_FAILURE event is due;
- `SessionLog` counts every session opened, per role, and decides when one
  SESSION_OPENED event of that role is due.

Each is a `Stream` of one event type (AUTH_FAILURE; SESSION_OPENED of READER;
SESSION_OPENED of CLINICIAN): the first occurrence after COALESCE_S of quiet is
logged at once (count 1); later ones are counted, and their count is logged in one
event exactly COALESCE_S after the stream's previous event (the pump stops its
clock there, like at any threshold). So two events of a stream are always at least
COALESCE_S apart, whatever the rate, and the counts of a stream's events add up to
every occurrence. Worst case, 3 streams: 3 * (floor(T / COALESCE_S) + 1) events in
T seconds: 3459 in 8 days, leaving 637 of the 4096 entries for everything else.
Counts not yet logged are part of the pump's saved state (to_dict/from_dict).

`Backoff` (per connection, volatile) answers AUTH attempts with RATE_LIMITED after
MAX_FREE_FAILURES consecutive wrong proofs on that connection, for
min(2**(failures - 3), cap) seconds of real monotonic time since the last wrong
proof. Per connection, not per pump: a stranger failing AUTH on their own
connection can never keep a programmer that holds the key out of its own (the
lock-out of protocol version 1). The pump-wide count and log above still see
every attempt. Rate-limited attempts do not extend the delay; a correct proof
resets it. The RATE_LIMITED detail contains "retry in N s" (docs/protocol.md).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from protocol import ErrorReason, Role

#: seconds of pump time between two events of one routine stream (protocol version 3;
#: version 2 logged AUTH_FAILURE at most once a minute and every SESSION_OPENED)
COALESCE_S = 600
#: the routine streams: AUTH_FAILURE, and SESSION_OPENED for each role
ROUTINE_STREAMS = 1 + len(Role)
MAX_FREE_FAILURES = 3
DEFAULT_BACKOFF_CAP_S = 30.0
U32_MAX = 2**32 - 1


def routine_events_bound(seconds: int) -> int:
    """The most routine events (AUTH_FAILURE and SESSION_OPENED) the pump logs in any
    `seconds` of pump time: events of a stream are at least COALESCE_S apart."""
    return ROUTINE_STREAMS * (seconds // COALESCE_S + 1)


def _u32(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U32_MAX:
        raise ValueError(f"{name} {value!r} is not an unsigned 32-bit integer")
    return value


def _time(value, name: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63):
        raise ValueError(f"{name} {value!r} is not a time")
    return value


@dataclass
class Stream:
    """One coalesced event stream: every occurrence counted, at most one event per COALESCE_S."""

    total: int = 0  # every occurrence since manufacture (saturates at 2**32 - 1)
    unlogged: int = 0  # occurrences since the stream's last event, not logged yet
    last_event_at: int | None = None  # pump time of the stream's last event

    def add(self, now: int) -> int | None:
        """Count one occurrence; the count to log now (an event is due), else None."""
        self.total = min(self.total + 1, U32_MAX)  # a u32 on the wire: saturate, never wrap
        self.unlogged += 1
        return self.due(now)

    def due_at(self) -> int | None:
        """When the counted occurrences will be logged (None: nothing is waiting)."""
        if not self.unlogged:
            return None
        return 0 if self.last_event_at is None else self.last_event_at + COALESCE_S

    def due(self, now: int) -> int | None:
        """The count of occurrences since the last event, if their event may be logged now
        (then it is taken as logged at `now`)."""
        at = self.due_at()
        if at is None or now < at:
            return None
        count = min(self.unlogged, U32_MAX)
        self.unlogged = 0
        self.last_event_at = now
        return count

    def to_dict(self) -> dict:
        return {"total": self.total, "unlogged": self.unlogged, "last_event_at": self.last_event_at}

    def load(self, data: dict, where: str) -> None:
        for name in ("total", "unlogged"):
            setattr(self, name, _u32(data[name], f"{where}.{name}"))
        self.last_event_at = _time(data["last_event_at"], f"{where}.last_event_at")


@dataclass
class FailureLog(Stream):
    """Authentication refusals: INTERROGATE's auth_failures (total) and AUTH_FAILURE events."""

    last_reason: int = 0  # ErrorReason of the latest refusal

    def record(self, reason: ErrorReason, now: int) -> tuple[int, int] | None:
        """Count one refusal; (arg1, arg2) when an AUTH_FAILURE event is due now."""
        self.last_reason = int(reason)
        count = self.add(now)
        return None if count is None else (count, self.last_reason)

    def flush(self, now: int) -> tuple[int, int] | None:
        """(failures since the last event, last reason) if their event is due now."""
        count = self.due(now)
        return None if count is None else (count, self.last_reason)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "last_reason": self.last_reason}

    @classmethod
    def from_dict(cls, data: dict | None) -> FailureLog:
        out = cls()
        if data is None:  # a state file from before the secure link
            return out
        out.load(data, "auth")
        out.last_reason = _u32(data["last_reason"], "auth.last_reason")
        return out


@dataclass
class SessionLog:
    """Sessions opened, per role: SESSION_OPENED events (arg1 the role, arg2 the count)."""

    roles: dict[Role, Stream] = field(default_factory=lambda: {role: Stream() for role in Role})

    def record(self, role: Role, now: int) -> int | None:
        """Count one session of `role`; the count to log in a SESSION_OPENED now, else None."""
        return self.roles[Role(role)].add(now)

    def flush(self, now: int) -> list[tuple[Role, int]]:
        """(role, sessions since that role's last event) for every role whose event is due now."""
        due = []
        for role, stream in self.roles.items():
            count = stream.due(now)
            if count is not None:
                due.append((role, count))
        return due

    def due_at(self) -> list[int]:
        return [at for at in (s.due_at() for s in self.roles.values()) if at is not None]

    def to_dict(self) -> dict:
        return {role.name: stream.to_dict() for role, stream in self.roles.items()}

    @classmethod
    def from_dict(cls, data: dict | None) -> SessionLog:
        out = cls()
        if data is None:  # a state file from before protocol version 3: every session was logged
            return out
        if not isinstance(data, dict):
            raise ValueError("sessions is not an object")
        unknown = set(data) - {role.name for role in Role}
        if unknown:
            raise ValueError(f"sessions: unknown roles {sorted(unknown)}")
        for name, stream in data.items():
            out.roles[Role[name]].load(stream, f"sessions.{name}")
        return out


class Backoff:
    """One connection's AUTH back-off, on real monotonic time (not the pump clock a test may jump)."""

    def __init__(self, cap_s: float = DEFAULT_BACKOFF_CAP_S, monotonic: Callable[[], float] = time.monotonic):
        if not cap_s > 0:
            raise ValueError("the back-off cap must be positive")
        self.cap_s = cap_s
        self._monotonic = monotonic
        self.failures = 0  # consecutive wrong proofs
        self.last_failure = 0.0

    def delay(self) -> float:
        if self.failures < MAX_FREE_FAILURES:
            return 0.0
        return min(2.0 ** (self.failures - MAX_FREE_FAILURES), self.cap_s)

    def retry_in(self) -> float:
        """Seconds until the next AUTH attempt may be checked (0: now)."""
        left = self.last_failure + self.delay() - self._monotonic()
        return left if self.delay() and left > 0 else 0.0

    def retry_in_text(self) -> str:
        return f"retry in {max(1, math.ceil(self.retry_in()))} s"

    def failed(self) -> None:
        self.failures += 1
        self.last_failure = self._monotonic()

    def succeeded(self) -> None:
        self.failures = 0
