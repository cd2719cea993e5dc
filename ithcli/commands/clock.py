"""`ithcli clock`: the pump's clock against this computer's, and setting it (a two-phase,
audited CLOCK write: ithcli/clock.py)."""
from __future__ import annotations

import click

from ..api import Pump
from ..clock import clock_reading, step_text
from ..limits import CLOCK_STEP_CONFIRM_S
from ._writing import run_change


@click.group()
def clock():
    """The pump's clock: show it against this computer's, set it."""


@clock.command()
@click.pass_obj
def show(app):
    """The pump's time, this computer's time when the reply arrived, and the skew between them."""
    session = app.session()
    raw, described = session.read()
    app.emit(clock_reading(raw, session.last_read_at or 0, emulated=described["emulated"]), _render_reading)


@clock.command(name="set")
@click.option("--to", "to", metavar="ISO8601",
              help="The time to set, with its UTC offset (2026-03-01T08:00:00Z, ...+01:00). "
                   "Default: this computer's time when the change is sent.")
@click.option("--confirm-clock-step", is_flag=True,
              help=f"Accept a step of more than {CLOCK_STEP_CONFIRM_S // 3600} h (a mistyped date?).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def set_(app, to, confirm_clock_step, yes):
    """Set the pump's clock: PREPARE (the pump echoes the step), COMMIT, read back.

    Verified only when the pump's time reads back where it was set (give or take the
    seconds the exchange took). The pump logs the old and the new time (CLOCK_SET), and
    every window the limits read from its log is measured across the change. A step of
    more than a day needs --confirm-clock-step.
    """
    pump = Pump(app.session())
    prepared = pump.check_clock(to=to, confirm={"--confirm-clock-step"} if confirm_clock_step else set())
    run_change(app, pump, prepared, title="Pump clock", yes=yes, render_done=_render_set,
               render_unchanged=lambda r: _say(f"No change: the clock of {r['serial_number']} is already this "
                                               "computer's time (within 1 s). Nothing was sent."))


def _render_reading(r: dict) -> None:
    from rich.table import Table

    from ..output import clock_warning_lines, console, fmt_date

    con = console()
    table = Table(title=f"Clock of {r['serial_number']}" + ("  EMULATED" if r["emulated"] else ""),
                  title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Pump time", fmt_date(r["pump_time"]))
    table.add_row("This computer", fmt_date(r["computer_time"]))
    table.add_row("Skew", r["skew"])
    con.print(table)
    for line in clock_warning_lines({"warning": r["warning"]}):  # the calendar named in the zone shown
        con.print(line)


def _render_set(r: dict) -> None:
    from ..output import fmt_date

    after = r["after"]
    _say(f"[bold green]VERIFIED[/]: the clock of {r['serial_number']} was set to {fmt_date(r['time_set'])} "
         f"(step {step_text(r['step_s'])}); it reads {fmt_date(after['pump_time'])}, {after['skew_s']:+d} s from this "
         f"computer's clock (txid {r['txid']}).")


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
