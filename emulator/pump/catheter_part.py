"""The catheter record and the fluid column behind it (docs/protocol.md, "Catheter, priming
and bridge boluses").

The record is what the clinician told the pump (IMPLANT, REVISION, CORRECTION); the pump
works out the dead space and the priming due from it itself (protocol/catheter.py), so a
programmer can never make it prime a volume it did not work out. The Column
(catheter.py) is the emulator's model of what is in the tubing and the catheter: what
leaves the reservoir enters it, what leaves its tip is what the patient received.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from protocol import Drug, ErrorReason, EventType, bodies
from protocol.catheter import (
    CATHETER_NL_PER_CM,
    NO_CATHETER,
    dead_space_nl,
    implant_priming_nl,
    revision_priming_nl,
)
from protocol.constants import CatheterAction, CatheterModel
from protocol.messages import MAX_CATHETER_MM
from protocol.models import ModelSpec

from .catheter import Column, Segment
from .core import PumpCore, Refusal
from .integers import check_uint

#: CATHETER_RECORDED's arg2: length_mm + this x replaced_mm
REPLACED_SHIFT = 65_536


@dataclass(frozen=True)
class Record:
    """What the pump holds about its catheter (NONE: nothing recorded)."""

    action: CatheterAction = CatheterAction.NONE  # the last IMPLANT or REVISION
    model: CatheterModel = CatheterModel.NONE
    length_mm: int = 0
    replaced_mm: int = 0  # the segment the last REVISION replaced
    recorded_at: int = 0  # the last IMPLANT, REVISION or CORRECTION
    priming_due_nl: int = 0  # 0: primed

    @property
    def recorded(self) -> bool:
        return self.action is not CatheterAction.NONE


def _refuse(detail: str) -> Refusal:
    return Refusal(ErrorReason.OUT_OF_RANGE, detail)


class Catheter:
    """The record and its column. Set up by Pump.new() or the store."""

    def __init__(self, core: PumpCore, spec: ModelSpec) -> None:
        self.core = core
        self.spec = spec
        self.record = Record()
        self.column = Column()  # no record: nothing between the reservoir and the patient

    # --- what the pump reports --------------------------------------------------------

    def dead_space_of(self, record: Record) -> int:
        """The tubing plus the catheter of `record`, nL (0 with nothing recorded)."""
        return dead_space_nl(self.spec.code, record.model, record.length_mm) if record.recorded else 0

    @property
    def dead_space_nl(self) -> int:
        return self.dead_space_of(self.record)

    @property
    def priming_due_nl(self) -> int:
        return self.record.priming_due_nl

    def body(self, record: Record | None = None) -> bodies.CatheterRecord:
        """The protocol's CatheterRecord for `record` (default: the pump's own)."""
        record = self.record if record is None else record
        if not record.recorded:
            return NO_CATHETER
        return bodies.CatheterRecord(action=record.action, model=record.model, length_mm=record.length_mm,
                                     replaced_mm=record.replaced_mm, recorded_at=record.recorded_at,
                                     dead_space_nl=self.dead_space_of(record), priming_due_nl=record.priming_due_nl)

    # --- a CATHETER write ---------------------------------------------------------------

    def plan(self, action: CatheterAction, model: CatheterModel, length_mm: int, replaced_mm: int) -> Record:
        """The record a PREPARE_CATHETER would leave once committed, or OUT_OF_RANGE."""
        if model is CatheterModel.NONE or model not in CATHETER_NL_PER_CM:
            raise _refuse(f"catheter model {model.name}: give a catheter model")
        now, current = self.core.time, self.record
        if action is CatheterAction.IMPLANT:
            if replaced_mm:
                raise _refuse(f"an IMPLANT replaces no segment (replaced_mm {replaced_mm}; give 0)")
            return Record(action, model, length_mm, 0, now, implant_priming_nl(self.spec.code, model, length_mm))
        if action not in (CatheterAction.REVISION, CatheterAction.CORRECTION):
            raise _refuse(f"catheter action {action.name}: give IMPLANT, REVISION or CORRECTION")
        if not current.recorded:
            raise _refuse(f"a {action.name} needs a catheter recorded: record its IMPLANT first")
        if action is CatheterAction.REVISION:
            if not 1 <= replaced_mm <= length_mm:
                raise _refuse(f"a REVISION's segment of {replaced_mm} mm must be 1..{length_mm} mm "
                              "(the catheter's length)")
            return Record(action, model, length_mm, replaced_mm, now, revision_priming_nl(model, replaced_mm))
        return self._corrected(model, length_mm, replaced_mm)

    def _corrected(self, model: CatheterModel, length_mm: int, replaced_mm: int) -> Record:
        """A CORRECTION keeps the last action and segment. Priming is not re-armed: a primed
        catheter stays primed; priming still due is worked out again from the corrected record,
        never left at a volume worked out from the mistyped one (the 2013 recall's hazard)."""
        current = self.record
        if replaced_mm:
            raise _refuse(f"a CORRECTION keeps the recorded segment (replaced_mm {replaced_mm}; give 0)")
        if current.replaced_mm > length_mm:
            raise _refuse(f"{length_mm} mm is shorter than the {current.replaced_mm} mm segment the last "
                          "REVISION replaced")
        due = current.priming_due_nl
        if due and current.action is CatheterAction.IMPLANT:
            due = implant_priming_nl(self.spec.code, model, length_mm)
        elif due:
            due = revision_priming_nl(model, current.replaced_mm)
        return replace(current, model=model, length_mm=length_mm, recorded_at=self.core.time, priming_due_nl=due)

    def apply(self, action: CatheterAction, record: Record) -> None:
        """COMMIT of a CATHETER write: the record, the column reshaped, CATHETER_RECORDED."""
        total = self.dead_space_of(record)
        received = self.column.received
        if action is CatheterAction.IMPLANT:  # a new catheter: nothing in it holds drug yet
            self.column = Column(Column.empty(total).segments, received)
        elif action is CatheterAction.REVISION:
            self.column.replace_tip(total, record.priming_due_nl)
        else:
            self.column.resize(total)
        self.record = replace(record, recorded_at=self.core.time)
        self.core.log_event(EventType.CATHETER_RECORDED, arg1=int(action),
                            arg2=record.length_mm + REPLACED_SHIFT * record.replaced_mm)

    def implant_primed(self, model: CatheterModel, length_mm: int, drug: Drug, concentration_ng_per_ml: int) -> None:
        """A new pump's catheter, implanted and primed with the reservoir's drug (nothing logged)."""
        self.record = Record(CatheterAction.IMPLANT, model, length_mm, 0, self.core.time, 0)
        total = self.dead_space_nl
        self.column = Column([Segment(total, drug, concentration_ng_per_ml)] if total else [])

    def primed(self) -> None:
        """A priming bolus has started: nothing is due any more."""
        self.record = replace(self.record, priming_due_nl=0)
        self.core.changes += 1

    # --- what leaves the reservoir --------------------------------------------------------

    def receive(self, volume_nl: int, drug: Drug, concentration_ng_per_ml: int) -> None:
        """volume_nl left the reservoir: it enters the column and as much leaves the tip."""
        self.column.push(volume_nl, drug, concentration_ng_per_ml)

    # --- the control channel and the state file ------------------------------------------

    def describe(self) -> dict:
        record = self.record
        return {
            "action": record.action.name, "model": record.model.name, "length_mm": record.length_mm,
            "replaced_mm": record.replaced_mm, "recorded_at": record.recorded_at,
            "dead_space_nl": self.dead_space_nl, "priming_due_nl": record.priming_due_nl,
            # tip first: [volume nL, drug, concentration ng/mL]
            "column": [[s.volume_nl, s.drug.name.lower(), s.concentration_ng_per_ml] for s in self.column.segments],
        }

    def to_dict(self) -> dict:
        record = self.record
        return {"action": record.action.name, "model": record.model.name, "length_mm": record.length_mm,
                "replaced_mm": record.replaced_mm, "recorded_at": record.recorded_at,
                "priming_due_nl": record.priming_due_nl, "column": self.column.to_dict()}

    def load(self, data: dict | None) -> None:
        """The state file's "catheter" (None: a file from before protocol version 4, no record)."""
        if data is None:
            return
        record = Record(CatheterAction[data["action"]], CatheterModel[data["model"]],
                        check_uint(data["length_mm"], 16), check_uint(data["replaced_mm"], 16),
                        check_uint(data["recorded_at"], 63), check_uint(data["priming_due_nl"], 32))
        column = Column.from_dict(data["column"])
        _check_record(record)
        total = self.dead_space_of(record)
        if record.priming_due_nl > total or column.volume_nl != total:
            raise ValueError("catheter record, priming due and column disagree")
        self.record, self.column = record, column


def _check_record(record: Record) -> None:
    if not record.recorded:
        if record != Record():
            raise ValueError("a catheter with nothing recorded has a model, lengths or times")
        return
    if record.action is CatheterAction.CORRECTION or record.model not in CATHETER_NL_PER_CM:
        raise ValueError(f"catheter record {record.action.name} {record.model.name} is not one the pump keeps")
    if not 1 <= record.length_mm <= MAX_CATHETER_MM or record.replaced_mm > record.length_mm:
        raise ValueError("catheter lengths out of range")
    if (record.action is CatheterAction.REVISION) != (record.replaced_mm > 0):
        raise ValueError("catheter segment does not match its last action")
