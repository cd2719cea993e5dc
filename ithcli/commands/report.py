"""`ithcli report`: a session report for the patient's chart, from the audit log."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from .. import documents
from ..catheter_ops import catheter_text
from ..errors import UsageError
from ..localtime import describe as zone_described
from ..localtime import fmt_time, zone
from ..output import export as terminal_export
from ..patient import patient_text
from ..ptm import ptm_text, use_text
from ..report_read import described as audit_described
from ..report_read import read as read_audit
from ._params import When, in_zone

if TYPE_CHECKING:
    from protocol.bodies import Event


@click.command()
@click.option("--since", type=When(), metavar="DATETIME",
              help="Session start (ISO date or date-time on this computer's clock, in the --tz zone unless it "
                   "gives its offset). Default: today 00:00 in the --tz zone (this computer's local zone).")
@click.option("--hours", type=click.FloatRange(0.01, 24 * 366), metavar="N",
              help="Session = the last N hours (instead of --since).")
@click.option("--until", type=When(end_of_day=True), metavar="DATETIME",
              help="Session end (default: now; a bare date includes that whole day).")
@click.option("--pump", "pump_serial", metavar="SERIAL", help="The pump to report on, from a shared audit log.")
@click.option("--export", "export_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the report for the chart: a document (.html, .pdf: needs Chromium), the "
                   "terminal's rendering (.svg, .txt) or a FHIR R4 Bundle (.fhir.json: needs the fhir extra).")
@click.option("--format", "out_format", type=click.Choice(["report", "fhir"]), default="report", show_default=True,
              help="With --json: the report's data, or the same session as a FHIR R4 Bundle (docs/fhir.md).")
@click.option("--stale-after", type=click.FloatRange(0, 10 * 86_400), default=300.0, show_default=True,
              metavar="SECONDS", help="Settings read longer ago than this are marked STALE.")
@click.pass_obj
def report(app, since, hours, until, pump_serial, export_path, out_format, stale_after):
    """Who, what and when for one pump's session: identity, settings, every change with
    before and after, alarms and checklists, from the hash-chained audit log.

    With --port, the settings and the alarm log are read from the pump now;
    otherwise the settings are the last status in the audit log, marked STALE when old.
    """
    from .. import report as logic
    from ..status import iso

    export = documents.check(export_path, documents.REPORT) if export_path else None  # before the pump is read
    if out_format == "fhir" and not app.json:
        raise UsageError("--format fhir writes JSON: give --json (ithcli --json report --format fhir)")
    if out_format == "fhir" or (export is not None and export.suffix == documents.FHIR):
        _fhir_models()  # the extra installed, before the pump is read
    now = time.time()
    start, end, session_rule = _session_span(now, since, hours, until)
    live = events = None
    pump = app.session()
    if app.port:
        live = pump.interrogate()
        if pump_serial and pump_serial != pump.serial:
            raise UsageError(f"--pump {pump_serial} but the pump on {app.port} is {pump.serial}")
        _, events = pump.client().read_whole_log(0)
    audit = app.records.audit
    # the session's days only, one line at a time: checked, and only what the session needs kept
    records, log_serials, audit_info = read_audit(audit, since=start, until=end,
                                                  serial=pump_serial or (pump.serial if app.port else None))
    session = logic.session_records(records, since=start, until=end, serial=None)
    serial = logic.choose_serial(session, pump_serial, pump.serial if app.port else None,
                                 log_serials=log_serials, log_path=str(audit.path))
    # one skew for every pump timestamp in the report: the live read's, else the audit log's last
    data = logic.build(records, serial=serial, since=start, until=end, library=pump.library,
                       skew_s=live["clock_skew_s"] if live is not None else None)
    data["session"]["rule"] = session_rule
    pump_alarms = _pump_alarms(live, events, data["first_event_index"], start, end) if live is not None else None
    data["audit_log"] = audit_info
    if live is not None:
        data["status"] = live
        data["status_source"] = {"from": "pump", "read_at": live["read_at"]}
        data["pump_clock"] = live["pump_clock"]
    source = data["status_source"]
    if source is not None:
        read_at = logic.entry_time({"time": source["read_at"]}) or 0
        age = max(0, int(now) - read_at)
        source |= {"age_s": age, "stale": age > stale_after}
    data["pump_alarm_log"] = pump_alarms
    # patient activations granted and refused, and clock sets, in the session's part of the pump's log
    data["pump_clock_and_patient_log"] = (_pump_alarms(live, events, data["first_event_index"], start, end,
                                                       types=CLOCK_AND_PATIENT) if live is not None else None)
    data["generated_at"] = iso(int(now))
    if export is not None:
        _export(data, export, app.settings.operator)
        data["exported_to"] = export_path
    if out_format == "fhir":
        _warn_clock(data)  # the bundle has no pump_clock for emit() to warn about
        app.emit(_fhir_bundle(data), _show)
        return
    app.emit(data, _show)


def _fhir_models() -> None:
    """The FHIR models (the optional extra `fhir`), or a one-line usage error saying how to get them."""
    try:
        import fhir.resources.R4B.bundle  # noqa: F401
    except ImportError:
        raise UsageError("a FHIR bundle needs the fhir extra: pip install 'ithcli[fhir]' "
                         "(pip install -e '.[fhir]' in a checkout)") from None


def _fhir_bundle(data: dict) -> dict:
    from .. import fhir  # pydantic and the models: only when a bundle is asked for

    return fhir.bundle(data, last_hash=fhir.last_hash(data["audit_log"]["path"]))


def _warn_clock(data: dict) -> None:
    import logging

    clock = data.get("pump_clock")
    if isinstance(clock, dict) and clock.get("warning"):
        logging.getLogger("ithcli.app").warning("warning: %s", clock["warning"])


def _session_span(now: float, since, hours, until) -> tuple[int, int | None, str]:
    """The session's start and end (None: now) on this computer's clock, and how it was chosen:
    "today" is the day of the zone people read (--tz, else this computer's), from its midnight."""
    since, until = in_zone(since), in_zone(until)
    if since is not None and hours is not None:
        raise UsageError("give --since or --hours, not both")
    if hours is not None:
        start = int(now - hours * 3600)
        session_rule = f"the last {hours:g} h"
    elif since is not None:
        start = int(since.timestamp())
        session_rule = f"since {fmt_time(start)}"
    else:
        start = zone().day_start(now)
        session_rule = f"today ({zone_described()})"
    end = int(until.timestamp()) if until is not None else None
    if end is not None and end <= start:
        raise UsageError("--until must be after the session start")
    return start, end, session_rule


def _pump_alarms(live: dict, events, first: int | None, start: int, end: int | None,
                 types: tuple[str, ...] = ("ALARM_RAISED", "ALARM_CLEARED")) -> list[dict]:
    """The alarms raised and cleared (or the events of `types`) in the session's part of the pump's
    log; times before a CLOCK_SET moved by its step onto the pump's clock as it is now."""
    from ..calendar import iso, to_calendar
    from ..history import on_current_clock
    from ..status import event_view

    # the session's part of the pump's log: from its index at the session's first read (pump
    # clocks may be far from this computer's); without one, by its time on this computer's
    # calendar (moved by the skew measured now) against the session
    skew = live["clock_skew_s"]

    def in_session(e: Event) -> bool:
        if first is not None:
            return e.index >= first
        when = to_calendar(e.time, skew) or 0
        return when >= start and (end is None or when < end)

    return [event_view(moved, live["daily_dose"]["unit"], skew) | {"pump_time": iso(e.time)}
            for e, moved in zip(events, on_current_clock(events), strict=True)
            if e.type.name in types and in_session(moved)]


def _show(data: dict) -> None:
    from ..output import console

    con = console()
    for part in _parts(data):
        con.print(part)


def _export(data: dict, export: documents.Export, operator: str | None) -> None:
    """A document from the report's data (.html, .pdf), else the terminal's rendering (.svg, .txt)."""
    if export.suffix == documents.FHIR:
        from ..output import to_json

        export.write_json(to_json(_fhir_bundle(data)) + "\n")
    elif export.is_document():
        export.write_document(lambda paper: documents.report_html(data, operator=operator, paper=paper))
    else:
        terminal_export(_parts(data), export.path, f"Session report {data['serial_number']}")


_COLOUR = {"high": "bold red", "medium": "yellow", "low": "cyan"}
_RESULT = {"PASS": "green", "WARN": "yellow", "BLOCK": "bold red", "FAIL": "bold red"}


def _parts(d: dict) -> list:
    """The report for people, in order: what it covers, the settings, the changes, the alarms,
    the checklists and other events."""
    return _header(d) + _settings(d) + _changes(d) + _alarms(d) + _clock_and_patient(d) + _checklists_and_events(d)


CLOCK_AND_PATIENT = ("CLOCK_SET", "PTM_GRANTED", "PTM_REFUSED")


def _clock_and_patient(d: dict) -> list:
    """Clock sets and patient activations in the pump's log during the session (read live)."""
    from ..output import fmt_date

    found = d.get("pump_clock_and_patient_log")
    if not found:
        return [] if found is None else ["Clock sets and patient activations in the pump's log: none."]
    return ["[bold]Clock sets and patient activations in the pump's log during the session[/]"] + [
        f"  {fmt_date(e['time'])}: {e['description']}" for e in found]


def _header(d: dict) -> list:
    from ..output import clock_warning_lines, fmt_date

    parts: list = []
    s = d["status"]
    session = d["session"]
    title = f"Session report: pump {d['serial_number']}"
    if s and s.get("emulated"):
        title += "  EMULATED"
    parts.append(f"[bold]{title}[/]")
    parts.append(f"Session: {session['rule']}: {fmt_date(session['since'])} to "
                 f"{fmt_date(session['until']) if session['until'] else 'now'} (this computer's clock); "
                 f"{session['entries']} audit entries; operator(s): {', '.join(session['operators']) or 'none'}")
    log = d["audit_log"]
    if log["intact"]:
        parts.append(f"Audit log {log['path']}: {audit_described(log)}, hash chain intact.")
    else:
        parts.append(f"[bold red]AUDIT LOG DAMAGED[/] ({log['path']}): " + "; ".join(log["problems"])
                     + ". This report may be incomplete.")
    parts.append(f"Generated {fmt_date(d['generated_at'])}. Not a cleared medical device: emulated data only.")
    # the pump's clock, before any of its dates: audit times are this computer's clock already
    parts.extend(clock_warning_lines(d["pump_clock"]))
    if d["times_note"]:
        parts.append(f"Note: {d['times_note']}.")
    return parts


def _settings(d: dict) -> list:
    """Identity and settings: the status shown, where it came from, and the replace-by warning."""
    from ..status import replace_by_warning

    s = d["status"]
    if s is None:
        return ["[bold red]Settings: no status read from this pump in the audit log[/]; run with --port."]
    parts: list = [_settings_grid(d)]
    warning = replace_by_warning(s["battery"])
    if warning:
        parts.append(f"[bold red]{warning}[/]")
    return parts


def _settings_grid(d: dict):
    from rich.table import Table

    from ..output import fmt_date, fmt_dates_note, fmt_pump_clock, fmt_quantity

    s, src = d["status"], d["status_source"]
    grid = Table(title="Identity and settings", title_justify="left", show_header=False)
    grid.add_column(style="bold")
    grid.add_column()
    if src["from"] == "pump":
        where = f"read from the pump at {fmt_date(src['read_at'])}"
    else:
        where = f"last status in the audit log, read at {fmt_date(src['read_at'])}"
    if src["stale"]:
        where = f"[bold red]STALE ({src['age_s']} s old)[/]: " + where
    grid.add_row("Source", where)
    grid.add_row("Pump clock", fmt_pump_clock(d["pump_clock"]))
    grid.add_row("Dates", fmt_dates_note(d["pump_clock"]))
    grid.add_row("Pump", f"{s['serial_number']}  {s['model']} ({s['design']})  firmware {s['firmware']}")
    if "patient" in s:  # an audit entry from before protocol version 5 has none
        grid.add_row("Patient", patient_text(s["patient"]))
    grid.add_row("Drug", f"{s['drug']}  {fmt_quantity(s['concentration'])}")
    grid.add_row("Mode", s["mode"])
    grid.add_row("Daily dose", f"{fmt_quantity(s['daily_dose'])} (24-hour total), "
                               f"{format(s['flow_ml_per_day'], 'f')} mL/day")
    grid.add_row("Reservoir", f"{format(s['reservoir_ml'], 'f')} mL of {format(s['reservoir_capacity_ml'], 'f')} "
                              f"mL (alarm at {format(s['low_reservoir_alarm_ml'], 'f')} mL)")
    grid.add_row("Low-reservoir alarm", f"{fmt_date(s['projected_low_reservoir_date'])} (24-hour average flow)")
    b = s["battery"]
    replace = fmt_date(b["replace_by"], with_time=False)
    if b["replace_by_mismatch"]:
        replace = (f"[bold red]{replace}  MISMATCH: ERI + 90 days is "
                   f"{fmt_date(b['replace_by_computed'], with_time=False)}[/]")
    grid.add_row("Battery",
                 f"{b['state'].upper()} {b['percent']} %  ERI {fmt_date(b['eri_date'], with_time=False)}")
    grid.add_row("Replace by", replace)
    grid.add_row("Alarms now", ", ".join(f"[{_COLOUR[a['priority']]}]{a['priority'].upper()}[/] "
                                         f"{a['name'].replace('_', ' ')}" for a in s["alarms"]) or "none")
    grid.add_row("MRI mode", s["mri_mode"].upper())
    if "ptm" in s:
        grid.add_row("Patient boluses", f"{ptm_text(s['ptm'])}; {use_text(s['ptm'])}")
    if s.get("catheter"):
        grid.add_row("Catheter", catheter_text(s["catheter"]))
    last = s["last_programming"]
    grid.add_row("Last programming", f"txid {last['txid']} at {fmt_date(last['at'])}" if last["txid"] else "none")
    return grid


def _changes(d: dict) -> list:
    """Each change: its before/after table, what was asked, overrides, read-back differences."""
    from ..output import fmt_date

    if not d["changes"]:
        return ["Changes in this session: none."]
    parts: list = []
    for n, c in enumerate(d["changes"], start=1):
        parts.append(_change_table(n, c))
        req = c["request"]
        if req:
            parts.append("  Requested: " + ", ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in req.items()))
        for note in c["overrides"]:
            if note["event"] == "soft-limit-override":
                parts.append(f"  [red]Soft limit overridden[/]: reason: {note['reason']}")
            elif note["event"] == "order":
                parts.append(f"  Order {note['order_id']} by {note['prescriber']} (file SHA-256 "
                             f"{str(note['order_sha256'])[:16]}...)")
            elif note["event"] == "double-check":
                parts.append(f"  Double-checked by {note['verified_by_name']} ({note['verified_by']}) at "
                             f"{fmt_date(note['verified_at'])}, asked for by {note['requested_by']}")
            else:
                parts.append(f"  [red]Confirmed[/]: {', '.join(note.get('flags') or [])}")
        if c["differences"]:
            parts.append("  [bold red]Read-back differences[/]: " + "; ".join(c["differences"]))
    return parts


def _change_table(n: int, c: dict):
    from rich.table import Table

    from ..output import fmt_date

    colour = "green" if c["outcome"] == "verified" else "bold red"
    table = Table(title=f"Change {n}: {c['command']} at {fmt_date(c['time'])} by {c['operator']}, txid "
                        f"{c['txid']}: [{colour}]{c['outcome'].upper()}[/]", title_justify="left")
    table.add_column("")
    table.add_column("Before")
    table.add_column("After")
    for label, key in (("Mode", "mode"), ("Drug", "drug"), ("Concentration", "concentration"),
                       ("24-hour total", "daily_dose"), ("Flow", "flow_ml_per_day"), ("Steps", "steps"),
                       ("Reservoir", "reservoir_ml"), ("Bolus running", "bolus_remaining"),
                       ("MRI mode", "mri_mode"), ("Patient boluses", "patient_boluses"), ("Catheter", "catheter"),
                       *((("Patient", "patient"),) if c["command"] == "patient" else ()),
                       *((("Pump clock", "pump_time"),) if c["command"] == "clock" else ())):
        before, after = _field(c["before"], key), _field(c["after"], key)
        if before == "-" and after == "-":
            continue
        table.add_row(label, before, f"[bold]{after}[/]" if after != before else after)
    return table


def _alarms(d: dict) -> list:
    """The alarms in the pump's log (read live), and those active at the status reads (audit log)."""
    from rich.table import Table

    from ..output import fmt_date

    parts: list = []
    if d["pump_alarm_log"] is not None:
        if d["pump_alarm_log"]:
            table = Table(title="Alarms in the pump's log during the session", title_justify="left")
            table.add_column("Time", no_wrap=True)  # a time is one token, with its zone (--tz)
            table.add_column("Priority")
            table.add_column("Event")
            for e in d["pump_alarm_log"]:
                table.add_row(fmt_date(e["time"]), f"[{_COLOUR.get(e['priority'], 'dim')}]{e['priority'].upper()}[/]",
                              e["description"])
            parts.append(table)
        else:
            parts.append("Alarms in the pump's log during the session: none.")
    if d["alarms_seen"]:
        table = Table(title="Alarms active when the pump was read (audit log)", title_justify="left")
        table.add_column("Priority")
        table.add_column("Alarm")
        table.add_column("First seen", no_wrap=True)
        table.add_column("Last seen", no_wrap=True)
        for a in d["alarms_seen"]:
            table.add_row(f"[{_COLOUR[a['priority']]}]{a['priority'].upper()}[/]", a["name"].replace("_", " "),
                          fmt_date(a["first_seen"]), fmt_date(a["last_seen"]))
        parts.append(table)
    elif d["pump_alarm_log"] is None:
        parts.append("Alarms active when the pump was read in this session: none.")
    return parts


def _checklists_and_events(d: dict) -> list:
    from rich.table import Table

    from ..output import fmt_date

    parts: list = []
    for c in d["checklists"]:
        name = "Pre-MRI checklist" if c["check"] == "mri-checklist" else "Post-MRI verification"
        table = Table(title=f"{name} at {fmt_date(c['time'])} by {c['operator']}: "
                            f"[{_RESULT.get(c['result'], 'bold')}]{c['result']}[/]", title_justify="left")
        table.add_column("Result")
        table.add_column("Item")
        table.add_column("Finding")
        for line in c["lines"]:
            table.add_row(f"[{_RESULT.get(line.get('result'), 'bold')}]{line.get('result')}[/]", str(line.get("item")),
                          str(line.get("detail")))
        parts.append(table)
    for e in d["events"]:
        detail = ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("time", "event", "operator"))
        parts.append(f"{fmt_date(e['time'])}: [bold]{e['event']}[/] by {e['operator']}: {detail}")
    return parts


def _value(v) -> str:
    from ..output import fmt_quantity

    if isinstance(v, dict) and "value" in v:
        return fmt_quantity(v)
    return format(v, "f") if hasattr(v, "as_tuple") else str(v)


def _field(view: dict | None, key: str) -> str:
    from ..output import fmt_date, fmt_quantity

    if not view or key not in view or view[key] is None:
        return "-"
    v = view[key]
    if key == "steps":
        return ", ".join(f"{s['start']} {fmt_quantity(s['dose'])}" for s in v) or "none"
    if key == "flow_ml_per_day":
        return f"{format(v, 'f')} mL/day"
    if key == "reservoir_ml":
        return f"{format(v, 'f')} mL"
    if key == "pump_time":
        return fmt_date(v)  # the clock set: in the zone people read
    if isinstance(v, dict):
        return fmt_quantity(v)
    return str(v)
