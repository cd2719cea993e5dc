"""Catheter arithmetic both ends must agree on, in integers: dead space, priming, bridge.

Between the reservoir and the spinal fluid there is fluid that has left the pump but
not reached the patient: the pump's internal tubing plus the implanted catheter. Its
volume (the *dead space*) decides the two boluses that move it:

- a **priming bolus** fills what was just implanted with drug (after an implant: the
  tubing and the whole catheter; after a revision: the replaced segment only). The
  priming procedure is behind a Class I recall (2013): a priming volume worked out
  from the wrong length pushed drug into the patient at the priming rate. The pump
  accepts exactly the volume it works out itself from its catheter record, so the
  programmer and the pump cannot disagree about it.
- a **bridge bolus**, after a refill that changes the concentration or the drug, moves
  the old contents out at the old program's rate, so the patient keeps the old dose
  until the new drug reaches the tip (docs/clinical.md#catheter).

Volumes in nL, lengths in mm, rates in nL/day, durations in whole seconds.
"""
from __future__ import annotations

from .bodies import CatheterRecord
from .constants import CatheterAction, CatheterModel, PumpModel

DAY_S = 86_400
NL_PER_ML = 1_000_000
MM_PER_CM = 10

#: nL of catheter per cm of length. 0.0026 mL/cm is the common intrathecal catheter
#: (../shared/domain.md, docs/clinical.md#catheter).
CATHETER_NL_PER_CM: dict[CatheterModel, int] = {
    CatheterModel.STANDARD: 2_600,
}

#: the pump's own tubing, from the reservoir to the catheter port, per model. No source was
#: gathered for these figures: they are the emulator's (docs/clinical.md#catheter, open
#: questions). A real pump's manual gives its own.
TUBING_NL: dict[PumpModel, int] = {
    PumpModel.PERISTALTIC_20: 200_000,
    PumpModel.PERISTALTIC_40: 200_000,
    PumpModel.VALVE_GATED_20: 200_000,
}


#: what a pump with no catheter recorded reports
NO_CATHETER = CatheterRecord(action=CatheterAction.NONE, model=CatheterModel.NONE, length_mm=0, replaced_mm=0,
                             recorded_at=0, dead_space_nl=0, priming_due_nl=0)


def catheter_nl(model: CatheterModel, length_mm: int) -> int:
    """The volume of length_mm of catheter `model`, nL (rounded up: never short)."""
    per_cm = CATHETER_NL_PER_CM[model]
    return (length_mm * per_cm + MM_PER_CM - 1) // MM_PER_CM


def dead_space_nl(pump: PumpModel, model: CatheterModel, length_mm: int) -> int:
    """The pump's tubing plus the implanted catheter, nL."""
    return TUBING_NL[pump] + catheter_nl(model, length_mm)


def implant_priming_nl(pump: PumpModel, model: CatheterModel, length_mm: int) -> int:
    """After an implant nothing holds drug yet: the tubing and the whole catheter."""
    return dead_space_nl(pump, model, length_mm)


def revision_priming_nl(model: CatheterModel, replaced_mm: int) -> int:
    """After a revision only the new segment is empty: the rest still holds drug, and
    priming more than the segment would push that drug into the patient at the priming rate."""
    return catheter_nl(model, replaced_mm)


def dose_in_volume_ng(volume_nl: int, concentration_ng_per_ml: int) -> int:
    """The drug volume_nl carries at concentration, ng (floor, as protocol.therapy)."""
    return volume_nl * concentration_ng_per_ml // NL_PER_ML


def bridge_duration_s(volume_nl: int, old_rate_nl_per_day: int) -> int:
    """How long moving volume_nl at the old program's 24-hour rate takes, whole seconds
    (rounded to the nearest second; at least one)."""
    if old_rate_nl_per_day <= 0:
        raise ValueError("a bridge bolus needs the old program delivering")
    return max(1, (volume_nl * DAY_S + old_rate_nl_per_day // 2) // old_rate_nl_per_day)
