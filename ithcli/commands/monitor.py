"""`ithcli monitor`: a live dashboard of one pump, or JSON lines for other tools."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from ..api import Pump
from ..errors import IthcliError
from ..monitor import Monitor
from ..ptm import ptm_text, use_text
from ..read_folding import EVERY_S, ReadFolder

if TYPE_CHECKING:  # annotations only: rich is imported when the dashboard is drawn
    from rich.console import RenderableType


@click.command()
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True, metavar="SECONDS",
              help="Seconds between readings.")
@click.option("--count", type=click.IntRange(1), metavar="N", help="Stop after N readings (default: until Ctrl-C).")
@click.option("--stale-after", type=click.FloatRange(0.1, 86_400), default=60.0, show_default=True,
              metavar="SECONDS", help="Data older than this is marked STALE (\"stale\": true in JSON).")
@click.option("--max-failures", type=click.IntRange(1, 1000), default=5, show_default=True, metavar="N",
              help="Failed readings in a row before giving up (exit 3); fewer are shown and retried.")
@click.option("--record-every", type=click.FloatRange(0, 86_400), default=EVERY_S, show_default=True,
              metavar="SECONDS", help="Readings alike (but for the clock, volume and battery) are folded in the "
                                      "audit log: one is recorded at least this often, and at every change "
                                      "(0: record every reading). docs/audit.md.")
@click.pass_obj
def monitor(app, interval, count, stale_after, max_failures, record_every):
    """Poll the pump and show it live: reservoir, rate and flex step, alarms, link health, data age.

    Read-only. Ctrl-C ends it normally (exit 0). With --json, one JSON object per
    reading on its own line (JSON lines), good or failed. Another pump answering on the
    port (after a reconnect) ends it at once, naming both serials (exit 11).
    """
    session = app.session()
    if record_every > 0:
        session.read_folding = ReadFolder(every_s=record_every)
    pump = Pump(session)
    if not app.port:
        pump.open()  # no port: the documented link error at once, not after retries
    mon = Monitor(pump, stale_after=stale_after, max_failures=max_failures)
    if app.json:
        view = _JsonView()
    else:
        from ..output import console

        con = console()
        view = _LiveView(con, mon) if con.is_terminal else _LineView(con)
    try:
        with view:
            next_at = time.monotonic()
            while True:
                view.show(mon.poll())
                if count is not None and mon.readings >= count:
                    break
                next_at += interval
                while True:
                    left = next_at - time.monotonic()
                    if left <= 0:
                        break
                    time.sleep(min(left, 0.5))
                    view.tick()
                if time.monotonic() - next_at > interval:
                    next_at = time.monotonic()  # a slow reading: do not try to catch up in a burst
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a monitor is stopped: exit 0
    except IthcliError as exc:
        exc.json_line = True  # with --json the stream stays JSON lines to its end
        raise
    finally:
        session.flush_folded_reads()  # the last reading seen is in the audit log, however it ends
    view.summary(mon)


class _JsonView:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def show(self, reading: dict) -> None:
        from ..output import print_json_line

        print_json_line(reading)

    def tick(self) -> None:
        pass

    def summary(self, mon) -> None:
        pass


class _LineView(_JsonView):
    """Not a terminal (a pipe, a log file): one line per reading, alarms on their own lines."""

    def __init__(self, con):
        self.con = con

    def show(self, r: dict) -> None:
        from ..output import clock_warning_lines

        self.con.print(_line(r), soft_wrap=True)
        if r.get("ok"):
            for line in clock_warning_lines(r.get("pump_clock")):
                self.con.print(f"  {line}", soft_wrap=True)
        for a in r.get("alarms_raised", []):
            self.con.print(f"  {_prio(a['priority'])} ALARM RAISED: {a['name'].replace('_', ' ')}", soft_wrap=True)
        for name in r.get("alarms_cleared", []):
            self.con.print(f"  alarm cleared: {name.replace('_', ' ')}", soft_wrap=True)
        if r.get("ok") and r["battery"]["replace_by_mismatch"]:
            from ..status import replace_by_warning

            self.con.print(f"  [bold red]{replace_by_warning(r['battery'])}[/]", soft_wrap=True)

    def summary(self, mon) -> None:
        self.con.print(f"Monitor stopped after {mon.readings} reading(s), {mon.failed_total} failed.")


class _LiveView(_JsonView):
    """A terminal: a rich Live dashboard, redrawn on every reading and as the data ages."""

    def __init__(self, con, mon):
        from rich.live import Live

        self.con = con
        self.mon = mon
        self.last: dict | None = None
        self.live = Live(console=con, auto_refresh=False, transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def show(self, reading: dict) -> None:
        self.last = reading
        self.live.update(_dashboard(self.mon, reading), refresh=True)

    def tick(self) -> None:
        if self.last is not None:
            self.live.update(_dashboard(self.mon, self.last), refresh=True)

    def summary(self, mon) -> None:
        self.con.print(f"Monitor stopped after {mon.readings} reading(s), {mon.failed_total} failed.")


_COLOUR = {"high": "bold red", "medium": "yellow", "low": "cyan"}


def _prio(priority: str) -> str:
    return f"[{_COLOUR.get(priority, 'dim')}]{priority.upper()}[/]"


def _ml(value) -> str:
    return format(value, "f")


def _age_text(age, stale: bool) -> str:
    if age is None:
        return "[bold red]STALE: no reading yet[/]"
    return f"[bold red]STALE: {age} s old[/]" if stale else f"{age} s old"


def _line(r: dict) -> str:
    from ..output import fmt_date

    link = r["link"]
    health = (f"rtt {link['round_trip_ms']} ms, corrupt {link['corrupt_frames']}, retries {link['retries']}"
              if link["round_trip_ms"] is not None else
              f"corrupt {link['corrupt_frames']}, retries {link['retries']}")
    if not r["ok"]:
        return (f"#{r['reading']} [bold red]READING FAILED[/] ({r['error']['kind']}): {r['error']['message']}; "
                f"failure {link['consecutive_failures']} of {r['max_failures']} in a row; last good data "
                f"{_age_text(r['age_s'], r['stale'])}")
    step = r["active_step"]
    step_text = (f" (step {step['index']}/{step['of']} {step['start']}-{step['end']})"
                 if step and step["of"] > 1 else "")
    alarms = ", ".join(f"{_prio(a['priority'])} {a['name'].replace('_', ' ')}" for a in r["alarms"]) or "none"
    when = fmt_date(r.get("read_at") or r["pump_time"])
    ptm = r.get("ptm")
    patient = (f"  patient boluses {ptm['granted_24h']} granted, {ptm['refused_24h']} refused (24 h)"
               if ptm and (ptm["enabled"] or ptm["granted_24h"] or ptm["refused_24h"]) else "")
    return (f"#{r['reading']} {when}  reservoir {_ml(r['reservoir_ml'])} mL  rate "
            f"{_ml(r['current_rate_ml_per_day'])} mL/day{step_text}, delivery {r['delivery']}  alarms: {alarms}"
            f"{patient}  link: {health}  data {_age_text(r['age_s'], r['stale'])}")


def _dashboard(mon, r: dict):
    from rich.console import Group
    from rich.panel import Panel

    from ..monitor import age_s
    from ..output import Titled, clock_warning_lines
    from ..status import replace_by_warning

    good = mon.last_good
    parts: list[RenderableType] = []
    if not r["ok"]:
        parts.append(f"[bold red]READING FAILED[/] ({r['error']['kind']}): {r['error']['message']}  "
                     f"[{r['link']['consecutive_failures']} of {r['max_failures']} in a row; retrying]")
    if good is None:
        parts.append("[bold red]No reading yet.[/]")
        return Panel(Group(*parts), title="ithcli monitor")
    age = age_s(mon.last_good_at)
    stale = age > good["stale_after_s"]
    title = f"Pump {good['serial_number']}  {good['model']}  {good['drug']}"
    if good["emulated"]:
        title += "  [bold yellow]EMULATED[/]"
    # the pump panel goes first, above the failure line of a failed reading
    parts.insert(0, Titled(_status_grid(good, r["link"], age, stale), title, title_align="left",
                           border_style="red" if stale or not r["ok"] else "green"))
    parts[1:1] = clock_warning_lines(good.get("pump_clock"))  # right under the panel, before any other
    warning = replace_by_warning(good["battery"])
    if warning:
        parts.append(f"[bold red]{warning}[/]")
    parts.append(_alarm_table(good["alarms"]) if good["alarms"] else "No active alarms.")
    if mon.history:
        parts.append(_history_table(mon.history))
    parts.append(f"[dim]reading {r['reading']}; Ctrl-C to stop[/]")
    return Group(*parts)


def _reservoir_gauge(good: dict):
    """The reservoir bar, red once at or below the low-reservoir alarm, with its volumes beside it."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    capacity = good["reservoir_capacity_ml"]
    gauge = Table.grid(padding=(0, 1))
    gauge.add_row(ProgressBar(total=float(capacity), completed=float(good["reservoir_ml"]), width=40,
                              complete_style="red" if good["reservoir_ml"] <= good["low_reservoir_alarm_ml"]
                              else "green"),
                  f"{_ml(good['reservoir_ml'])} mL of {_ml(capacity)} mL (alarm at "
                  f"{_ml(good['low_reservoir_alarm_ml'])} mL)")
    return gauge


