"""`ithcli log`: the pump's event log, decoded and filtered."""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import click

from ._params import When, in_zone

if TYPE_CHECKING:
    from protocol.bodies import Event

ALARM_TYPES = ("alarm_raised", "alarm_cleared")
#: the routine events a pump logs coalesced (docs/protocol.md, "Routine events and the log"): shown
#: folded into one line per stream unless --all, or --type naming them; --json keeps every one
ROUTINE_TYPES = ("session_opened", "auth_failure")
PRIORITIES = ("high", "medium", "low", "none")


@click.command()
@click.option("--since", type=When(),
              help="Only events at or after this time (ISO date or date-time on this computer's calendar, in "
                   "the --tz zone as the times are shown unless it gives its offset).")
@click.option("--until", type=When(end_of_day=True),
              help="Only events before this time (as --since; a bare date includes that whole day).")
@click.option("--alarms", "alarms_only", is_flag=True,
              help="Only alarms (raised and cleared), with their IEC 60601-1-8 priority.")
@click.option("--type", "types", multiple=True, metavar="TYPE",
              help="Only events of this type (e.g. alarm_raised, motor_stall); repeatable.")
@click.option("--priority", type=click.Choice(PRIORITIES), multiple=True,
              help="Only events of this IEC 60601-1-8 priority; repeatable.")
@click.option("--limit", type=click.IntRange(1), help="Only the newest N matching events.")
@click.option("--all", "show_all", is_flag=True,
              help="Show every routine event (sessions opened, authentication failures) on its own line "
                   "instead of one summary line per stream (--json always lists each).")
@click.pass_obj
def log(app, since, until, alarms_only, types, priority, limit, show_all):
    """Read and decode the pump's event log (alarms, programming, refills, stalls...).

    Event times are on this computer's calendar, shown in the --tz zone (JSON: UTC): the
    pump's stamps moved by its clock's skew, measured once at this session's status read
    ("pump_time": the stamp as logged).
    """
    from protocol import EventType

    known = {t.name.lower() for t in EventType}
    for t in types:
        if t.lower() not in known:
            raise click.BadParameter(f"unknown event type {t!r}; known: {', '.join(sorted(known))}",
                                     param_hint="--type")
    since, until = in_zone(since), in_zone(until)  # a date-time without an offset: the --tz zone's
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    from ..calendar import iso, log_note, to_calendar
    from ..clock import clock_sets
    from ..history import on_current_clock
    from ..status import event_view

    session = app.session()
    status = session.interrogate()
    oldest, events = session.client().read_whole_log(0)
    dose_unit = status["daily_dose"]["unit"]
    skew = status["clock_skew_s"]  # one skew for the whole log: measured at this session's read
    # the stamps before each CLOCK_SET moved by its step onto the pump's clock as it is now
    pairs = list(zip(events, on_current_clock(events), strict=True))
    sets = clock_sets(pairs)

    def when(pair: tuple[Event, Event]) -> int:
        return to_calendar(pair[1].time, skew) or 0

    if since is not None:
        pairs = [p for p in pairs if when(p) >= since.timestamp()]
    if until is not None:
        pairs = [p for p in pairs if when(p) < until.timestamp()]
    records = _selected([event_view(moved, dose_unit, skew) | {"pump_time": iso(logged.time)}
                         for logged, moved in pairs], types, alarms_only, priority, limit)
    result = {
        "serial_number": status["serial_number"],
        "emulated": status["emulated"],
        "oldest_index": oldest,
        "event_count": status["event_count"],
        "events": records,
        "read_at": status["read_at"],
        "pump_clock": status["pump_clock"],
        # what one skew for the whole log cannot know (null: the stamps were not moved)
        "times_note": log_note(skew),
        # the pump's clock was set: the events before each set are moved by its step ("pump_time": as logged)
        "clock_sets": sets,
    }
    # a person reads the therapy between the routine sessions: those fold, unless asked for
    fold = not show_all and not {t.lower() for t in types} & set(ROUTINE_TYPES)
    app.emit(result, partial(_render, fold=fold))


