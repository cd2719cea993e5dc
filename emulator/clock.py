"""The pump clock: real time, scaled, plus jumps made over the control channel.

The pump itself never reads a clock (emulator/pump/ is pure); the server injects this.
Integer seconds, never going backwards (time.monotonic, not the wall clock).
"""
from __future__ import annotations

import time
from collections.abc import Callable


class PumpClock:
    def __init__(self, start: int, scale: float = 1.0, monotonic: Callable[[], float] = time.monotonic):
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.start = int(start)
        self.scale = scale
        self._monotonic = monotonic
        self._origin = monotonic()
        self.offset = 0  # seconds added by advance()

    def now(self) -> int:
        return self.start + int((self._monotonic() - self._origin) * self.scale) + self.offset

    def advance(self, seconds: int) -> None:
        if seconds < 0:
            raise ValueError("the pump clock does not go backwards")
        self.offset += int(seconds)

    __call__ = now
