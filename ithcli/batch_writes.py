"""A plan's write steps through ithcli.api, and what a refusal asks the plan to add.

Split out of batch.py: each write step is checked by the same `Pump.check_*` call as its
command (program, refill with its bridge choice, bolus, priming-bolus, catheter, clock-set,
ptm-set) and sent with `Pump.apply`; a relative dose is resolved on the pump as it is read
for the step (prepare_step); what each step goes from and to is its change's before/after
rows, the same the command shows (change_view; MRI steps: mri_rows); a refusal that lists
flags still needed is put in the plan's terms; and preflight refuses a refill that changes
the catheter's contents without the bridge choice before anything is sent to that pump.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import plan_relative
from .api import Pump
from .errors import IthcliError, SafetyError
from .limits.catheter import BRIDGE_CHOICE
from .plan import CONFIRMATIONS, WRITE_ACTIONS, Plan, Step, Target

if TYPE_CHECKING:
    from protocol import bodies

    from .api import PreparedChange
    from .app import PumpSession

#: what each write step's result keeps (those of its --json object it has)
RESULT_KEYS = ("before", "requested", "after", "warnings", "bridge", "dose", "volume_ml", "duration_s", "step_s",
               "time_set", "action", "relative_dose")


def prepare_step(session: PumpSession, step: Step, plan: Plan, drug: str | None,
                 target: Target | None = None) -> PreparedChange:
    """check_step, with a relative dose ("+10%") first resolved on the pump as read for it: its
    row says how the dose was computed, and the check's own read must find the pump as that
    read did (nothing written in between), or nothing is sent."""
    text = step.args.get("dose")
    if step.action != "program" or not isinstance(text, str) or not plan_relative.is_relative(text):
        return check_step(Pump(session), step, plan, drug, target)
    raw, _ = session.read(settle=False)
    entry = session.library.for_code(raw.drug.name)
    if entry is None:
        raise SafetyError(f"the pump holds {raw.drug.name.lower()}, which is not in the drug library: writes are "
                          "refused")
    resolved = plan_relative.resolve(plan_relative.parse(text, entry), current_ng=raw.daily_dose_ng_per_day,
                                     mode=raw.mode.name, unit=entry.dose_unit)
    prepared = check_step(Pump(session), replace(step, args=step.args | {"dose": resolved.dose_text}), plan, drug,
                          target)
    now = prepared.state.raw
    if now.last_txid != raw.last_txid or now.daily_dose_ng_per_day != resolved.current_ng:
        raise SafetyError(f"the pump was written to while its relative dose {text!r} was worked out (txid "
                          f"{raw.last_txid}, now {now.last_txid}). Nothing was sent")
    prepared.change.rows.insert(0, resolved.row())
    prepared.change.describe["relative_dose"] = resolved.as_dict()
    return prepared


def change_view(rows: list, warnings: list) -> dict[str, Any]:
    """A write step's `change` for --json and the results: its before/after rows, as the command's
    table shows them, and the warnings it was allowed with."""
    return {"rows": [{"item": str(label), "before": str(now), "after": str(after)} for label, now, after in rows],
            "warnings": [w.as_dict() for w in warnings]}


def mri_rows(step: Step, described: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What an MRI step goes from and to (the pump as read for it)."""
    from .output import fmt_quantity, fmt_span

    rate = f"{format(described['current_rate_ml_per_day'], 'f')} mL/day now"
    program = f"the program: {described['mode']}, {fmt_quantity(described['daily_dose'])}"
    if step.action == "mri-enter":
        from .mri import parse_auto_exit

        auto_exit = fmt_span(parse_auto_exit(step.args.get("auto_exit", "4h")))
        return [("MRI-safe mode", described["mri_mode"], f"safe; automatic exit after {auto_exit}"),
                ("Delivery", rate, "suspended while in MRI-safe mode")]
    return [("MRI-safe mode", described["mri_mode"], "off"), ("Delivery", rate, program)]


