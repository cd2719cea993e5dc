"""Output: JSON for scripts on stdout, rich for people, diagnostics on stderr.

rich is imported only when something is rendered for a person, so `--help` and
`--json` runs never pay for it.
"""
from __future__ import annotations

import functools
import json
import logging
import sys
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any


def _default(value: Any):
    if isinstance(value, Decimal):
        # whole numbers stay ints; others become the float whose shortest repr is the
        # same decimal text (our values have far fewer than 15 significant digits)
        if value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        if Decimal(repr(as_float)) != value:
            return format(value, "f")  # never silently rounded
        return as_float
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    body = _body_dict(value)
    if body is not None:
        return body
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _body_dict(value: Any) -> dict[str, Any] | None:
    """A protocol body (protocol/bodies.py) as the plain dict it stands for; None for anything else.
    Only once protocol.bodies is loaded can a value be one (no import for --help)."""
    module = sys.modules.get("protocol.bodies")
    if module is not None and isinstance(value, module.Fields):
        as_dict: Any = module.as_dict(value)
        return as_dict
    return None


_PLAIN = frozenset({str, int, float, bool, type(None)})  # exact types: an IntEnum is not one of them


def jsonable(value: Any) -> Any:
    """Enums by name, bytes as hex, protocol bodies as dicts, containers recursively: stable
    JSON for files and hashes (the audit log's and the pre-MRI snapshot's)."""
    if type(value) in _PLAIN:  # most leaves: every audit entry passes here (a batch: 36 values an entry)
        return value
    # below, a plain leaf is kept where it is met, without a call for it: what jsonable(leaf) returns
    if isinstance(value, dict):
        return {k if type(k) is str else str(k): v if type(v) in _PLAIN else jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _PLAIN else jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    module = sys.modules.get("protocol.bodies")  # loaded once a body exists (no import for --help)
    if module is not None and isinstance(value, module.Fields):
        # one pass, fields in declared order (the generated classes' __slots__): what
        # jsonable(as_dict(body)) gave in two; every audit entry of an exchange is built here
        return {name: v if type(v := getattr(value, name)) in _PLAIN else jsonable(v) for name in type(value).__slots__}
    return value


def to_json(obj: Any, *, open_levels: int = 2) -> str:
    """Indented JSON for people to read: the first `open_levels` levels of objects and lists one
    item a line, anything deeper on one line. The deeper values go through json's C encoder
    (with indent json falls back to its pure-Python one: a batch of 1,000 pumps spent 0.5 s of
    its 1.5 s printing its result)."""
    def encode(value: Any, depth: int) -> str:
        if depth >= open_levels or not isinstance(value, (dict, list)) or not value:
            return json.dumps(value, default=_default, separators=(", ", ": "))
        inner, outer = "  " * (depth + 1), "  " * depth
        if isinstance(value, dict):
            lines = [f"{inner}{json.dumps(k if isinstance(k, str) else json.dumps(k))}: {encode(v, depth + 1)}"
                     for k, v in value.items()]
            return "{\n" + ",\n".join(lines) + "\n" + outer + "}"
        return "[\n" + ",\n".join(inner + encode(v, depth + 1) for v in value) + "\n" + outer + "]"

    return encode(obj, 0)


def print_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj) + "\n")
    sys.stdout.flush()


def to_json_line(obj: Any) -> str:
    """One compact JSON object on one line. Without indent json uses its C encoder (with
    indent, the pure-Python one: ~5x slower for a batch's per-step results)."""
    return json.dumps(obj, default=_default, separators=(",", ":"))


def print_json_line(obj: Any) -> None:
    """One compact JSON object on one line (JSON lines, for streams such as `monitor --json`)."""
    sys.stdout.write(to_json_line(obj) + "\n")
    sys.stdout.flush()


def stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


#: how the command line shows a diagnostic (a logging record of ithcli's) on stderr
DIAGNOSTIC_FORMAT = "ithcli: %(message)s"


class StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever sys.stderr is when a record is written, not when the handler
    was made (a test harness or Click's runner may swap it in between). Never stdout: that
    stays clean for --json."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock: handle() holds it around emit()
        super().emit(record)


def console(stderr_: bool = False):
    """A rich console for people. On a terminal it lays out at the terminal's width, wrapping at
    word boundaries and folding (never cutting) a word longer than its column; off a terminal (a
    pipe, a file) each thing printed is as wide as it needs, at least COLUMNS (else 80), so nothing
    is wrapped into a table cell's next line or cut. Either way a number and its unit ("0.275
    mL/day") and a time and its zone ("11:40:00 CET") are one unbreakable token."""
    return _console_class()(stderr=stderr_, highlight=False)


#: stands in for the space inside a value while rich lays text out: rich breaks lines at whitespace,
#: and to Python a no-break space is whitespace too. One cell wide and never a break; written out as
#: the ordinary space it stands for (what people copy and scripts grep)
GLUE = "\ue000"
#: the units ithcli shows besides protocol's own (protocol.units: mL, mcg/day, mg/mL, s, min, h...)
DISPLAY_UNITS = ("nL", "%", "cm", "mm", "ms", "T", "T/m", "day", "days", "x")
#: as wide as a line may be off a terminal: rich's own bound, never reached by ithcli's output
_UNBOUNDED = 100_000


@functools.cache
def _tokens():
    """What must stay on one line: a number and its unit, a time of day and its zone. A date and
    its time may go on two lines ("2026-12-02" above "11:40:00 CET"): that reads whole, where a
    date-time folded to fit a narrow column would not."""
    import re

    from protocol.units import BASE_UNIT, UNITS

    units = {u for per in UNITS.values() for u in per} | set(BASE_UNIT.values()) | set(DISPLAY_UNITS)
    unit = "|".join(re.escape(u) for u in sorted(units, key=len, reverse=True))
    zone = r"(?: (?:[A-Z]{2,6}|[+-]\d{2}:\d{2})(?![\w:]))"  # "UTC", "CEST", "+05:30" (localtime.label)
    return re.compile(rf"(?<![\w.])[-+]?\d+(?:\.\d+)? (?:{unit})(?![\w/])"
                      rf"|(?<![\w:])\d{{2}}:\d{{2}}(?::\d{{2}})?{zone}")


def glued(text: str) -> str:
    """text with the space inside each value (a number and its unit, a time and its zone) made GLUE."""
    return _tokens().sub(lambda m: m.group(0).replace(" ", GLUE), text)


@functools.cache
def _console_class():
    from rich.console import Console  # rich only when something is drawn
    from rich.measure import Measurement

    class _Console(Console):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            #: off a terminal: the least width to lay out at (COLUMNS, else 80); None on a terminal
            self.fit_width: int | None = None
            if not self.is_terminal:
                self.fit_width = self.width
                self.width = _UNBOUNDED

        @property
        def layout_width(self) -> int | None:
            """The width a drawing must fit: the terminal's; None off a terminal (any width will do)."""
            return None if self.fit_width is not None else self.width

        def print(self, *objects, width: int | None = None, **kwargs) -> None:
            if self.fit_width is not None and width is None and objects:
                natural = sum(Measurement.get(self, self.options, o).maximum for o in objects) + len(objects) - 1
                width = min(max(self.fit_width, natural), _UNBOUNDED)
            super().print(*objects, width=width, **kwargs)

        def render_str(self, text: str, **kwargs):
            rendered = super().render_str(glued(text), **kwargs)
            if rendered.overflow in (None, "ellipsis"):
                rendered.overflow = "fold"  # a word wider than its column folds: nothing is cut to "…"
            # a no_wrap column is the last a table narrows; if it must, its text folds, never cropped
            rendered.no_wrap = False
            return rendered

        def render(self, renderable, options=None):
            for segment in super().render(renderable, options):
                yield segment._replace(text=segment.text.replace(GLUE, " ")) if GLUE in segment.text else segment

        def on_broken_pipe(self) -> None:
            # rich's own handling is a silent exit 1 (our "internal error"): let cli.main
            # report a closed stdout as exit 141 instead
            self.quiet = True
            raise BrokenPipeError

    return _Console


class Titled:
    """A panel with its title in its top border where the title fits, else on the line above it
    (rich cuts a border title that does not fit to "…")."""

    def __init__(self, body, title: str, **panel_options) -> None:
        self.body, self.title, self.options = body, title, panel_options

    def _panel(self, with_title: bool):
        from rich.panel import Panel

        return Panel(self.body, title=self.title if with_title else None, **self.options)

    def __rich_console__(self, console, options):
        from rich.text import Text

        if Text.from_markup(self.title).cell_len + 4 <= options.max_width:
            yield self._panel(True)
        else:
            yield self.title
            yield self._panel(False)

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement.get(console, options, self._panel(True))


def fmt_quantity(q: dict | None) -> str:
    if not q:
        return "-"
    return f"{format(q['value'], 'f')} {q['unit']}"


def fmt_span(seconds: int) -> str:
    """A duration as people read it, the same everywhere: '45 s', '10 min', '9 h 48 min', '2.1 days'."""
    if seconds < 60 or seconds < 3600 and seconds % 60:
        return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86_400:
        hours, minutes = seconds // 3600, seconds % 3600 // 60
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds / 86_400:.1f} days"


