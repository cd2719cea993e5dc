"""`ithcli ptm`: patient-activated boluses: their limits and use, and setting the limits
(a two-phase, audited PTM write: ithcli/ptm.py, checks in ithcli/limits/ptm.py)."""
from __future__ import annotations

import click

from ..api import Pump
from ..ptm import MAX_PER_DAY, ptm_text, use_text
from ._writing import double_check_choice, run_change, safety_choices, safety_options


@click.group()
def ptm():
    """Patient-activated boluses: show the limits and use, set the limits."""


@ptm.command()
@click.pass_obj
def show(app):
    """The limits, the worst case a day with the program, the use in the last 24 hours, and the
    widest limits the drug library allows for this drug."""
    session = app.session()
    _, status = session.read()
    entry = session.library.for_code(status["drug"].upper())
    allowed = entry.patient_bolus if entry else None
    out = {"serial_number": status["serial_number"], "emulated": status["emulated"], "drug": status["drug"],
           "daily_dose": status["daily_dose"], "ptm": status["ptm"],
           "library": None if allowed is None else {
               "max_dose": {"value": _value(allowed.max_dose_ng, entry.mass_unit), "unit": entry.mass_unit},
               "min_lockout_s": allowed.min_lockout_s, "max_per_day": allowed.max_per_day}}
    app.emit(out, _render_show)


@ptm.command(name="set")
@click.option("--dose", metavar="DOSE", help="Dose of one activation in the drug's mass unit, e.g. '0.2 mg'.")
@click.option("--lockout", metavar="TIME", help="Least time between two granted activations, e.g. '60min'.")
@click.option("--max-per-day", type=click.IntRange(1, MAX_PER_DAY), metavar="N",
              help=f"Most activations granted in any rolling 24 hours (1 to {MAX_PER_DAY}).")
@click.option("--duration", metavar="TIME", help="Each activation's dose is given over this time, e.g. '10min'.")
@click.option("--off", is_flag=True, help="Turn patient boluses off (always allowed).")
@safety_options("ptm")
@click.pass_obj
def set_(app, dose, lockout, max_per_day, duration, off, yes, **safety):
    """Set the limits of patient-activated boluses: PREPARE, check the echo, COMMIT, read back.

    Refused when the drug library does not allow patient boluses for the drug, a value is
    outside its limits, or the worst case a day (the program plus every allowed
    activation) breaks the drug's hard maximum; past the soft maximum it needs
    --override-soft-limit DAILY_MAX=REASON.
    """
    double_check = double_check_choice(safety)
    overrides, confirmed = safety_choices(safety)
    pump = Pump(app.session())
    prepared = pump.check_ptm(dose=dose, lockout=lockout, max_per_day=max_per_day, duration=duration, off=off,
                              overrides=overrides, confirm=confirmed)
    run_change(app, pump, prepared, title="Patient boluses", yes=yes, render_done=_render_set,
               double_check=double_check,
               render_unchanged=lambda r: _say(f"No change: {r['serial_number']} already has these limits. "
                                               "Nothing was sent."))


def _value(ng: int, unit: str):
    from protocol import Quantity

    return Quantity.from_base(ng, unit).value


def _render_show(r: dict) -> None:
    from ..output import fmt_quantity

    title = f"Patient boluses on {r['serial_number']}" + ("  EMULATED" if r["emulated"] else "")
    _say(f"[bold]{title}[/]")
    _say(f"Limits: {ptm_text(r['ptm'])}")
    _say(f"Use: {use_text(r['ptm'])}")
    lib = r["library"]
    _say(f"Drug library ({r['drug']}): " + ("patient boluses not allowed" if lib is None else
         f"at most {fmt_quantity(lib['max_dose'])} a dose, lockout at least {lib['min_lockout_s'] // 60} min, "
         f"at most {lib['max_per_day']} a day"))


def _render_set(r: dict) -> None:
    _say(f"[bold green]VERIFIED[/]: patient boluses on {r['serial_number']}: {ptm_text(r['after'])} "
         f"(txid {r['txid']}, read back).")


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
