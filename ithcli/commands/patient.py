"""`ithcli patient`: the patient the pump is implanted in, as the pump records it (protocol
version 5): show it, record it, or correct it. A write is a verified, audited two-phase write;
the fields are checked as the pump checks them (ithcli/patient.py) before anything is sent."""
from __future__ import annotations

import click

from ..api import Pump
from ..patient import ORIGINS, patient_text
from ._writing import run_change

YES = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")


@click.group()
def patient():
    """The patient on the pump: ID, initials, birth date, spasticity origin."""


@patient.command()
@click.pass_obj
def show(app):
    """The patient record the pump holds (or that it holds none)."""
    session = app.session()
    _, status = session.read()
    out = {"serial_number": status["serial_number"], "emulated": status["emulated"], "drug": status["drug"],
           "patient": status["patient"]}
    app.emit(out, _render_show)


@patient.command(name="set")
@click.option("--id", "patient_id", metavar="ID",
              help="The patient's ID: an opaque identifier the clinic chooses (its record number, never a "
                   "name), 1 to 24 of A-Z a-z 0-9 . _ : / -. Required unless --correct.")
@click.option("--initials", metavar="AB", help="Initials for a bedside check, up to 4 letters ('' clears them).")
@click.option("--born", metavar="YYYY-MM-DD", help="Birth date for a bedside check ('' clears it).")
@click.option("--spasticity-origin", type=click.Choice(list(ORIGINS)), metavar="|".join(ORIGINS),
              help="Baclofen: where the spasticity comes from; it sets the drug's 24-hour budget.")
@click.option("--correct", is_flag=True,
              help="Change the record the pump holds (a mistyped ID, a newly known origin); fields not "
                   "given are kept.")
@YES
@click.pass_obj
def set_(app, patient_id, initials, born, spasticity_origin, correct, yes):
    """Record the patient on the pump, or correct the record with --correct: PREPARE, check the
    echo, COMMIT, read back.

    A pump that already holds a patient is refused without --correct (exit 6), and --correct on
    a pump that holds none too. A bad ID, initials or date is refused before anything is sent.
    """
    pump = Pump(app.session())
    prepared = pump.check_patient("correct" if correct else "record", patient_id=patient_id, initials=initials,
                                  born=born, spasticity_origin=spasticity_origin)
    run_change(app, pump, prepared, title="Patient", yes=yes, render_done=_render_set,
               render_unchanged=lambda r: _say(f"No change: {r['serial_number']} already records this patient. "
                                               "Nothing was sent."))


def _render_show(r: dict) -> None:
    title = f"Patient on {r['serial_number']}" + ("  EMULATED" if r["emulated"] else "")
    _say(f"[bold]{title}[/]")
    _say(f"Patient: {patient_text(r['patient'])}")
    if r["patient"] and r["patient"]["recorded_at"]:
        from ..output import fmt_date

        _say(f"Recorded: {fmt_date(r['patient']['recorded_at'])}")


def _render_set(r: dict) -> None:
    verb = "records" if r["action"] == "record" else "corrected: records"
    _say(f"[bold green]VERIFIED[/]: {r['serial_number']} {verb} patient {patient_text(r['after']['patient'])} "
         f"(txid {r['txid']}, read back).")


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
