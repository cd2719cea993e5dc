"""A plan's read steps on one pump: interrogate, assert (a check on the status), and the MRI
checklist and verification. Split out of batch.py; nothing here writes to the pump."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .batch_journal import StepResult
from .errors import IthcliError
from .plan import Step, Target, evaluate_check

if TYPE_CHECKING:
    from .app import PumpSession


def read_step(session: PumpSession, t: Target, step: Step) -> StepResult:
    """One read step on one pump (interrogate, assert, mri-checklist, mri-verify): its result. Only
    reads: batch replays interrogate and assert on the runner's thread (batch_drive.inline)."""
    if step.action in ("mri-checklist", "mri-verify"):
        from . import mri

        try:
            st = mri.read_state(session, write=False)
            if step.action == "mri-checklist":
                auto_exit_s = mri.parse_auto_exit(step.args.get("auto_exit", "4h"))
                result = mri.run_checklist(session, st, auto_exit_s=auto_exit_s,
                                           field=step.args.get("field"), gradient=step.args.get("gradient"))
            else:
                result = mri.run_verify(session, st)
        except IthcliError as exc:
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "failed", exc.message)
        bad = mri.blocks(result)
        return StepResult(t.number, t.serial, t.port, step.number, step.action, "failed" if bad else "confirmed",
                          "; ".join(bad) or result["result"], data={"lines": result["lines"]})
    try:
        status = session.interrogate(resolve=False)
    except IthcliError as exc:
        return StepResult(t.number, t.serial, t.port, step.number, step.action, "failed", exc.message)
    if step.action == "interrogate":
        return StepResult(t.number, t.serial, t.port, step.number, step.action, "confirmed", "read",
                          data={"status": status})
    try:
        passed, actual = evaluate_check(step.args["check"], status)
    except IthcliError as exc:
        return StepResult(t.number, t.serial, t.port, step.number, step.action, "failed", exc.message)
    return StepResult(t.number, t.serial, t.port, step.number, step.action, "confirmed" if passed else "failed",
                      f"{step.args['check']}: actual {actual}")
