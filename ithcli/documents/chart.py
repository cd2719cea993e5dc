"""The refill forecast as an SVG chart, written by hand from the data `forecast --json` prints.

The reservoir over time (the forecast's own samples: the start, every midnight, the
alarm and the empty time), the low-reservoir alarm level, the alarm and empty points,
the next visit, and the time without therapy when the reservoir runs empty before it.
Axes in mL and in dates, in the zone people read (--tz) as every date shown. Every text
is escaped (it is XML).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..localtime import describe, zone
from ..output import fmt_date
from .html import text
from .style import NOTICE

#: the standalone chart (.svg, .png), CSS px
WIDTH, HEIGHT = 960, 560
_FONT = '"Liberation Sans", "DejaVu Sans", Arial, Helvetica, sans-serif'
_CHAR_PX = 7.0  # the widest average character at 12 px (bold), for keeping labels inside the chart
_DAY = 86_400


@dataclass(frozen=True)
class _Frame:
    """The chart's size and its plot area (CSS px)."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int


#: a file of its own: the notice, a title and the key dates around the plot
_STANDALONE = _Frame(WIDTH, HEIGHT, 78, 104, WIDTH - 28, HEIGHT - 100)
#: in a document (which says all that around it): the plot and its axes, narrower, so that its
#: text stays legible at a page's width
_EMBEDDED = _Frame(720, 400, 64, 16, 720 - 16, 400 - 52)


def _xml(value: Any) -> str:
    return html.escape(text(value), quote=True)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@dataclass(frozen=True)
class _Scale:
    """Maps times (epoch s) and volumes (mL) onto the plot area."""

    f: _Frame
    t0: float
    t1: float
    top_ml: float

    def x(self, t: float) -> float:
        return round(self.f.left + (t - self.t0) / (self.t1 - self.t0) * (self.f.right - self.f.left), 1)

    def y(self, ml: float) -> float:
        return round(self.f.bottom - ml / self.top_ml * (self.f.bottom - self.f.top), 1)


def ml_step(top_ml: float) -> float:
    """The step of the volume axis: 1, 2 or 5 times a power of ten, the first to give at most 8 intervals."""
    for exponent in range(-3, 7):
        for mantissa in (1, 2, 5):
            step = mantissa * 10.0 ** exponent
            if top_ml / step <= 8:
                return step
    return top_ml


def date_ticks(t0: float, t1: float, tz, most: int = 9) -> list[datetime]:
    """Midnights between t0 and t1 (epoch s) on the calendar of `tz`: every 1, 2 or 7 days, or
    the first of every 1, 2, 3, 6 or 12 months, whichever is the first to give at most `most`."""
    start = datetime.fromtimestamp(t0, tz)
    end = datetime.fromtimestamp(t1, tz)
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(days=1)
    for days in (1, 2, 7, 14):
        ticks = []
        t = first
        while t <= end:
            ticks.append(t)
            t += timedelta(days=days)
        if len(ticks) <= most:
            return ticks
    for months in (1, 2, 3, 6, 12, 24, 60):
        ticks = []
        year, month = start.year, start.month
        while True:
            month += 1
            if month > 12:
                year, month = year + 1, 1
            if (month - 1) % months:
                continue
            tick = datetime(year, month, 1, tzinfo=start.tzinfo)
            if tick > end:
                break
            ticks.append(tick)
        if len(ticks) <= most:
            return ticks
    return []


def _label(f: _Frame, x: float, y: float, words: str, *, cls: str, anchor: str = "start") -> str:
    """A label inside the chart: moved to the other side of x when it would leave it."""
    width = len(words) * _CHAR_PX
    if anchor == "start" and x + width > f.width - 4:
        anchor, x = "end", x - 12
    elif anchor == "end" and x - width < 4:
        anchor, x = "start", x + 12
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" class="{cls}">{_xml(words)}</text>'


