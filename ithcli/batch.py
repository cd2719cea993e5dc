"""Running a plan across many pumps: preflight, concurrency, journal, resume.

Every step of every target is journalled before and after (created, sent, then
confirmed, failed or unconfirmed), one fsync'd JSON line each. Re-running with
the same journal resumes: confirmed steps are skipped, so nothing is applied
twice; a step left unconfirmed is settled by asking the pump (its last txid and
its log) before anything else is sent to it.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import Pump
from .app import PumpSession
from .batch_writes import (
    bridge_refusals,
    check_step,
    double_check_item,
    dry_run_skip,
    in_plan_terms,
    result_data,
    unchanged_text,
)
from .doublecheck import DoubleCheck
from .errors import IthcliError, LinkError, Unconfirmed
from .plan import WRITE_ACTIONS, Plan, Step, Target, evaluate_check

_in_plan_terms, _check = in_plan_terms, check_step  # their names before batch_writes.py

__all__ = ["WRITE_ACTIONS", "Journal", "Runner", "StepResult", "TargetReport", "plan_hash"]


def plan_hash(plan_path: str) -> str:
    return hashlib.sha256(Path(plan_path).read_bytes()).hexdigest()[:16]


class Journal:
    """Append-only JSON lines; a torn last line (a crash mid-write) is ignored, never merged."""

    def __init__(self, path: str, plan_id: str):
        self.path = Path(path)
        self.plan_id = plan_id
        self._lock = threading.Lock()

    def last_states(self) -> dict[tuple[str, int], dict]:
        """(target serial, step number) -> the last record, for this plan."""
        states: dict[tuple[str, int], dict] = {}
        if not self.path.exists():
            return states
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":
            lines = lines[:-1]  # torn: the write never completed, so it never counted
        for raw in lines:
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                raise IthcliError(f"batch journal {self.path} has a damaged line: refusing to guess what ran") from None
            if record.get("plan") != self.plan_id:
                continue
            states[(record["serial"], record["step"])] = record
        return states

    def write(self, **record) -> None:
        from .output import jsonable

        line = json.dumps(jsonable({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "plan": self.plan_id, **record}), sort_keys=True, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._set_aside_torn_tail()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def _set_aside_torn_tail(self) -> None:
        """A torn last line (a crash mid-write) never counted: move it to a side file
        (PATH.torn-TIME) and cut it off, so it is neither glued to the next record nor
        left behind as a damaged line in the middle of the journal."""
        if not self.path.exists() or not self.path.stat().st_size:
            return
        with open(self.path, "r+b") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            data = fh.read()
            keep = data.rfind(b"\n") + 1
            side = self.path.with_name(f"{self.path.name}.torn-{time.time_ns()}")
            side.write_bytes(data[keep:])
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())


@dataclass
class StepResult:
    target: int
    serial: str
    port: str
    step: int
    action: str
    outcome: str  # confirmed, unchanged, failed, unconfirmed, skipped, resumed, dry-run, not-run
    detail: str = ""
    txid: int | None = None
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"target": self.target, "serial_number": self.serial, "port": self.port, "step": self.step,
                "action": self.action, "outcome": self.outcome, "detail": self.detail, "txid": self.txid,
                **({"data": self.data} if self.data else {})}


@dataclass
class TargetReport:
    target: Target
    outcome: str = "pending"  # ok, failed, unconfirmed, preflight-failed, stopped
    detail: str = ""
    steps: list[StepResult] = field(default_factory=list)
    before: dict | None = None


class Runner:
    def __init__(self, session_factory: Callable[[str], PumpSession], plan: Plan, *, journal: Journal, jobs: int,
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
        self._sessions: dict[int, PumpSession] = {}
        self._states: dict | None = None
        self._states_lock = threading.Lock()
        #: the run's double check (doublecheck.py): each target's item as preflight read it, the rows
        #: a dry run showed for it, and (verified: the document given) the check accepted for it
        self.verified = verified
        self.items: dict[int, dict[str, Any]] = {}
        self.checks: dict[int, DoubleCheck] = {}
        self._plan_sha256 = hashlib.sha256(Path(plan.path).read_bytes()).hexdigest()

    # --- the whole run ---------------------------------------------------------
    def run(self) -> list[TargetReport]:
        """Preflight every target, then run them; Ctrl-C stops new steps, lets sent ones settle."""
        self._parallel(self._preflight)
        failed = [r for r in self.reports if r.outcome == "preflight-failed"]
        if failed and not self.continue_on_error:
            for session in self._sessions.values():
                session.close()
            for r in self.reports:
                if r.outcome != "preflight-failed":
                    r.outcome, r.detail = "not-run", "another target failed preflight (see --continue-on-error)"
                    self.on_update(r, r.detail)
            return self.reports
        try:
            self._parallel(self._run_target, only=lambda r: r.outcome == "ready")
        finally:
            for session in self._sessions.values():
                session.close()
        return self.reports

    def _parallel(self, fn, only=lambda r: True) -> None:
        todo = [r for r in self.reports if only(r)]
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            futures = {pool.submit(self._guarded, fn, r): r for r in todo}
            pending = set(futures)
            try:
                # wake now and then (Ctrl-C reaches the main thread between waits), not on
                # every completion: waiting on all pending futures per completion is quadratic
                while pending:
                    done, pending = wait(pending, timeout=0.2)
            except KeyboardInterrupt:
                self.stop.set()  # workers finish the step in flight, then stop
                for f in pending:
                    f.cancel()
                wait(pending)
                raise

    def _journal_states(self) -> dict:
        """The journal as it was when this run started (read once, not once per pump)."""
        with self._states_lock:
            if self._states is None:
                self._states = self.journal.last_states()
            return self._states

    def _guarded(self, fn, report: TargetReport) -> None:
        try:
            fn(report)
        except Exception as exc:  # one pump's surprise must not take the others down
            report.outcome, report.detail = "failed", f"internal error: {type(exc).__name__}: {exc}"
            self.on_update(report, report.detail)

    # --- preflight -------------------------------------------------------------
    def _preflight(self, report: TargetReport) -> None:
        t = report.target
        self.on_update(report, "preflight")
        session = self.session_factory(t.port)
        try:
            raw, status = session.read(settle=False)
            if status["serial_number"] != t.serial:
                raise IthcliError(f"serial number is {status['serial_number']}, the plan expects {t.serial}")
            states = self._journal_states()
            expected = self._expected_drugs(t, states)
            if expected and status["drug"].upper() not in expected:
                raise IthcliError(f"the pump holds {status['drug']}, the plan is for "
                                  f"{' or '.join(sorted(c.lower() for c in expected))}: nothing is sent to it")
            pending = session.pending.get(t.serial)
            journal_open = [s for (serial, _), s in states.items() if serial == t.serial and s["state"] in
                            ("sent", "unconfirmed")]
            if pending is not None and not journal_open:
                raise Unconfirmed(f"txid {pending['txid']} to this pump is unconfirmed: run ithcli reconcile")
            refusals = bridge_refusals(session, self.plan, t, raw, states)
            if refusals:  # a refill that changes the catheter's contents needs the choice said in the plan
                raise IthcliError("; ".join(refusals))
            enter = next((s for s in self.plan.steps if s.action == "mri-enter"), None)
            if enter is not None and not any(s.action in WRITE_ACTIONS for s in self.plan.steps[:enter.number - 1]):
                from . import mri

                checked = mri.run_checklist(session, mri.read_state(session, write=False),
                                            auto_exit_s=mri.parse_auto_exit(enter.args.get("auto_exit", "4h")),
                                            field=enter.args.get("field"), gradient=enter.args.get("gradient"),
                                            save=False)
                if checked["result"] == mri.BLOCK:
                    raise IthcliError("pre-MRI checklist BLOCK: " + "; ".join(mri.blocks(checked)))
            self.items[t.number] = double_check_item(self.plan, t, raw, self._plan_sha256)
            if self.verified is not None:
                self.checks[t.number] = self._accept(session, self.items[t.number])
            report.before = status
            report.outcome = "ready"
            self._sessions[t.number] = session
            self.on_update(report, "ready")
        except IthcliError as exc:
            report.outcome, report.detail = "preflight-failed", exc.message
            self.on_update(report, f"preflight failed: {exc.message}")
        finally:
            if t.number not in self._sessions:
                session.close()

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
    def _run_target(self, report: TargetReport) -> None:
        t = report.target
        session = self._sessions.pop(t.number, None) or self.session_factory(t.port)
        try:
            states = self._journal_states()
            for step in self.plan.steps:
                if self.stop.is_set():
                    report.outcome = report.outcome if report.outcome in ("failed", "unconfirmed") else "stopped"
                    report.detail = report.detail or "interrupted before this step"
                    self._add(report, StepResult(t.number, t.serial, t.port, step.number, step.action, "not-run",
                                                 "interrupted: not sent"))
                    continue
                prior = states.get((t.serial, step.number))
                result = self._resume(session, report, step, prior) if prior else None
                if result is None:
                    result = self._step(session, report, step)
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
        finally:
            session.close()

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

    def _step(self, session: PumpSession, report: TargetReport, step: Step) -> StepResult:
        t = report.target
        base = dict(serial=t.serial, port=t.port, step=step.number, action=step.action)
        if step.action not in WRITE_ACTIONS:
            return self._read_step(session, report, step)
        self.journal.write(**base, state="created")
        sent: dict[str, Any] = {}

        def journal_sent(txid: int, log_index: int) -> None:
            sent["txid"] = txid
            self.journal.write(**base, state="sent", txid=txid, log_index=log_index)

        try:
            if step.action.startswith("mri-"):
                return self._mri_write(session, report, step, base, journal_sent)
            skip = dry_run_skip(self.plan, t, step) if self.dry_run else None
            if skip:
                self.journal.write(**base, state="dry-run")
                return StepResult(t.number, t.serial, t.port, step.number, step.action, "dry-run", skip)
            pump = Pump(session)
            # the drug again, as the pump holds it now (it may have changed since preflight)
            prepared = check_step(pump, step, self.plan, self.plan.drug_at(t, step.number), t)
            change = prepared.change
            if change.unchanged:
                self.journal.write(**base, state="unchanged")
                return StepResult(t.number, t.serial, t.port, step.number, step.action, "unchanged",
                                  unchanged_text(step.action))
            if self.dry_run:
                item = self.items.get(t.number)
                if item is not None:  # what a second verifier is shown of it
                    item["rows"] += [[f"step {step.number} {step.action}: {label}", now, after]
                                     for label, now, after in change.rows]
                    item["warnings"] += [w.message for w in change.warnings]
                self.journal.write(**base, state="dry-run")
                return StepResult(t.number, t.serial, t.port, step.number, step.action, "dry-run",
                                  "checked; nothing sent", data=result_data(change.describe))

            log_index = prepared.state.raw.event_count
            result = pump.apply(prepared, on_commit_sent=lambda txid: journal_sent(txid, log_index),
                                second_verifier=self.checks.get(t.number)).data
            self.journal.write(**base, state="confirmed", txid=result["txid"])
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "confirmed",
                              "verified by read-back", result["txid"],
                              data=result_data(result))
        except Unconfirmed as exc:
            self.journal.write(**base, state="unconfirmed", txid=sent.get("txid"), detail=exc.message)
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "unconfirmed", exc.message,
                              sent.get("txid"))
        except IthcliError as exc:
            # a link that died after COMMIT went out is unconfirmed, not failed
            outcome = "unconfirmed" if sent and isinstance(exc, LinkError) else "failed"
            detail = in_plan_terms(exc)
            self.journal.write(**base, state=outcome, txid=sent.get("txid"), detail=detail)
            return StepResult(t.number, t.serial, t.port, step.number, step.action, outcome, detail,
                              sent.get("txid"))

    def _mri_write(self, session: PumpSession, report: TargetReport, step: Step, base: dict,
                   journal_sent) -> StepResult:
        from . import mri

        t = report.target
        st = mri.read_state(session, write=True)  # refused while a write is unconfirmed
        if step.action == "mri-enter":
            auto_exit = mri.parse_auto_exit(step.args.get("auto_exit", "4h"))
            request, _ = mri.enter_request(session, st, auto_exit_s=auto_exit, field=step.args.get("field"),
                                           gradient=step.args.get("gradient"),
                                           confirm_withdrawal_risk="withdrawal-risk" in step.args.get("confirm", []))
        if self.dry_run:
            self.journal.write(**base, state="dry-run")
            return StepResult(t.number, t.serial, t.port, step.number, step.action, "dry-run", "checked; nothing sent")
        log_index = st.raw.event_count
        if step.action == "mri-enter":
            out = mri.apply_enter(session, st, request, on_commit_sent=lambda txid: journal_sent(txid, log_index))
        else:
            out = mri.apply_exit(session, st, on_commit_sent=lambda txid: journal_sent(txid, log_index))
        self.journal.write(**base, state="confirmed", txid=out["txid"])
        return StepResult(t.number, t.serial, t.port, step.number, step.action, "confirmed", "verified by read-back",
                          out["txid"])

    def _read_step(self, session: PumpSession, report: TargetReport, step: Step) -> StepResult:
        t = report.target
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
