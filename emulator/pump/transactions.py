"""Two-phase writes: PREPARE_* and COMMIT(txid), and the transaction ids.

PREPARE_* validates, stores the single pending transaction and returns its echo
(Prepared); nothing else changes. COMMIT(txid) re-checks and applies it. Any
PREPARE the pump reads first discards the pending one, so after a refused
PREPARE nothing is pending. Refusals raise Refusal(reason, detail).

Every PREPARE is checked against the last applied txid (compare-and-set), and the
last APPLIED_HISTORY applied txids are remembered so that a repeated COMMIT is
answered ALREADY_APPLIED instead of being applied twice.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from protocol import CommitOutcome, ErrorReason, EventType, WriteKind, bodies
from protocol.models import ModelSpec

from .battery import Battery
from .catheter_part import Catheter
from .clock_step import ClockStep
from .core import PumpCore, Refusal
from .delivery import Delivery
from .mri import Mri
from .patient import Patient
from .ptm import PatientBoluses
from .write_kinds import BY_REQUEST, Pending, PrepareRequest

#: applied transactions remembered for idempotent COMMIT replies (ALREADY_APPLIED)
APPLIED_HISTORY = 16

__all__ = ["APPLIED_HISTORY", "Applied", "Pending", "Transactions"]


@dataclass(frozen=True)
class Applied:
    txid: int
    kind: WriteKind
    applied_at: int


class Transactions:
    """The pending transaction and the applied ones; PREPARE and COMMIT act on the other parts
    through the write kind's object (write_kinds.py)."""

    def __init__(self, core: PumpCore, spec: ModelSpec, delivery: Delivery, battery: Battery, mri: Mri, *,
                 catheter: Catheter, ptm: PatientBoluses, clock: ClockStep, patient: Patient) -> None:
        self.core = core
        self.spec = spec
        self.delivery = delivery
        self.battery = battery
        self.mri = mri
        self.catheter = catheter
        self.ptm = ptm
        self.clock = clock
        self.patient = patient
        self.last_txid = 0
        self.last_programmed_at = 0
        self.pending: Pending | None = None  # volatile: lost on reset and restart
        self.applied: deque[Applied] = deque(maxlen=APPLIED_HISTORY)

    def _check_new_request(self, body: PrepareRequest) -> None:
        txid = body.txid
        if any(a.txid == txid for a in self.applied):
            raise Refusal(ErrorReason.INVALID_STATE, f"txid {txid} was already applied; use a new one")
        # compare-and-set: a change checked against a state that is no longer the pump's is refused
        if body.based_on_txid != self.last_txid:
            raise Refusal(ErrorReason.CHANGED_SINCE_READ,
                          f"based on txid {body.based_on_txid}, but the pump has applied txid "
                          f"{self.last_txid} since: read it again")

    # --- PREPARE_* ----------------------------------------------------------------

    def prepare(self, body: PrepareRequest) -> bodies.Prepared:
        """Any PREPARE: drop the pending transaction, check the txids, then the write kind
        checks the request and makes the new pending one; its echo is the reply."""
        write = BY_REQUEST[type(body)]
        self.pending = None
        self._check_new_request(body)
        pending = self.pending = write.prepare(self, body)
        self.core.changes += 1
        return pending.body()

    # --- COMMIT -----------------------------------------------------------------

    def commit(self, txid: int) -> bodies.Committed:
        """Apply the pending transaction txid now; ALREADY_APPLIED for a recent one.
        The caller then logs whatever the write made true (Pump.commit)."""
        for done in self.applied:
            if done.txid == txid:
                return bodies.Committed(txid, CommitOutcome.ALREADY_APPLIED, done.kind, done.applied_at)
        pending = self.pending
        if pending is None or pending.txid != txid:
            raise Refusal(ErrorReason.INVALID_STATE, f"no prepared transaction {txid}")
        self.pending = None  # whatever happens next, it is used up
        self.core.changes += 1
        write = pending.write
        write.writable(self)  # time may have passed since PREPARE
        write.apply(self, pending)
        now = self.core.time
        self.last_txid = txid
        self.last_programmed_at = now
        self.applied.append(Applied(txid, pending.kind, now))
        self.core.log_event(EventType.TX_APPLIED, arg1=txid, arg2=int(pending.kind))
        return bodies.Committed(txid, CommitOutcome.APPLIED, pending.kind, now)
