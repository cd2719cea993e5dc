"""`ithcli interrogate`: the pump's full status."""
from __future__ import annotations

import click

from ..catheter_ops import catheter_text
from ..patient import patient_text


@click.command()
@click.pass_obj
def interrogate(app):
    """Read the pump's full status: identity, therapy, reservoir, battery, alarms, MRI mode.

    Dates are on this computer's calendar, shown in the --tz zone (JSON: UTC): a pump
    clock more than 5 minutes off is warned about, and its dates are moved by the
    measured skew.
    """
    status = app.session().interrogate()
    app.emit(status, render_status)


def render_status(s: dict) -> None:
    from ..output import Titled, clock_warning_lines, console
    from ..status import replace_by_warning

    con = console()
    # before any date is read: how far the pump's clock is off, and which calendar the dates are on
    for line in clock_warning_lines(s.get("pump_clock")):
        con.print(line)
    title = f"Pump {s['serial_number']}  {s['model']}  firmware {s['firmware']}"
    if s["emulated"]:
        title += "  [bold yellow]EMULATED[/]"
    con.print(Titled(_status_grid(s), title, title_align="left"))
    warning = replace_by_warning(s["battery"])
    if warning:
        con.print(f"[bold red]{warning}[/]")
    if s["alarms"]:
        con.print(_alarms_table(s["alarms"]))
    else:
        con.print("No active alarms.")


def _status_grid(s: dict):
    """The status, one labelled row a line: therapy, reservoir, battery, MRI mode, clocks."""
    from rich.table import Table

    from ..output import fmt_date, fmt_dates_note, fmt_pump_clock, fmt_quantity

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    drug = s["drug"] if s["drug"] != "none" else "no drug"
    if not s["drug_in_library"] and s["drug"] != "none":
        drug += "  [red](not in the drug library: units unchecked)[/]"
    if "patient" in s:  # who the pump is implanted in, as it records it (ithcli/patient.py)
        grid.add_row("Patient", patient_text(s["patient"]))
    grid.add_row("Drug", drug)
    grid.add_row("Concentration", fmt_quantity(s["concentration"]))
    grid.add_row("Mode", s["mode"])
    grid.add_row("Daily dose", f"{fmt_quantity(s['daily_dose'])}  (24-hour total)")
    grid.add_row("Flow", f"{format(s['flow_ml_per_day'], 'f')} mL/day")
    if s["current_rate_ml_per_day"] != s["flow_ml_per_day"]:
        grid.add_row("Rate now", f"{format(s['current_rate_ml_per_day'], 'f')} mL/day")
    if s["bolus_remaining"]["value"]:
        grid.add_row("Bolus running", f"{fmt_quantity(s['bolus_remaining'])} left")
    if "ptm" in s:
        from ..ptm import ptm_text, use_text

        grid.add_row("Patient boluses", ptm_text(s["ptm"]))
        if s["ptm"]["enabled"] or s["ptm"]["granted_24h"] or s["ptm"]["refused_24h"]:
            grid.add_row("Patient bolus use", use_text(s["ptm"]))
    grid.add_row(
        "Reservoir",
        f"{format(s['reservoir_ml'], 'f')} mL of {format(s['reservoir_capacity_ml'], 'f')} mL"
        f"  (alarm at {format(s['low_reservoir_alarm_ml'], 'f')} mL)",
    )
    grid.add_row("Low-reservoir alarm", fmt_date(s["projected_low_reservoir_date"]))
    grid.add_row("Empty", fmt_date(s["projected_empty_date"]))
    b = s["battery"]
    battery = f"{b['state'].upper()}  {b['percent']} %  ERI {fmt_date(b['eri_date'], with_time=False)}"
    grid.add_row("Battery", battery)
    replace = fmt_date(b["replace_by"], with_time=False)
    if b["replace_by_mismatch"]:
        replace = f"[bold red]{replace}[/]"
        replace += f"  [red]MISMATCH: ERI + 90 days is {fmt_date(b['replace_by_computed'], with_time=False)}[/]"
    grid.add_row("Replace by", replace)
    mri = s["mri_mode"].upper()
    if s["mri_auto_exit_at"]:
        mri += f"  (automatic exit {fmt_date(s['mri_auto_exit_at'])})"
    grid.add_row("MRI mode", mri)
    if "catheter" in s:
        text = catheter_text(s["catheter"])
        grid.add_row("Catheter", f"[bold red]{text}[/]" if s["catheter"]["primed"] is False else text)
    last = s["last_programming"]
    grid.add_row("Last programming", f"txid {last['txid']} at {fmt_date(last['at'])}" if last["txid"] else "none")
    grid.add_row("Pump clock", fmt_pump_clock(s.get("pump_clock")))
    grid.add_row("Read at", f"{fmt_date(s['read_at'])} (this computer's clock)")
    grid.add_row("Dates", fmt_dates_note(s.get("pump_clock")))
    return grid


def _alarms_table(alarms: list[dict]):
    from rich.table import Table

    table = Table(title="Active alarms", title_justify="left")
    table.add_column("Priority")
    table.add_column("Alarm")
    colour = {"high": "bold red", "medium": "yellow", "low": "cyan"}
    for a in alarms:
        table.add_row(f"[{colour[a['priority']]}]{a['priority'].upper()}[/]", a["name"].replace("_", " "))
    return table
