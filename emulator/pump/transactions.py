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

from protocol import BatteryState, CommitOutcome, Drug, ErrorReason, EventType, MriMode, WriteKind
from protocol.models import ModelSpec

from ..program import Program
from .battery import Battery
from .core import PumpCore, Refusal
from .delivery import NL_PER_UL, Delivery, bolus_volume_nl
from .integers import ceil_div
from .mri import Mri

#: applied transactions remembered for idempotent COMMIT replies (ALREADY_APPLIED)
APPLIED_HISTORY = 16


@dataclass(frozen=True)
class Pending:
    """The single prepared transaction, waiting for COMMIT(txid). Volatile: not saved."""

    txid: int
    kind: WriteKind
    program: Program  # what will run once committed (a bolus: the current program)
    drug: Drug
    concentration_ng_per_ml: int
    reservoir_ul: int  # once committed (a refill: the new volume)
    withdrawn_ul: int = 0
    bolus_dose_ng: int = 0
    bolus_duration_s: int = 0
    bolus_volume_nl: int = 0
    mri_auto_exit_s: int = 0  # MRI_ENTER: the delay the automatic exit will be armed with

    def body(self) -> dict:
        """The protocol's Prepared struct: the echo of what the pump will do."""
        return {
            "txid": self.txid,
            "kind": self.kind,
            "program": self.program.body(self.drug, self.concentration_ng_per_ml),
            "reservoir_ul": self.reservoir_ul,
            "bolus_dose_ng": self.bolus_dose_ng,
            "bolus_duration_s": self.bolus_duration_s,
            "bolus_volume_nl": self.bolus_volume_nl,
            "mri_auto_exit_s": self.mri_auto_exit_s,
        }

    def describe(self) -> dict:
        return {"txid": self.txid, "kind": self.kind.name, "program": self.program.to_dict(),
                "drug": self.drug.name.lower(), "concentration_ng_per_ml": self.concentration_ng_per_ml,
                "reservoir_ul": self.reservoir_ul, "bolus_dose_ng": self.bolus_dose_ng,
                "bolus_duration_s": self.bolus_duration_s, "bolus_volume_nl": self.bolus_volume_nl,
                "mri_auto_exit_s": self.mri_auto_exit_s}


@dataclass(frozen=True)
class Applied:
    txid: int
    kind: WriteKind
    applied_at: int


