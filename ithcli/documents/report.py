"""The session report as a document, from the data `report --json` prints."""
from __future__ import annotations

from typing import Any

from ..catheter_ops import catheter_text
from ..output import fmt_date, fmt_dates_note, fmt_pump_clock
from ..ptm import ptm_text, use_text
from ..report_read import described
from ..status import replace_by_warning
from .html import Markup, alert, badge, join, key_values, ml, nowrap, page, quantity, table, tag, text
from .pump import identity_rows, notice, running_head, when

#: the rows of a change's before/after table, in order; any other field the data holds follows them
_FIELDS = (("Mode", "mode"), ("Drug", "drug"), ("Concentration", "concentration"), ("24-hour total", "daily_dose"),
           ("Flow", "flow_ml_per_day"), ("Steps", "steps"), ("Reservoir", "reservoir_ml"),
           ("Bolus running", "bolus_remaining"), ("MRI mode", "mri_mode"), ("Patient boluses", "patient_boluses"),
           ("Catheter", "catheter"), ("Patient", "patient"), ("Pump clock", "pump_time"))
#: fields of a before/after shown elsewhere (the change's txid) or only for the write that sets them
_NOT_ROWS = {"last_txid"}
_ONLY_FOR = {"patient": "patient", "pump_time": "clock"}


def report_html(d: dict, *, operator: str | None = None, paper: str | None = None) -> str:
    """The report for the patient's chart: header, settings, changes, alarms, checklists, events, sign-off."""
    serial, s = d["serial_number"], d["status"]
    session = d["session"]
    span = (f"{session['rule']}: {fmt_date(session['since'])} to "
            f"{fmt_date(session['until']) if session['until'] else 'now'}")
    body = [notice(bool(s and s.get("emulated"))),
            tag("h1", f"Session report: pump {serial}"),
            _header(d, span)]
    body += _settings(d) + _changes(d) + _alarms(d) + _clock_and_patient(d) + _checklists(d) + _events(d)
    body.append(_signoff(operator))
    return page(title=f"Session report {serial}", running_head=running_head("Session report", serial, s),
                running_foot=f"Session {span} \u00b7 generated {fmt_date(d['generated_at'])}",
                body=body, paper=paper)


def _header(d: dict, span: str) -> Markup:
    session, log = d["session"], d["audit_log"]
    rows: list[tuple[Any, Any]] = identity_rows(d["serial_number"], d["status"])
    rows += [("Session", [span, " (this computer's clock); ", f"{session['entries']} audit entries"]),
             ("Operator(s)", ", ".join(session["operators"]) or "none"),
             ("Audit log", [log["path"], ": ", f"{described(log)}, hash chain intact" if log["intact"]
                            else badge("DAMAGED")]),
             ("Generated", when(d["generated_at"]))]
    parts = [key_values(rows)]
    if not log["intact"]:
        parts.append(alert(tag("strong", "AUDIT LOG DAMAGED: "), "; ".join(log["problems"]),
                           ". This report may be incomplete."))
    clock = d.get("pump_clock") or {}
    if clock.get("warning"):
        parts.append(alert(clock["warning"]))
    if d.get("times_note"):
        parts.append(tag("p", f"Note: {d['times_note']}.", cls="muted"))
    return join(parts)