def forecast_svg(r: dict, *, standalone: bool = True) -> str:
    """The chart; `standalone`: a file of its own (WIDTH x HEIGHT, with the notice, a title and the
    key dates), else the plot alone to embed in a document (scales to the page's width)."""
    f = _STANDALONE if standalone else _EMBEDDED
    series = [(_epoch(p["time"]), float(p["reservoir_ml"])) for p in r["series"]]
    if not series:
        series = [(_epoch(r["read_at"]), float(r["reservoir_ml"]))]
    visit = _epoch(r["next_visit"]) if r.get("next_visit") else None
    t0 = series[0][0]
    t1 = max([series[-1][0], t0 + _DAY] + ([visit] if visit else []))
    t1 += (t1 - t0) * 0.03  # room right of the last mark
    scale = _Scale(f, t0, t1, max([float(r["reservoir_capacity_ml"])] + [v for _, v in series]))

    out: list[str] = []
    size = f'width="{f.width}" height="{f.height}" ' if standalone else ""
    title = f"Reservoir forecast: pump {r['serial_number']}, {r['drug']}, " + _dose(r)
    out.append(f'<svg xmlns="http://www.w3.org/2000/svg" {size}viewBox="0 0 {f.width} {f.height}" role="img">')
    out.append(f"<title>{_xml(title)}</title>")
    out.append(f"<desc>{_xml(_key_dates(r))}</desc>")
    out.append(_STYLE)
    out.append(f'<rect x="0" y="0" width="{f.width}" height="{f.height}" fill="#fff"/>')
    if standalone:
        out.append(f'<text x="{f.left}" y="22" class="notice">{_xml(NOTICE)}'
                   + (" \u00b7 EMULATED pump" if r.get("emulated") else "") + "</text>")
        out.append(f'<text x="{f.left}" y="48" class="title">{_xml(title)}</text>')
        sub = (f"From {text(r['reservoir_ml'])} mL of {text(r['reservoir_capacity_ml'])} mL, read "
               f"{fmt_date(r['read_at'])} (this computer's clock); mode {r['mode']}")
        out.append(f'<text x="{f.left}" y="70" class="sub">{_xml(sub)}</text>')
    out += _axes(scale)
    out += _marks(scale, r, series, visit)
    if standalone:
        out += _footer(f, r)
    out.append("</svg>")
    return "\n".join(out) + "\n"


_STYLE = f"""<style>
text {{ font-family: {_FONT}; font-size: 12px; fill: #111; }}
.title {{ font-size: 15px; font-weight: bold; }}
.notice {{ font-size: 12px; font-weight: bold; fill: #a00; }}
.sub, .tick, .now {{ fill: #333; }}
.axis {{ font-size: 12px; fill: #333; }}
.alarm {{ fill: #8a5a00; font-weight: bold; }}
.empty, .warning {{ fill: #b00000; font-weight: bold; }}
.visit {{ fill: #006d77; font-weight: bold; }}
.grid {{ stroke: #ddd; stroke-width: 1; }}
.frame {{ stroke: #555; stroke-width: 1; fill: none; }}
.curve {{ stroke: #1f5fa8; stroke-width: 2.5; fill: none; stroke-linejoin: round; }}
.area {{ fill: #1f5fa8; fill-opacity: 0.12; stroke: none; }}
</style>"""


def _dose(r: dict) -> str:
    dose = r.get("daily_dose") or {}
    return f"{text(dose.get('value'))} {dose.get('unit', '')} ({text(r['flow_ml_per_day'])} mL/day)"


def _axes(scale: _Scale) -> list[str]:
    f = scale.f
    out = []
    step = ml_step(scale.top_ml)
    n = 0
    while n * step <= scale.top_ml + 1e-9:
        v = round(n * step, 6)
        y = scale.y(v)
        out.append(f'<line x1="{f.left}" y1="{y}" x2="{f.right}" y2="{y}" class="grid"/>')
        out.append(f'<text x="{f.left - 8}" y="{y + 4}" text-anchor="end" class="tick">{v:g}</text>')
        n += 1
    for tick in date_ticks(scale.t0, scale.t1, zone().tz):  # the zone people read dates in (--tz)
        x = scale.x(tick.timestamp())
        out.append(f'<line x1="{x}" y1="{f.top}" x2="{x}" y2="{f.bottom}" class="grid"/>')
        out.append(f'<line x1="{x}" y1="{f.bottom}" x2="{x}" y2="{f.bottom + 5}" stroke="#555"/>')
        anchor = "end" if x + 36 > f.width else "middle"  # the last date stays inside the chart
        out.append(f'<text x="{x}" y="{f.bottom + 19}" text-anchor="{anchor}" class="tick">'
                   f'{_xml(tick.date().isoformat())}</text>')
    out.append(f'<rect x="{f.left}" y="{f.top}" width="{f.right - f.left}" height="{f.bottom - f.top}" '
               'class="frame"/>')
    mid = (f.top + f.bottom) / 2
    out.append(f'<text x="18" y="{mid}" text-anchor="middle" transform="rotate(-90 18 {mid})" class="axis">'
               "Reservoir (mL)</text>")
    out.append(f'<text x="{(f.left + f.right) / 2}" y="{f.bottom + 40}" text-anchor="middle" class="axis">'
               f"{_xml(f'Date (midnights, {describe()})')}</text>")
    return out


