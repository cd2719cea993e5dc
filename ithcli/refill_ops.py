"""The refill, computed and checked without prompts (as operations.py does for a program):
the drug and concentration filled, the volume, the withdrawn-versus-expected check, the
dose the refill runs (the same, or --dose for a new drug), a bridge bolus for the
catheter's old contents (catheter_ops.plan_bridge), and the request, its expected echo and
its before/after table. `ithcli refill`, batch plans and the API stand on refill_change().
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import protocol
from protocol import bodies

from . import write_kinds
from .change_history import history_rows, history_view, patient_origin, read_history, record_origin
from .errors import UsageError
from .localtime import fmt_iso
from .next_visit import low_alarm_at, parse_date, visit_check
from .therapy_change import DAY, Change, PumpState, dose_checks, expected_program, fmt_ml_day, fmt_q

if TYPE_CHECKING:
    from .app import PumpSession
    from .dosing import Plan
    from .writes import WriteRequest


def refill_change(session: PumpSession, state: PumpState, *, volume, concentration, drug=None, withdrawn=None,
                  dose=None, next_visit=None, overrides=None, confirmed=frozenset(), spasticity_origin=None,
                  bridge=None) -> Change:
    from . import dosing, limits
    from .catheter_ops import plan_bridge

    raw = state.raw
    new_entry = _refill_entry(session.library, state, drug)
    changing_drug = new_entry.code != raw.drug.name
    if changing_drug and not dose:
        raise UsageError(f"changing the drug to {new_entry.name} needs --dose in {new_entry.dose_unit}")
    conc = dosing.parse_concentration(concentration, new_entry)
    volume_ul = dosing.parse_volume(volume, "--volume")
    withdrawn_ul = dosing.parse_volume(withdrawn, "--withdrawn") if withdrawn else None
    visit = parse_date(next_visit, "--next-visit")
    plan = (dosing.Plan("CONTINUOUS", (0,), (dosing.parse_dose_rate(dose, new_entry),)) if dose
            else dosing.plan_from_program(state.program))  # the dose stays; the flow follows
    summary = dosing.plan_summary(plan, conc)
    current = 0 if changing_drug else raw.daily_dose_ng_per_day
    findings = limits.check_writable(raw, what="refill", auto_exit_at=fmt_iso(state.described["mri_auto_exit_at"]))
    findings += limits.check_refill(state.spec, volume_ul=volume_ul, withdrawn_ul=withdrawn_ul,
                                    expected_ul=raw.reservoir_ul)
    findings += limits.check_no_bolus_running(state.entry, bolus_remaining_ng=raw.bolus_remaining_ng, what="refill")
    dry = limits.dry_run_suspected(state.spec, withdrawn_ul=withdrawn_ul, expected_ul=raw.reservoir_ul)
    # a refill resumes delivery after an empty reservoir: the log says for how long it was stopped
    past = read_history(state.client, raw)
    # a new drug's budgets start afresh: its history is not this drug's
    origin = patient_origin(session, state, spasticity_origin)
    boluses = 0 if changing_drug else past.boluses_since(raw.pump_time - DAY, conc)
    # the catheter's old contents: --bridge or --no-bridge, a bridge counted at the old drug's dose
    bridged = plan_bridge(state, new_entry, conc, summary, volume_ul, bridge)
    findings += bridged.findings
    boluses += bridged.counted_ng
    findings += dose_checks(state, new_entry, conc, plan, summary, current=current, boluses=boluses,
                             history=None if changing_drug and not dry else past, origin=origin,
                             dry_run_suspected=dry)
    if visit:
        findings += visit_check(raw, volume_ul, summary["daily_volume_nl_per_day"], visit,
                                state.described["clock_skew_s"])
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    record_origin(session, state, spasticity_origin)
    fill = _Refill(new_entry, conc, volume_ul, withdrawn_ul, dry, expected_program(
        state, plan, summary, _drug(new_entry), conc))
    describe, rows = _refill_table(state, fill, warnings, overrides, history_view(past, new_entry, origin))
    rows += history_rows(past, new_entry, state.described["clock_skew_s"])
    question = (f"Record a refill of {raw.serial_number} with {format(Decimal(volume_ul) / 1000, 'f')} mL of "
                f"{new_entry.name} {fmt_q(describe['requested']['concentration'])}?")
    return bridged.attach(Change("refill", _refill_request(fill, plan, describe), describe, warnings, rows, question,
                                 dict(overrides or {}), set(confirmed), new_entry.dose_unit))


def _refill_entry(library, state: PumpState, drug: str | None):
    """The library entry of the drug filled: --drug's, else the one the pump holds."""
    if not drug:
        return state.entry
    new_entry = next((e for e in library.drugs.values() if e.name == drug.lower()), None)
    if new_entry is None:
        raise UsageError(f"--drug {drug!r} is not in the drug library "
                         f"({', '.join(e.name for e in library.drugs.values())})")
    return new_entry


