"""Running a plan across many pumps: preflight, concurrency, journal, resume.

Pumps run `jobs` at a time, their exchanges interleaved by one runner on this thread
(batch_drive.py); each pump's steps run in order. The journal and reports: batch_journal.py.

Every step of every target is journalled before and after (created, sent, then
confirmed, failed or unconfirmed), one fsync'd JSON line each. Re-running with
the same journal resumes: confirmed steps are skipped, so nothing is applied
twice; a step left unconfirmed is settled by asking the pump (its last txid and
its log) before anything else is sent to it.

A run that asks first (run(confirm=...)) works out every write step of every pump
after preflight, as a dry run does but journalling nothing (the preview), hands the
reports to `confirm` (which raises to stop), then runs. What was shown binds: the
first write sent to each pump must find it at the txid the preview read, and, when
the preview worked that step out, be the same write (its PREPARE fields); otherwise
nothing is sent to that pump. Later steps are checked again as they run, as always.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from . import batch_drive
from .api import Pump
from .app import PumpSession
from .batch_drive import BatchSession, Driver
from .batch_journal import Journal, StepResult, TargetReport, plan_hash
from .batch_reads import read_step
from .batch_writes import (
    bridge_refusals,
    change_view,
    check_step,
    double_check_item,
    dry_run_skip,
    for_verifier,
    in_plan_terms,
    mri_rows,
    prepare_fields,
    prepare_step,
    result_data,
    unchanged_text,
)
from .doublecheck import DoubleCheck, missing, write_kind
from .errors import IthcliError, LinkError, SafetyError, Unconfirmed
from .plan import WRITE_ACTIONS, Plan, Step, Target
from .steps import Steps

_in_plan_terms, _check = in_plan_terms, check_step  # their names before batch_writes.py

__all__ = ["WRITE_ACTIONS", "Journal", "Runner", "StepResult", "TargetReport", "plan_hash"]


class Runner:
    def __init__(self, session_factory: Callable[[str], BatchSession], plan: Plan, *, journal: Journal, jobs: int,
                 continue_on_error: bool, dry_run: bool, on_update: Callable[[TargetReport, str], None],
                 verified: dict[str, Any] | None = None):
        self.session_factory = session_factory
        self.plan = plan
        self.journal = journal
        self.jobs = jobs
        self.continue_on_error = continue_on_error
        self.dry_run = dry_run
        self.on_update = on_update
        self.stop = threading.Event()
        self.reports = [TargetReport(t) for t in plan.targets]
        # the session preflight opened is kept for the run: one handshake per pump, not two
        self._sessions: dict[int, BatchSession] = {}
        self._states: dict | None = None
        self._states_lock = threading.Lock()
        #: the run's double check (doublecheck.py): each target's item as preflight read it, the rows
        #: a dry run showed for it, and (verified: the document given) the check accepted for it
        self.verified = verified
        self.items: dict[int, dict[str, Any]] = {}
        self.checks: dict[int, DoubleCheck] = {}
        self._plan_sha256 = hashlib.sha256(Path(plan.path).read_bytes()).hexdigest()

    # --- the whole run ---------------------------------------------------------
    def run(self, confirm: Callable[[list[TargetReport]], None] | None = None) -> list[TargetReport]:
        """Preflight every target, then run them; Ctrl-C stops new steps, lets sent ones settle.
        With `confirm` (and a plan with writes, not a dry run): after preflight every write is
        worked out (the preview) and confirm(reports) is called, once; it raises to stop."""
        def ready(r: TargetReport) -> bool:
            return r.outcome == "ready"

        # preflight only reads, unless a refill's bridge choice or the pre-MRI checklist asks the pump
        reads_only = not any(s.action in ("refill", "mri-enter") for s in self.plan.steps)
        try:
            self._parallel(lambda r, s: self._on(s, partial(self._preflight, r, s), inline=reads_only))
            if self._stopped_before_writes():
                return self.reports
            if confirm is not None and not self.dry_run and any(s.action in WRITE_ACTIONS for s in self.plan.steps):
                self._parallel(lambda r, s: self._on(s, partial(self._preview, r, s)), only=ready)
                if self._stopped_before_writes() or not any(ready(r) for r in self.reports):
                    return self.reports
                confirm(self.reports)
            self._parallel(self._target_steps, only=ready)
        finally:
            for session in self._sessions.values():
                session.close()
        return self.reports

    def _stopped_before_writes(self) -> bool:
        """A target failed preflight (or its preview): without --continue-on-error nothing runs."""
        if self.continue_on_error or not any(r.outcome in ("preflight-failed", "unconfirmed") for r in self.reports):
            return False
        for r in self.reports:
            if r.outcome == "ready":
                r.outcome, r.detail = "not-run", "another target failed preflight (see --continue-on-error)"
                self.on_update(r, r.detail)
        return True

    def _parallel(self, phase: Callable[[TargetReport, BatchSession], Steps[Any]], only=lambda r: True) -> None:
        """phase(report, session)'s steps for every report `only` keeps, `jobs` pumps at a time, on
        one runner on this thread (batch_drive.py); KeyboardInterrupt once a Ctrl-C stopped it. A
        session not kept for the next phase is closed after this one."""
        driver = Driver(self.jobs, on_stop=self.stop.set)
        opened: list[tuple[TargetReport, BatchSession]] = []
        for report in (r for r in self.reports if only(r)):
            session = self._sessions.get(report.target.number)
            if session is None:
                session = self.session_factory(report.target.port)
                try:
                    session.attach()
                except IthcliError as exc:  # the port cannot be opened: as a failed first read
                    session.close()
                    report.outcome, report.detail = "preflight-failed", exc.message
                    self.on_update(report, f"preflight failed: {exc.message}")
                    continue
            opened.append((report, session))
            driver.add(report.target.serial, session, self._guarded(phase(report, session), report))
        try:
            driver.run()
        finally:
            for report, session in opened:
                if self._sessions.get(report.target.number) is not session:
                    session.close()

    @staticmethod
    def _on(session: BatchSession, fn: Callable[[], Any], *, inline: bool = False) -> Steps[Any]:
        """fn() (blocking code on the session) as steps: replayed on this thread (inline: code that
        only reads, batch_drive.inline) or on a worker thread."""
        client = session.attach()
        return batch_drive.inline(fn, client, session) if inline else batch_drive.on_worker(fn, client)

    def _journal_states(self) -> dict:
        """The journal as it was when this run started (read once, not once per pump)."""
        with self._states_lock:
            if self._states is None:
                self._states = self.journal.last_states()
            return self._states

    def _guarded(self, steps: Steps[Any], report: TargetReport) -> Steps[None]:
        try:
            yield from steps
        except KeyboardInterrupt:  # a second Ctrl-C, thrown in at this pump's pending exchange
            if report.outcome in ("ready", "pending"):
                report.outcome, report.detail = "stopped", "interrupted (a second Ctrl-C) during an exchange"
            self.on_update(report, report.detail)
        except Exception as exc:  # one pump's surprise must not take the others down
            report.outcome, report.detail = "failed", f"internal error: {type(exc).__name__}: {exc}"
            self.on_update(report, report.detail)

    # --- preflight -------------------------------------------------------------
    def _preflight(self, report: TargetReport, session: BatchSession) -> None:
        t = report.target
        self.on_update(report, "preflight")
        try:
            if not self.dry_run and any(s.action in WRITE_ACTIONS for s in self.plan.steps):
                session.client(write=True)  # the session the writes need, from the start: one handshake, not two
            raw = session.read_raw(settle=False)  # (described only where a step shows it: 2 of 3 reads' cost here)
            if raw.serial_number != t.serial:
                raise IthcliError(f"serial number is {raw.serial_number}, the plan expects {t.serial}")
            states = self._journal_states()
            expected = self._expected_drugs(t, states)
            if expected and raw.drug.name.upper() not in expected:
                raise IthcliError(f"the pump holds {raw.drug.name.lower()}, the plan is for "
                                  f"{' or '.join(sorted(c.lower() for c in expected))}: nothing is sent to it")
            pending = session.pending.get(t.serial)
            journal_open = [s for (serial, _), s in states.items() if serial == t.serial and s["state"] in
                            ("sent", "unconfirmed")]
            if pending is not None and not journal_open:
                raise Unconfirmed(f"txid {pending['txid']} to this pump is unconfirmed: run ithcli reconcile")
            refusals = bridge_refusals(session, self.plan, t, raw, states)
            if refusals:  # a refill that changes the catheter's contents needs the choice said in the plan
                raise IthcliError("; ".join(refusals))
            enter = next((self.plan.step_for(t, s) for s in self.plan.steps if s.action == "mri-enter"), None)
            if enter is not None and not any(s.action in WRITE_ACTIONS for s in self.plan.steps[:enter.number - 1]):
                from . import mri

                checked = mri.run_checklist(session, mri.read_state(session, write=False),
                                            auto_exit_s=mri.parse_auto_exit(enter.args.get("auto_exit", "4h")),
                                            field=enter.args.get("field"), gradient=enter.args.get("gradient"),
                                            save=False)
                if checked["result"] == mri.BLOCK:
                    raise IthcliError("pre-MRI checklist BLOCK: " + "; ".join(mri.blocks(checked)))
            if self.dry_run or self.verified is not None:  # a check request (a dry run) or its use only
                self.items[t.number] = double_check_item(self.plan, t, raw, self._plan_sha256)
            if self.verified is not None:
                self.checks[t.number] = self._accept(session, self.items[t.number])
            report.read_txid = raw.last_txid
            report.outcome = "ready"
            self._sessions[t.number] = session
            self.on_update(report, "ready")
        except IthcliError as exc:
            report.outcome, report.detail = "preflight-failed", exc.message
            self.on_update(report, f"preflight failed: {exc.message}")

    def _accept(self, session: PumpSession, item: dict[str, Any]) -> DoubleCheck:
        from .doublecheck import accept

        operator = session.operator_clinician("a double-checked run")
        assert session.clinic_policy is not None  # operator_clinician refuses without one
        return accept(self.verified, session.clinic_policy, operator, item)

    def _expected_drugs(self, t: Target, states: dict) -> set[str]:
        """The drug codes the pump may hold at preflight: the target's, or after a refill
        with drug = "..." this journal saw confirmed, the new one (either while unsettled)."""
        if not t.drug_code:
            return set()
        codes = {t.drug_code}
        for step in self.plan.steps:
            if not step.refill_drug_code:
                continue
            state = states.get((t.serial, step.number), {}).get("state")
            if state == "confirmed":
                codes = {step.refill_drug_code}
            elif state in ("sent", "unconfirmed"):
                codes = codes | {step.refill_drug_code}
        return codes

    # --- one target, its steps in order -------------------------------------------
    def _target_steps(self, report: TargetReport, session: BatchSession) -> Steps[None]:
        """The target's steps in order. A read step is replayed on this thread; the rest (writes,
        what settles a step sent before) run on a worker (_on)."""
        t = report.target
        self._sessions.pop(t.number, None)
        changed = yield from self._on(session, partial(self._changed_since_shown, session, report), inline=True)
        if changed:  # a run that asked: what was shown of this pump no longer holds
            report.outcome, report.detail = "failed", changed
            if not self.continue_on_error:
                self.stop.set()
        states = self._journal_states()
        for step in self.plan.steps if not changed else ():
            if self.stop.is_set():
                report.outcome = report.outcome if report.outcome in ("failed", "unconfirmed") else "stopped"
                report.detail = report.detail or "interrupted before this step"
                self._add(report, StepResult(t.number, t.serial, t.port, step.number, step.action, "not-run",
                                             "interrupted: not sent"))
                continue
            prior = states.get((t.serial, step.number))
            result = (yield from self._on(session, partial(self._resume, session, report, step, prior))) \
                if prior else None
            if result is None:
                result = yield from self._on(session, partial(self._step, session, report, step),
                                             inline=step.action in ("interrogate", "assert"))
            self._add(report, result)
            if result.outcome in ("failed", "unconfirmed"):
                report.outcome = result.outcome
                report.detail = f"step {step.number} ({step.action}): {result.detail}"
                if not self.continue_on_error:
                    self.stop.set()
                break
        if report.outcome == "ready":
            report.outcome = "ok"
        self.on_update(report, report.outcome)

    def _changed_since_shown(self, session: PumpSession, report: TargetReport) -> str | None:
        """In a run that asked first: why nothing may be sent to this pump (it was written to since
        its change was shown, or cannot be read to tell), or None."""
        if not report.preview:
            return None
        try:
            raw, _ = session.read(settle=False)
        except IthcliError as exc:
            return f"cannot read the pump again before its first write: {exc.message}"
        if raw.last_txid != report.read_txid:
            return (f"the pump was written to since the change was shown (its last txid is {raw.last_txid}, it "
                    f"was {report.read_txid}): nothing was sent to it; run the plan again to see the change as it "
                    "is now")
        return None

    def _add(self, report: TargetReport, result: StepResult) -> None:
        report.steps.append(result)
        self.on_update(report, f"step {result.step} {result.action}: {result.outcome}")

    def _resume(self, session: PumpSession, report: TargetReport, step: Step, prior: dict) -> StepResult | None:
        """A step this journal has seen before: skip it, settle it, or (never sent) run it."""
        from .writes import tx_applied

        t = report.target
        if prior["state"] in ("confirmed", "unchanged"):
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "skipped",
                              f"already {prior['state']} in an earlier run (txid {prior.get('txid')})",
                              prior.get("txid"))
        if prior["state"] in ("sent", "unconfirmed") and prior.get("txid"):
            client = session.client()
            applied = tx_applied(client, prior["txid"], prior.get("log_index", 0))
            session.pending.clear(t.serial)
            state = "confirmed" if applied else "failed"
            self.journal.write(serial=t.serial, port=t.port, step=step.number, action=step.action, state=state,
                               txid=prior["txid"], detail="settled by reading the pump on resume")
            if applied:
                return StepResult(t.number, t.serial, t.port, step.number, step.action, "resumed",
                                  f"txid {prior['txid']} was applied (learnt from the pump)", prior["txid"])
            return None  # never applied: running it now applies it once
        return None  # created or failed before: nothing reached the pump, run it

    def _preview(self, report: TargetReport, session: BatchSession) -> None:
        """Work out every write step of this target on its pump, as a dry run does, journalling
        nothing: what the one confirmation shows. A step refused here stops the target before
        anything is sent to it (as a preflight failure)."""
        t = report.target
        states = self._journal_states()
        self.on_update(report, "working out the change")
        for step in self.plan.steps:
            if step.action not in WRITE_ACTIONS:
                continue
            prior = states.get((t.serial, step.number), {}).get("state")
            if prior in ("confirmed", "unchanged"):
                report.preview.append(StepResult(t.number, t.serial, t.port, step.number, step.action, "skipped",
                                                 f"already {prior} in an earlier run"))
                continue
            if prior in ("sent", "unconfirmed"):
                report.preview.append(StepResult(
                    t.number, t.serial, t.port, step.number, step.action, "dry-run",
                    "sent in an earlier run and not settled: the run asks the pump first; the steps after it are "
                    "checked as they run"))
                break
            result = self._step(session, report, step, preview=True)
            report.preview.append(result)
            if result.outcome in ("failed", "unconfirmed"):
                report.outcome = "preflight-failed" if result.outcome == "failed" else "unconfirmed"
                report.detail = f"step {step.number} ({step.action}): {result.detail}"
                self.on_update(report, f"refused: {report.detail}")
                return
        self.on_update(report, "ready")

    def _step(self, session: PumpSession, report: TargetReport, step: Step, *, preview: bool = False) -> StepResult:
        """One step on one pump: read, or check then send (dry run or preview: check only). The
        step is the target's own version (its [target.step.N] values)."""
        t = report.target
        step = self.plan.step_for(t, step)
        dry = self.dry_run or preview
        base = dict(serial=t.serial, port=t.port, step=step.number, action=step.action)
        if step.action not in WRITE_ACTIONS:
            return read_step(session, report.target, step)

        def journal(**record) -> None:  # a preview is not the run: nothing of it is journalled
            if not preview:
                self.journal.write(**record)

        journal(**base, state="created")
        sent: dict[str, Any] = {}

        def journal_sent(txid: int, log_index: int) -> None:
            sent["txid"] = txid
            journal(**base, state="sent", txid=txid, log_index=log_index)

        try:
            if step.action.startswith("mri-"):
                return self._mri_write(session, report, step, base, journal_sent, dry=dry, preview=preview)
            skip = dry_run_skip(self.plan, t, step) if dry else None
            if skip:
                journal(**base, state="dry-run")
                return StepResult(t.number, t.serial, t.port, step.number, step.action, "dry-run", skip)
            # the drug again, as the pump holds it now (it may have changed since preflight)
            prepared = prepare_step(session, step, self.plan, self.plan.drug_at(t, step.number), t)
            change = prepared.change
            shown = change_view(change.rows, change.warnings)
            based_on = prepared.state.raw.last_txid
            if change.unchanged:
                if preview:
                    report.shown[step.number] = (None, based_on)
                else:
                    self._as_shown(report, step, None, based_on)
                journal(**base, state="unchanged")
                return StepResult(t.number, t.serial, t.port, step.number, step.action, "unchanged",
                                  unchanged_text(step.action), change=shown)
            prepare = prepare_fields(change.request, based_on)
            if preview and based_on != report.read_txid:
                raise SafetyError("the pump was written to while its change was worked out: nothing was sent to it; "
                                  "run the plan again")
            if preview:
                reason = Pump(session).double_check_needed(prepared) if self.verified is None else None
                if reason:  # refused when it runs: never asked about
                    raise missing(reason, write_kind(change))
                report.shown[step.number] = (prepare, based_on)
                return StepResult(t.number, t.serial, t.port, step.number, step.action, "dry-run",
                                  "checked; nothing sent", data=result_data(change.describe), change=shown)
            if dry:
                item = self.items.get(t.number)
                if item is not None:  # what a second verifier is shown of it: the same rows
                    for_verifier(item, step, shown)
                journal(**base, state="dry-run")
                return StepResult(t.number, t.serial, t.port, step.number, step.action, "dry-run",
                                  "checked; nothing sent", data=result_data(change.describe), change=shown)

            self._as_shown(report, step, prepare, based_on)
            relative = change.describe.get("relative_dose")
            if relative is not None:  # how the dose sent was worked out, beside the write itself
                session.record("plan-relative-dose", plan=self.plan.name, step=step.number, **relative)
            log_index = prepared.state.raw.event_count
            report.sent = True
            result = Pump(session).apply(prepared, on_commit_sent=lambda txid: journal_sent(txid, log_index),
                                         second_verifier=self.checks.get(t.number)).data
            journal(**base, state="confirmed", txid=result["txid"])
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "confirmed",
                              "verified by read-back", result["txid"], data=result_data(result), change=shown)
        except Unconfirmed as exc:
            journal(**base, state="unconfirmed", txid=sent.get("txid"), detail=exc.message)
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "unconfirmed", exc.message,
                              sent.get("txid"))
        except IthcliError as exc:
            # a link that died after COMMIT went out is unconfirmed, not failed
            outcome = "unconfirmed" if sent and isinstance(exc, LinkError) else "failed"
            detail = in_plan_terms(exc)
            journal(**base, state=outcome, txid=sent.get("txid"), detail=detail)
            return StepResult(t.number, t.serial, t.port, step.number, step.action, outcome, detail,
                              sent.get("txid"))

    def _as_shown(self, report: TargetReport, step: Step, prepare: dict | None, based_on: int) -> None:
        """In a run that asked first, before the first write to a pump: the pump as the preview read
        it, and this step the write it showed (if it worked it out); SafetyError, nothing sent."""
        if report.sent or report.read_txid is None or not report.preview:
            return  # no preview (--yes, a dry run), or a later step: checked as it runs, as always
        shown_txid = report.shown[step.number][1] if step.number in report.shown else report.read_txid
        if based_on != shown_txid:
            raise SafetyError(f"the pump was written to since the change was shown (its last txid is {based_on}, "
                              f"it was {shown_txid}): nothing was sent to it; run the plan again to see the "
                              "change as it is now")
        if step.number not in report.shown:
            return
        shown = report.shown[step.number][0]
        if step.action == "clock-set" and "to" not in step.args:
            return  # "this computer's time" moves on while the question waits: checked as it runs
        if shown != prepare:
            what = "no write (the pump already was so)" if shown is None else "another write"
            raise SafetyError(f"this step now works out as a different write than the one shown ({what} was "
                              "shown): nothing was sent to this pump; run the plan again to see the change")

    def _mri_write(self, session: PumpSession, report: TargetReport, step: Step, base: dict, journal_sent, *,
                   dry: bool, preview: bool) -> StepResult:
        from . import mri

        t = report.target
        st = mri.read_state(session, write=True)  # refused while a write is unconfirmed
        shown = change_view(mri_rows(step, st.described), [])
        if step.action == "mri-enter":
            auto_exit = mri.parse_auto_exit(step.args.get("auto_exit", "4h"))
            request, _ = mri.enter_request(session, st, auto_exit_s=auto_exit, field=step.args.get("field"),
                                           gradient=step.args.get("gradient"),
                                           confirm_withdrawal_risk="withdrawal-risk" in step.args.get("confirm", []))
        else:
            request = mri.exit_request(st)
        prepare = prepare_fields(request, st.raw.last_txid)
        if preview and st.raw.last_txid != report.read_txid:
            raise SafetyError("the pump was written to while its change was worked out: nothing was sent to it; "
                              "run the plan again")
        if preview:
            report.shown[step.number] = (prepare, st.raw.last_txid)
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "dry-run", "checked; nothing sent",
                              change=shown)
        if dry:
            item = self.items.get(t.number)
            if item is not None:
                for_verifier(item, step, shown)
            self.journal.write(**base, state="dry-run")
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "dry-run", "checked; nothing sent",
                              change=shown)
        self._as_shown(report, step, prepare, st.raw.last_txid)
        log_index = st.raw.event_count
        report.sent = True
        if step.action == "mri-enter":
            out = mri.apply_enter(session, st, request, on_commit_sent=lambda txid: journal_sent(txid, log_index))
        else:
            out = mri.apply_exit(session, st, on_commit_sent=lambda txid: journal_sent(txid, log_index))
        self.journal.write(**base, state="confirmed", txid=out["txid"])
        return StepResult(t.number, t.serial, t.port, step.number, step.action, "confirmed", "verified by read-back",
                          out["txid"], change=shown)
