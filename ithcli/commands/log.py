"""`ithcli log`: the pump's event log, decoded and filtered."""
from __future__ import annotations

from datetime import datetime, timezone

import click

PRIORITIES = ("high", "medium", "low", "none")


class _When(click.ParamType):
    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO date or date-time (e.g. 2026-11-01 or 2026-11-01T08:00)", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@click.command()
@click.option("--since", type=_When(), help="Only events at or after this pump time (ISO date or date-time, UTC).")
@click.option("--type", "types", multiple=True, metavar="TYPE",
              help="Only events of this type (e.g. alarm_raised, motor_stall); repeatable.")
@click.option("--priority", type=click.Choice(PRIORITIES), multiple=True,
              help="Only events of this IEC 60601-1-8 priority; repeatable.")
@click.option("--limit", type=click.IntRange(1), help="Only the newest N matching events.")
@click.pass_obj
def log(app, since, types, priority, limit):
    """Read and decode the pump's event log (alarms, programming, refills, stalls...)."""
    from protocol import EventType

    known = {t.name.lower() for t in EventType}
    for t in types:
        if t.lower() not in known:
            raise click.BadParameter(f"unknown event type {t!r}; known: {', '.join(sorted(known))}",
                                     param_hint="--type")
    status = app.interrogate()
    oldest, events = app.client().read_whole_log(0)
    dose_unit = status["daily_dose"]["unit"]
    from ..events import event_record

    records = [event_record(e, dose_unit) for e in events]
    if since is not None:
        cutoff = since.timestamp()
        records = [r for r, e in zip(records, events) if e["time"] >= cutoff]
    if types:
        wanted = {t.lower() for t in types}
        records = [r for r in records if r["type"] in wanted]
    if priority:
        records = [r for r in records if r["priority"] in priority]
    if limit:
        records = records[-limit:]
    result = {
        "serial_number": status["serial_number"],
        "emulated": status["emulated"],
        "oldest_index": oldest,
        "event_count": status["event_count"],
        "events": records,
        "read_at": status["read_at"],
    }
    app.emit(result, _render)


def _render(obj: dict) -> None:
    from rich.table import Table

    from ..output import console, fmt_date

    title = f"Event log of {obj['serial_number']}" + ("  EMULATED" if obj["emulated"] else "")
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Pump time")
    table.add_column("Priority")
    table.add_column("Event")
    colour = {"high": "bold red", "medium": "yellow", "low": "cyan", "none": "dim"}
    for r in obj["events"]:
        table.add_row(str(r["index"]), fmt_date(r["time"]),
                      f"[{colour[r['priority']]}]{r['priority']}[/]", r["description"])
    con = console()
    con.print(table)
    if obj["oldest_index"] > 0:
        con.print(f"Events before #{obj['oldest_index']} have been overwritten in the pump's memory.")
    if not obj["events"]:
        con.print("No matching events.")