def _drug(entry):
    return protocol.Drug[entry.code]


@dataclass
class _Refill:
    """What a checked refill puts in the pump."""
    entry: Any  # the drug library entry of the drug filled
    conc: int  # ng/mL
    volume_ul: int
    withdrawn_ul: int | None  # None: not given
    dry_run_suspected: bool
    expected: bodies.Program  # the program the pump should run after it


def _refill_table(state: PumpState, fill: _Refill, warnings: list, overrides,
                  history: dict) -> tuple[dict, list[tuple[str, str, str]]]:
    """The refill's --json result and its before/after table (without the history's rows)."""
    from .calendar import iso, to_calendar
    from .output import fmt_date
    from .status import program_view

    raw, before = state.raw, state.described
    # a drug outside the library is shown in mcg/day, as interrogate shows it
    before_view = program_view(state.program, state.entry.dose_unit if state.entry else "mcg/day")
    after_view = program_view(fill.expected, fill.entry.dose_unit)
    low_after = iso(to_calendar(low_alarm_at(raw, fill.volume_ul, fill.expected.daily_volume_nl_per_day),
                                before["clock_skew_s"]))
    volume_ml = Decimal(fill.volume_ul) / 1000
    withdrawn_ml = Decimal(fill.withdrawn_ul) / 1000 if fill.withdrawn_ul is not None else None
    describe = {"serial_number": raw.serial_number,
                "before": {**before_view, "reservoir_ml": before["reservoir_ml"]},
                "requested": {**after_view, "reservoir_ml": volume_ml, "projected_low_reservoir_date": low_after},
                "withdrawn_ml": withdrawn_ml,
                "expected_remaining_ml": before["reservoir_ml"], "possible_dry_run": fill.dry_run_suspected,
                "warnings": [w.as_dict() for w in warnings], "overrides": dict(overrides or {}), **history}
    rows = [
        ("Drug", before_view["drug"], after_view["drug"]),
        ("Concentration", fmt_q(before_view["concentration"]), fmt_q(after_view["concentration"])),
        ("Reservoir", f"{format(before['reservoir_ml'], 'f')} mL", f"{format(volume_ml, 'f')} mL"),
        ("24-hour total", fmt_q(before_view["daily_dose"]), fmt_q(after_view["daily_dose"])),
        ("Flow (24-hour)", fmt_ml_day(before_view["flow_ml_per_day"]), fmt_ml_day(after_view["flow_ml_per_day"])),
        ("Low-reservoir alarm", fmt_date(before["projected_low_reservoir_date"]), fmt_date(low_after)),
    ]
    if withdrawn_ml is not None:
        rows.append(("Withdrawn / expected", f"{format(withdrawn_ml, 'f')} mL",
                     f"{format(before['reservoir_ml'], 'f')} mL expected"))
    return describe, rows


def _refill_request(fill: _Refill, plan: Plan, describe: dict) -> WriteRequest:
    from .writes import Expect, WriteRequest

    return WriteRequest(
        kind=write_kinds.REFILL,
        prepare=partial(bodies.PrepareRefillRequest, drug=_drug(fill.entry), concentration_ng_per_ml=fill.conc,
                        volume_ul=fill.volume_ul, withdrawn_ul=fill.withdrawn_ul or 0, mode=fill.expected.mode,
                        steps=plan.steps(), bridge_volume_nl=0, bridge_duration_s=0),
        expect=Expect(program=fill.expected, reservoir_ul=fill.volume_ul),
        describe=describe,
    )