def check_step(pump: Pump, step: Step, plan: Plan, drug: str | None, target: Target | None = None) -> PreparedChange:
    """A write step checked through the API (the same limits as the command line); nothing sent.
    The target's order, if any, governs its step of the order's kind (as --order does)."""
    args = dict(step.args)
    args.pop("from_order", None)
    order = target.order if target is not None and target.order is not None \
        and target.order.kind == step.action else None
    confirmed = {CONFIRMATIONS[c] for c in args.pop("confirm", [])}
    overrides = args.pop("override_soft_limit", None) or None  # {NAME: reason}, names as in limits.OVERRIDE_NAMES
    action = step.action
    if action == "program":
        schedule = args.get("schedule")
        if schedule and not os.path.isabs(schedule):
            schedule = str(Path(plan.path).parent / schedule)
        return pump.check_program(dose=args.get("dose"), flow=args.get("flow"), mode=args.get("mode"),
                                  schedule=schedule, stop=args.get("stop", False), overrides=overrides,
                                  confirm=confirmed, expect_drug=drug, order=order)
    if action == "refill":
        return pump.check_refill(volume=args.get("volume"), concentration=args.get("concentration"),
                                 drug=args.get("drug"), withdrawn=args.get("withdrawn"), dose=args.get("dose"),
                                 overrides=overrides, confirm=confirmed, expect_drug=drug, bridge=args.get("bridge"),
                                 order=order)
    if action == "priming-bolus":
        return pump.check_priming(duration=args.get("over"), overrides=overrides, confirm=confirmed,
                                  expect_drug=drug)
    if action == "catheter":
        model = args.get("model") or pump.catheter().model or "STANDARD"  # a revision keeps the recorded model
        return pump.check_catheter(args["event"], model=model, length=args["length"], replaced=args.get("replaced"))
    if action == "clock-set":
        return pump.check_clock(to=args.get("to"), confirm=confirmed)
    if action == "ptm-set":
        return pump.check_ptm(dose=args.get("dose"), lockout=args.get("lockout"),
                              max_per_day=args.get("max_per_day"), duration=args.get("duration"),
                              off=args.get("off", False), overrides=overrides, confirm=confirmed, expect_drug=drug)
    return pump.check_bolus(dose=args.get("dose"), over=args.get("over"), overrides=overrides, confirm=confirmed,
                            expect_drug=drug, order=order)


def double_check_item(plan: Plan, target: Target, raw: Any, plan_sha256: str) -> dict[str, Any]:
    """A target's part of a run's double check (doublecheck.py): the plan (its hash and steps), the
    pump as preflight read it (serial, patient, last txid) and its order. The same plan on an
    unchanged pump computes the same writes, so this is what a verifier's signature binds."""
    import json

    from .doublecheck import canonical

    patient = getattr(raw, "patient", None)
    steps = [{"step": s.number, "action": s.action, **plan.step_for(target, s).args} for s in plan.steps]
    order = target.order
    return {"kind": "batch", "serial_number": raw.serial_number,
            "patient_id": getattr(patient, "patient_id", "") or None, "based_on_txid": raw.last_txid,
            "prepare": json.loads(canonical({"plan": plan.name, "plan_sha256": plan_sha256, "steps": steps})),
            "overrides": {}, "order_sha256": order.sha256 if order is not None else None,
            "order": order.content if order is not None else None, "rows": [], "warnings": [],
            "question": f"Run plan {plan.name} on {raw.serial_number}?", "reason": None}


def unchanged_text(action: str) -> str:
    """Why a write step sent nothing: the pump already is as the step asks."""
    return {"catheter": "the pump already records this catheter", "ptm-set": "the pump already has these limits",
            "clock-set": "the pump's clock is already this computer's time (within 1 s)"}.get(
        action, "the pump already delivers this") + "; nothing sent"


def dry_run_skip(plan: Plan, target: Target, step: Step) -> str | None:
    """Why a dry run cannot check this step (the target's version) with the pump as it is (an
    earlier write it did not send changes what the step is checked against), or None."""
    expected = plan.drug_at(target, step.number)
    if expected and expected != target.drug_code:
        return (f"not checked with the pump: it follows the refill to {expected.lower()} that this dry run did "
                "not send")
    if step.action == "program" and plan_relative.is_relative(step.args.get("dose")):
        setting = [s for s in (plan.step_for(target, s) for s in plan.steps[:step.number - 1])
                   if s.action == "program" or s.action == "refill" and "dose" in s.args]
        if setting:
            return (f"not checked with the pump: its dose {step.args['dose']!r} is relative to the one step "
                    f"{setting[-1].number} ({setting[-1].action}) sets, which this dry run did not send; it is "
                    "worked out and checked when it runs")
    if step.action == "priming-bolus":
        arming = [s for s in (plan.step_for(target, s) for s in plan.steps[:step.number - 1])
                  if s.action == "catheter" and s.args.get("event") in ("implant", "revision")]
        if arming:
            return (f"not checked with the pump: it primes what step {arming[-1].number} (catheter) records, which "
                    "this dry run did not send")
    mri = [s for s in plan.steps[:step.number - 1] if s.action in ("mri-enter", "mri-exit")]
    if mri and step.action not in ("mri-enter", "mri-exit"):  # the pump's MRI-safe mode is not yet what it will be
        return (f"not checked with the pump: it follows step {mri[-1].number} ({mri[-1].action}), which this dry "
                "run did not send; it is checked when it runs")
    return None


