"""What every therapy change stands on: the pump state a change is checked against
(PumpState, read by read_state), the checked Change itself, and what the program and refill
changes share: the program the pump should echo, the new dose's checks against the drug,
and the formatting of their before/after tables. operations.py (program, bolus, empty,
applying), refill_ops.py and catheter_ops.py build their changes on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import protocol
from protocol import bodies

from .errors import SafetyError

if TYPE_CHECKING:
    from protocol.models import ModelSpec

    from .app import PumpSession
    from .client import PumpClient
    from .dosing import Plan
    from .druglib import DrugEntry
    from .writes import WriteRequest

DAY = 86_400


@dataclass
class PumpState:
    client: PumpClient
    raw: bodies.Status  # INTERROGATE, decoded
    described: dict  # interrogate, with units
    program: bodies.Program  # READ_PROGRAM's program
    entry: DrugEntry | None  # None only for a refill that replaces the drug
    spec: ModelSpec

    @property
    def drug_entry(self) -> DrugEntry:
        """The library entry of the drug the pump holds (read_state refuses any other drug, but for a
        refill that replaces it)."""
        if self.entry is None:
            raise SafetyError(f"the pump holds {self.raw.drug.name.lower()}, which is not in the drug library: "
                              "writes are refused")
        return self.entry


@dataclass
class Change:
    command: str  # "program", "refill", "bolus", "empty"
    request: WriteRequest | None  # None when the pump already delivers this
    describe: dict  # before/requested/warnings...: the --json result and error details
    warnings: list
    rows: list = field(default_factory=list)  # (label, now, after) for the before/after table
    question: str = ""
    overrides: dict = field(default_factory=dict)  # NAME -> REASON, as given
    confirmed: set = field(default_factory=set)
    unit: str = "mcg/day"

    @property
    def unchanged(self) -> bool:
        return self.request is None


def read_state(session: PumpSession, *, allow_unknown_drug: bool = False) -> PumpState:
    """Read the pump for a write: clinician session, unconfirmed writes refused."""
    from protocol.models import MODELS

    from .writes import preflight

    client = session.client(write=True)
    preflight(session, client, session.serial_number)
    raw, described = session.read(settle=False)
    program = client.read_program().program
    entry = session.library.for_code(raw.drug.name)
    if entry is None and not allow_unknown_drug:
        raise SafetyError(
            f"the pump holds {raw.drug.name.lower()}, which is not in the drug library "
            f"({session.library.path}): writes are refused"
        )
    return PumpState(client, raw, described, program, entry, MODELS[raw.model])



def fmt_q(q: dict) -> str:
    from .output import fmt_quantity

    return fmt_quantity(q)


def fmt_ml_day(value) -> str:
    return f"{format(value, 'f')} mL/day"


def change_percent(new: int, old: int) -> Decimal | None:
    if old == 0:
        return None
    return (Decimal(new - old) * 100 / Decimal(old)).quantize(Decimal("0.1"))



def expected_program(state: PumpState, plan, summary, drug=None, conc=None) -> bodies.Program:
    """The program the pump should echo and read back for plan."""
    from . import dosing

    return bodies.Program(
        mode=protocol.InfusionMode[plan.mode],
        drug=drug if drug is not None else state.raw.drug,
        concentration_ng_per_ml=conc if conc is not None else state.raw.concentration_ng_per_ml,
        daily_dose_ng_per_day=summary["daily_dose_ng_per_day"],
        daily_volume_nl_per_day=summary["daily_volume_nl_per_day"],
        steps=dosing.expected_steps(plan, summary),
    )



def dose_checks(state: PumpState, entry, conc: int, plan: Plan, summary: dict, *, current: int, boluses: int,
                 history, origin: str | None, dry_run_suspected: bool = False) -> list:
    """A new program's checks against the drug: concentration, flow, the 24-hour total with the
    last 24 hours' boluses, and the change from `current` (titration, history)."""
    from . import limits

    new = summary["daily_dose_ng_per_day"]
    findings = limits.check_concentration(entry, conc)
    findings += limits.check_flow(state.spec, summary["rates"], plan.mode, doses=plan.doses, starts=plan.starts,
                                  entry=entry, concentration_ng_per_ml=conc)
    if plan.mode != "STOPPED":
        findings += limits.check_daily_total(entry, new + boluses, with_boluses(entry, boluses))
    findings += limits.check_change(entry, current=current, new=new, mode=plan.mode, history=history, origin=origin,
                                    dry_run_suspected=dry_run_suspected)
    # with patient boluses on, every allowed activation on top of the new program (limits/ptm.py)
    findings += limits.check_ptm_with_program(entry, state.raw.ptm, new=new, current=current,
                                              changing_drug=entry.code != state.raw.drug.name)
    return findings


def with_boluses(entry, boluses: int) -> str:
    from .limits import fmt_mass

    if not boluses:
        return "the new 24-hour total"
    return f"the new 24-hour total with the {fmt_mass(boluses, entry)} of boluses given in the last 24 hours"