def _settings(d: dict) -> list:
    s, src = d["status"], d["status_source"]
    heading = tag("h2", "Identity and settings")
    if s is None:
        return [heading, alert("No status read from this pump in the audit log: run the report with --port.")]
    where = (f"read from the pump at {fmt_date(src['read_at'])}" if src["from"] == "pump"
             else f"last status in the audit log, read at {fmt_date(src['read_at'])}")
    source: list = [where]
    if src.get("stale"):
        source = [badge("STALE"), f" ({src['age_s']} s old): ", where]
    b = s["battery"]
    replace: list = [when(b["replace_by"], with_time=False)]
    if b["replace_by_mismatch"]:
        replace += [" ", badge("MISMATCH"), " ERI + 90 days is ", when(b["replace_by_computed"], with_time=False)]
    last = s["last_programming"]
    rows: list[tuple[Any, Any]] = [
        ("Source", source),
        ("Pump clock", fmt_pump_clock(d["pump_clock"])),
        ("Dates", fmt_dates_note(d["pump_clock"])),
        # the pump, its drug and the patient head the report (identity_rows), from this same status
        ("Mode", s["mode"]),
        ("Daily dose", [quantity(s["daily_dose"]), " (24-hour total), ",
                        nowrap(f"{text(s['flow_ml_per_day'])} mL/day")]),
        ("Reservoir", [ml(s["reservoir_ml"]), " of ", ml(s["reservoir_capacity_ml"]), " (alarm at ",
                       ml(s["low_reservoir_alarm_ml"]), ")"]),
        ("Low-reservoir alarm", [when(s["projected_low_reservoir_date"]), " (24-hour average flow)"]),
        ("Battery", [f"{b['state'].upper()} ", nowrap(f"{b['percent']} %"), "  ERI ",
                     when(b["eri_date"], with_time=False)]),
        ("Replace by", replace),
        ("Alarms now", join([[badge(a["priority"]), " ", a["name"].replace("_", " ")] for a in s["alarms"]], ", ")
         if s["alarms"] else "none"),
        ("MRI mode", s["mri_mode"].upper()),
    ]
    if "ptm" in s:
        rows.append(("Patient boluses", f"{ptm_text(s['ptm'])}; {use_text(s['ptm'])}"))
    if s.get("catheter"):
        rows.append(("Catheter", catheter_text(s["catheter"])))
    rows.append(("Last programming", [f"txid {last['txid']} at ", when(last["at"])] if last["txid"] else "none"))
    parts = [heading, key_values(rows)]
    warning = replace_by_warning(b)
    if warning:
        parts.append(alert(warning))
    return parts


def _changes(d: dict) -> list:
    parts: list = [tag("h2", "Changes in this session")]
    if not d["changes"]:
        return parts + [tag("p", "None.")]
    for n, c in enumerate(d["changes"], start=1):
        parts.append(tag("section", _change(n, c), cls="change"))
    return parts


def _change(n: int, c: dict) -> list:
    verified = c["outcome"] == "verified"  # anything else (verify FAILED, unconfirmed, refused...) in red
    caption = [f"Change {n}: {c['command']} at ", when(c["time"]), f" by {c['operator']}, txid {c['txid']}: ",
               badge(c["outcome"], "pass" if verified else "bad")]
    rows = []
    for label, key in _rows(c):
        before, after = _field(c["before"], key), _field(c["after"], key)
        if before == "-" and after == "-":
            continue
        rows.append([label, before, tag("span", after, cls="changed") if after != before else after])
    parts: list = [table(["", "Before", "After"], rows, caption=caption, widths=["22%", "39%", "39%"])]
    if c["request"]:
        parts.append(tag("p", "Requested: ", join([[k.replace("_", " "), " ", _value(v)]
                                                   for k, v in c["request"].items()], ", ")))
    for note in c["overrides"]:
        parts.append(tag("p", _override(note)))
    if c["differences"]:
        parts.append(alert(tag("strong", "Read-back differences: "), "; ".join(c["differences"])))
    return parts


def _rows(c: dict) -> list[tuple[str, str]]:
    """The before/after rows for this change: the known fields in order, then any others the data holds."""
    keys = {k for view in (c["before"], c["after"]) if view for k in view}
    known = [(label, key) for label, key in _FIELDS if _ONLY_FOR.get(key, c["command"]) == c["command"]]
    named = {key for _, key in _FIELDS}
    others = [(k.replace("_", " ").capitalize(), k) for k in sorted(keys - named - _NOT_ROWS)]
    return known + others


