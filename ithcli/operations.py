"""Therapy changes, computed and checked without I/O prompts: shared by the commands
(which render and ask) and by batch plans (which are their own confirmation).

    state = read_state(session)                   # the pump read first, writes settled
    change = program_change(session, state, dose="450 mcg/day", ...)   # checks; raises on refusal
    result = apply_change(session, state, change) # PREPARE, echo, COMMIT, read back

`session` is the app.PumpSession of the pump: its client, its audit trail, the journal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import protocol
from protocol import bodies
from protocol.constants import BolusPurpose

from . import write_kinds
from .change_history import history_rows, history_view, patient_origin, read_history, record_origin
from .errors import SafetyError, UsageError
from .next_visit import low_alarm_at, parse_date, visit_check

if TYPE_CHECKING:
    from protocol.models import ModelSpec

    from .app import PumpSession
    from .client import PumpClient
    from .dosing import Plan
    from .druglib import DrugEntry
    from .writes import WriteRequest


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


def _q(q: dict) -> str:
    from .output import fmt_quantity

    return fmt_quantity(q)


def _ml_day(value) -> str:
    return f"{format(value, 'f')} mL/day"


def change_percent(new: int, old: int) -> Decimal | None:
    if old == 0:
        return None
    return (Decimal(new - old) * 100 / Decimal(old)).quantize(Decimal("0.1"))


def _steps_text(view: dict) -> str:
    if view["mode"] == "stopped":
        return "-"
    return ", ".join(f"{s['start']} {_q(s['dose'])}" for s in view["steps"])


def _expected_program(state: PumpState, plan, summary, drug=None, conc=None) -> bodies.Program:
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


# --- program -----------------------------------------------------------------

def program_change(session: PumpSession, state: PumpState, *, dose=None, flow=None, mode=None, schedule=None,
                   stop=False, next_visit=None, overrides=None, confirmed=frozenset(),
                   spasticity_origin=None) -> Change:

    from . import dosing, limits
    from .status import program_view

    _check_program_options(dose=dose, flow=flow, mode=mode, schedule=schedule, stop=stop)
    visit = parse_date(next_visit, "--next-visit")
    raw, entry, conc = state.raw, state.drug_entry, state.raw.concentration_ng_per_ml
    plan, findings = _program_plan(state, dose=dose, flow=flow, mode=mode, schedule=schedule, stop=stop)
    unit = entry.dose_unit
    summary = dosing.plan_summary(plan, conc)
    current, new = raw.daily_dose_ng_per_day, summary["daily_dose_ng_per_day"]
    before_view = program_view(state.program, unit)
    if plan == dosing.plan_from_program(state.program):
        return Change("program", None, {"serial_number": raw.serial_number, "before": before_view,
                                        "after": before_view}, [], unit=unit)
    origin = patient_origin(session, state, spasticity_origin)
    # the log matters for a rise or a restart; a cut or a stop is judged on the program alone
    past = read_history(state.client, raw) if new > current or new > 0 and current == 0 else None
    boluses = past.boluses_since(raw.pump_time - DAY, conc) if past is not None else 0
    findings += _dose_checks(state, entry, conc, plan, summary, current=current, boluses=boluses, history=past,
                             origin=origin)
    findings += limits.check_flex_clock(plan, state.described["clock_skew_s"])
    if visit and summary["daily_volume_nl_per_day"]:
        findings += visit_check(raw, raw.reservoir_ul, summary["daily_volume_nl_per_day"], visit,
                                state.described["clock_skew_s"])
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    record_origin(session, state, spasticity_origin)
    expected = _expected_program(state, plan, summary)
    after_view = program_view(expected, unit)
    pct = change_percent(new, current)
    describe = {"serial_number": raw.serial_number, "before": before_view, "requested": after_view,
                "change_percent": pct, "warnings": [w.as_dict() for w in warnings],
                "overrides": dict(overrides or {}), **history_view(past, entry, origin)}
    request = _program_request(state, plan, expected, describe)
    rows = _program_rows(before_view, after_view, pct) + history_rows(past, entry, state.described["clock_skew_s"])
    return Change("program", request, describe, warnings, rows,
                  f"Program {raw.serial_number} to {after_view['mode']}, {_q(after_view['daily_dose'])} a day?",
                  dict(overrides or {}), set(confirmed), unit)


def _check_program_options(*, dose, flow, mode, schedule, stop) -> None:
    """Exactly one way to say the new program, and a --mode that agrees with it."""
    chosen = [name for name, given in (("dose", dose), ("flow", flow), ("stop", stop),
                                       ("schedule", schedule), ("mode minimum", mode == "minimum")) if given]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --dose, --flow, --stop, --mode minimum, --mode flex --schedule FILE"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    if schedule and mode not in (None, "flex"):
        raise UsageError("--schedule goes with --mode flex")
    if mode == "flex" and not schedule:
        raise UsageError("--mode flex needs --schedule FILE")
    if (dose or flow) and mode not in (None, "continuous"):
        raise UsageError(f"--dose and --flow set a continuous program, not --mode {mode}")


def _program_plan(state: PumpState, *, dose, flow, mode, schedule, stop) -> tuple[Plan, list]:
    """The plan asked for (options already checked), and a warning when --flow is not reachable exactly."""
    from . import dosing, limits

    entry, conc = state.entry, state.raw.concentration_ng_per_ml
    findings: list = []
    if dose:
        plan = dosing.Plan("CONTINUOUS", (0,), (dosing.parse_dose_rate(dose, entry),))
    elif flow:
        from protocol.therapy import dose_for_rate

        rate = dosing.parse_flow(flow)
        plan = dosing.Plan("CONTINUOUS", (0,), (dose_for_rate(rate, conc),))
        reached = dosing.plan_summary(plan, conc)["rates"][0]
        if reached != rate:
            findings.append(limits.Finding(
                "warn", "flow-rounding", f"{flow} is not exactly reachable at this concentration: the pump will "
                f"run {format(Decimal(reached) / 1_000_000, 'f')} mL/day"))
    elif stop:
        plan = dosing.Plan("STOPPED")
    elif mode == "minimum":
        plan = dosing.Plan("MINIMUM")
    else:
        plan = dosing.load_schedule(schedule, entry)
    return plan, findings


def _dose_checks(state: PumpState, entry, conc: int, plan: Plan, summary: dict, *, current: int, boluses: int,
                 history, origin: str | None, dry_run_suspected: bool = False) -> list:
    """A new program's checks against the drug: concentration, flow, the 24-hour total with the
    last 24 hours' boluses, and the change from `current` (titration, history)."""
    from . import limits

    new = summary["daily_dose_ng_per_day"]
    findings = limits.check_concentration(entry, conc)
    findings += limits.check_flow(state.spec, summary["rates"], plan.mode)
    if plan.mode != "STOPPED":
        findings += limits.check_daily_total(entry, new + boluses, _with_boluses(entry, boluses))
    findings += limits.check_change(entry, current=current, new=new, mode=plan.mode, history=history, origin=origin,
                                    dry_run_suspected=dry_run_suspected)
    # with patient boluses on, every allowed activation on top of the new program (limits/ptm.py)
    findings += limits.check_ptm_with_program(entry, state.raw.ptm, new=new, current=current,
                                              changing_drug=entry.code != state.raw.drug.name)
    return findings


