"""`ithcli program`: change the dose, rate or mode, checked, confirmed, verified."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..api import Pump
from ._writing import ORDER_OPTION, double_check_choice, run_change, safety_choices, safety_options

if TYPE_CHECKING:
    from protocol.bodies import Prepared


@click.command()
@click.option("--dose", metavar="DOSE", help="New continuous daily dose in the drug's unit, e.g. '450 mcg/day'.")
@click.option("--flow", metavar="FLOW", help="New continuous flow, e.g. '0.5 mL/day' (the dose follows).")
@click.option("--mode", type=click.Choice(["continuous", "flex", "minimum"]),
              help="continuous (with --dose or --flow), flex (with --schedule) or minimum (0.048 mL/day).")
@click.option("--schedule", type=click.Path(dir_okay=False), metavar="FILE",
              help="Flex schedule (TOML): [[step]] start = \"HH:MM\", dose = \"N mcg/day\" (a per-DAY rate).")
@click.option("--stop", is_flag=True, help="Stop delivery (withdrawal-risk drugs need --confirm-withdrawal-risk).")
@click.option("--next-visit", metavar="DATE",
              help="The next visit: the reservoir running empty before it needs --confirm-empty-before-visit.")
@click.option("--spasticity-origin", type=click.Choice(["spinal", "cerebral"]),
              help="Baclofen: the patient's spasticity origin, which sets the daily rise allowed "
                   "(kept for this pump; the stricter cerebral budget applies while unknown).")
@ORDER_OPTION
@safety_options("program")
@click.pass_obj
def program(app, dose, flow, mode, schedule, stop, next_visit, spasticity_origin, order, yes, **safety):
    """Change what the pump delivers: PREPARE, check the echo, COMMIT, read back.

    Reads the pump first, checks the drug library (hard limits refused, soft limits
    need --override-soft-limit NAME=REASON), checks the rise over the last 24 hours
    and 7 days and any interruption from the pump's own log, shows the 24-hour total
    before and after, asks for confirmation unless --yes, and exits 0 only when the
    read-back matches. Everything still needed is listed at once.

    With --order FILE the new program is the order's (an option given too must agree with it).
    A change the clinic policy names needs a second clinician: --check-request, then
    --verified-by (docs/clinical.md#orders-and-the-double-check).
    """
    double_check = double_check_choice(safety)
    overrides, confirmed = safety_choices(safety)
    pump = Pump(app.session())
    prepared = pump.check_program(dose=dose, flow=flow, mode=mode, schedule=schedule, stop=stop,
                                  next_visit=next_visit, overrides=overrides, confirm=confirmed,
                                  spasticity_origin=spasticity_origin, order=order)
    unit = prepared.change.unit
    run_change(app, pump, prepared, title="Program change", yes=yes, on_echo=lambda e: _print_echo(e, unit),
               render_done=_print_verified, double_check=double_check,
               render_unchanged=lambda r: _say(f"No change: {r['serial_number']} already delivers this program. "
                                               "Nothing was sent."))


def _q(q: dict) -> str:
    from ..output import fmt_quantity

    return fmt_quantity(q)


def _print_echo(echo: Prepared, unit: str) -> None:
    from ..status import program_view

    view = program_view(echo.program, unit)
    _progress(f"Pump echoed txid {echo.txid}: {view['mode']}, {_q(view['daily_dose'])} (24-hour total), "
              f"{format(view['flow_ml_per_day'], 'f')} mL/day. Committing.")


def _print_verified(result: dict) -> None:
    after = result["after"]
    _say(f"[bold green]VERIFIED[/]: {result['serial_number']} now delivers {after['mode']}, "
         f"{_q(after['daily_dose'])} (24-hour total), {format(after['flow_ml_per_day'], 'f')} mL/day "
         f"(txid {result['txid']}, read back field by field).")


def _say(text: str) -> None:
    from ..output import console

    console().print(text)


def _progress(text: str) -> None:
    """Said while the command works: stderr (stdout carries only the report)."""
    from ..output import console

    console(stderr_=True).print(text)