def in_plan_terms(exc: IthcliError) -> str:
    """A refusal that lists the flags still needed (limits.settle's details["needed"]), with
    what the plan's step needs instead: a plan takes no command-line flags."""
    needed = exc.details.get("needed") if isinstance(exc.details, dict) else None
    if not needed:
        return exc.message
    names = [n.split()[1].split("=")[0] for n in needed if n.startswith("--override-soft-limit ")]
    flags = [n.removeprefix("--confirm-") for n in needed if n.startswith("--confirm-")]
    parts = (["override_soft_limit = { " + ", ".join(f'{n} = "reason"' for n in names) + " }"] if names else []) + (
        ["confirm = [" + ", ".join(f'"{f}"' for f in flags) + "]"] if flags else []) + (
        ["bridge = true (a bridge bolus) or bridge = false (none)"] if BRIDGE_CHOICE in needed else [])
    return exc.message + (f" In the plan's step: {'; '.join(parts)}" if parts else "")


def bridge_refusals(session: PumpSession, plan: Plan, target: Target, raw: bodies.Status,
                    states: dict[tuple[str, int], dict]) -> list[str]:
    """Preflight: every refill step that changes the drug or the concentration while a catheter is
    (or by an earlier step will be) recorded, and says neither bridge = true nor false. The first
    write to run is checked by the API against the pump as read (the command line's message, every
    need at once); a later one, whose pump state earlier steps change, by the same rule offline."""
    from protocol.constants import CatheterAction

    code, conc = raw.drug.name, raw.concentration_ng_per_ml
    catheter = raw.catheter.action is not CatheterAction.NONE
    first: bool | None = None  # read only when a refill needs it (a read-only plan never does)
    out: list[str] = []
    for step in (plan.step_for(target, s) for s in plan.steps):
        if step.action not in WRITE_ACTIONS:
            continue
        state = states.get((target.serial, step.number), {}).get("state")
        if state in ("confirmed", "unchanged"):
            continue  # applied: the pump as read holds it
        if step.action == "catheter" and step.args.get("event") == "implant":
            catheter = True
        if step.action == "refill":
            new_code, new_conc = step.refill_drug_code or code, _concentration(session, step, step.refill_drug_code
                                                                               or code)
            what = ("the drug changes" if new_code != code else
                    "the concentration changes" if new_conc is not None and new_conc != conc else None)
            if what and catheter and "bridge" not in step.args and state not in ("sent", "unconfirmed"):
                if first is None:
                    first = session.pending.get(target.serial) is None
                message = _first_refusal(session, plan, target, step) if first else None
                out.append(f"step {step.number} (refill): {message or _offline_refusal(what)}")
            code, conc = new_code, new_conc if new_conc is not None else conc
        first = False
    return out


def _concentration(session: PumpSession, step: Step, code: str) -> int | None:
    from .dosing import parse_concentration

    entry = session.library.for_code(code)
    try:
        return parse_concentration(step.args["concentration"], entry, "concentration") if entry else None
    except IthcliError:
        return None


def _first_refusal(session: PumpSession, plan: Plan, target: Target, step: Step) -> str | None:
    """The API's refusal of this refill as the pump is now, when it asks for the bridge choice."""
    try:
        check_step(Pump(session), step, plan, plan.drug_at(target, step.number))
    except SafetyError as exc:
        if BRIDGE_CHOICE in (exc.details or {}).get("needed", []):
            return in_plan_terms(exc)
    except IthcliError:
        pass
    return None


def _offline_refusal(what: str) -> str:
    from . import limits

    try:
        limits.settle(limits.check_bridge(None, problem=None, what=what))
    except SafetyError as exc:
        return in_plan_terms(exc)
    raise AssertionError("a bridge choice not asked for")  # pragma: no cover


def result_data(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in RESULT_KEYS if data.get(k) is not None}


def prepare_fields(request: Any, based_on: int) -> dict[str, Any]:
    """A write's PREPARE fields (txids aside), as plain JSON: what the preview showed is compared
    with what is sent (as a double check binds a write: doublecheck.write_item)."""
    from protocol.bodies import as_dict

    from .doublecheck import canonical

    body = as_dict(request.prepare(txid=1, based_on_txid=based_on))
    return json.loads(canonical({k: v for k, v in body.items() if k not in ("txid", "based_on_txid")}))


def for_verifier(item: dict[str, Any], step: Step, shown: dict[str, Any]) -> None:
    """A dry run's rows are also what the double-check request shows of the step."""
    item["rows"] += [[f"step {step.number} {step.action}: {row['item']}", row["before"], row["after"]]
                     for row in shown["rows"]]
    item["warnings"] += [w["message"] for w in shown["warnings"]]
