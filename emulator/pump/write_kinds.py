"""One object per write kind: how its PREPARE is checked, the Pending it makes, and how
its COMMIT applies it.

Transactions (transactions.py) runs every kind the same way: PREPARE drops the pending
write, checks the txids (compare-and-set), asks the kind for its Pending and stores it;
COMMIT checks the state again and asks the kind to apply it. Nothing else switches on
the kind: a new write is one more class here.

    PROGRAM, REFILL, BOLUS, MRI_ENTER, MRI_EXIT   (the wire's WriteKind; ithcli's EMPTY
                                                   is a REFILL of nothing on the wire)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from protocol import BatteryState, Command, Drug, ErrorReason, MriMode, WriteKind, bodies

from ..program import Program
from .core import Refusal
from .delivery import NL_PER_UL, bolus_volume_nl
from .integers import ceil_div

if TYPE_CHECKING:
    from .transactions import Transactions

#: the PREPARE_* request bodies
PrepareRequest = (bodies.PrepareProgramRequest | bodies.PrepareRefillRequest | bodies.PrepareBolusRequest
                  | bodies.PrepareMriEnterRequest | bodies.PrepareMriExitRequest)
Q = TypeVar("Q", bound=PrepareRequest)


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

    @property
    def write(self) -> PumpWrite[Any]:
        """Its kind's object (how COMMIT applies it)."""
        return BY_KIND[self.kind]

    def body(self) -> bodies.Prepared:
        """The protocol's Prepared struct: the echo of what the pump will do."""
        return bodies.Prepared(
            txid=self.txid, kind=self.kind, program=self.program.body(self.drug, self.concentration_ng_per_ml),
            reservoir_ul=self.reservoir_ul, bolus_dose_ng=self.bolus_dose_ng, bolus_duration_s=self.bolus_duration_s,
            bolus_volume_nl=self.bolus_volume_nl, mri_auto_exit_s=self.mri_auto_exit_s,
        )

    def describe(self) -> dict:
        return {"txid": self.txid, "kind": self.kind.name, "program": self.program.to_dict(),
                "drug": self.drug.name.lower(), "concentration_ng_per_ml": self.concentration_ng_per_ml,
                "reservoir_ul": self.reservoir_ul, "bolus_dose_ng": self.bolus_dose_ng,
                "bolus_duration_s": self.bolus_duration_s, "bolus_volume_nl": self.bolus_volume_nl,
                "mri_auto_exit_s": self.mri_auto_exit_s}


class PumpWrite(Generic[Q]):
    """What differs from one write kind to another, on the pump's side; Q is its PREPARE body."""

    kind: ClassVar[WriteKind]
    command: ClassVar[Command]  # its PREPARE_* command
    request: ClassVar[type[bodies.Body]]
    #: it sets the program the pump runs (the mismatch_on_commit fault tampers with that)
    sets_program: ClassVar[bool] = False

    def check_state(self, tx: Transactions) -> None:
        """The state checks of its PREPARE and, again, of its COMMIT (INVALID_STATE). Most
        writes need delivery under the pump's control: no MRI mode on."""
        mri = tx.mri
        if mri.mode is not MriMode.OFF:
            raise Refusal(ErrorReason.INVALID_STATE, f"MRI mode {mri.mode.name} is on")

    def writable(self, tx: Transactions) -> None:
        """Every write: a battery at end of service takes none; then the kind's own checks."""
        if tx.battery.state is BatteryState.EOS:
            raise Refusal(ErrorReason.INVALID_STATE, "battery at end of service: delivery has stopped")
        self.check_state(tx)

    def prepare(self, tx: Transactions, body: Q) -> Pending:
        """Check the request against the pump (txids already checked) and make the Pending."""
        raise NotImplementedError

    def apply(self, tx: Transactions, pending: Pending) -> None:
        """COMMIT: make it true (the state was checked again just before)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pump write {self.kind.name}>"


def _as_now(tx: Transactions, body: PrepareRequest, kind: WriteKind, program: Program,
            **bolus_or_mri: int) -> Pending:
    """A transaction that keeps the reservoir's drug, concentration and volume."""
    delivery = tx.delivery
    return Pending(body.txid, kind, program, delivery.drug, delivery.concentration_ng_per_ml,
                   delivery.reservoir_nl // NL_PER_UL, **bolus_or_mri)


class ProgramWrite(PumpWrite[bodies.PrepareProgramRequest]):
    kind, command, request, sets_program = (WriteKind.PROGRAM, Command.PREPARE_PROGRAM,
                                            bodies.PrepareProgramRequest, True)

    def prepare(self, tx: Transactions, body: bodies.PrepareProgramRequest) -> Pending:
        delivery = tx.delivery
        # the drug the programmer believes is in the reservoir is checked before the state
        if body.drug != delivery.drug or body.concentration_ng_per_ml != delivery.concentration_ng_per_ml:
            raise Refusal(
                ErrorReason.INVALID_STATE,
                f"request says {Drug(body.drug).name} {body.concentration_ng_per_ml} ng/mL; reservoir "
                f"holds {delivery.drug.name} {delivery.concentration_ng_per_ml} ng/mL",
            )
        self.writable(tx)
        program = delivery.build_program(body.mode, body.steps, delivery.concentration_ng_per_ml)
        return _as_now(tx, body, self.kind, program)

    def apply(self, tx: Transactions, pending: Pending) -> None:
        tx.delivery.change_program(pending.program)


class RefillWrite(PumpWrite[bodies.PrepareRefillRequest]):
    kind, command, request, sets_program = (WriteKind.REFILL, Command.PREPARE_REFILL,
                                            bodies.PrepareRefillRequest, True)

    def prepare(self, tx: Transactions, body: bodies.PrepareRefillRequest) -> Pending:
        self.writable(tx)
        if tx.delivery.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE, "a bolus is running: refill after it finishes")
        if body.drug == Drug.NONE:
            raise Refusal(ErrorReason.OUT_OF_RANGE, "a refill needs a drug (NONE given)")
        capacity = tx.spec.capacity_ul
        if body.volume_ul > capacity:
            raise Refusal(ErrorReason.OUT_OF_RANGE, f"volume {body.volume_ul} uL exceeds the capacity {capacity} uL")
        if body.withdrawn_ul > capacity:
            raise Refusal(ErrorReason.OUT_OF_RANGE,
                          f"withdrawn {body.withdrawn_ul} uL exceeds the capacity {capacity} uL")
        concentration = body.concentration_ng_per_ml
        program = tx.delivery.build_program(body.mode, body.steps, concentration)
        return Pending(body.txid, self.kind, program, Drug(body.drug), concentration, body.volume_ul,
                       withdrawn_ul=body.withdrawn_ul)

    def apply(self, tx: Transactions, pending: Pending) -> None:
        delivery = tx.delivery
        if delivery.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE, "a bolus is running: refill after it finishes")
        delivery.refill(pending.reservoir_ul, pending.drug, pending.concentration_ng_per_ml, pending.program)