def _program_request(state: PumpState, plan: Plan, expected: bodies.Program, describe: dict) -> WriteRequest:
    from .writes import Expect, WriteRequest

    raw = state.raw
    return WriteRequest(
        kind=write_kinds.PROGRAM,
        prepare=partial(bodies.PrepareProgramRequest, mode=expected.mode, drug=raw.drug,
                        concentration_ng_per_ml=raw.concentration_ng_per_ml, steps=plan.steps()),
        expect=Expect(program=expected), describe=describe,
    )


def _program_rows(before_view: dict, after_view: dict, pct: Decimal | None) -> list[tuple[str, str, str]]:
    return [
        ("Mode", before_view["mode"], after_view["mode"]),
        ("24-hour total", _q(before_view["daily_dose"]),
         _q(after_view["daily_dose"]) + (f"  ({pct:+} %)" if pct is not None else "")),
        ("Flow (24-hour)", _ml_day(before_view["flow_ml_per_day"]), _ml_day(after_view["flow_ml_per_day"])),
        ("Steps (per-day rates)", _steps_text(before_view), _steps_text(after_view)),
        ("Concentration", _q(before_view["concentration"]), _q(after_view["concentration"])),
    ]


DAY = 86_400


def _with_boluses(entry, boluses: int) -> str:
    from .limits import fmt_mass

    if not boluses:
        return "the new 24-hour total"
    return f"the new 24-hour total with the {fmt_mass(boluses, entry)} of boluses given in the last 24 hours"