def fold_routine(records: list[dict], when=str) -> list[dict]:
    """`records` with each stream of routine events (SESSION_OPENED per role; AUTH_FAILURE) folded
    into one summary record, at the place of the stream's last event: "index" its first and last
    indexes, "time" its last, "folded" how many records it stands for. A stream of one record stays
    as it is. when: how the summary writes its first event's time (the table's date format)."""
    streams: dict[tuple, list[dict]] = {}
    for r in records:
        if r["type"] in ROUTINE_TYPES:
            streams.setdefault(_stream(r), []).append(r)
    last = {id(group[-1]): group for group in streams.values() if len(group) > 1}
    out = []
    for r in records:
        group = streams.get(_stream(r)) if r["type"] in ROUTINE_TYPES else None
        if group is None or len(group) == 1:
            out.append(r)
        elif id(r) in last:
            out.append(_summary(group, when))
    return out


def _stream(r: dict) -> tuple:
    """Session openings are counted per role (arg1), authentication failures as one stream."""
    return (r["type"], r["arg1"]) if r["type"] == "session_opened" else (r["type"],)


def _summary(group: list[dict], when) -> dict[str, Any]:
    from protocol import Role

    first, end = group[0], group[-1]
    if first["type"] == "session_opened":
        role = Role(first["arg1"]).name.lower() if first["arg1"] in Role._value2member_map_ else "other"
        total = sum(r["arg2"] or 1 for r in group)  # 0: a version-2 pump's single session
        what = f"{total} {role} sessions opened"
    else:
        total = sum(r["arg1"] for r in group)
        what = f"{total} authentication failure{'s' if total != 1 else ''}"
    return {"index": f"{first['index']}-{end['index']}", "time": end["time"], "type": first["type"],
            "priority": "none", "folded": len(group),
            "description": f"{what} in {len(group)} entries since {when(first['time'])} "
                           f"(folded: --all or --type {first['type']} lists each)"}


def _selected(records: list[dict], types, alarms_only: bool, priority, limit: int | None) -> list[dict]:
    """The records --type, --alarms, --priority and --limit keep."""
    if types:
        wanted = {t.lower() for t in types}
        records = [r for r in records if r["type"] in wanted]
    if alarms_only:
        records = [r for r in records if r["type"] in ALARM_TYPES]
    if priority:
        records = [r for r in records if r["priority"] in priority]
    return records[-limit:] if limit else records


def _render(obj: dict, fold: bool = False) -> None:
    from rich.table import Table

    from ..output import calendar_name, clock_warning_lines, console, fmt_date

    con = console()
    for line in clock_warning_lines(obj["pump_clock"]):
        con.print(line)
    title = f"Event log of {obj['serial_number']}" + ("  EMULATED" if obj["emulated"] else "")
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    # a time is one token with its zone: the last column a narrow terminal narrows
    table.add_column("Time", no_wrap=True)
    if obj["pump_clock"]["dates_shifted_s"]:
        table.caption, table.caption_justify = f"Times on {calendar_name()}, moved by the pump clock's skew", "left"
    table.add_column("Priority")
    table.add_column("Event")
    colour = {"high": "bold red", "medium": "yellow", "low": "cyan"}
    rows = fold_routine(obj["events"], fmt_date) if fold else obj["events"]
    for r in rows:
        # IEC 60601-1-8 alarm priorities in capitals; plain events have none
        shown = (f"[{colour[r['priority']]}]{r['priority'].upper()}[/]" if r["priority"] in colour
                 else "[dim]-[/]")
        table.add_row(str(r["index"]), fmt_date(r["time"]), shown, r["description"])
    con.print(table)
    if obj["times_note"]:
        con.print(f"Note: {obj['times_note']}.")
    if obj.get("clock_sets"):
        con.print(f"The pump's clock was set {len(obj['clock_sets'])} time(s) in this log: the events before "
                  "each set are shown moved by its step onto the clock as it is now.")
    if obj["oldest_index"] > 0:
        con.print(f"Events before #{obj['oldest_index']} have been overwritten in the pump's memory.")
    folded = [r for r in rows if "folded" in r]
    if folded:
        con.print(f"{sum(r['folded'] for r in folded)} routine entries (sessions opened, authentication failures) "
                  f"are folded into {len(folded)} line(s): ithcli log --all lists each.")
    if not obj["events"]:
        con.print("No matching events.")
