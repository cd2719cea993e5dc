"""`ithcli bolus`: a clinician bolus, checked against the drug library and verified."""
from __future__ import annotations

import click

from ..api import Pump
from ..errors import UsageError
from ._writing import ORDER_OPTION, double_check_choice, run_change, safety_choices, safety_options


@click.command()
@click.option("--dose", metavar="DOSE", help="Bolus dose in the drug's mass unit, e.g. '50 mcg' (not with --priming).")
@click.option("--over", "--duration", "duration", metavar="TIME",
              help="Duration, e.g. '1 min', '30 min', '2 h' (--priming: default the shortest the mechanism allows).")
@click.option("--priming", is_flag=True,
              help="A priming bolus after an implant or revision not primed yet: its volume is the pump's "
                   "priming due; needs --confirm-monitoring.")
@ORDER_OPTION
@safety_options("bolus")
@click.pass_obj
def bolus(app, dose, duration, priming, order, yes, **safety):
    """Deliver a clinician bolus on top of the program (refused while another runs).

    The hard limit applies to the 24-hour total: the program, the boluses the pump's
    log shows in the last 24 hours, and this one.

    --priming fills a catheter just implanted or revised: refused unless the pump's record
    says priming is due; the volume is what it says (never typed), its whole dose counts in
    the 24-hour total, and the patient must be monitored afterwards (--confirm-monitoring).

    With --order FILE the dose and duration are the order's."""
    double_check = double_check_choice(safety)
    overrides, confirmed = safety_choices(safety)
    pump = Pump(app.session())
    if priming:
        if dose or order:
            raise UsageError("--priming takes its volume from the catheter record: do not give --dose or --order")
        prepared = pump.check_priming(duration=duration, overrides=overrides, confirm=confirmed)
        run_change(app, pump, prepared, title="Priming bolus", yes=yes, render_done=_render_priming,
                   double_check=double_check)
        return
    if not order and (not dose or not duration):
        raise UsageError("a bolus needs --dose and --over (or --priming, or --order FILE)")
    prepared = pump.check_bolus(dose=dose, over=duration, overrides=overrides, confirm=confirmed, order=order)
    run_change(app, pump, prepared, title="Bolus", yes=yes, render_done=_render, double_check=double_check)


def _render(r: dict) -> None:
    from ..output import console, fmt_quantity

    console().print(f"[bold green]VERIFIED[/]: bolus of {fmt_quantity(r['dose'])} running on {r['serial_number']}, "
                    f"{fmt_quantity(r['bolus_remaining'])} left (txid {r['txid']}).")


def _render_priming(r: dict) -> None:
    from ..output import console, fmt_quantity

    console().print(f"[bold green]VERIFIED[/]: priming bolus of {format(r['volume_ml'], 'f')} mL "
                    f"({fmt_quantity(r['dose'])}) running on {r['serial_number']}, "
                    f"{fmt_quantity(r['bolus_remaining'])} left; the catheter is recorded primed "
                    f"(txid {r['txid']}). MONITOR THE PATIENT.")
