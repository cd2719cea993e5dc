"""How `monitor` records its readings in the audit log: changes, and a reading at least every so often.

A monitor reads the pump every 2 s: 43,200 readings a day, nearly all alike. Recording every
one buries what an auditor looks for, so a reading is recorded (as the INTERROGATE exchange it
is) when anything in it changed but what moves by itself (the pump's clock, the reservoir's
volume, the battery's percentage and dates, a bolus counting down), and at least every
`every_s` seconds however alike; the readings folded in between are counted in the next one
recorded (`readings_folded`), and the last of them is recorded when the monitor stops. A
change of alarm, mode, rate, drug, MRI state or any setting is therefore recorded at the
reading that saw it. Writes, handshakes and log reads are recorded as always, every one.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: the reading's fields that move on their own: a change in them alone is not recorded at once
VOLATILE = frozenset({"pump_time", "reservoir_ul", "battery_percent", "eri_at", "replace_by",
                      "bolus_remaining_ng", "auth_failures"})
EVERY_S = 900.0


class ReadFolder:
    def __init__(self, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s = every_s
        self.clock = clock
        self.folded = 0
        self._substance: dict[str, Any] | None = None
        self._recorded_at = 0.0
        self._last: tuple[Any, ...] | None = None  # the newest folded reading: recorded at flush()

    def offer(self, request: Any, response: dict[str, Any]) -> dict[str, Any] | None:
        """None: fold this reading (not recorded); else the fields to record it with."""
        substance = {k: v for k, v in response.items() if k not in VOLATILE}
        now = self.clock()
        if substance == self._substance and now - self._recorded_at < self.every_s:
            self.folded += 1
            self._last = (request, response)
            return None
        fields = {"readings_folded": self.folded} if self.folded else {}
        self._substance, self._recorded_at, self.folded, self._last = substance, now, 0, None
        return fields

    def flush(self) -> tuple[Any, Any, dict[str, Any]] | None:
        """The newest folded reading, to record as the monitor stops (request, response, fields)."""
        if self._last is None:
            return None
        request, response = self._last
        # it is one of the readings folded: the others are counted with it
        fields = {"readings_folded": self.folded - 1} if self.folded > 1 else {}
        self.folded, self._last = 0, None
        return request, response, fields
