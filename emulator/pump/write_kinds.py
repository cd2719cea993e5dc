"""One object per write kind: how its PREPARE is checked, the Pending it makes, and how
its COMMIT applies it.

Transactions (transactions.py) runs every kind the same way: PREPARE drops the pending
write, checks the txids (compare-and-set), asks the kind for its Pending and stores it;
COMMIT checks the state again and asks the kind to apply it. Nothing else switches on
the kind: a new write is one more class here.

    PROGRAM, REFILL, BOLUS, MRI_ENTER, MRI_EXIT,  (the wire's WriteKind; ithcli's EMPTY
    CATHETER, CLOCK, PTM, PATIENT                  is a REFILL of nothing on the wire)

Every Pending's echo carries the catheter record, the patient-bolus limits and the patient
record as they will be once committed (the current ones, unless the write changes them).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from protocol import BatteryState, Command, Drug, ErrorReason, EventType, MriMode, WriteKind, bodies, messages
from protocol.catheter import NO_CATHETER, bridge_duration_s, dose_in_volume_ng
from protocol.constants import BolusPurpose, CatheterAction, CatheterModel, PatientAction
from protocol.patient import NO_PATIENT
from protocol.ptm import PTM_OFF

from ..program import DAY, Program
from .catheter_part import Record
from .core import Refusal
from .delivery import NL_PER_UL, bolus_volume_nl
from .integers import ceil_div
from .ptm import check_limits

if TYPE_CHECKING:
    from .transactions import Transactions

#: the PREPARE_* request bodies
PrepareRequest = (bodies.PrepareProgramRequest | bodies.PrepareRefillRequest | bodies.PrepareBolusRequest
                  | bodies.PrepareMriEnterRequest | bodies.PrepareMriExitRequest | bodies.PrepareCatheterRequest
                  | bodies.PrepareClockRequest | bodies.PreparePtmRequest | bodies.PreparePatientRequest)
Q = TypeVar("Q", bound=PrepareRequest)


def _echo_limit(field: str) -> int:
    """The most the Prepared echo's `field` can carry (protocol/messages.py)."""
    for sub in messages.Prepared.subcons:
        if sub.name == field:
            return int(sub.subcon.maximum)
    raise KeyError(field)


#: a bridge bolus whose duration the echo cannot carry is refused, not answered INTERNAL
ECHO_MAX_BOLUS_S = _echo_limit("bolus_duration_s")
#: PREPARE_CLOCK's accepted times: 2020-01-01T00:00:00Z..2100-01-01T00:00:00Z
CLOCK_EARLIEST, CLOCK_LATEST = 1_577_836_800, 4_102_444_800


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
    bolus_purpose: BolusPurpose = BolusPurpose.CLINICIAN
    catheter: bodies.CatheterRecord = NO_CATHETER  # the record once committed
    clock_step_s: int = 0  # CLOCK: the step the clock moves by at COMMIT
    ptm: bodies.PtmLimits = PTM_OFF  # the patient-bolus limits once committed
    catheter_action: CatheterAction = CatheterAction.NONE  # CATHETER: the action asked for
    patient: bodies.PatientRecord = NO_PATIENT  # the patient record once committed
    patient_action: PatientAction | None = None  # PATIENT: the action asked for

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
            bolus_purpose=self.bolus_purpose, catheter=self.catheter, clock_step_s=self.clock_step_s, ptm=self.ptm,
            patient=self.patient,
        )

    def describe(self) -> dict:
        return {"txid": self.txid, "kind": self.kind.name, "program": self.program.to_dict(),
                "drug": self.drug.name.lower(), "concentration_ng_per_ml": self.concentration_ng_per_ml,
                "reservoir_ul": self.reservoir_ul, "bolus_dose_ng": self.bolus_dose_ng,
                "bolus_duration_s": self.bolus_duration_s, "bolus_volume_nl": self.bolus_volume_nl,
                "mri_auto_exit_s": self.mri_auto_exit_s, "bolus_purpose": self.bolus_purpose.name,
                "catheter": bodies.as_dict(self.catheter), "catheter_action": self.catheter_action.name,
                "clock_step_s": self.clock_step_s, "ptm": bodies.as_dict(self.ptm),
                "patient": bodies.as_dict(self.patient),
                "patient_action": self.patient_action.name if self.patient_action else None}


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


