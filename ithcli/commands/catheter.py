"""`ithcli catheter`: record an implant or a revision (each arms a priming bolus of exactly what
it implanted), or correct a mistyped record (priming is not re-armed). Each is a verified,
audited two-phase write; the checks and the write live in ithcli/catheter_ops.py and ithcli/api.py."""
from __future__ import annotations

import click

from ..api import Pump
from ..catheter_ops import catheter_text
from ._writing import confirm, render_change

MODEL = click.option("--model", required=True, metavar="MODEL",
                     help="Catheter model: STANDARD (0.0026 mL/cm).")
YES = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
DRY_RUN = click.option("--dry-run", is_flag=True, help="Read the pump, check and show the change; send nothing.")


@click.group()
def catheter():
    """Catheter record: implant, revision (each arms priming) or correction."""


@catheter.command()
@MODEL
@click.option("--length", required=True, metavar="LENGTH", help="Implanted length with its unit, e.g. '80 cm'.")
@DRY_RUN
@YES
@click.pass_obj
def implant(app, model, length, dry_run, yes):
    """Record a new catheter: priming becomes due for the pump's tubing and the whole catheter.

    Give the bolus with `ithcli bolus --priming --confirm-monitoring` afterwards."""
    _run(app, "implant", model=model, length=length, dry_run=dry_run, yes=yes)


@catheter.command()
@click.option("--model", metavar="MODEL", help="Catheter model after the revision (default: the recorded one).")
@click.option("--length", required=True, metavar="LENGTH", help="Implanted length after the revision, e.g. '80 cm'.")
@click.option("--replaced", required=True, metavar="LENGTH", help="Length of the new segment, e.g. '15 cm'.")
@DRY_RUN
@YES
@click.pass_obj
def revise(app, model, length, replaced, dry_run, yes):
    """Record a catheter revision: priming becomes due for the replaced segment only.

    Priming more than the segment would push the drug still in the rest of the
    catheter into the patient at the priming rate (the 2013 recall)."""
    _run(app, "revision", model=model, length=length, replaced=replaced, dry_run=dry_run, yes=yes)


@catheter.command()
@click.option("--model", metavar="MODEL", help="The right catheter model (default: the recorded one).")
@click.option("--length", required=True, metavar="LENGTH", help="The right implanted length, e.g. '80 cm'.")
@DRY_RUN
@YES
@click.pass_obj
def correct(app, model, length, dry_run, yes):
    """Correct a mistyped record. This does NOT re-arm priming: a primed catheter stays primed.

    After a real implant or revision use `implant` or `revise` instead."""
    _run(app, "correction", model=model, length=length, dry_run=dry_run, yes=yes)


def _run(app, action: str, *, model: str | None, length: str, replaced: str | None = None, dry_run: bool,
         yes: bool) -> None:
    pump = Pump(app.session())
    if model is None:  # a revision or a correction keeps the recorded model unless told
        model = pump.catheter().model or "STANDARD"
    prepared = pump.check_catheter(action, model=model, length=length, replaced=replaced)
    change = prepared.change
    if change.unchanged:
        app.emit(pump.apply(prepared).data, lambda r: _say(
            f"No change: {r['serial_number']} already records this catheter. Nothing was sent."))
        return
    if not app.json:
        render_change("Catheter " + action, change.rows, change.warnings, app.session().emulated)
    if dry_run:
        app.emit({"command": "catheter", **change.describe, "outcome": "dry-run", "verified": False},
                 lambda r: _say("Dry run: checked, nothing was sent."))
        return
    confirm(app, yes, change.question)
    app.emit(pump.apply(prepared).data, _done)


def _done(r: dict) -> None:
    line = (f"[bold green]VERIFIED[/]: {r['serial_number']} records {r['action']}: "
            f"{catheter_text(r['after']['catheter'])} (txid {r['txid']}).")
    if not r["after"]["catheter"]["primed"]:
        line += " Next: ithcli bolus --priming --confirm-monitoring."
    elif r["action"] == "correction":
        line += " Priming was not re-armed."
    _say(line)


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
