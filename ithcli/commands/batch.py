"""`ithcli batch`: plans that run as checked, journalled, resumable transactions."""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ExitCode, IthcliError, UsageError

if TYPE_CHECKING:  # annotations only: rich is imported when a terminal shows progress
    from rich.live import Live


@click.group()
def batch():
    """Run a plan (TOML) of steps across many pumps: validate offline, dry-run, run, resume."""


@batch.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False))
@click.pass_obj
def validate(app, plan_path):
    """Check the plan offline (no pump is touched): its fields, every value in its target's
    drug unit against the drug library, catheter lengths, clock times, patient-bolus limits,
    confirmations, the assert checks. Exit 2 listing every problem."""
    from .. import plan as plans

    plan = plans.load(plan_path, app.session().library)
    result = {"plan": plan.path, "name": plan.name, "targets": len(plan.targets), "steps": len(plan.steps),
              "ok": True, "problems": []}
    app.emit(result, lambda r: _say(f"Plan {r['plan']} is valid: {r['targets']} target(s), {r['steps']} step(s)."))


@batch.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Read every pump and check every step; send no write.")
@click.option("--jobs", "-j", type=click.IntRange(1, 512), default=8, show_default=True,
              help="How many pumps at once (steps within one pump always run in order).")
@click.option("--continue-on-error", is_flag=True, help="Other pumps go on when one fails.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="The run's journal (default PLAN.journal.jsonl); re-run with it to resume.")
@click.option("--results", "results_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="JSON lines, one per step (default PLAN.results.jsonl).")
@click.option("--check-request", type=click.Path(dir_okay=False), metavar="FILE",
              help="A dry run that also writes a request for a second clinician to verify the whole run "
                   "(`ithcli verify FILE`), signed with your --credential. Nothing is sent.")
@click.option("--verified-by", type=click.Path(dir_okay=False), metavar="FILE",
              help="The run's verified request: each pump runs only if it is unchanged since, with the same "
                   "plan and orders.")
@click.pass_obj
def run(app, plan_path, dry_run, jobs, continue_on_error, journal_path, results_path, check_request, verified_by):
    """Validate, preflight every target, then run the steps; resumable, never applying a step twice.

    Exit 0: every step succeeded; 2: the plan has problems (all listed; nothing sent);
    8: something is unconfirmed; 13: something failed; 130: interrupted (steps in flight
    settled, the journal written).

    A run whose writes the clinic policy wants double-checked: --check-request FILE (a dry run
    that writes the request), `ithcli verify FILE` by a second clinician, then --verified-by.
    """
    from .. import doublecheck
    from .. import plan as plans
    from ..batch import Journal, Runner, plan_hash
    from ..output import to_json_line

    plan = plans.load(plan_path, app.session().library)  # every problem, or nothing is sent (exit 2)
    stem = str(Path(plan_path).with_suffix(""))
    journal = Journal(journal_path or f"{stem}.journal.jsonl", plan_hash(plan_path))
    results_file = Path(results_path or f"{stem}.results.jsonl")
    progress = _Progress(plan, enabled=not app.json and sys.stderr.isatty())
    from ..keystore import KeyStore

    keystore = KeyStore(app.settings.key_store_dir)  # read once for every target
    library = app.session().library  # likewise: parsed once, shared read-only
    if check_request and verified_by:
        raise UsageError("--check-request asks for a double check, --verified-by uses one: give one of them")
    if check_request or verified_by:  # the operator's credential: refused before any pump is read, asked for once
        app.session().operator_clinician("a double-checked run")
    verified = doublecheck.load(verified_by) if verified_by else None
    dry_run = dry_run or bool(check_request)

    def session_for(port: str):
        session = app.session_for(port, library=library, keystore=keystore)
        session.credential = app.session().credential  # asked for once, not once per pump
        return session
    runner = Runner(session_for, plan, journal=journal, jobs=jobs, continue_on_error=continue_on_error,
                    dry_run=dry_run, on_update=progress.update, verified=verified)
    interrupted = False
    progress.start()
    try:
        reports = runner.run()
    except KeyboardInterrupt:
        interrupted = True
        reports = runner.reports
    finally:
        progress.stop()
    steps = [s for r in reports for s in r.steps]
    with open(results_file, "w") as fh:
        for s in steps:
            fh.write(to_json_line(s.as_dict()) + "\n")
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    unconfirmed = any(s.outcome == "unconfirmed" for s in steps) or any(r.outcome == "unconfirmed" for r in reports)
    failed = any(r.outcome in ("failed", "preflight-failed", "not-run", "stopped") for r in reports)
    code = (ExitCode.INTERRUPTED if interrupted else ExitCode.UNCONFIRMED if unconfirmed
            else ExitCode.BATCH_FAILED if failed else ExitCode.OK)
    summary = {"plan": plan.path, "name": plan.name, "dry_run": dry_run, "journal": str(journal.path),
               "results": str(results_file), "interrupted": interrupted, "exit_code": int(code),
               "targets": [{"serial_number": r.target.serial, "port": r.target.port, "outcome": r.outcome,
                            "detail": r.detail, "steps": [s.as_dict() for s in r.steps]} for r in reports],
               "summary": counts}
    if code == ExitCode.OK and check_request:
        items = [runner.items[r.target.number] for r in reports if r.target.number in runner.items]
        doc = doublecheck.request_for(app.session(), items)
        doublecheck.save(check_request, doc)
        summary["check_request"] = {"file": check_request, "requested_by": doc["request"]["requested_by"],
                                    "expires_at": doc["request"]["expires_at"], "targets": len(items)}
    if code == ExitCode.OK:
        app.emit(summary, _render_summary)
        return
    if not app.json:
        _render_summary(summary)
    raise _BatchExit(code, summary)  # with --json the error object carries the summary


class _BatchExit(IthcliError):
    def __init__(self, code, summary):
        text = {ExitCode.INTERRUPTED: "interrupted: steps in flight settled, journal written",
                ExitCode.UNCONFIRMED: "some steps are unconfirmed: run ithcli reconcile on those pumps, then "
                                      "re-run with the same journal",
                ExitCode.BATCH_FAILED: "some targets failed (see the summary)"}[code]
        super().__init__(f"batch {summary['plan']}: {text}", details=summary)
        self.exit_code = code
        self.kind = "batch"


class _Progress:
    """One line per pump on stderr (rich Live), only for a terminal and without --json."""

    def __init__(self, plan, enabled: bool):
        self.enabled = enabled
        self.lines = {t.number: (t.serial, t.port, "waiting") for t in plan.targets}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def _table(self):
        from rich.table import Table

        table = Table("Pump", "Port", "State", title="ithcli batch", title_justify="left")
        for serial, port, state in self.lines.values():
            table.add_row(serial, port, state)
        return table

    def start(self):
        if self.enabled:
            from rich.live import Live

            from ..output import console

            self._live = Live(self._table(), console=console(stderr_=True), refresh_per_second=8)
            self._live.start()

    def update(self, report, text: str):
        with self._lock:
            t = report.target
            self.lines[t.number] = (t.serial, t.port, text)
            if self._live is not None:
                self._live.update(self._table())

    def stop(self):
        if self._live is not None:
            self._live.stop()


def _render_summary(s: dict) -> None:
    from rich.table import Table

    from ..output import console

    title = f"Batch {s['name']}" + ("  (dry run: nothing sent)" if s["dry_run"] else "")
    table = Table("Pump", "Port", "Outcome", "Steps", "Detail", title=title, title_justify="left")
    colour = {"ok": "green", "failed": "bold red", "unconfirmed": "bold yellow", "preflight-failed": "bold red",
              "not-run": "dim", "stopped": "yellow"}
    for t in s["targets"]:
        steps = ", ".join(f"{st['step']}:{st['outcome']}" for st in t["steps"])
        table.add_row(t["serial_number"], t["port"], f"[{colour.get(t['outcome'], '')}]{t['outcome']}[/]", steps,
                      t["detail"])
    con = console()
    con.print(table)
    con.print(f"Journal {s['journal']}; results {s['results']}.")
    request = s.get("check_request")
    if request:
        con.print(f"Double-check request for {request['targets']} pump(s) written to {request['file']}: another "
                  f"clinician runs `ithcli verify {request['file']}` before {request['expires_at']}; then run the "
                  "plan with --verified-by FILE.")


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
