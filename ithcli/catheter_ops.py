"""The catheter record, the priming bolus and a refill's bridge bolus, computed and checked
without prompts, as operations.py does for the others: `ithcli catheter`, `ithcli bolus
--priming`, `ithcli refill --bridge/--no-bridge` and the API stand on these.

    change = catheter_change(state, action=CatheterAction.REVISION, model="STANDARD",
                             length="80 cm", replaced="15 cm")
    change = priming_change(state, duration=None, confirmed={"--confirm-monitoring"})
    bridged = plan_bridge(state, new_entry, conc, summary, volume_ul, choice=True)  # in refill_change

The pump works out the dead space and the priming due from its own record
(protocol/catheter.py); ithcli works them out the same way, shows them before asking, and
compares the echo and the read-back with them (docs/clinical.md#catheter).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import TYPE_CHECKING, Any

from protocol import Drug, bodies
from protocol.catheter import (
    bridge_duration_s,
    dead_space_nl,
    dose_in_volume_ng,
    implant_priming_nl,
    revision_priming_nl,
)
from protocol.constants import BolusPurpose, CatheterAction, CatheterModel

from . import catheter, limits, write_kinds
from .errors import UsageError
from .limits.catheter import BOLUS_MAX_S, BOLUS_MIN_S
from .localtime import fmt_iso
from .output import fmt_span
from .status import quantity
from .therapy_change import DAY, Change

if TYPE_CHECKING:
    from .therapy_change import PumpState

_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(cm|mm)\s*$", re.IGNORECASE)


def parse_length(text: str, option: str) -> int:
    """'80 cm' or '800 mm' -> 800 (mm): the unit is required, whole millimetres only."""
    match = _LENGTH.match(str(text))
    if match is None:
        raise UsageError(f"{option} {text!r}: give a length with its unit, e.g. '80 cm' or '800 mm'")
    try:
        mm = Decimal(match[1]) * (10 if match[2].lower() == "cm" else 1)
    except InvalidOperation:
        raise UsageError(f"{option} {text!r} is not a number") from None
    if mm != mm.to_integral_value():
        raise UsageError(f"{option} {text!r}: give whole millimetres (0.1 cm steps)")
    return int(mm)


def parse_model(text: str) -> CatheterModel:
    name = str(text).strip().upper()
    known = [m.name for m in CatheterModel if m is not CatheterModel.NONE]
    if name not in known:
        raise UsageError(f"--model {text!r}: not a catheter model (known: {', '.join(known)})")
    return CatheterModel[name]


def _cm(mm: int) -> Decimal:
    return Decimal(mm) / 10


def _ml(nl: int) -> Decimal:
    return Decimal(nl) / 1_000_000


def catheter_view(record: bodies.CatheterRecord, recorded_at: str | None = None) -> dict[str, Any]:
    """The catheter record for people and --json: lengths in cm, volumes in mL."""
    if record.action is CatheterAction.NONE:
        return {"recorded": False, "action": None, "model": None, "length_cm": None, "replaced_cm": None,
                "dead_space_ml": Decimal(0), "priming_due_ml": Decimal(0), "primed": None, "recorded_at": None}
    return {"recorded": True, "action": record.action.name.lower(), "model": record.model.name,
            "length_cm": _cm(record.length_mm),
            "replaced_cm": _cm(record.replaced_mm) if record.replaced_mm else None,
            "dead_space_ml": _ml(record.dead_space_nl), "priming_due_ml": _ml(record.priming_due_nl),
            "primed": record.priming_due_nl == 0, "recorded_at": recorded_at}


def catheter_text(view: dict[str, Any]) -> str:
    """One line: 'STANDARD 80 cm, dead space 0.408 mL, primed'."""
    if not view["recorded"]:
        return "none recorded"
    length = _len(view["length_cm"])
    segment = f" ({_len(view['replaced_cm'])} replaced)" if view["replaced_cm"] else ""
    due = ("primed" if view["primed"] else
           f"PRIMING DUE: {format(view['priming_due_ml'], 'f')} mL (after the {view['action']})")
    return f"{view['model']} {length}{segment}, dead space {format(view['dead_space_ml'], 'f')} mL, {due}"


# --- the catheter record ---------------------------------------------------------

def catheter_change(state: PumpState, *, action: CatheterAction, model: str, length: str,
                    replaced: str | None = None, confirmed: frozenset[str] | set[str] = frozenset()) -> Change:
    """An IMPLANT, REVISION or CORRECTION of the record, checked; nothing sent."""
    from .writes import Expect, WriteRequest

    raw, current = state.raw, state.raw.catheter
    if (replaced is not None) != (action is CatheterAction.REVISION):
        raise UsageError("--replaced goes with a revision, and a revision needs it")
    kind = parse_model(model)
    length_mm = parse_length(length, "--length")
    replaced_mm = parse_length(replaced, "--replaced") if replaced is not None else 0
    # a priming bolus must not change under the record it was worked out from
    findings = limits.check_writable(raw, what="record the catheter",
                                     auto_exit_at=fmt_iso(state.described["mri_auto_exit_at"]))
    findings += limits.check_no_bolus_running(state.entry, bolus_remaining_ng=raw.bolus_remaining_ng,
                                              what="record the catheter")
    findings += limits.check_catheter(action, recorded=current.action, length_mm=length_mm,
                                      replaced_mm=replaced_mm, priming_due_nl=current.priming_due_nl,
                                      recorded_replaced_mm=current.replaced_mm)
    warnings = limits.settle(findings, confirmed=set(confirmed))
    expected = _expected_record(state, action, kind, length_mm, replaced_mm)
    before = catheter_view(current, _recorded_at(state))
    after = catheter_view(_as_record(expected, current), None)
    describe = {"serial_number": raw.serial_number, "action": action.name.lower(), "before": before,
                "requested": after, "rearms_priming": action is not CatheterAction.CORRECTION,
                "warnings": [w.as_dict() for w in warnings]}
    unit = state.entry.dose_unit if state.entry else "mcg/day"
    if action is CatheterAction.CORRECTION and (current.model, current.length_mm) == (kind, length_mm):
        return Change("catheter", None, describe | {"after": before}, [], unit=unit)
    request = WriteRequest(
        kind=write_kinds.CATHETER,
        prepare=partial(bodies.PrepareCatheterRequest, action=action, model=kind, length_mm=length_mm,
                        replaced_mm=replaced_mm),
        expect=Expect(program=state.program, catheter=expected), describe=describe)
    rows = [("Catheter", catheter_text(before), catheter_text(after)),
            ("Model", before["model"] or "-", after["model"]),
            ("Length", _len(before["length_cm"]), _len(after["length_cm"])),
            ("Replaced segment", _len(before["replaced_cm"]), _len(after["replaced_cm"])),
            ("Dead space", f"{format(before['dead_space_ml'], 'f')} mL", f"{format(after['dead_space_ml'], 'f')} mL"),
            ("Priming due", f"{format(before['priming_due_ml'], 'f')} mL",
             f"{format(after['priming_due_ml'], 'f')} mL"
             + ("" if action is not CatheterAction.CORRECTION else " (a correction does not re-arm priming)"))]
    verb = {"implant": "Record the implant of", "revision": "Record the revision of",
            "correction": "Correct the record to"}
    question = (f"{verb[action.name.lower()]} a {kind.name} catheter of {_len(after['length_cm'])} "
                f"on {raw.serial_number}?")
    return Change("catheter", request, describe, warnings, rows, question, {}, set(confirmed), unit)


def _recorded_at(state: PumpState) -> str | None:
    """When the pump recorded its catheter, as the status read shows it (this computer's calendar)."""
    return state.described.get("catheter", {}).get("recorded_at")


def _len(cm: Decimal | None) -> str:
    return "-" if cm is None else f"{format(cm.normalize(), 'f')} cm"


def _expected_record(state: PumpState, action: CatheterAction, model: CatheterModel, length_mm: int,
                     replaced_mm: int) -> dict[str, Any]:
    """The echo's catheter record, as plain data; recorded_at (the pump's time at PREPARE) is not
    compared, nor a correction's priming due still owed (the pump works it out again)."""
    current, pump = state.raw.catheter, state.raw.model
    out: dict[str, Any] = {"model": model, "length_mm": length_mm,
                           "dead_space_nl": dead_space_nl(pump, model, length_mm)}
    if action is CatheterAction.IMPLANT:
        return out | {"action": action, "replaced_mm": 0, "priming_due_nl": implant_priming_nl(pump, model, length_mm)}
    if action is CatheterAction.REVISION:
        return out | {"action": action, "replaced_mm": replaced_mm,
                      "priming_due_nl": revision_priming_nl(model, replaced_mm)}
    out |= {"action": current.action, "replaced_mm": current.replaced_mm}
    if current.priming_due_nl == 0:
        out["priming_due_nl"] = 0  # primed stays primed: a correction never re-arms priming
    return out


def _as_record(expected: dict[str, Any], current: bodies.CatheterRecord) -> bodies.CatheterRecord:
    return bodies.CatheterRecord(action=expected["action"], model=expected["model"],
                                 length_mm=expected["length_mm"], replaced_mm=expected["replaced_mm"],
                                 recorded_at=0, dead_space_nl=expected["dead_space_nl"],
                                 priming_due_nl=expected.get("priming_due_nl", current.priming_due_nl))


# --- the priming bolus -------------------------------------------------------------

def priming_change(state: PumpState, *, duration: str | None = None, overrides: dict[str, str] | None = None,
                   confirmed: frozenset[str] | set[str] = frozenset()) -> Change:
    """A priming bolus of what the pump says is due, checked; nothing sent."""
    from . import dosing
    from .change_history import read_history
    from .writes import Expect, WriteRequest

    raw, entry, record = state.raw, state.drug_entry, state.raw.catheter
    due, conc = record.priming_due_nl, raw.concentration_ng_per_ml
    dose_ng = dose_in_volume_ng(due, conc)
    top_rate = max((s.rate_nl_per_day for s in state.program.steps), default=0)
    if duration is not None:
        seconds = dosing.parse_duration(duration, "--duration")
        if not BOLUS_MIN_S <= seconds <= BOLUS_MAX_S:
            raise UsageError(f"--duration {duration!r}: a bolus runs from 1 min to 24 h")
    else:
        seconds = limits.shortest_bolus_s(state.spec, volume_nl=due, program_max_rate_nl_per_day=top_rate) or 86_400
    findings = limits.check_writable(raw, what="prime", auto_exit_at=fmt_iso(state.described["mri_auto_exit_at"]))
    findings += limits.check_concentration(entry, conc)
    boluses = 0
    if due:
        past = read_history(state.client, raw)
        if past.covers(raw.pump_time - DAY):
            boluses = past.boluses_since(raw.pump_time - DAY, conc)
        else:
            findings.append(limits.history_unknown(entry, past, "the last 24 hours (boluses are counted there)"))
    findings += limits.check_priming(entry, state.spec, priming_due_nl=due, recorded=record.action, dose_ng=dose_ng,
                                     seconds=seconds, daily_total=raw.daily_dose_ng_per_day, boluses_24h=boluses,
                                     reservoir_ul=raw.reservoir_ul, program_max_rate_nl_per_day=top_rate)
    findings += limits.check_no_bolus_running(entry, bolus_remaining_ng=raw.bolus_remaining_ng, what="prime")
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    mass = entry.mass_unit
    dose_q = quantity(dose_ng, mass)
    total = quantity(raw.daily_dose_ng_per_day + boluses + dose_ng, entry.dose_unit)
    describe = {"serial_number": raw.serial_number, "purpose": "priming", "dose": dose_q, "duration_s": seconds,
                "volume_ml": _ml(due), "catheter": catheter_view(record, _recorded_at(state)),
                "daily_dose": state.described["daily_dose"],
                "boluses_last_24h": quantity(boluses, mass), "daily_total_with_priming": total,
                "monitoring_confirmed": limits.MONITORING_FLAG in confirmed,
                "warnings": [w.as_dict() for w in warnings], "overrides": dict(overrides or {})}
    request = WriteRequest(
        kind=write_kinds.PRIMING,
        prepare=partial(bodies.PrepareBolusRequest, dose_ng=dose_ng, duration_s=seconds, purpose=BolusPurpose.PRIMING),
        expect=Expect(program=state.program, bolus_dose_ng=dose_ng, bolus_duration_s=seconds, bolus_volume_nl=due,
                      bolus_purpose=BolusPurpose.PRIMING),
        describe=describe)
    minutes = f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"
    rows = [("Catheter", catheter_text(describe["catheter"]), "primed"),
            ("Priming bolus", "-", f"{format(_ml(due), 'f')} mL = {_fmt(dose_q)} over {minutes}"),
            ("24-hour total", _fmt(state.described["daily_dose"]),
             f"{_fmt(total)} counted (the whole priming dose" + (", and earlier boluses)" if boluses else ")")),
            ("Afterwards", "-", "monitor the patient")]
    question = (f"Prime {raw.serial_number}: {format(_ml(due), 'f')} mL ({_fmt(dose_q)}) over {minutes}, "
                "with the patient monitored afterwards?")
    return Change("bolus", request, describe, warnings, rows, question, dict(overrides or {}), set(confirmed),
                  entry.dose_unit)


def _fmt(q: dict[str, Any]) -> str:
    return f"{format(q['value'], 'f')} {q['unit']}"


def _about(q: dict[str, Any]) -> str:
    """A projected total to 3 decimals (the JSON keeps it exact)."""
    value = Decimal(q["value"]).quantize(Decimal("0.001")).normalize()
    return f"{format(value, 'f')} {q['unit']}"


# --- a refill's bridge bolus -----------------------------------------------------------

@dataclass
class Bridged:
    """What a refill does about the catheter's dead space: the findings for its checks, what
    the 24-hour total counts, and (attach) the projections and the bridge in the request."""

    findings: list[limits.Finding]
    counted_ng: int = 0  # added to the 24-hour total: the chosen option's heaviest day above the new program
    plan: BridgePlan | None = None

    def attach(self, change: Change) -> Change:
        """The refill's change with the projections shown (and the bridge in its request when chosen)."""
        if self.plan is None or change.request is None:
            return change
        view = self.plan.view
        change.describe["bridge"] = view
        change.rows += self.plan.rows()
        if self.plan.chosen:
            request, plan = change.request, self.plan
            request.kind = write_kinds.REFILL_BRIDGE
            request.prepare = partial(request.prepare, bridge_volume_nl=plan.dead_space_nl,
                                      bridge_duration_s=plan.duration_s)
            request.expect = _with_bridge(request.expect, plan)
            change.question = change.question.rstrip("?") + ", with a bridge bolus?"
        return change


def _with_bridge(expect: Any, plan: BridgePlan) -> Any:
    from dataclasses import replace

    return replace(expect, bolus_dose_ng=plan.dose_ng, bolus_duration_s=plan.duration_s,
                   bolus_volume_nl=plan.dead_space_nl, bolus_purpose=BolusPurpose.BRIDGE)


@dataclass
class BridgePlan:
    dead_space_nl: int
    old: catheter.Contents
    new: catheter.Contents
    old_unit: str  # the old drug's dose unit (mg/day or mcg/day)
    new_unit: str
    chosen: bool | None
    problem: str | None  # why a bridge is not possible (None: it is)
    duration_s: int = 0
    dose_ng: int = 0
    view: dict[str, Any] = field(default_factory=dict)

    def unit(self, drug: Drug) -> str:
        return self.old_unit if drug == self.old.drug else self.new_unit

    def projection(self, phases: list[catheter.Phase], days: int) -> dict[str, Any]:
        start, shown = 0, []
        for p in phases:
            shown.append({"from_s": start, "seconds": p.seconds, "drug": p.drug.name.lower(),
                          "dose": quantity(p.dose_ng_per_day, self.unit(p.drug))})
            start += p.seconds or 0
        totals = catheter.daily_totals(phases, days)
        return {"phases": shown,
                "days": [{"day": i + 1, "doses": [{"drug": d.name.lower(), "dose": quantity(ng, self.unit(d))}
                                                  for d, ng in sorted(t.items())]} for i, t in enumerate(totals)]}

    def days_text(self, key: str) -> str:
        """'day 1: 5.92 mg/day morphine; day 2: ...' for with_bridge or without_bridge."""
        return "; ".join(f"day {d['day']}: " + " + ".join(f"{_about(x['dose'])} {x['drug']}" for x in d["doses"])
                         for d in self.view[key]["days"])

    def text(self) -> str:
        out = f"without a bridge {self.days_text('without_bridge')}"
        if self.view["with_bridge"] is not None:
            out += f"; with a bridge {self.days_text('with_bridge')}"
        return out

    def rows(self) -> list[tuple[str, str, str]]:
        v = self.view
        out = [("Catheter dead space", f"{format(v['dead_space_ml'], 'f')} mL of the old contents", "")]
        for key, label in (("without_bridge", "Without a bridge"), ("with_bridge", "With a bridge")):
            if v[key] is not None:
                out.append((label, "", self.days_text(key)))
        choice = {True: "bridge bolus", False: "no bridge bolus", None: "not chosen (--bridge or --no-bridge)"}
        bolus = (f"{format(v['dead_space_ml'], 'f')} mL = {_fmt(v['dose'])} {self.old.drug.name.lower()} "
                 f"over {fmt_span(self.duration_s)}")
        bolus = bolus if not self.problem else f"not possible: {self.problem}"
        if not self.problem and v["counted_in_24h_total"]:
            bolus += " (its heaviest day above the new program counts in the 24-hour total)"
        out.append(("Bridge bolus", "", f"{choice[self.chosen]}; {bolus}"))
        return out


def plan_bridge(state: PumpState, new_entry: Any, conc: int, summary: dict[str, Any], volume_ul: int,
                choice: bool | None) -> Bridged:
    """A refill to new_entry at conc with the program of `summary`: does the dead space hold
    other contents, can a bridge move them, and what the patient gets with and without one."""
    raw, record = state.raw, state.raw.catheter
    new_drug = Drug[new_entry.code]
    if record.action is CatheterAction.NONE:
        return Bridged(limits.check_no_bridge_needed(choice, reason="no catheter is recorded"))
    if new_drug == raw.drug and conc == raw.concentration_ng_per_ml:
        return Bridged(limits.check_no_bridge_needed(choice, reason="neither the drug nor the concentration changes"))
    old = catheter.Contents(raw.drug, raw.concentration_ng_per_ml, state.program.daily_volume_nl_per_day,
                            state.program.daily_dose_ng_per_day)
    new = catheter.Contents(new_drug, conc, summary["daily_volume_nl_per_day"], summary["daily_dose_ng_per_day"])
    dead = record.dead_space_nl
    duration = bridge_duration_s(dead, old.daily_volume_nl_per_day) if old.daily_volume_nl_per_day > 0 else None
    problem = limits.bridge_problem(dead_space_nl=dead, old_rate_nl_per_day=old.daily_volume_nl_per_day,
                                    duration_s=duration, volume_ul=volume_ul, spec=state.spec)
    what = "the drug changes" if new_drug != raw.drug else "the concentration changes"
    plan = BridgePlan(dead, old, new, state.entry.dose_unit if state.entry else "mcg/day", new_entry.dose_unit,
                      choice, problem, duration or 0, catheter.bridge_dose_ng(dead, old))
    plan.view = _bridge_view(plan)
    return Bridged(limits.check_bridge(choice, problem=problem, what=what, projection=plan.text()),
                   _excess_ng(plan), plan)


def _excess_ng(plan: BridgePlan) -> int:
    """What the chosen option gives the patient in its heaviest day beyond the new program,
    counted in the 24-hour total (docs/clinical.md#catheter): a bridge at the old dose above a
    lower new one, or, without a bridge, the old, stronger contents pushed at the new rate.
    Another drug's contents are not the new drug's ng: they are shown, not added."""
    if plan.chosen is None or plan.old.drug != plan.new.drug:
        return 0
    if plan.chosen and plan.problem is None:
        phases = catheter.with_bridge(plan.dead_space_nl, plan.old, plan.new)
    elif plan.chosen:
        return 0  # refused anyway: the bridge cannot run
    else:
        phases = catheter.without_bridge(plan.dead_space_nl, plan.old, plan.new)
    days = catheter.daily_totals(phases, catheter.days_to_show(phases))
    heaviest = max(day.get(plan.new.drug, 0) for day in days)
    return max(0, heaviest - plan.new.daily_dose_ng_per_day)


def _bridge_view(plan: BridgePlan) -> dict[str, Any]:
    without = catheter.without_bridge(plan.dead_space_nl, plan.old, plan.new)
    with_ = catheter.with_bridge(plan.dead_space_nl, plan.old, plan.new) if plan.duration_s else None
    days = max(catheter.days_to_show(without), catheter.days_to_show(with_) if with_ else 0)
    return {"chosen": {True: "bridge", False: "no-bridge", None: None}[plan.chosen],
            "possible": plan.problem is None, "problem": plan.problem,
            "dead_space_ml": _ml(plan.dead_space_nl), "volume_ml": _ml(plan.dead_space_nl),
            "duration_s": plan.duration_s if plan.problem is None else None,
            "dose": quantity(plan.dose_ng, plan.old_unit.split("/")[0]),
            "old_drug": plan.old.drug.name.lower(),
            "counted_in_24h_total": plan.old.drug == plan.new.drug,
            "without_bridge": plan.projection(without, days),
            "with_bridge": plan.projection(with_, days) if with_ and plan.problem is None else None}