def _marks(scale: _Scale, r: dict, series: list[tuple[float, float]], visit: float | None) -> list[str]:
    """The curve, the alarm level and capacity, now; the alarm, empty and next visit as vertical
    lines, each labelled at the top in a row of its own (labels never collide)."""
    f = scale.f
    empty = _epoch(r["empty_date"]) if r.get("empty_date") else None
    alarm = _epoch(r["low_reservoir_alarm_date"]) if r.get("low_reservoir_alarm_date") else None
    ya, y0 = scale.y(float(r["low_reservoir_alarm_ml"])), scale.y(0)
    out = []
    if empty is not None and visit is not None and visit > empty:  # no therapy until the visit
        x0, x1 = scale.x(empty), scale.x(visit)
        out.append(f'<rect x="{x0}" y="{f.top}" width="{round(x1 - x0, 1)}" height="{f.bottom - f.top}" '
                   'fill="#b00000" fill-opacity="0.10"/>')
        out.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#b00000" stroke-width="2.5" '
                   'stroke-dasharray="6 4"/>')
        words = "no therapy"
        inside = x1 - x0 >= len(words) * _CHAR_PX + 16  # in the shaded time, else left of it
        out.append(_label(f, (x0 + x1) / 2 if inside else x0 - 8, (f.top + f.bottom) / 2, words, cls="empty",
                          anchor="middle" if inside else "end"))
    points = " ".join(f"{scale.x(t)},{scale.y(v)}" for t, v in series)
    area = f"{scale.x(series[0][0])},{y0} {points} {scale.x(series[-1][0])},{y0}"
    out.append(f'<polygon points="{area}" class="area"/>')
    out.append(f'<polyline points="{points}" class="curve"/>')
    out.append(f'<line x1="{f.left}" y1="{ya}" x2="{f.right}" y2="{ya}" stroke="#c98a00" stroke-width="1.5" '
               'stroke-dasharray="8 4"/>')
    # at the right end: the start is where "now" is labelled
    out.append(_label(f, f.right - 6, ya - 6, f"low-reservoir alarm at {text(r['low_reservoir_alarm_ml'])} mL",
                      cls="alarm", anchor="end"))
    yc = scale.y(float(r["reservoir_capacity_ml"]))
    out.append(f'<line x1="{f.left}" y1="{yc}" x2="{f.right}" y2="{yc}" stroke="#888" stroke-dasharray="2 3"/>')
    x, y = scale.x(series[0][0]), scale.y(series[0][1])
    out.append(f'<circle cx="{x}" cy="{y}" r="4" fill="#1f5fa8"/>')
    now = f"now {text(r['reservoir_ml'])} mL"
    if r.get("low_reservoir_alarm_active"):
        now += ", low-reservoir alarm ACTIVE"
    out.append(_label(f, x + 8, y - 10 if y - 10 > f.top + 14 else y + 20, now, cls="now"))
    rows = iter(range(1, 4))
    if visit is not None:
        out += _event(scale, visit, next(rows), "#006d77", "4 3", "visit",
                      f"next visit {fmt_date(r['next_visit'], with_time=False)}")
    if alarm is not None and not r.get("low_reservoir_alarm_active"):
        out.append(f'<circle cx="{scale.x(alarm)}" cy="{ya}" r="5" fill="#c98a00"/>')
        out += _event(scale, alarm, next(rows), "#c98a00", "2 3", "alarm",
                      f"alarm {fmt_date(r['low_reservoir_alarm_date'])}")
    if empty is not None:
        out.append(f'<circle cx="{scale.x(empty)}" cy="{y0}" r="5" fill="#b00000"/>')
        out += _event(scale, empty, next(rows), "#b00000", "2 3", "empty", f"EMPTY {fmt_date(r['empty_date'])}")
    return out


def _event(scale: _Scale, t: float, row: int, colour: str, dashes: str, cls: str, words: str) -> list[str]:
    """A moment: a vertical line across the plot, labelled left of it in label row `row` from the top."""
    f, x = scale.f, scale.x(t)
    return [f'<line x1="{x}" y1="{f.top}" x2="{x}" y2="{f.bottom}" stroke="{colour}" stroke-width="1.5" '
            f'stroke-dasharray="{dashes}"/>',
            _label(f, x - 6, f.top + 18 * row - 2, words, cls=cls, anchor="end")]


def _key_dates(r: dict) -> str:
    alarm = ("ACTIVE now" if r.get("low_reservoir_alarm_active")
             else fmt_date(r["low_reservoir_alarm_date"]) if r.get("low_reservoir_alarm_date")
             else "not within the forecast")
    parts = [f"Low-reservoir alarm ({text(r['low_reservoir_alarm_ml'])} mL): {alarm}",
             f"Empty: {fmt_date(r['empty_date']) if r.get('empty_date') else 'not within the forecast'}"]
    if r.get("next_visit"):
        parts.append(f"Next visit: {fmt_date(r['next_visit'], with_time=False)}")
    return " \u00b7 ".join(parts)


def _footer(f: _Frame, r: dict) -> list[str]:
    out = [f'<text x="{f.left}" y="{f.height - 36}" class="sub">{_xml(_key_dates(r))}</text>']
    if r.get("empty_before_next_visit"):
        warning = ("The reservoir runs EMPTY before the next visit: therapy stops (withdrawal risk). "
                   "Bring the refill forward.")
    elif r.get("alarm_before_next_visit"):
        warning = "The low-reservoir alarm comes before the next visit: bring the refill forward."
    else:
        warning = ""
    if warning:
        out.append(f'<text x="{f.left}" y="{f.height - 14}" class="warning">{_xml(warning)}</text>')
    return out