# --- refill ------------------------------------------------------------------

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
    findings = limits.check_refill(state.spec, volume_ul=volume_ul, withdrawn_ul=withdrawn_ul,
                                   expected_ul=raw.reservoir_ul)
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
    findings += _dose_checks(state, new_entry, conc, plan, summary, current=current, boluses=boluses,
                             history=None if changing_drug and not dry else past, origin=origin,
                             dry_run_suspected=dry)
    if visit:
        findings += visit_check(raw, volume_ul, summary["daily_volume_nl_per_day"], visit,
                                state.described["clock_skew_s"])
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    record_origin(session, state, spasticity_origin)
    fill = _Refill(new_entry, conc, volume_ul, withdrawn_ul, dry, _expected_program(
        state, plan, summary, _drug(new_entry), conc))
    describe, rows = _refill_table(state, fill, warnings, overrides, history_view(past, new_entry, origin))
    rows += history_rows(past, new_entry, state.described["clock_skew_s"])
    question = (f"Record a refill of {raw.serial_number} with {format(Decimal(volume_ul) / 1000, 'f')} mL of "
                f"{new_entry.name} {_q(describe['requested']['concentration'])}?")
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
        ("Concentration", _q(before_view["concentration"]), _q(after_view["concentration"])),
        ("Reservoir", f"{format(before['reservoir_ml'], 'f')} mL", f"{format(volume_ml, 'f')} mL"),
        ("24-hour total", _q(before_view["daily_dose"]), _q(after_view["daily_dose"])),
        ("Flow (24-hour)", _ml_day(before_view["flow_ml_per_day"]), _ml_day(after_view["flow_ml_per_day"])),
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


# --- bolus -------------------------------------------------------------------