class Transactions:
    """The pending transaction and the applied ones; PREPARE and COMMIT act on the other parts."""

    def __init__(self, core: PumpCore, spec: ModelSpec, delivery: Delivery, battery: Battery, mri: Mri) -> None:
        self.core = core
        self.spec = spec
        self.delivery = delivery
        self.battery = battery
        self.mri = mri
        self.last_txid = 0
        self.last_programmed_at = 0
        self.pending: Pending | None = None  # volatile: lost on reset and restart
        self.applied: deque[Applied] = deque(maxlen=APPLIED_HISTORY)

    # --- checks -----------------------------------------------------------------

    def _check_writable(self, kind: WriteKind | None = None) -> None:
        """State checks for every PREPARE and COMMIT of `kind` (INVALID_STATE)."""
        mri = self.mri
        if self.battery.state is BatteryState.EOS:
            raise Refusal(ErrorReason.INVALID_STATE, "battery at end of service: delivery has stopped")
        if kind is WriteKind.MRI_EXIT:
            if mri.mode is not MriMode.SAFE:
                raise Refusal(ErrorReason.INVALID_STATE, "not in MRI-safe mode")
            return
        if mri.mode is not MriMode.OFF:
            if kind is WriteKind.MRI_ENTER:
                raise Refusal(ErrorReason.INVALID_STATE,
                              f"already in MRI-safe mode (automatic exit at {mri.auto_exit_at})")
            raise Refusal(ErrorReason.INVALID_STATE, f"MRI mode {mri.mode.name} is on")
        if kind is WriteKind.MRI_ENTER:
            self._check_mri_enter()

    def _check_mri_enter(self) -> None:
        delivery = self.delivery
        if delivery.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE,
                          f"a bolus is running (txid {delivery.bolus.txid}): enter MRI-safe mode after it")
        if self.spec.mr_must_be_empty and delivery.reservoir_nl > 0:
            raise Refusal(ErrorReason.INVALID_STATE,
                          f"reservoir holds {ceil_div(delivery.reservoir_nl, NL_PER_UL)} uL: a valve-gated "
                          "pump must be emptied first (the field can open its valves)")

    def _check_new_request(self, body: dict) -> None:
        txid = body["txid"]
        if any(a.txid == txid for a in self.applied):
            raise Refusal(ErrorReason.INVALID_STATE, f"txid {txid} was already applied; use a new one")
        # compare-and-set: a change checked against a state that is no longer the pump's is refused
        if body["based_on_txid"] != self.last_txid:
            raise Refusal(ErrorReason.CHANGED_SINCE_READ,
                          f"based on txid {body['based_on_txid']}, but the pump has applied txid "
                          f"{self.last_txid} since: read it again")

    def _begin(self, body: dict, kind: WriteKind | None = None) -> None:
        """What every PREPARE does first: drop the pending transaction, check txids and state."""
        self.pending = None
        self._check_new_request(body)
        self._check_writable(kind)

    def _store_pending(self, pending: Pending) -> dict:
        self.pending = pending
        self.core.changes += 1
        return pending.body()

    def _pending_as_now(self, body: dict, kind: WriteKind, program: Program, **bolus_or_mri) -> Pending:
        """A transaction that keeps the reservoir's drug, concentration and volume."""
        delivery = self.delivery
        return Pending(body["txid"], kind, program, delivery.drug, delivery.concentration_ng_per_ml,
                       delivery.reservoir_nl // NL_PER_UL, **bolus_or_mri)

    # --- PREPARE_* ----------------------------------------------------------------

    def prepare_program(self, body: dict) -> dict:
        delivery = self.delivery
        self.pending = None
        self._check_new_request(body)
        if body["drug"] != delivery.drug or body["concentration_ng_per_ml"] != delivery.concentration_ng_per_ml:
            raise Refusal(
                ErrorReason.INVALID_STATE,
                f"request says {Drug(body['drug']).name} {body['concentration_ng_per_ml']} ng/mL; reservoir "
                f"holds {delivery.drug.name} {delivery.concentration_ng_per_ml} ng/mL",
            )
        self._check_writable()
        program = delivery.build_program(body["mode"], body["steps"], delivery.concentration_ng_per_ml)
        return self._store_pending(self._pending_as_now(body, WriteKind.PROGRAM, program))

    def prepare_refill(self, body: dict) -> dict:
        self._begin(body)
        if self.delivery.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE, "a bolus is running: refill after it finishes")
        if body["drug"] == Drug.NONE:
            raise Refusal(ErrorReason.OUT_OF_RANGE, "a refill needs a drug (NONE given)")
        capacity = self.spec.capacity_ul
        if body["volume_ul"] > capacity:
            raise Refusal(ErrorReason.OUT_OF_RANGE,
                          f"volume {body['volume_ul']} uL exceeds the capacity {capacity} uL")
        if body["withdrawn_ul"] > capacity:
            raise Refusal(ErrorReason.OUT_OF_RANGE,
                          f"withdrawn {body['withdrawn_ul']} uL exceeds the capacity {capacity} uL")
        concentration = body["concentration_ng_per_ml"]
        program = self.delivery.build_program(body["mode"], body["steps"], concentration)
        return self._store_pending(Pending(
            body["txid"], WriteKind.REFILL, program, Drug(body["drug"]), concentration,
            body["volume_ul"], withdrawn_ul=body["withdrawn_ul"],
        ))

    def prepare_bolus(self, body: dict) -> dict:
        delivery = self.delivery
        self._begin(body)
        if delivery.drug == Drug.NONE:
            raise Refusal(ErrorReason.INVALID_STATE, "no drug in the reservoir")
        volume = bolus_volume_nl(body["dose_ng"], delivery.concentration_ng_per_ml)
        delivery.check_bolus(volume, body["duration_s"])
        return self._store_pending(self._pending_as_now(
            body, WriteKind.BOLUS, delivery.program, bolus_dose_ng=body["dose_ng"],
            bolus_duration_s=body["duration_s"], bolus_volume_nl=volume,
        ))

    def prepare_mri_enter(self, body: dict) -> dict:
        self._begin(body, WriteKind.MRI_ENTER)
        auto_exit_s = body["auto_exit_s"]
        if not 3600 <= auto_exit_s <= 86_400:  # the codec's range too
            raise Refusal(ErrorReason.OUT_OF_RANGE, f"automatic exit after {auto_exit_s} s: give 3600..86400 s")
        return self._store_pending(self._pending_as_now(
            body, WriteKind.MRI_ENTER, self.delivery.program, mri_auto_exit_s=auto_exit_s))

    def prepare_mri_exit(self, body: dict) -> dict:
        self._begin(body, WriteKind.MRI_EXIT)
        program = self.mri.recorded_program
        if program is None:  # _begin refuses an exit outside MRI-safe mode, which always records one
            raise Refusal(ErrorReason.INVALID_STATE, "not in MRI-safe mode")
        return self._store_pending(self._pending_as_now(body, WriteKind.MRI_EXIT, program))

    # --- COMMIT -----------------------------------------------------------------

    def commit(self, txid: int) -> dict:
        """Apply the pending transaction txid now; ALREADY_APPLIED for a recent one.
        The caller then logs whatever the write made true (Pump.commit)."""
        for done in self.applied:
            if done.txid == txid:
                return {"txid": txid, "outcome": CommitOutcome.ALREADY_APPLIED, "kind": done.kind,
                        "applied_at": done.applied_at}
        pending = self.pending
        if pending is None or pending.txid != txid:
            raise Refusal(ErrorReason.INVALID_STATE, f"no prepared transaction {txid}")
        self.pending = None  # whatever happens next, it is used up
        self.core.changes += 1
        self._check_writable(pending.kind)  # time may have passed since PREPARE
        self._apply(pending)
        now = self.core.time
        self.last_txid = txid
        self.last_programmed_at = now
        self.applied.append(Applied(txid, pending.kind, now))
        self.core.log_event(EventType.TX_APPLIED, arg1=txid, arg2=int(pending.kind))
        return {"txid": txid, "outcome": CommitOutcome.APPLIED, "kind": pending.kind, "applied_at": now}

    def _apply(self, pending: Pending) -> None:
        delivery = self.delivery
        if pending.kind is WriteKind.MRI_ENTER:
            self.mri.enter(pending.mri_auto_exit_s)
        elif pending.kind is WriteKind.MRI_EXIT:
            self.mri.exit(automatic=False)
        elif pending.kind is WriteKind.BOLUS:
            delivery.check_bolus(pending.bolus_volume_nl, pending.bolus_duration_s)
            delivery.start_bolus(pending.txid, pending.bolus_dose_ng, pending.bolus_volume_nl,
                                 pending.bolus_duration_s)
        elif pending.kind is WriteKind.REFILL:
            if delivery.bolus is not None:
                raise Refusal(ErrorReason.INVALID_STATE, "a bolus is running: refill after it finishes")
            delivery.refill(pending.reservoir_ul, pending.drug, pending.concentration_ng_per_ml, pending.program)
        else:
            delivery.change_program(pending.program)
