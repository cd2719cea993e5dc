"""`ithcli bolus`: a clinician bolus, checked against the drug library and verified."""
from __future__ import annotations

import click

from ..api import Pump
from ._writing import run_change, safety_choices, safety_options


@click.command()
@click.option("--dose", required=True, metavar="DOSE", help="Bolus dose in the drug's mass unit, e.g. '50 mcg'.")
@click.option("--over", "duration", required=True, metavar="TIME", help="Duration, e.g. '1 min', '30 min', '2 h'.")
@safety_options
@click.pass_obj
def bolus(app, dose, duration, yes, **safety):
    """Deliver a clinician bolus on top of the program (refused while another runs).

    The hard limit applies to the 24-hour total: the program, the boluses the pump's
    log shows in the last 24 hours, and this one."""
    overrides, confirmed = safety_choices(safety)
    pump = Pump(app)
    prepared = pump.check_bolus(dose=dose, over=duration, overrides=overrides, confirm=confirmed)
    run_change(app, pump, prepared, title="Bolus", yes=yes, render_done=_render)


def _render(r: dict) -> None:
    from ..output import console, fmt_quantity

    console().print(f"[bold green]VERIFIED[/]: bolus of {fmt_quantity(r['dose'])} running on {r['serial_number']}, "
                    f"{fmt_quantity(r['bolus_remaining'])} left (txid {r['txid']}).")
