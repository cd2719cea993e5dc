"""Counting authentication refusals and slowing down guessing: pure, clocks injected.

`FailureLog` (part of the pump's persisted state) counts every authentication
refusal since manufacture and decides when one coalesced AUTH_FAILURE event is
due: the first failure after a quiet minute is logged at once, later ones are
summed into the next event, never more than one event per minute of pump time,
so an attacker cannot flush clinical events out of the 4096-event ring buffer.

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
from dataclasses import dataclass
from typing import Callable

from protocol import ErrorReason

#: seconds of pump time between two AUTH_FAILURE events
COALESCE_S = 60
MAX_FREE_FAILURES = 3
DEFAULT_BACKOFF_CAP_S = 30.0


@dataclass
class FailureLog:
    total: int = 0  # every refusal since manufacture (Status.auth_failures)
    unlogged: int = 0  # refusals since the last AUTH_FAILURE event
    last_reason: int = 0  # ErrorReason of the latest refusal
    last_event_at: int | None = None  # pump time of the last AUTH_FAILURE event

    def record(self, reason: ErrorReason, now: int) -> tuple[int, int] | None:
        """Count one refusal; (arg1, arg2) when an AUTH_FAILURE event is due now."""
        self.total = min(self.total + 1, 2**32 - 1)  # a u32 on the wire: saturate, never wrap
        self.unlogged += 1
        self.last_reason = int(reason)
        return self.due(now)

    def due(self, now: int) -> tuple[int, int] | None:
        """(failures since the last event, last reason) if an event may be logged now."""
        if not self.unlogged:
            return None
        if self.last_event_at is not None and now - self.last_event_at < COALESCE_S:
            return None
        args = (min(self.unlogged, 2**32 - 1), self.last_reason)
        self.unlogged = 0
        self.last_event_at = now
        return args

    def to_dict(self) -> dict:
        return {"total": self.total, "unlogged": self.unlogged, "last_reason": self.last_reason,
                "last_event_at": self.last_event_at}

    @classmethod
    def from_dict(cls, data: dict | None) -> "FailureLog":
        if data is None:  # a state file from before the secure link
            return cls()
        out = cls()
        for name in ("total", "unlogged", "last_reason"):
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
                raise ValueError(f"auth.{name} {value!r} is not an unsigned 32-bit integer")
            setattr(out, name, value)
        at = data["last_event_at"]
        if at is not None and (not isinstance(at, int) or isinstance(at, bool) or not 0 <= at < 2**63):
            raise ValueError(f"auth.last_event_at {at!r} is not a time")
        out.last_event_at = at
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
