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


def jsonable(value: Any) -> Any:
    """Enums by name, bytes as hex, protocol bodies as dicts, containers recursively: stable
    JSON for files and hashes (the audit log's and the pre-MRI snapshot's)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    body = _body_dict(value)
    if body is not None:
        return jsonable(body)
    return value


def to_json(obj: Any) -> str:
    return json.dumps(obj, default=_default, indent=2, sort_keys=False)


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
    return _console_class()(stderr=stderr_, highlight=False)


@functools.cache
def _console_class():
    from rich.console import Console  # rich only when something is drawn

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich's own handling is a silent exit 1 (our "internal error"): let cli.main
            # report a closed stdout as exit 141 instead
            self.quiet = True
            raise BrokenPipeError

    return _Console


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
    if not text:
        return "unknown"
    if not with_time:
        return text[:10]
    return text.replace("T", " ").replace("Z", " UTC")


def fmt_pump_clock(clock: dict | None) -> str:
    """The "Pump clock" row: the pump's own time and how far it is from this computer's."""
    from .calendar import skew_text

    if not clock:
        return "unknown (not read)"
    return f"{fmt_date(clock['pump_time'])} (the pump's own clock), {skew_text(clock['skew_s'])}"


def fmt_dates_note(clock: dict | None) -> str:
    """Which calendar the dates shown are on, and whether they were moved."""
    from .calendar import duration_text

    if not clock:
        return "the pump's clock (its skew was not measured)"
    moved = clock["dates_shifted_s"]
    if moved:
        return (f"{clock['dates_on']}: moved {duration_text(moved)} {'earlier' if moved < 0 else 'later'} "
                "than the pump's clock")
    return (f"{clock['dates_on']}: the pump's clock is within {duration_text(clock['threshold_s'])} of it, "
            "dates as the pump gives them")


def clock_warning_lines(clock: dict | None) -> list[str]:
    """Rich markup lines for a pump clock past the threshold (none within it)."""
    from rich.markup import escape

    if not clock or not clock.get("warning"):
        return []
    return [f"[bold red]{escape(clock['warning'])}[/]"]


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
