"""`ithcli batch`: plans that run as checked, journalled, resumable transactions."""
from __future__ import annotations

import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..batch_drive import BatchSession
from ..errors import ExitCode, IthcliError, UsageError
from ..plan import WRITE_ACTIONS
from ._writing import confirm

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
    drug unit against the drug library (each target's own values too), what a relative dose
    needs whatever the pump delivers, catheter lengths, clock times, patient-bolus limits,
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
@click.option("-y", "--yes", is_flag=True,
              help="Do not ask: run the plan's writes without showing them first (the plan's own overrides and "
                   "confirmations are still needed, step by step).")
@click.pass_obj
def run(app, plan_path, dry_run, jobs, continue_on_error, journal_path, results_path, check_request, verified_by,
        yes):
    """Validate, preflight every target, then run the steps; resumable, never applying a step twice.

    A plan with writes is worked out on every pump first and shown (each pump, each write step,
    now and after), then asked once, unless --yes; with --json that needs --yes.

    Exit 0: every step succeeded; 2: the plan has problems (all listed; nothing sent);
    8: something is unconfirmed; 9: not confirmed (nothing sent); 13: something failed;
    130: interrupted (steps in flight settled, the journal written).

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
    asks = not dry_run and not yes and any(s.action in WRITE_ACTIONS for s in plan.steps)
    if asks and app.json and not sys.stdin.isatty():
        confirm(app, yes, "")  # refused as every write is, before any pump is read: pass --yes

    def session_for(port: str) -> BatchSession:
        session = BatchSession(replace(app.settings, port=port), app.records, library=library, keystore=keystore)
        session.credential = app.session().credential  # asked for once, not once per pump
        return session
    runner = Runner(session_for, plan, journal=journal, jobs=jobs, continue_on_error=continue_on_error,
                    dry_run=dry_run, on_update=progress.update, verified=verified)
    interrupted = False

    def ask(reports) -> None:  # after preflight and the preview: the whole change, asked once
        progress.stop()
        _ask(app, plan, reports)
        progress.start()

    progress.start()
    try:
        reports = runner.run(confirm=ask if asks else None)
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
    from rich.markup import escape
    from rich.table import Table

    from ..output import console

    title = f"Batch {s['name']}" + ("  (dry run: nothing sent)" if s["dry_run"] else "")
    table = Table("Pump", "Port", "Outcome", "Steps", "Detail", title=escape(title), title_justify="left")
    colour = {"ok": "green", "failed": "bold red", "unconfirmed": "bold yellow", "preflight-failed": "bold red",
              "not-run": "dim", "stopped": "yellow"}
    for t in s["targets"]:
        steps = ", ".join(f"{st['step']}:{st['outcome']}" for st in t["steps"])
        table.add_row(escape(t["serial_number"]), escape(t["port"]),
                      f"[{colour.get(t['outcome'], '')}]{t['outcome']}[/]", steps, escape(t["detail"]))
    con = console()
    con.print(table)
    _render_changes(con, "Each pump's writes: now and after" + (" (as checked; nothing sent)" if s["dry_run"]
                                                                 else ""), s["targets"], as_now=s["dry_run"])
    con.print(f"Journal {escape(s['journal'])}; results {escape(s['results'])}.")
    request = s.get("check_request")
    if request:
        con.print(f"Double-check request for {request['targets']} pump(s) written to {request['file']}: another "
                  f"clinician runs `ithcli verify {request['file']}` before {request['expires_at']}; then run the "
                  "plan with --verified-by FILE.")


def _ask(app, plan, reports) -> None:
    """The one confirmation of a run: every pump, every write step, now and after (the preview),
    and what will not run; then the question (confirm(): refused without an answer)."""
    from rich.markup import escape

    from ..output import console

    con = console(stderr_=app.json)  # with --json stdout carries only the result
    ready = [r for r in reports if r.outcome == "ready"]
    targets = [{"serial_number": r.target.serial, "port": r.target.port,
                "steps": [st.as_dict() for st in r.preview]} for r in ready]
    _render_changes(con, f"Batch {plan.name}: what each pump goes from and to (nothing sent yet)", targets,
                    as_now=True)
    for r in reports:
        if r.outcome != "ready":
            con.print(f"[bold red]Will not run[/] on {escape(r.target.serial)} ({escape(r.target.port)}): "
                      f"{escape(r.detail)}")
    writes = {r.target.serial: sum(st.outcome == "dry-run" for st in r.preview) for r in ready}
    count = sum(writes.values())
    if not count:
        con.print("Nothing to send: each write step is done already, or its pump already is as it asks.")
        return
    pumps = sum(1 for n in writes.values() if n)
    confirm(app, False, f"Send {count} write{'s' if count != 1 else ''} to {pumps} pump{'s' if pumps != 1 else ''} "
                        "as shown?")


def _render_changes(con, title: str, targets: list[dict], *, as_now: bool) -> None:
    """Every write step of every pump, what it goes from and to (its change's rows, the same its
    command shows); the warnings each was allowed with, and by which of the plan's overrides and
    confirmations, below. Nothing when the plan has no write step. as_now: worked out on the
    pumps as they are (a dry run, the question), not as each step found its pump."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("Pump", "Step", "", "Now", "After", title=escape(title), title_justify="left")
    notes: list[str] = []
    for t in targets:
        serial = escape(t["serial_number"])
        first = True
        for st in t["steps"]:
            if st["action"] not in WRITE_ACTIONS:
                continue
            for i, (item, now, after) in enumerate(_step_rows(st)):
                table.add_row(serial if first else "", f"{st['step']} {st['action']}" if i == 0 else "", item, now,
                              after)
                first = False
            for w in (st.get("change") or {}).get("warnings", []):
                notes.append(f"{serial} step {st['step']} ({st['action']}): {_warning_text(w)}")
    if table.row_count:
        con.print(table)
        for note in notes:
            con.print(note)
    if as_now and any(sum(st["outcome"] == "dry-run" and st["action"] in WRITE_ACTIONS for st in t["steps"]) > 1
                      for t in targets):
        con.print("A pump's steps after its first write are worked out on the pump as it is now: each is checked "
                  "again, with every limit, when it runs.")


def _step_rows(st: dict) -> list[tuple[str, str, str]]:
    """A write step's rows for the table: its change's before/after (the changed values in bold), or
    what became of it."""
    from rich.markup import escape

    rows = (st.get("change") or {}).get("rows")
    if rows:
        return [(escape(r["item"]), escape(r["before"]),
                 f"[bold]{escape(r['after'])}[/]" if r["before"] != r["after"] else escape(r["after"]))
                for r in rows]
    word = {"unchanged": "no change", "dry-run": "not worked out yet", "skipped": "already done",
            "failed": "[bold red]refused[/]", "unconfirmed": "[bold yellow]unconfirmed[/]",
            "not-run": "[dim]not run[/]"}.get(st["outcome"], escape(st["outcome"]))
    return [(word, "", escape(st["detail"]))]


def _warning_text(w: dict) -> str:
    """A warning a step was allowed with, and by what: the plan's override (and its reason) or
    confirmation for it."""
    from rich.markup import escape

    colour = "red" if w["level"] in ("soft", "confirm") else "yellow"
    by = ""
    if w["level"] == "soft":
        by = f" (override_soft_limit {w.get('override')}: {w.get('reason')})"
    elif w["level"] == "confirm" and w.get("flag"):
        by = f" (confirm \"{w['flag'].removeprefix('--confirm-')}\")"
    return f"[{colour}]{w['level'].upper()}[/]: {escape(w['message'] + by)}"


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
