"""Therapy changes, computed and checked without I/O prompts: shared by the commands
(which render and ask) and by batch plans (which are their own confirmation).

    state = read_state(session)                   # the pump read first, writes settled
    change = program_change(session, state, dose="450 mcg/day", ...)   # checks; raises on refusal
    result = apply_change(session, state, change) # PREPARE, echo, COMMIT, read back

`session` is the app.PumpSession of the pump: its client, its audit trail, the journal.
Here: the program, bolus and empty changes and applying any change; the refill's is in
refill_ops.py, the catheter's and priming's in catheter_ops.py, the clock's in clock.py and
the patient boluses' in ptm.py; what they all stand on (PumpState, Change) in therapy_change.py.
"""
from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

import protocol
from protocol import bodies
from protocol.constants import BolusPurpose

from . import write_kinds
from .change_history import history_rows, history_view, patient_origin, read_history, record_origin
from .errors import UsageError
from .localtime import fmt_iso
from .next_visit import parse_date, visit_check
from .refill_ops import refill_change
from .therapy_change import (
    DAY,
    Change,
    PumpState,
    change_percent,
    dose_checks,
    expected_program,
    fmt_ml_day,
    fmt_q,
    read_state,
)

if TYPE_CHECKING:
    from .app import PumpSession
    from .dosing import Plan
    from .doublecheck import DoubleCheck
    from .orders import Order
    from .writes import WriteRequest

# PumpState, Change and read_state live in therapy_change.py, refill_change in refill_ops.py:
# importable from here as before (the API, batch plans and the commands call them here)
__all__ = ["DAY", "Change", "PumpState", "apply_change", "bolus_change", "change_percent", "empty_change",
           "program_change", "read_state", "record_overrides", "refill_change"]


def _steps_text(view: dict) -> str:
    if view["mode"] == "stopped":
        return "-"
    return ", ".join(f"{s['start']} {fmt_q(s['dose'])}" for s in view["steps"])



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
    findings += limits.check_writable(raw, what="change the program",
                                      auto_exit_at=fmt_iso(state.described["mri_auto_exit_at"]))
    findings += dose_checks(state, entry, conc, plan, summary, current=current, boluses=boluses, history=past,
                             origin=origin)
    findings += limits.check_flex_clock(plan, state.described["clock_skew_s"])
    if visit and summary["daily_volume_nl_per_day"]:
        findings += visit_check(raw, raw.reservoir_ul, summary["daily_volume_nl_per_day"], visit,
                                state.described["clock_skew_s"])
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    record_origin(session, state, spasticity_origin)
    expected = expected_program(state, plan, summary)
    after_view = program_view(expected, unit)
    pct = change_percent(new, current)
    describe = {"serial_number": raw.serial_number, "before": before_view, "requested": after_view,
                "change_percent": pct, "warnings": [w.as_dict() for w in warnings],
                "overrides": dict(overrides or {}), **history_view(past, entry, origin)}
    request = _program_request(state, plan, expected, describe)
    rows = _program_rows(before_view, after_view, pct) + history_rows(past, entry, state.described["clock_skew_s"])
    return Change("program", request, describe, warnings, rows,
                  _program_question(raw.serial_number, after_view, fmt_q),
                  dict(overrides or {}), set(confirmed), unit)