def fmt_date(text: str | None, *, with_time: bool = True) -> str:
    """An ISO 8601 time (as in the JSON) for people: in the zone they read (--tz, else this
    computer's), with that zone: "2026-12-02 17:10:00 IST"; with_time=False: the local date."""
    from .localtime import fmt_day, fmt_time, to_ts

    if not text:
        return "unknown"
    if len(text) == 10:
        return text  # a calendar date (a birth date, a visit typed as a date): no zone to move it by
    try:
        ts = to_ts(text)
    except ValueError:
        return text  # not a time ithcli wrote: shown as it is, never dropped
    return fmt_time(ts) if with_time else fmt_day(ts)


def calendar_name() -> str:
    """The calendar people read dates on: "this computer's calendar (UTC)", "this computer's
    calendar (Asia/Kolkata, IST, UTC+05:30)"."""
    from .localtime import describe

    return f"this computer's calendar ({describe()})"


def fmt_pump_clock(clock: dict | None) -> str:
    """The "Pump clock" row: the pump's own time and how far it is from this computer's."""
    from .calendar import skew_text

    if not clock:
        return "unknown (not read)"
    return f"{fmt_date(clock['pump_time'])} (the pump's own clock), {skew_text(clock['skew_s'])}"


def fmt_dates_note(clock: dict | None) -> str:
    """Which calendar the dates shown are on (and in which zone), and whether they were moved."""
    from .calendar import duration_text

    if not clock:
        from .localtime import describe

        return f"the pump's clock (its skew was not measured), shown in {describe()}"
    moved = clock["dates_shifted_s"]
    if moved:
        return (f"{calendar_name()}: moved {duration_text(moved)} {'earlier' if moved < 0 else 'later'} "
                "than the pump's clock")
    return (f"{calendar_name()}: the pump's clock is within {duration_text(clock['threshold_s'])} of it, "
            "dates as the pump gives them")


def clock_warning_lines(clock: dict | None) -> list[str]:
    """Rich markup lines for a pump clock past the threshold (none within it)."""
    from rich.markup import escape

    from .calendar import ON_CALENDAR

    if not clock or not clock.get("warning"):
        return []
    # the JSON's calendar is UTC; people's is in their zone
    return [f"[bold red]{escape(clock['warning'].replace(ON_CALENDAR, calendar_name()))}[/]"]


def export(renderables, path: str, title: str) -> None:
    """Write rich renderables for a patient's chart: .html, .svg or plain .txt by suffix."""
    import io

    from rich.console import Console

    from .errors import UsageError

    lower = path.lower()
    if not lower.endswith((".html", ".svg", ".txt")):
        raise UsageError(f"--export {path!r}: the file must end in .html, .svg or .txt")
    con = Console(record=True, width=120, file=io.StringIO(), highlight=False)
    for part in renderables:
        con.print(part)
    try:
        if lower.endswith(".html"):
            con.save_html(path)
        elif lower.endswith(".svg"):
            con.save_svg(path, title=title)
        else:
            con.save_text(path)
    except OSError as exc:
        raise UsageError(f"--export {path}: cannot write: {exc.strerror or exc}") from None
