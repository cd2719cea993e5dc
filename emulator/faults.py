"""Test-only fault injection, armed over the control channel (never over telemetry).

Each fault is armed for the next N requests it matches and is used up one at a
time, only by a request it actually acts on. handler.respond() consults them.
The pump stays pure: a fault calls ordinary pump methods, drops a reply, or (the
one hook that reaches inside, tamper_pending below) changes the pending write.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from protocol import InfusionMode
from protocol.therapy import rate_for_dose

from .program import Program, Step

if TYPE_CHECKING:
    from .pump import Pump

#: name -> what it does (also the control channel's listing)
FAULTS = {
    "drop_commit_reply": "apply the next COMMIT normally (state saved) but send no reply",
    "mismatch_on_commit": "the next COMMIT of a CONTINUOUS/FLEX program applies the first step's dose "
                          "10 % higher than echoed (rate recomputed) and replies as if all was well",
    "reset_on_commit": "the pump resets when the next COMMIT arrives, before applying it "
                       "(pending transaction lost, POWER_ON + RESET alarm); no reply",
    "reset_after_commit": "apply the next COMMIT, then reset; no reply",
    "drop_prepare_reply": "store the next PREPARE_* transaction but send no reply",
    "reset_after_prepare": "answer the next PREPARE_* normally, then reset: the transaction and every "
                           "session are lost, so the COMMIT that follows finds no session",
    "drop_reply": "send no reply to the next request of any kind",
}
MAX_COUNT = 1000


class Faults:
    def __init__(self) -> None:
        self.armed: dict[str, int] = {}

    def arm(self, name: str, count: int = 1) -> None:
        if name not in FAULTS:
            raise KeyError(name)
        if count:
            self.armed[name] = count
        else:
            self.armed.pop(name, None)

    def take(self, name: str) -> bool:
        """True (and one use gone) when `name` is armed."""
        left = self.armed.get(name, 0)
        if not left:
            return False
        if left == 1:
            del self.armed[name]
        else:
            self.armed[name] = left - 1
        return True

    def is_armed(self, name: str) -> bool:
        return self.armed.get(name, 0) > 0

    def clear(self) -> None:
        self.armed.clear()


def tamper_pending(pump: Pump) -> bool:
    """mismatch_on_commit: make the pending program's first dose 10 % higher (rate recomputed)
    while its echo has already gone out. False when there is nothing to tamper with."""
    transactions = pump.transactions
    p = transactions.pending
    if (p is None or not p.write.sets_program
            or p.program.mode not in (InfusionMode.CONTINUOUS, InfusionMode.FLEX)):
        return False
    first = p.program.steps[0]
    dose = max(first.dose_ng_per_day * 11 // 10, first.dose_ng_per_day + 1)
    step = Step(first.start_minute, dose, rate_for_dose(dose, p.concentration_ng_per_ml))
    transactions.pending = replace(p, program=Program(p.program.mode, (step,) + p.program.steps[1:]))
    return True
