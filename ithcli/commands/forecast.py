"""`ithcli forecast`: when this pump will alarm and run dry, following its schedule step by step."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .. import documents
from ..errors import UsageError
from ..localtime import fmt_clock, fmt_day, fmt_time, zone
from ._params import When, timestamp

if TYPE_CHECKING:
    from protocol.bodies import Program


@click.command()
@click.option("--next-visit", type=When(), metavar="DATE",
              help="The next refill visit (ISO date on this computer's calendar, in the --tz zone): warns "
                   "when the low-reservoir alarm comes before it.")
@click.option("--export", "export_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the chart: .svg, or .png (needs Chromium); or a document holding it "
                   "with the key dates: .html, or .pdf (needs Chromium).")
@click.pass_obj
def forecast(app, next_visit, export_path):
    """Project the reservoir volume day by day, down to the low-reservoir alarm and empty.

    Follows the pump's program as it runs (a flex schedule's per-day rates by start
    minute of pump time, UTC) with the pump's own integer rules, from the volume the
    pump reports. Dates and days are on this computer's calendar, in the --tz zone: a
    pump clock more than 5 minutes off is warned about and its dates are moved by the skew.
    Read-only.
    """
    from .. import forecast as fcmod

    export = documents.check(export_path, documents.FORECAST) if export_path else None  # before the pump is read
    session = app.session()
    raw, status = session.read()
    program = session.client().read_program().program
    # every time from here on is on this computer's calendar, as the visit date is
    # its days are the ones people read: midnights of the --tz zone (localtime.py)
    fc = fcmod.from_pump(raw, program, skew_s=status["clock_skew_s"], days=zone())
    visit = timestamp(next_visit)
    result = _result(status, program, fc, visit)
    if app.json:
        for w in result["warnings"]:  # the human output shows them in the chart
            app.diag(f"warning: {w}", level=0)
    if export is not None:
        try:
            _export(result, export)
        except UsageError:
            if not app.json:  # a failed export hides no warning: the forecast is shown before the error
                _render(result, fc, visit)
            raise
        result["exported_to"] = export_path
    app.emit(result, lambda r: _render(r, fc, visit))


def _export(result: dict, export: documents.Export) -> None:
    """The chart (.svg, .png) or a document holding it (.html, .pdf), from the forecast's data."""
    if export.is_document():
        export.write_document(lambda paper: documents.forecast_html(result, paper=paper))
    else:
        export.write_chart(documents.forecast_svg(result), documents.WIDTH, documents.HEIGHT)


def _visit_warnings(fc, visit: int | None) -> tuple[bool | None, bool | None, list[str]]:
    """Whether the alarm and empty come before the next visit (None: no visit given), and the warnings."""
    warnings: list[str] = []
    if visit is None:
        return None, None, warnings
    alarm_before = bool(fc.already_low or (fc.low_alarm_at is not None and fc.low_alarm_at < visit))
    empty_before = bool(fc.empty_at is not None and fc.empty_at < visit)
    if empty_before:
        warnings.append(f"the reservoir runs EMPTY {fmt_time(fc.empty_at)}, before the next visit "
                        f"{fmt_day(visit)}: therapy stops (withdrawal risk); bring the refill forward")
    if fc.already_low:
        warnings.append("the low-reservoir alarm is already active: refill before the next visit")
    elif alarm_before:
        warnings.append(f"the low-reservoir alarm comes {fmt_time(fc.low_alarm_at)}, before the next visit "
                        f"{fmt_day(visit)}: bring the refill forward")
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
        con.print(_chart(rows, fc, visit, int(r["reservoir_capacity_ml"] * 1_000_000), con.layout_width))
    for w in r["warnings"]:
        con.print(f"[bold red]WARNING[/]: {w}")
    warning = replace_by_warning(r["battery"])
    if warning:
        con.print(f"[bold red]{warning}[/]")
    for a in r["assumptions"]:
        con.print(f"[dim]Assumes: {a}[/]")


#: the bars' widest and narrowest (a bar narrower than this says little; the notes then wrap)
BAR_MAX, BAR_MIN = 40, 6


def _chart(rows: list[dict], fc, visit: int | None, capacity_nl: int, layout_width: int | None):
    """The reservoir at the end of each day (or period) of the zone people read, as a bar, with
    what happens in it. The day, the volume and the bar are never wrapped or cut: the bar is as
    wide as the terminal leaves beside them and the notes' longest word (BAR_MIN to BAR_MAX),
    and the notes wrap; off a terminal (layout_width None) every row is one line."""
    from rich.table import Table

    from .. import forecast as fcmod
    from ..output import calendar_name

    days = fc.days
    labels, notes = [], []
    for row in rows:
        last = days.date_text(row["to"] - 1)
        first = days.date_text(row["from"])
        labels.append(last if first == last else f"{first}..{last}")
        said = []
        if row["alarm"]:
            said.append(f"[yellow]◀ LOW-RESERVOIR ALARM {fmt_clock(fc.low_alarm_at)}[/]")
        if row["empty"]:
            said.append(f"[bold red]◀ EMPTY {fmt_clock(fc.empty_at)}[/]")
        if visit is not None and row["from"] <= visit < row["to"]:
            said.append("[cyan]◀ next visit[/]")
        notes.append(" ".join(said))
    volumes = [format(fcmod.ml(row["end_nl"]), "f") for row in rows]
    width = _bar_width(layout_width, labels, volumes, notes)
    grouped = any(row["days"] > 1 for row in rows)
    table = Table(title=f"Reservoir at the end of each {'period' if grouped else 'day'}, on {calendar_name()}",
                  title_justify="left", box=None, pad_edge=False)
    table.add_column("Day", no_wrap=True)
    table.add_column("mL", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("")
    for row, label, volume, note in zip(rows, labels, volumes, notes, strict=True):
        filled = row["end_nl"] * width // capacity_nl if capacity_nl else 0
        colour = "red" if row["end_nl"] <= fc.low_alarm_nl else "green"
        bar = f"[{colour}]{'█' * filled}[/]{'·' * (width - filled)}"
        table.add_row(label, volume, bar, note)
    return table


def _bar_width(layout_width: int | None, labels: list[str], volumes: list[str], notes: list[str]) -> int:
    """What the terminal leaves for the bar beside the day, the volume and the notes' longest word
    or value ("11:22 UTC" is one), two spaces between columns."""
    from rich.text import Text

    from ..output import glued

    if layout_width is None:
        return BAR_MAX
    notes_min = max((len(w) for note in notes for w in glued(Text.from_markup(note).plain).split()), default=0)
    fixed = max(map(len, labels)) + max(map(len, volumes)) + (notes_min + 2 if notes_min else 0) + 4
    return max(BAR_MIN, min(BAR_MAX, layout_width - fixed))