def _status_grid(good: dict, link: dict, age, stale: bool):
    """The panel's rows: the last good reading, with the link health of the latest attempt."""
    from rich.table import Table

    from ..output import fmt_date, fmt_dates_note, fmt_pump_clock, fmt_quantity

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Reservoir", _reservoir_gauge(good))
    grid.add_row("Low-reservoir alarm", f"{fmt_date(good['projected_low_reservoir_date'])}  (24-hour average flow; "
                                        "see 'ithcli forecast')")
    grid.add_row("Mode", f"{good['mode']}  delivery {good['delivery'].upper()}")
    grid.add_row("Daily dose", f"{fmt_quantity(good['daily_dose'])}  ({_ml(good['flow_ml_per_day'])} mL/day)")
    step = good["active_step"]
    rate = f"{_ml(good['current_rate_ml_per_day'])} mL/day"
    if step and step["of"] > 1:
        rate += (f"  step {step['index']} of {step['of']}, {step['start']}-{step['end']} pump clock: "
                 f"{fmt_quantity(step['dose'])}")
    grid.add_row("Rate now", rate)
    if good["bolus_remaining"]["value"]:
        grid.add_row("Bolus running", f"{fmt_quantity(good['bolus_remaining'])} left")
    ptm = good.get("ptm")
    if ptm and (ptm["enabled"] or ptm["granted_24h"] or ptm["refused_24h"]):
        grid.add_row("Patient boluses", f"{ptm_text(ptm)}; {use_text(ptm)}")
    b = good["battery"]
    grid.add_row("Battery", f"{b['state'].upper()} {b['percent']} %  replace by "
                            f"{fmt_date(b['replace_by'], with_time=False)}")
    grid.add_row("MRI mode", good["mri_mode"].upper())
    grid.add_row("Link", f"last round trip {link['round_trip_ms']} ms  corrupt frames {link['corrupt_frames']}  "
                         f"retries {link['retries']}  failed readings {link['failed_readings']}")
    grid.add_row("Pump clock", fmt_pump_clock(good.get("pump_clock")))
    grid.add_row("Dates", fmt_dates_note(good.get("pump_clock")))
    grid.add_row("Data", f"read {fmt_date(good['read_at'])} (this computer's clock), {_age_text(age, stale)}")
    return grid


def _alarm_table(alarms: list[dict]):
    from rich.table import Table

    table = Table(title="Active alarms (IEC 60601-1-8)", title_justify="left")
    table.add_column("Priority")
    table.add_column("Alarm")
    for a in alarms:
        table.add_row(_prio(a["priority"]), a["name"].replace("_", " "))
    return table


def _history_table(history: list[dict]):
    """The last 8 alarm events seen while monitoring."""
    from rich.table import Table

    from ..output import fmt_date

    hist = Table(title="Alarms while monitoring", title_justify="left")
    hist.add_column("Time", no_wrap=True)  # a time is one token, with its zone (--tz)
    hist.add_column("Priority")
    hist.add_column("Event")
    for e in history[-8:]:
        hist.add_row(fmt_date(e["time"]), _prio(e["priority"]), e["description"])
    return hist
