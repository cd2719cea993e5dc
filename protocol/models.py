"""The pump models: the published figures both sides of the link rely on.

The pump reports its model code (HELLO, INTERROGATE); this table says what that
code means. The emulator follows it; the CLI's checks (flow range, MRI
conditions) read it. Figures from the manufacturers' labels and MRI guidelines,
taking the more conservative value where sources differ. Each figure's source,
and which the emulator models: docs/clinical.md#pump-models. The MRI checklist
rules built on the MR fields: docs/clinical.md#mri-checklist.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from .constants import PumpModel


@dataclass(frozen=True)
class ModelSpec:
    code: PumpModel
    name: str  # the CLI/emulator spelling, e.g. "peristaltic-40"
    design: str  # "peristaltic" or "valve-gated"
    capacity_ul: int  # reservoir; a refill above it is refused (docs/clinical.md#refill-checks)
    min_flow_nl_per_day: int  # programmable flow range; a program outside it is refused
    max_flow_nl_per_day: int
    accuracy_percent: str  # as labelled; shown to people, not used in arithmetic
    mr_field_tesla: tuple[str, ...]  # MR conditional at these static fields
    mr_spatial_gradient_t_per_m: int  # largest spatial field gradient of those conditions
    mr_must_be_empty: bool  # valve-gated: the field can open the valve
    mr_behaviour: str  # what the field does to it outside MRI-safe mode


class MrConditions(TypedDict):
    """ModelSpec's MR fields, for a set of them shared by several models."""

    mr_field_tesla: tuple[str, ...]
    mr_spatial_gradient_t_per_m: int
    mr_must_be_empty: bool
    mr_behaviour: str


#: SynchroMed II-like MR conditions (docs/clinical.md#pump-models). The 19 T/m gradient
#: is not confirmed by the sources gathered there: see its "Open questions".
PERISTALTIC_MR: MrConditions = {
    "mr_field_tesla": ("1.5", "3"),
    "mr_spatial_gradient_t_per_m": 19,
    "mr_must_be_empty": False,
    "mr_behaviour": "motor stalls in the field; recovers after the scan (can take up to 24 h)",
}

#: peristaltic (SynchroMed II-like): 20 or 40 mL, 0.048-24 mL/day, +/-14.5 %.
#: valve-gated (Prometra-like): 20 mL, 97 % (acceptance 85-115 %), MR conditional at 1.5 T
#: and <= 20 T/m only when empty; its flow range has no source and is copied from the
#: peristaltic model. Sources: docs/clinical.md#pump-models.
MODELS: dict[PumpModel, ModelSpec] = {
    PumpModel.PERISTALTIC_20: ModelSpec(
        PumpModel.PERISTALTIC_20, "peristaltic-20", "peristaltic", 20_000,
        48_000, 24_000_000, "+/-14.5", **PERISTALTIC_MR,
    ),
    PumpModel.PERISTALTIC_40: ModelSpec(
        PumpModel.PERISTALTIC_40, "peristaltic-40", "peristaltic", 40_000,
        48_000, 24_000_000, "+/-14.5", **PERISTALTIC_MR,
    ),
    PumpModel.VALVE_GATED_20: ModelSpec(
        PumpModel.VALVE_GATED_20, "valve-gated-20", "valve-gated", 20_000,
        48_000, 24_000_000, "97 (acceptance 85-115)",
        mr_field_tesla=("1.5",),
        mr_spatial_gradient_t_per_m=20,
        mr_must_be_empty=True,
        mr_behaviour="valves can open and dump the reservoir: empty it before the scan; "
        "the flow-activated valve must be reset afterwards",
    ),
}

MODELS_BY_NAME = {spec.name: spec for spec in MODELS.values()}

#: the minimum-rate mode's flow (mL/day 0.048): keeps the catheter open
#: (SynchroMed II labeling; docs/clinical.md#pump-models)
MINIMUM_RATE_NL_PER_DAY = 48_000