def _program_question(serial: str, after: dict, fmt_q) -> str:
    """The confirmation asked for a new program: the dose is a 24-hour total already (mg/day)."""
    if after["mode"] == "stopped":
        return f"Stop delivery on {serial}?"
    return f"Program {serial} to {after['mode']}, {fmt_q(after['daily_dose'])} (24-hour total)?"


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
        ("24-hour total", fmt_q(before_view["daily_dose"]),
         fmt_q(after_view["daily_dose"]) + (f"  ({pct:+} %)" if pct is not None else "")),
        ("Flow (24-hour)", fmt_ml_day(before_view["flow_ml_per_day"]), fmt_ml_day(after_view["flow_ml_per_day"])),
        ("Steps (per-day rates)", _steps_text(before_view), _steps_text(after_view)),
        ("Concentration", fmt_q(before_view["concentration"]), fmt_q(after_view["concentration"])),
    ]



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
    findings = limits.check_writable(raw, what="give the bolus",
                                     auto_exit_at=fmt_iso(state.described["mri_auto_exit_at"]))
    findings += limits.check_concentration(entry, conc)
    if past.covers(raw.pump_time - DAY):
        boluses = past.boluses_since(raw.pump_time - DAY, conc)
    else:
        boluses = 0
        findings.append(limits.history_unknown(entry, past, "the last 24 hours (boluses are counted there)"))
    findings += limits.check_bolus(entry, dose=dose_ng, daily_total=raw.daily_dose_ng_per_day,
                                   volume_nl=volume_nl, reservoir_ul=raw.reservoir_ul, boluses_24h=boluses)
    top_rate = max((s.rate_nl_per_day for s in state.program.steps), default=0)
    findings += limits.check_bolus_rate(state.spec, volume_nl=volume_nl, seconds=seconds,
                                        program_max_rate_nl_per_day=top_rate, entry=entry, concentration_ng_per_ml=conc,
                                        what=limits.volume_text(entry, dose_ng=dose_ng, concentration_ng_per_ml=conc,
                                                                volume_nl=volume_nl))
    if raw.bolus_remaining_ng:
        findings.append(limits.Finding("refuse", "bolus-running", "a bolus is already running"))
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    dose_q = quantity(dose_ng, entry.mass_unit)
    volume_ml = Decimal(volume_nl) / 1_000_000
    describe = {"serial_number": raw.serial_number, "dose": dose_q, "duration_s": seconds, "volume_ml": volume_ml,
                "daily_dose": state.described["daily_dose"], "boluses_last_24h": quantity(boluses, entry.mass_unit),
                "warnings": [w.as_dict() for w in warnings], "overrides": dict(overrides or {})}
    rows = [("Bolus", "-", f"{fmt_q(dose_q)} over {duration}"),
            ("Bolus volume", "-", f"{format(volume_ml, 'f')} mL"),
            ("24-hour total", fmt_q(state.described["daily_dose"]), f"{fmt_q(state.described['daily_dose'])} + bolus")]
    if boluses:
        rows.append(("Boluses, last 24 h", fmt_q(quantity(boluses, entry.mass_unit)), "counted in the total"))
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
    findings = limits.check_writable(raw, what="record the reservoir emptied",
                                     auto_exit_at=fmt_iso(before["mri_auto_exit_at"]))
    findings += limits.check_change(state.entry, current=raw.daily_dose_ng_per_day, new=0, mode="STOPPED")
    # only the withdrawn-versus-expected check of a refill applies
    findings += limits.check_fill_gap(state.spec, withdrawn_ul=withdrawn_ul, expected_ul=raw.reservoir_ul)
    findings += limits.check_no_bolus_running(state.entry, bolus_remaining_ng=raw.bolus_remaining_ng,
                                              what="record the reservoir emptied")
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


def apply_change(session: PumpSession, state: PumpState, change: Change, on_echo=None, on_commit_sent=None, *,
                 order: Order | None = None, verified: dict | DoubleCheck | None = None) -> dict:
    """Send a checked change; the verified result for --json (raises on any other outcome). A
    write the clinic policy wants double-checked needs `verified` (a verified double-check
    document for exactly this write: doublecheck.py); the order and the double check are
    audited before PREPARE."""
    from .doublecheck import guard
    from .orders import audit_record
    from .writes import execute

    if change.request is None:  # Pump.apply answers an unchanged change without sending
        raise ValueError("an unchanged change has nothing to send")
    double_check = guard(session, state, change, order, verified)
    if order is not None:
        session.record("order", command=change.command, **audit_record(order))
    if double_check is not None:
        session.record("double-check", command=change.command, **double_check.audit())
    record_overrides(session, change)
    result = execute(session, state.client, change.request, log_index=state.raw.event_count,
                     based_on_txid=state.raw.last_txid, read_program=state.program,
                     dose_unit=change.unit, on_echo=on_echo, on_commit_sent=on_commit_sent)
    out = {"command": change.command, **change.describe, "txid": result.txid, "commit": result.commit,
           "verified": True, "outcome": "verified"}
    if order is not None:
        out["order"] = {"id": order.id, "sha256": order.sha256, "prescriber": order.prescriber}
    if double_check is not None:
        out["double_check"] = double_check.audit()
    return out | change.request.kind.after(session, state, change, result)
