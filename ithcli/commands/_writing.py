"""What program, refill, bolus and empty share: safety options, the before/after
table, the confirmation prompt, and running a checked change end to end."""
from __future__ import annotations

import sys

import click

from ..errors import Cancelled
from ..limits import CONFIRM_FLAGS, OVERRIDE_NAMES, parse_overrides

SAFETY_OPTIONS = [
    click.option("--override-soft-limit", "overrides", metavar="NAME=REASON", multiple=True,
                 help="Proceed past the soft limit NAME (repeat for each: "
                      + ", ".join(OVERRIDE_NAMES) + "); each REASON is recorded in the audit log."),
    *[click.option(flag, flag.lstrip("-").replace("-", "_"), is_flag=True, help=f"Accept {what}.")
      for flag, what in CONFIRM_FLAGS.items()],
    click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation."),
]


def safety_options(fn):
    for option in reversed(SAFETY_OPTIONS):
        fn = option(fn)
    return fn


def safety_choices(options: dict) -> tuple[dict[str, str], set[str]]:
    """The named overrides and the confirmation flags given, from a command's keyword arguments."""
    overrides = parse_overrides(options.pop("overrides", ()))
    confirmed = {flag for flag in CONFIRM_FLAGS if options.pop(flag.lstrip("-").replace("-", "_"), False)}
    return overrides, confirmed


def render_change(title: str, rows: list[tuple[str, str, str]], warnings, emulated: bool) -> None:
    from rich.table import Table

    from ..output import console

    con = console()
    table = Table(title=title + ("  EMULATED" if emulated else ""), title_justify="left")
    table.add_column("")
    table.add_column("Now")
    table.add_column("After")
    for label, before, after in rows:
        table.add_row(label, before, f"[bold]{after}[/]" if before != after else after)
    con.print(table)
    for w in warnings:
        colour = "red" if w.level in ("soft", "confirm") else "yellow"
        con.print(f"[{colour}]{w.level.upper()}[/]: {w.message}")


def confirm(app, yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty() and app.json:
        raise Cancelled("confirmation needed and --json gives no prompt: pass --yes. Nothing was sent")
    try:
        ok = click.confirm(question, default=False, err=True)
    except click.Abort:
        ok = False
    if not ok:
        raise Cancelled("not confirmed. Nothing was sent")


def run_change(app, pump, prepared, *, title: str, yes: bool, on_echo=None, render_done=None,
               render_unchanged=None) -> None:
    """Show a change the API checked, ask, apply it through the API, emit: the common tail of
    every write command (the checks and the write itself live in ithcli/api.py)."""
    change = prepared.change
    if change.unchanged:
        result = pump.apply(prepared).data
        app.emit(result, render_unchanged or (lambda r: _say(
            f"No change: {r['serial_number']} already delivers this. Nothing was sent.")))
        return
    if not app.json:
        render_change(title, change.rows, change.warnings, app.session().emulated)
    confirm(app, yes, change.question)
    app.emit(pump.apply(prepared, on_echo=None if app.json else on_echo).data, render_done)


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
