"""Routine events: AUTH_FAILURE and SESSION_OPENED, counted and coalesced.

Coalesced so that nobody (a keyless attacker, a monitor opening sessions) can flush
therapy history out of the ring (security_state.py; docs/protocol.md, "Routine
events and the log"). Every occurrence is counted, and the count is saved with the
pump before the reply that acknowledges it; a count waiting for its event is
logged exactly COALESCE_S after that stream's previous event (a timer of
advance_to), so it is logged at its time even across a restart.
The checks themselves are emulator/session.py's.
"""
from __future__ import annotations

from protocol import ErrorReason, EventType, Role

from ..security_state import FailureLog, SessionLog
from .core import PumpCore


class RoutineEvents:
    def __init__(self, core: PumpCore) -> None:
        self.core = core
        #: authentication refusals since manufacture, and their coalesced logging (persisted)
        self.auth = FailureLog()
        #: sessions opened since manufacture per role, and their coalesced logging (persisted)
        self.sessions = SessionLog()

    def auth_failure(self, reason: ErrorReason) -> None:
        """Count one authentication refusal; log a coalesced AUTH_FAILURE when one is due."""
        self.core.changes += 1
        args = self.auth.record(reason, self.core.time)
        if args is not None:
            self.core.log_event(EventType.AUTH_FAILURE, arg1=args[0], arg2=args[1])

    def session_opened(self, role: Role) -> None:
        """Count one session opened; log a coalesced SESSION_OPENED (arg1 the role, arg2 the
        sessions of that role since its previous SESSION_OPENED) when one is due."""
        self.core.counted += 1  # a statistic: its event, when one is logged, is a change (saved durably)
        count = self.sessions.record(role, self.core.time)
        if count is not None:
            self.core.log_event(EventType.SESSION_OPENED, arg1=int(role), arg2=count)

    def log_due(self) -> None:
        """Log the coalesced counts whose time has come (AUTH_FAILURE first, then by role)."""
        args = self.auth.flush(self.core.time)
        if args is not None:
            self.core.log_event(EventType.AUTH_FAILURE, arg1=args[0], arg2=args[1])
        for role, count in self.sessions.flush(self.core.time):
            self.core.log_event(EventType.SESSION_OPENED, arg1=int(role), arg2=count)

    def shift(self, step_s: int) -> None:
        """The clock was set: each stream's next event stays COALESCE_S after its previous one."""
        for stream in (self.auth, *self.sessions.roles.values()):
            if stream.last_event_at is not None:
                stream.last_event_at = max(0, stream.last_event_at + step_s)

    def timers(self) -> list[int]:
        """Pump times at which a coalesced count waiting for its event is due."""
        due = self.sessions.due_at()
        auth = self.auth.due_at()
        if auth is not None:
            due.append(auth)
        return due
