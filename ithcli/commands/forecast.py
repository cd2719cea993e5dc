"""`ithcli forecast`: when this pump will alarm and run dry, following its schedule step by step."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._params import When

if TYPE_CHECKING:
    from protocol.bodies import Program


@click.command()
@click.option("--next-visit", type=When(), metavar="DATE",
              help="The next refill visit (ISO date, UTC, this computer's calendar): warns when the "
                   "low-reservoir alarm comes before it.")
@click.pass_obj
def forecast(app, next_visit):
    """Project the reservoir volume day by day, down to the low-reservoir alarm and empty.

    Follows the pump's program as it runs (a flex schedule's per-day rates by start
    minute of pump time, UTC) with the pump's own integer rules, from the volume the
    pump reports. Dates and days are on this computer's calendar (UTC): a pump clock
    more than 5 minutes off is warned about and its dates are moved by the skew.
    Read-only.
    """
    from .. import forecast as fcmod

    session = app.session()
    raw, status = session.read()
    program = session.client().read_program().program
    # every time from here on is on this computer's calendar, as the visit date is
    fc = fcmod.from_pump(raw, program, skew_s=status["clock_skew_s"])
    visit = int(next_visit.timestamp()) if next_visit is not None else None
    result = _result(status, program, fc, visit)
    if app.json:
        for w in result["warnings"]:  # the human output shows them in the chart
            app.diag(f"warning: {w}", level=0)
    app.emit(result, lambda r: _render(r, fc, visit))


def _visit_warnings(fc, visit: int | None) -> tuple[bool | None, bool | None, list[str]]:
    """Whether the alarm and empty come before the next visit (None: no visit given), and the warnings."""
    from ..calendar import iso_known
    from ..status import iso

    warnings: list[str] = []
    if visit is None:
        return None, None, warnings
    alarm_before = bool(fc.already_low or (fc.low_alarm_at is not None and fc.low_alarm_at < visit))
    empty_before = bool(fc.empty_at is not None and fc.empty_at < visit)
    if empty_before:
        warnings.append(f"the reservoir runs EMPTY {iso(fc.empty_at)}, before the next visit "
                        f"{iso_known(visit)[:10]}: therapy stops (withdrawal risk); bring the refill forward")
    if fc.already_low:
        warnings.append("the low-reservoir alarm is already active: refill before the next visit")
    elif alarm_before:
        warnings.append(f"the low-reservoir alarm comes {iso(fc.low_alarm_at)}, before the next visit "
                        f"{iso_known(visit)[:10]}: bring the refill forward")
    return alarm_before, empty_before, warnings


def _result(status: dict, program: Program, fc, visit: int | None) -> dict:
    """The forecast for --json: the status it starts from, its dates, the visit's warnings."""
    from .. import forecast as fcmod
    from ..status import iso, program_view

    alarm_before, empty_before, warnings = _visit_warnings(fc, visit)
    return {
        "serial_number": status["serial_number"],
        "emulated": status["emulated"],
        "drug": status["drug"],
        "mode": status["mode"],
        "daily_dose": status["daily_dose"],
        "flow_ml_per_day": status["flow_ml_per_day"],
        "steps": program_view(program, status["daily_dose"]["unit"])["steps"],
        "reservoir_ml": status["reservoir_ml"],
        "reservoir_capacity_ml": status["reservoir_capacity_ml"],
        "low_reservoir_alarm_ml": status["low_reservoir_alarm_ml"],
        "low_reservoir_alarm_active": fc.already_low,
        "low_reservoir_alarm_date": iso(fc.low_alarm_at),
        "empty_date": iso(fc.empty_at),
        "delivery_from": iso(fc.delivery_from),
        "horizon_end": iso(fc.horizon_end),
        # interrogate's figures at the 24-hour average flow, for comparison
        "average_flow_projection": {"low_reservoir_date": status["projected_low_reservoir_date"],
                                    "empty_date": status["projected_empty_date"]},
        "next_visit": iso(visit),
        "alarm_before_next_visit": alarm_before,
        "empty_before_next_visit": empty_before,
        "warnings": warnings,
        "assumptions": fc.assumptions,
        "battery": status["battery"],
        "series": [{"time": iso(t), "reservoir_ml": fcmod.ml(nl)} for t, nl in fc.series],
        "pump_time": status["pump_time"],
        "read_at": status["read_at"],
        "pump_clock": status["pump_clock"],
    }