def bolus_change(state: PumpState, *, dose, duration, overrides=None, confirmed=frozenset()) -> Change:

    from . import dosing, limits
    from .status import quantity
    from .writes import Expect, WriteRequest

    raw, entry = state.raw, state.drug_entry
    dose_ng = dosing.parse_dose(dose, entry)
    seconds = dosing.parse_duration(duration, "--over")
    if not 60 <= seconds <= 86_400:
        raise UsageError(f"--over {duration!r}: a bolus runs from 1 min to 24 h")
    conc = raw.concentration_ng_per_ml
    volume_nl = -(-dose_ng * 1_000_000 // conc)  # rounded up: never under-state the volume
    # the boluses of the last 24 hours count in the total the hard limit applies to
    past = read_history(state.client, raw)
    findings = limits.check_concentration(entry, conc)
    if past.covers(raw.pump_time - DAY):
        boluses = past.boluses_since(raw.pump_time - DAY, conc)
    else:
        boluses = 0
        findings.append(limits.history_unknown(entry, past, "the last 24 hours (boluses are counted there)"))
    findings += limits.check_bolus(entry, dose=dose_ng, daily_total=raw.daily_dose_ng_per_day,
                                   volume_nl=volume_nl, reservoir_ul=raw.reservoir_ul, boluses_24h=boluses)
    top_rate = max((s.rate_nl_per_day for s in state.program.steps), default=0)
    findings += limits.check_bolus_rate(state.spec, volume_nl=volume_nl, seconds=seconds,
                                        program_max_rate_nl_per_day=top_rate)
    if raw.bolus_remaining_ng:
        findings.append(limits.Finding("refuse", "bolus-running", "a bolus is already running"))
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    dose_q = quantity(dose_ng, entry.mass_unit)
    volume_ml = Decimal(volume_nl) / 1_000_000
    describe = {"serial_number": raw.serial_number, "dose": dose_q, "duration_s": seconds, "volume_ml": volume_ml,
                "daily_dose": state.described["daily_dose"], "boluses_last_24h": quantity(boluses, entry.mass_unit),
                "warnings": [w.as_dict() for w in warnings], "overrides": dict(overrides or {})}
    rows = [("Bolus", "-", f"{_q(dose_q)} over {duration}"),
            ("Bolus volume", "-", f"{format(volume_ml, 'f')} mL"),
            ("24-hour total", _q(state.described["daily_dose"]), f"{_q(state.described['daily_dose'])} + bolus")]
    if boluses:
        rows.append(("Boluses, last 24 h", _q(quantity(boluses, entry.mass_unit)), "counted in the total"))
    request = WriteRequest(
        kind=write_kinds.BOLUS, prepare=partial(bodies.PrepareBolusRequest, dose_ng=dose_ng, duration_s=seconds,
                                                 purpose=BolusPurpose.CLINICIAN),
        expect=Expect(program=state.program, bolus_dose_ng=dose_ng, bolus_duration_s=seconds,
                      bolus_volume_nl=volume_nl),
        describe=describe,
    )
    question = f"Deliver {dose_q['value']} {dose_q['unit']} over {duration} to {raw.serial_number}?"
    return Change("bolus", request, describe, warnings, rows, question, dict(overrides or {}), set(confirmed),
                  entry.dose_unit)


# --- empty ---------------------------------------------------------------------

def empty_change(state: PumpState, *, withdrawn=None, confirmed=frozenset()) -> Change:
    """Record an emptied reservoir (a valve-gated pump before an MRI): volume 0 and
    delivery stopped, as a refill of nothing. Stopping is checked like any stop (a drug
    with a withdrawal risk needs --confirm-withdrawal-risk)."""
    from . import dosing, limits
    from .writes import Expect, WriteRequest

    raw, before = state.raw, state.described
    withdrawn_ul = dosing.parse_volume(withdrawn, "--withdrawn") if withdrawn else None
    findings = limits.check_change(state.entry, current=raw.daily_dose_ng_per_day, new=0, mode="STOPPED")
    # only the withdrawn-versus-expected check of a refill applies
    findings += limits.check_fill_gap(state.spec, withdrawn_ul=withdrawn_ul, expected_ul=raw.reservoir_ul)
    warnings = limits.settle(findings, confirmed=set(confirmed))
    stopped = bodies.Program(mode=protocol.InfusionMode.STOPPED, drug=raw.drug,
                             concentration_ng_per_ml=raw.concentration_ng_per_ml, daily_dose_ng_per_day=0,
                             daily_volume_nl_per_day=0, steps=())
    describe = {"serial_number": raw.serial_number,
                "before": {"reservoir_ml": before["reservoir_ml"], "mode": before["mode"]},
                "withdrawn_ml": Decimal(withdrawn_ul) / 1000 if withdrawn_ul is not None else None,
                "expected_remaining_ml": before["reservoir_ml"], "warnings": [w.as_dict() for w in warnings]}
    rows = [("Reservoir", f"{format(before['reservoir_ml'], 'f')} mL", "0 mL"),
            ("Delivery", before["mode"], "stopped")]
    if withdrawn_ul is not None:
        rows.append(("Withdrawn / expected", f"{format(Decimal(withdrawn_ul) / 1000, 'f')} mL",
                     f"{format(before['reservoir_ml'], 'f')} mL expected"))
    request = WriteRequest(
        kind=write_kinds.EMPTY,
        prepare=partial(bodies.PrepareRefillRequest, drug=raw.drug, concentration_ng_per_ml=raw.concentration_ng_per_ml,
                        volume_ul=0, withdrawn_ul=withdrawn_ul or 0, mode=protocol.InfusionMode.STOPPED, steps=(),
                        bridge_volume_nl=0, bridge_duration_s=0),
        expect=Expect(program=stopped, reservoir_ul=0),
        describe=describe,
    )
    question = (f"Record {raw.serial_number} as emptied ({format(before['reservoir_ml'], 'f')} mL expected) "
                "and stop delivery?")
    return Change("empty", request, describe, warnings, rows, question, {}, set(confirmed),
                  state.entry.dose_unit if state.entry else "mcg/day")


# --- applying ------------------------------------------------------------------

def record_overrides(session: PumpSession, change: Change) -> None:
    """Each overridden limit is audited on its own, with its name and the reason given for it."""
    for w in change.warnings:
        if w.level == "soft":
            session.record("soft-limit-override", limit=w.override, reason=w.reason, finding=w.as_dict())
    accepted = [w.as_dict() for w in change.warnings if w.level == "confirm"]
    if accepted:
        session.record("confirmation-flags", flags=sorted(change.confirmed), findings=accepted)


def apply_change(session: PumpSession, state: PumpState, change: Change, on_echo=None, on_commit_sent=None) -> dict:
    """Send a checked change; the verified result for --json (raises on any other outcome)."""
    from .writes import execute

    if change.request is None:  # Pump.apply answers an unchanged change without sending
        raise ValueError("an unchanged change has nothing to send")
    record_overrides(session, change)
    result = execute(session, state.client, change.request, log_index=state.raw.event_count,
                     based_on_txid=state.raw.last_txid, read_program=state.program,
                     dose_unit=change.unit, on_echo=on_echo, on_commit_sent=on_commit_sent)
    out = {"command": change.command, **change.describe, "txid": result.txid, "commit": result.commit,
           "verified": True, "outcome": "verified"}
    return out | change.request.kind.after(session, state, change, result)