class BolusWrite(PumpWrite[bodies.PrepareBolusRequest]):
    kind, command, request = WriteKind.BOLUS, Command.PREPARE_BOLUS, bodies.PrepareBolusRequest

    def prepare(self, tx: Transactions, body: bodies.PrepareBolusRequest) -> Pending:
        delivery = tx.delivery
        self.writable(tx)
        if delivery.drug == Drug.NONE:
            raise Refusal(ErrorReason.INVALID_STATE, "no drug in the reservoir")
        volume = bolus_volume_nl(body.dose_ng, delivery.concentration_ng_per_ml)
        delivery.check_bolus(volume, body.duration_s)
        return _as_now(tx, body, self.kind, delivery.program, bolus_dose_ng=body.dose_ng,
                       bolus_duration_s=body.duration_s, bolus_volume_nl=volume)

    def apply(self, tx: Transactions, pending: Pending) -> None:
        delivery = tx.delivery
        delivery.check_bolus(pending.bolus_volume_nl, pending.bolus_duration_s)
        delivery.start_bolus(pending.txid, pending.bolus_dose_ng, pending.bolus_volume_nl, pending.bolus_duration_s)


class MriEnterWrite(PumpWrite[bodies.PrepareMriEnterRequest]):
    kind, command, request = WriteKind.MRI_ENTER, Command.PREPARE_MRI_ENTER, bodies.PrepareMriEnterRequest

    def check_state(self, tx: Transactions) -> None:
        mri, delivery = tx.mri, tx.delivery
        if mri.mode is not MriMode.OFF:
            raise Refusal(ErrorReason.INVALID_STATE, f"already in MRI-safe mode (automatic exit at {mri.auto_exit_at})")
        if delivery.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE,
                          f"a bolus is running (txid {delivery.bolus.txid}): enter MRI-safe mode after it")
        if tx.spec.mr_must_be_empty and delivery.reservoir_nl > 0:
            raise Refusal(ErrorReason.INVALID_STATE,
                          f"reservoir holds {ceil_div(delivery.reservoir_nl, NL_PER_UL)} uL: a valve-gated "
                          "pump must be emptied first (the field can open its valves)")

    def prepare(self, tx: Transactions, body: bodies.PrepareMriEnterRequest) -> Pending:
        self.writable(tx)
        auto_exit_s = body.auto_exit_s
        if not 3600 <= auto_exit_s <= 86_400:  # the codec's range too
            raise Refusal(ErrorReason.OUT_OF_RANGE, f"automatic exit after {auto_exit_s} s: give 3600..86400 s")
        return _as_now(tx, body, self.kind, tx.delivery.program, mri_auto_exit_s=auto_exit_s)

    def apply(self, tx: Transactions, pending: Pending) -> None:
        tx.mri.enter(pending.mri_auto_exit_s)


class MriExitWrite(PumpWrite[bodies.PrepareMriExitRequest]):
    kind, command, request = WriteKind.MRI_EXIT, Command.PREPARE_MRI_EXIT, bodies.PrepareMriExitRequest

    def check_state(self, tx: Transactions) -> None:
        if tx.mri.mode is not MriMode.SAFE:
            raise Refusal(ErrorReason.INVALID_STATE, "not in MRI-safe mode")

    def prepare(self, tx: Transactions, body: bodies.PrepareMriExitRequest) -> Pending:
        self.writable(tx)
        program = tx.mri.recorded_program
        if program is None:  # writable() refuses an exit outside MRI-safe mode, which always records one
            raise Refusal(ErrorReason.INVALID_STATE, "not in MRI-safe mode")
        return _as_now(tx, body, self.kind, program)

    def apply(self, tx: Transactions, pending: Pending) -> None:
        tx.mri.exit(automatic=False)


WRITES: tuple[PumpWrite[Any], ...] = (ProgramWrite(), RefillWrite(), BolusWrite(), MriEnterWrite(), MriExitWrite())
BY_KIND: dict[WriteKind, PumpWrite[Any]] = {w.kind: w for w in WRITES}
BY_REQUEST: dict[type[bodies.Body], PumpWrite[Any]] = {w.request: w for w in WRITES}
#: the PREPARE_* commands (the faults that act after a PREPARE match these)
PREPARES: tuple[Command, ...] = tuple(w.command for w in WRITES)
