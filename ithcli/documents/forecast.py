"""The refill forecast as a document (the chart and its figures), from the data `forecast --json` prints."""
from __future__ import annotations

from typing import Any

from ..output import fmt_date, fmt_dates_note, fmt_pump_clock
from ..status import replace_by_warning
from .chart import forecast_svg
from .html import Markup, alert, key_values, ml, nowrap, page, quantity, table, tag, text
from .pump import notice, when


def forecast_html(r: dict, *, paper: str | None = None) -> str:
    """The forecast for the chart: which pump, the key dates, the warnings, the chart, the schedule."""
    serial = r["serial_number"]
    dose = [quantity(r["daily_dose"]), " (24-hour total), ", nowrap(f"{text(r['flow_ml_per_day'])} mL/day")]
    alarm: Any = ("ACTIVE now" if r["low_reservoir_alarm_active"] else
                  when(r["low_reservoir_alarm_date"]) if r["low_reservoir_alarm_date"] else "not within the forecast")
    rows: list[tuple[Any, Any]] = [
        ("Pump", serial), ("Drug", r["drug"]), ("Mode", r["mode"]), ("Daily dose", dose),
        ("Now", [ml(r["reservoir_ml"]), " of ", ml(r["reservoir_capacity_ml"]), ", read ", when(r["read_at"]),
                 " (this computer's clock)"]),
        ("Pump clock", fmt_pump_clock(r["pump_clock"])),
        ("Dates", fmt_dates_note(r["pump_clock"])),
        ("Low-reservoir alarm", [alarm, " (at ", ml(r["low_reservoir_alarm_ml"]), ")"]),
        ("Empty", when(r["empty_date"]) if r["empty_date"] else "not within the forecast"),
    ]
    if r["next_visit"]:
        rows.append(("Next visit", when(r["next_visit"], with_time=False)))
    average = r["average_flow_projection"]
    rows.append(("At the 24-hour average flow", ["alarm ", when(average["low_reservoir_date"]), ", empty ",
                                                 when(average["empty_date"])]))
    body: list = [notice(bool(r["emulated"])), tag("h1", f"Refill forecast: pump {serial}"), key_values(rows)]
    clock = r.get("pump_clock") or {}
    if clock.get("warning"):
        body.append(alert(clock["warning"]))
    body += [alert(tag("strong", "WARNING: "), w) for w in r["warnings"]]
    warning = replace_by_warning(r["battery"])
    if warning:
        body.append(alert(warning))
    body.append(tag("figure", Markup(forecast_svg(r, standalone=False)),
                    tag("figcaption", "The reservoir over time, following the pump's program step by step, "
                                      "from the volume the pump reports.")))
    if r["steps"]:
        body += [tag("h2", "Schedule"), table(["Start (pump time)", "Dose", "Rate"],
                                              [[s["start"], quantity(s["dose"]), nowrap(
                                                  f"{text(s['rate_ml_per_day'])} mL/day")] for s in r["steps"]],
                                              widths=["30%", "35%", "35%"])]
    body += [tag("h2", "Assumptions"), tag("ul", [tag("li", a) for a in r["assumptions"]])]
    return page(title=f"Refill forecast {serial}",
                running_head=f"Refill forecast \u00b7 pump {serial} \u00b7 {r['drug']}",
                running_foot=f"Read {fmt_date(r['read_at'])}", body=body, paper=paper)
