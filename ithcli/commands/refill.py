"""`ithcli refill`: record a refill (new volume, drug, concentration), checked and verified."""
from __future__ import annotations

import click

from ..api import Pump
from ..errors import UsageError
from ._writing import ORDER_OPTION, double_check_choice, run_change, safety_choices, safety_options
from .completion import drug_names


@click.command()
@click.option("--volume", metavar="VOLUME",
              help="Volume in the reservoir after the fill, e.g. '20 mL' (required unless --order gives it).")
@click.option("--concentration", metavar="CONC",
              help="Concentration filled, e.g. '2000 mcg/mL' (required unless --order gives it).")
@click.option("--drug", metavar="NAME", shell_complete=drug_names,
              help="The drug filled, if it changes (then --dose is required).")
@click.option("--withdrawn", metavar="VOLUME",
              help="Volume withdrawn from the reservoir before filling, compared with what the pump expected.")
@click.option("--dose", metavar="DOSE", help="A new continuous daily dose with the fill (required on a drug change).")
@click.option("--next-visit", metavar="DATE",
              help="The next visit: the reservoir running empty before it needs --confirm-empty-before-visit.")
@click.option("--spasticity-origin", type=click.Choice(["spinal", "cerebral"]),
              help="Baclofen: the patient's spasticity origin (kept for this pump).")
@click.option("--bridge/--no-bridge", default=None,
              help="When the drug or concentration changes and a catheter is recorded: give a bridge bolus "
                   "(the catheter's old contents at the old rate) or not. Required then; both projections are shown.")
@ORDER_OPTION
@safety_options("refill")
@click.pass_obj
def refill(app, volume, concentration, drug, withdrawn, dose, next_visit, spasticity_origin, bridge, order, yes,
           **safety):
    """Refill the reservoir: keeps the daily dose (the flow follows a new concentration).

    Refuses a volume above the pump's capacity or a concentration not allowed for
    the drug; a withdrawn volume more than 1 mL (20 mL pump) or 2 mL (40 mL pump)
    from what the pump expected (a possible pocket fill) needs --confirm-fill-gap
    before anything is sent, and far less than expected counts as an interruption of
    unknown length. After an interruption longer than the drug's threshold the refill
    resumes at or below the usual starting dose unless RESTART is overridden by name.
    Shows the new low-reservoir alarm date. A new drug or concentration with a catheter
    recorded shows what the patient gets over the following days with and without a
    bridge bolus, and needs --bridge or --no-bridge.

    With --order FILE the fill is the order's (the syringe's drug and concentration, the volume,
    any dose and bridge choice); --withdrawn stays what you measured.
    """
    double_check = double_check_choice(safety)
    overrides, confirmed = safety_choices(safety)
    if order is None and not (volume and concentration):
        raise UsageError("a refill needs --volume and --concentration (or --order FILE)")
    pump = Pump(app.session())
    prepared = pump.check_refill(volume=volume, concentration=concentration, drug=drug, withdrawn=withdrawn,
                                 dose=dose, next_visit=next_visit, overrides=overrides, confirm=confirmed,
                                 spasticity_origin=spasticity_origin, bridge=bridge, order=order)
    run_change(app, pump, prepared, title="Refill", yes=yes, render_done=_print_verified, double_check=double_check)


def _print_verified(r: dict) -> None:
    from ..output import console, fmt_date, fmt_quantity, fmt_span

    a = r["after"]
    console().print(
        f"[bold green]VERIFIED[/]: {r['serial_number']} holds {format(a['reservoir_ml'], 'f')} mL of {a['drug']} "
        f"{fmt_quantity(a['concentration'])}, delivering {fmt_quantity(a['daily_dose'])} "
        f"({format(a['flow_ml_per_day'], 'f')} mL/day). Low-reservoir alarm: "
        f"{fmt_date(a['projected_low_reservoir_date'])} (txid {r['txid']}).")
    bridge = r.get("bridge")
    if bridge and bridge["chosen"] == "bridge":
        console().print(f"Bridge bolus running: the catheter's {format(bridge['volume_ml'], 'f')} mL of the old "
                        f"{bridge['old_drug']} ({fmt_quantity(bridge['dose'])}) over {fmt_span(bridge['duration_s'])} "
                        "at the old rate; the program resumes after it.")