def _pending(tx: Transactions, body: PrepareRequest, kind: WriteKind, program: Program, drug: Drug,
             concentration_ng_per_ml: int, reservoir_ul: int, **fields: Any) -> Pending:
    """A Pending whose echo carries the catheter record, the patient-bolus limits and the patient
    record as they are now, unless `fields` gives the write's own."""
    fields.setdefault("catheter", tx.catheter.body())
    fields.setdefault("ptm", tx.ptm.limits)
    fields.setdefault("patient", tx.patient.record)
    return Pending(body.txid, kind, program, drug, concentration_ng_per_ml, reservoir_ul, **fields)


def _as_now(tx: Transactions, body: PrepareRequest, kind: WriteKind, program: Program,
            **bolus_or_mri: Any) -> Pending:
    """A transaction that keeps the reservoir's drug, concentration and volume."""
    delivery = tx.delivery
    return _pending(tx, body, kind, program, delivery.drug, delivery.concentration_ng_per_ml,
                    delivery.reservoir_nl // NL_PER_UL, **bolus_or_mri)


def _out_of_range(detail: str) -> Refusal:
    return Refusal(ErrorReason.OUT_OF_RANGE, detail)


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
        return _pending(tx, body, self.kind, program, Drug(body.drug), concentration, body.volume_ul,
                        withdrawn_ul=body.withdrawn_ul, **self._bridge(tx, body))

    @staticmethod
    def _bridge(tx: Transactions, body: bodies.PrepareRefillRequest) -> dict[str, Any]:
        """The bridge bolus's echo fields ({} for none), or OUT_OF_RANGE: the pump accepts only
        the volume and duration it works out itself from its record and the running program."""
        volume, duration = body.bridge_volume_nl, body.bridge_duration_s
        if not volume and not duration:
            return {}
        delivery, catheter = tx.delivery, tx.catheter
        if not volume or not duration:
            raise _out_of_range(f"a bridge bolus needs both its volume and its duration "
                                f"(got {volume} nL, {duration} s)")
        if not catheter.record.recorded:
            raise _out_of_range("no catheter recorded: the pump does not know the dead space to bridge")
        if body.drug == delivery.drug and body.concentration_ng_per_ml == delivery.concentration_ng_per_ml:
            raise _out_of_range("neither the drug nor the concentration changes: nothing to bridge")
        old_rate = delivery.program.daily_volume_nl()
        if old_rate == 0:
            raise _out_of_range("the running program delivers nothing: there is no old rate to bridge at")
        dead = catheter.dead_space_nl
        if volume != dead:
            raise _out_of_range(f"bridge volume {volume} nL: the dead space is {dead} nL")
        expected = bridge_duration_s(dead, old_rate)
        if duration != expected:
            raise _out_of_range(f"bridge duration {duration} s: {dead} nL at the running {old_rate} nL/day "
                                f"takes {expected} s")
        if duration > ECHO_MAX_BOLUS_S:
            raise _out_of_range(f"a bridge of {duration} s is longer than the echo carries ({ECHO_MAX_BOLUS_S} s)")
        if volume > body.volume_ul * NL_PER_UL:
            raise _out_of_range(f"the refill's {body.volume_ul} uL cannot push out the {volume} nL bridge")
        if ceil_div(volume * DAY, duration) > tx.spec.max_flow_nl_per_day:
            raise _out_of_range(f"the bridge exceeds the model's {tx.spec.max_flow_nl_per_day} nL/day")
        # what the patient receives during the bridge: the old drug, at the old concentration
        return {"bolus_dose_ng": dose_in_volume_ng(dead, delivery.concentration_ng_per_ml),
                "bolus_duration_s": duration, "bolus_volume_nl": volume, "bolus_purpose": BolusPurpose.BRIDGE}

    def apply(self, tx: Transactions, pending: Pending) -> None:
        delivery = tx.delivery
        if delivery.bolus is not None:
            raise Refusal(ErrorReason.INVALID_STATE, "a bolus is running: refill after it finishes")
        delivery.refill(pending.reservoir_ul, pending.drug, pending.concentration_ng_per_ml, pending.program)
        if pending.bolus_purpose is BolusPurpose.BRIDGE:  # instead of the program until BOLUS_FINISHED
            delivery.begin_bolus(pending.txid, pending.bolus_dose_ng, pending.bolus_volume_nl,
                                 pending.bolus_duration_s, BolusPurpose.BRIDGE)
            tx.core.log_event(EventType.BRIDGE_STARTED, arg1=pending.bolus_dose_ng, arg2=pending.bolus_duration_s)


class BolusWrite(PumpWrite[bodies.PrepareBolusRequest]):
    kind, command, request = WriteKind.BOLUS, Command.PREPARE_BOLUS, bodies.PrepareBolusRequest

    def prepare(self, tx: Transactions, body: bodies.PrepareBolusRequest) -> Pending:
        delivery = tx.delivery
        purpose = BolusPurpose(body.purpose)
        if purpose not in (BolusPurpose.CLINICIAN, BolusPurpose.PRIMING):
            raise _out_of_range(f"a {purpose.name} bolus is not started by PREPARE_BOLUS (a bridge comes with "
                                "its refill, a patient's from the handheld)")
        self.writable(tx)
        if delivery.drug == Drug.NONE:
            raise Refusal(ErrorReason.INVALID_STATE, "no drug in the reservoir")
        if purpose is BolusPurpose.PRIMING:
            volume = self._priming_volume(tx, body.dose_ng)
        else:
            volume = bolus_volume_nl(body.dose_ng, delivery.concentration_ng_per_ml)
        delivery.check_bolus(volume, body.duration_s)
        return _as_now(tx, body, self.kind, delivery.program, bolus_dose_ng=body.dose_ng,
                       bolus_duration_s=body.duration_s, bolus_volume_nl=volume, bolus_purpose=purpose)

    @staticmethod
    def _priming_volume(tx: Transactions, dose_ng: int) -> int:
        """A priming bolus moves exactly the priming due the pump worked out from its record."""
        due = tx.catheter.priming_due_nl
        if not due:
            raise Refusal(ErrorReason.INVALID_STATE, "nothing to prime: record an IMPLANT or a REVISION first")
        concentration = tx.delivery.concentration_ng_per_ml
        expected = dose_in_volume_ng(due, concentration)
        if dose_ng != expected:
            raise _out_of_range(f"priming moves {due} nL: at {concentration} ng/mL that is {expected} ng, "
                                f"not {dose_ng} ng")
        return due

    def apply(self, tx: Transactions, pending: Pending) -> None:
        delivery, priming = tx.delivery, pending.bolus_purpose is BolusPurpose.PRIMING
        delivery.check_bolus(pending.bolus_volume_nl, pending.bolus_duration_s)
        if priming and tx.catheter.priming_due_nl != pending.bolus_volume_nl:
            raise Refusal(ErrorReason.INVALID_STATE, f"the priming due is now {tx.catheter.priming_due_nl} nL")
        delivery.start_bolus(pending.txid, pending.bolus_dose_ng, pending.bolus_volume_nl, pending.bolus_duration_s,
                             pending.bolus_purpose)
        if priming:
            tx.catheter.primed()
            tx.core.log_event(EventType.PRIMING_STARTED, arg1=pending.bolus_volume_nl, arg2=pending.bolus_duration_s)


class MriEnterWrite(PumpWrite[bodies.PrepareMriEnterRequest]):
    kind, command, request = WriteKind.MRI_ENTER, Command.PREPARE_MRI_ENTER, bodies.PrepareMriEnterRequest

    def check_state(self, tx: Transactions) -> None:
        mri, delivery = tx.mri, tx.delivery
        if mri.mode is not MriMode.OFF:
            # a time people read, on the pump's own clock (UTC), never its raw epoch seconds
            when = datetime.fromtimestamp(mri.auto_exit_at, UTC).isoformat()
            raise Refusal(ErrorReason.INVALID_STATE, f"already in MRI-safe mode (automatic exit at {when}, "
                          "the pump's clock)")
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


class CatheterWrite(PumpWrite[bodies.PrepareCatheterRequest]):
    kind, command, request = WriteKind.CATHETER, Command.PREPARE_CATHETER, bodies.PrepareCatheterRequest

    def check_state(self, tx: Transactions) -> None:
        super().check_state(tx)
        bolus = tx.delivery.bolus
        if bolus is not None:  # a priming bolus must not change under the record it was worked out from
            raise Refusal(ErrorReason.INVALID_STATE, f"a {bolus.purpose.name} bolus is running (txid {bolus.txid}): "
                          "record the catheter after it")

    def prepare(self, tx: Transactions, body: bodies.PrepareCatheterRequest) -> Pending:
        self.writable(tx)
        action = CatheterAction(body.action)
        record = tx.catheter.plan(action, CatheterModel(body.model), body.length_mm, body.replaced_mm)
        return _as_now(tx, body, self.kind, tx.delivery.program, catheter=tx.catheter.body(record),
                       catheter_action=action)

    def apply(self, tx: Transactions, pending: Pending) -> None:
        c = pending.catheter
        record = Record(c.action, c.model, c.length_mm, c.replaced_mm, c.recorded_at, c.priming_due_nl)
        tx.catheter.apply(pending.catheter_action, record)


class ClockWrite(PumpWrite[bodies.PrepareClockRequest]):
    kind, command, request = WriteKind.CLOCK, Command.PREPARE_CLOCK, bodies.PrepareClockRequest

    def check_state(self, tx: Transactions) -> None:
        """Setting the clock delivers nothing and every running timer keeps its length, so it is
        taken in MRI-safe mode too (the automatic exit stays at the same real moment)."""

    def prepare(self, tx: Transactions, body: bodies.PrepareClockRequest) -> Pending:
        self.writable(tx)
        if not CLOCK_EARLIEST <= body.new_time <= CLOCK_LATEST:
            raise _out_of_range(f"time {body.new_time} is outside 2020-01-01..2100-01-01 "
                                f"({CLOCK_EARLIEST}..{CLOCK_LATEST} s)")
        # the step is taken now, so the seconds until COMMIT do not count against it
        step = body.new_time - tx.core.time
        if abs(step) > messages.MAX_CLOCK_STEP_S:
            raise _out_of_range(f"a step of {step} s is more than {messages.MAX_CLOCK_STEP_S} s")
        return _as_now(tx, body, self.kind, tx.delivery.program, clock_step_s=step)

    def apply(self, tx: Transactions, pending: Pending) -> None:
        tx.clock.set(pending.clock_step_s)


class PtmWrite(PumpWrite[bodies.PreparePtmRequest]):
    kind, command, request = WriteKind.PTM, Command.PREPARE_PTM, bodies.PreparePtmRequest

    def prepare(self, tx: Transactions, body: bodies.PreparePtmRequest) -> Pending:
        self.writable(tx)
        check_limits(body.limits, tx.delivery)
        return _as_now(tx, body, self.kind, tx.delivery.program, ptm=body.limits)

    def apply(self, tx: Transactions, pending: Pending) -> None:
        tx.ptm.set_limits(pending.ptm)


class PatientWrite(PumpWrite[bodies.PreparePatientRequest]):
    kind, command, request = WriteKind.PATIENT, Command.PREPARE_PATIENT, bodies.PreparePatientRequest

    def check_state(self, tx: Transactions) -> None:
        """The record delivers nothing: taken in MRI-safe mode and while a bolus runs too."""

    def prepare(self, tx: Transactions, body: bodies.PreparePatientRequest) -> Pending:
        self.writable(tx)
        record = tx.patient.plan(body)  # RECORD or CORRECT against what it holds, every field checked
        return _as_now(tx, body, self.kind, tx.delivery.program, patient=record,
                       patient_action=PatientAction(body.action))

    def apply(self, tx: Transactions, pending: Pending) -> None:
        action = pending.patient_action if pending.patient_action is not None else PatientAction.RECORD
        tx.patient.apply(action, pending.patient)


WRITES: tuple[PumpWrite[Any], ...] = (ProgramWrite(), RefillWrite(), BolusWrite(), MriEnterWrite(), MriExitWrite(),
                                      CatheterWrite(), ClockWrite(), PtmWrite(), PatientWrite())
BY_KIND: dict[WriteKind, PumpWrite[Any]] = {w.kind: w for w in WRITES}
BY_REQUEST: dict[type[bodies.Body], PumpWrite[Any]] = {w.request: w for w in WRITES}
#: the PREPARE_* commands (the faults that act after a PREPARE match these)
PREPARES: tuple[Command, ...] = tuple(w.command for w in WRITES)
