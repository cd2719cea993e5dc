"""`ithcli empty`: record that the reservoir was emptied (before an MRI of a valve-gated pump)."""
from __future__ import annotations

import click

from ..api import Pump
from ._writing import double_check_choice, double_check_options, run_change


@click.command()
@click.option("--withdrawn", metavar="VOLUME", help="Volume withdrawn, compared with what the pump expected.")
@click.option("--confirm-withdrawal-risk", is_flag=True,
              help="Accept stopping a drug with a withdrawal risk (delivery stops with the reservoir empty).")
@click.option("--confirm-fill-gap", is_flag=True,
              help="Accept a withdrawn volume far from what the pump expected (possible pocket fill).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@double_check_options
@click.pass_obj
def empty(app, withdrawn, confirm_withdrawal_risk, confirm_fill_gap, yes, **double_check):
    """Record an emptied reservoir: volume 0 and delivery stopped, checked and read back."""
    confirmed = {flag for flag, on in (("--confirm-withdrawal-risk", confirm_withdrawal_risk),
                                       ("--confirm-fill-gap", confirm_fill_gap)) if on}
    pump = Pump(app.session())
    prepared = pump.check_empty(withdrawn=withdrawn, confirm=confirmed)
    run_change(app, pump, prepared, title="Empty the reservoir", yes=yes, render_done=_print_verified,
               double_check=double_check_choice(double_check))


def _print_verified(r: dict) -> None:
    from ..output import console

    console().print(f"[bold green]VERIFIED[/]: {r['serial_number']} recorded empty, delivery stopped "
                    f"(txid {r['txid']}). Refill and reprogram after the scan.")