def _render(r: dict, fc, visit: int | None) -> None:
    from .. import forecast as fcmod
    from ..output import clock_warning_lines, console, fmt_date, fmt_dates_note, fmt_pump_clock
    from ..status import replace_by_warning

    con = console()
    title = (f"Refill forecast: {r['serial_number']}  {r['drug']}  {r['mode']}"
             + ("  EMULATED" if r["emulated"] else ""))
    con.print(f"[bold]{title}[/]")
    for line in clock_warning_lines(r["pump_clock"]):
        con.print(line)
    con.print(f"Now ({fmt_date(r['read_at'])}, this computer's clock): {format(r['reservoir_ml'], 'f')} mL of "
              f"{format(r['reservoir_capacity_ml'], 'f')} mL; alarm at {format(r['low_reservoir_alarm_ml'], 'f')} mL")
    con.print(f"Pump clock: {fmt_pump_clock(r['pump_clock'])}")
    con.print(f"Dates: {fmt_dates_note(r['pump_clock'])}")
    if r["low_reservoir_alarm_active"]:
        con.print("[yellow]Low-reservoir alarm: ACTIVE now[/]")
    else:
        con.print(f"Low-reservoir alarm: [bold]{fmt_date(r['low_reservoir_alarm_date'])}[/]"
                  + ("" if r["low_reservoir_alarm_date"] else "  (not within the forecast)"))
    con.print(f"Empty: [bold]{fmt_date(r['empty_date'])}[/]")
    if r["next_visit"]:
        con.print(f"Next visit: {fmt_date(r['next_visit'], with_time=False)}")
    rows = fcmod.daily_rows(fc)
    if rows:
        capacity_nl = int(r["reservoir_capacity_ml"] * 1_000_000)
        width = max(10, min(40, con.width - 62))  # room for the day, the volume and the notes
        con.print(_chart(rows, fc, visit, capacity_nl, width))
    for w in r["warnings"]:
        con.print(f"[bold red]WARNING[/]: {w}")
    warning = replace_by_warning(r["battery"])
    if warning:
        con.print(f"[bold red]{warning}[/]")
    for a in r["assumptions"]:
        con.print(f"[dim]Assumes: {a}[/]")


def _chart(rows: list[dict], fc, visit: int | None, capacity_nl: int, width: int):
    """The reservoir at the end of each day (or period) as a bar `width` wide, with what happens in it."""
    from rich.table import Table

    from .. import forecast as fcmod
    from ..calendar import iso_known

    grouped = rows[0]["to"] - rows[0]["from"] > fcmod.DAY if len(rows) > 1 else False
    table = Table(title="Reservoir at the end of each " + ("period" if grouped else "day")
                  + " (this computer's calendar, UTC)", title_justify="left", box=None, pad_edge=False)
    table.add_column("Day")
    table.add_column("mL", justify="right")
    table.add_column("")
    table.add_column("")
    for row in rows:
        filled = row["end_nl"] * width // capacity_nl if capacity_nl else 0
        colour = "red" if row["end_nl"] <= fc.low_alarm_nl else "green"
        bar = f"[{colour}]{'█' * filled}[/]{'·' * (width - filled)}"
        notes = []
        if row["alarm"]:
            notes.append(f"[yellow]◀ LOW-RESERVOIR ALARM {iso_known(fc.low_alarm_at)[11:16]} UTC[/]")
        if row["empty"]:
            notes.append(f"[bold red]◀ EMPTY {iso_known(fc.empty_at)[11:16]} UTC[/]")
        if visit is not None and row["from"] <= visit < row["to"]:
            notes.append("[cyan]◀ next visit[/]")
        day = iso_known(row["to"] - fcmod.DAY)[:10]
        if row["to"] - row["from"] > fcmod.DAY:
            day = f"{iso_known(row['from'])[:10]}..{day}"
        table.add_row(day, format(fcmod.ml(row["end_nl"]), "f"), bar, " ".join(notes))
    return table