def _override(note: dict) -> list:
    event = note["event"]
    if event == "soft-limit-override":
        return [tag("strong", "Soft limit overridden"), f": reason: {note['reason']}"]
    if event == "order":
        return [f"Order {note['order_id']} by {note['prescriber']} (file SHA-256 {str(note['order_sha256'])[:16]}...)"]
    if event == "double-check":
        return [f"Double-checked by {note['verified_by_name']} ({note['verified_by']}) at {note['verified_at']}, "
                f"asked for by {note['requested_by']}"]
    return [tag("strong", "Confirmed"), f": {', '.join(note.get('flags') or [])}"]


def _alarms(d: dict) -> list:
    parts: list = [tag("h2", "Alarms")]
    log = d["pump_alarm_log"]
    if log is not None:
        if log:
            parts.append(table(["Time", "Priority", "Event"],
                               [[when(e["time"]), badge(e["priority"]), e["description"]] for e in log],
                               caption="In the pump's log during the session", widths=["30%", "14%", "56%"]))
        else:
            parts.append(tag("p", "In the pump's log during the session: none."))
    if d["alarms_seen"]:
        parts.append(table(["Priority", "Alarm", "First seen", "Last seen"],
                           [[badge(a["priority"]), a["name"].replace("_", " "), when(a["first_seen"]),
                             when(a["last_seen"])] for a in d["alarms_seen"]],
                           caption="Active when the pump was read (audit log)", widths=["14%", "30%", "28%", "28%"]))
    elif log is None:
        parts.append(tag("p", "Active when the pump was read in this session: none."))
    return parts


def _clock_and_patient(d: dict) -> list:
    found = d.get("pump_clock_and_patient_log")
    if found is None:  # not read live
        return []
    heading = tag("h2", "Clock sets and patient activations in the pump's log")
    if not found:
        return [heading, tag("p", "None during the session.")]
    return [heading, table(["Time", "Event"], [[when(e["time"]), e["description"]] for e in found],
                           widths=["30%", "70%"])]


def _checklists(d: dict) -> list:
    if not d["checklists"]:
        return []
    parts: list = [tag("h2", "MRI checklists and verifications")]
    for c in d["checklists"]:
        name = "Pre-MRI checklist" if c["check"] == "mri-checklist" else "Post-MRI verification"
        parts.append(table(["Result", "Item", "Finding"],
                           [[badge(line.get("result")), line.get("item"), line.get("detail")] for line in c["lines"]],
                           caption=[f"{name} at ", when(c["time"]), f" by {c['operator']}: ", badge(c["result"])],
                           widths=["12%", "28%", "60%"]))
    return parts


def _events(d: dict) -> list:
    if not d["events"]:
        return []
    rows = [[when(e["time"]), e["event"], e["operator"],
             ", ".join(f"{k} {_plain(v)}" for k, v in e.items() if k not in ("time", "event", "operator"))]
            for e in d["events"]]
    return [tag("h2", "Other events"), table(["Time", "Event", "Operator", "Detail"], rows,
                                             widths=["24%", "18%", "16%", "42%"])]


def _signoff(operator: str | None) -> Markup:
    """Lines for the clinician who files the report to sign."""
    return tag("section", tag("h2", "Reviewed"), key_values([
        ("Printed by (operator)", operator or ""), ("Reviewed by (name)", ""), ("Signature", ""), ("Date", "")]),
        cls="signoff")


def _plain(v: Any) -> str:
    if isinstance(v, dict) and "value" in v:
        return f"{text(v['value'])} {v.get('unit', '')}".strip()
    if isinstance(v, (list, tuple)):
        return "; ".join(_plain(x) for x in v)
    return text(v)


def _value(v: Any) -> Markup:
    return quantity(v) if isinstance(v, dict) and "value" in v else tag("span", _plain(v))


def _field(view: dict | None, key: str) -> str:
    """One cell of a before/after table, as text (equal text: unchanged)."""
    if not view or key not in view or view[key] is None:
        return "-"
    v = view[key]
    if key == "steps":
        return ", ".join(f"{s['start']} {_plain(s['dose'])}" for s in v) or "none"
    if key == "flow_ml_per_day":
        return f"{text(v)} mL/day"
    if key == "reservoir_ml":
        return f"{text(v)} mL"
    return _plain(v)
