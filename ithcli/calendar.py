"""Dates on this computer's calendar: pump timestamps moved by the pump clock's measured skew.

Pure: integers in, integers and text out; no clock is read here (the caller says
when the pump's reply arrived), no I/O.

The pump stamps everything it reports (its clock, ERI and replace-by dates, the
applied time of a write, MRI automatic exit, every log event) in its own time, and
ithcli projects dates (low-reservoir alarm, empty) forward from that clock. A
pump whose clock runs two days ahead would have every one of those dates two days
late on the calendar, and a `--next-visit` check against a calendar date would come
out two days late: the unsafe direction (domain hazard 13). So:

    skew_s = pump_time - this computer's time when the status reply arrived
    calendar time = pump time - skew_s      (to_calendar)

measured once per session (one INTERROGATE) and applied to every pump timestamp of
that session. Since protocol version 4 the pump logs every clock set (CLOCK_SET), so
a stamp written before one is first moved by that set's step (history.on_current_clock)
and then by today's skew; a clock that drifted on its own is not logged, and the views
say so whenever they move dates.
"""
from __future__ import annotations

import math
import time  # gmtime and strftime: text of a given time (no clock is read here)
from collections.abc import Callable
from datetime import UTC, datetime

#: A pump clock further than this from this computer's is warned about on every command
#: that shows dates, and its dates are moved by the skew. Why 5 minutes:
#:  - it is far above what can be measured: the pump reports whole seconds and its reply
#:    spends up to a second or two in transit (retries included), so a skew of a few
#:    seconds is measurement noise, not a clock error;
#:  - it is far below what matters for the dates shown: they are days to months ahead,
#:    used as calendar days (refill visit, replace-by), and their own uncertainty is
#:    larger (1 uL takes minutes at usual flows; flow accuracy is +-14.5 %, days over a
#:    refill interval);
#:  - a quartz clock drifting at 20 ppm takes about half a year to drift 5 minutes:
#:    past it the clock was set wrong (a time zone or daylight-saving hour, a wrong date)
#:    rather than drifted, which is what the warning is for;
#:  - it is the MRI checklist's clock-skew figure too (ithcli/mri.py uses this threshold).
#: Within it the pump's timestamps are shown as the pump gives them: they are this
#: computer's calendar to within 5 minutes, and they stay the same from one command to
#: the next (and match the pump's own log) instead of moving by a second or two of
#: measurement noise at every read.
CLOCK_SKEW_THRESHOLD_S = 300

DAY = 86_400

#: what every view says about its dates
ON_CALENDAR = "this computer's calendar (UTC)"


def measure_skew(pump_time: int, received_at: float) -> int:
    """skew_s: the pump's clock minus this computer's clock when the reply carrying pump_time
    arrived, in whole seconds (+: the pump's clock is ahead). Both are floored to whole
    seconds, as the pump floors its own: a pump in step with this computer measures 0."""
    return int(pump_time) - math.floor(received_at)


def shift_s(skew_s: int) -> int:
    """The seconds taken off every pump timestamp to put it on this computer's calendar:
    the whole skew past CLOCK_SKEW_THRESHOLD_S, none within it (see there why)."""
    return int(skew_s) if past_threshold(skew_s) else 0


def past_threshold(skew_s: int) -> bool:
    return abs(int(skew_s)) > CLOCK_SKEW_THRESHOLD_S


def to_calendar(pump_ts: int | None, skew_s: int) -> int | None:
    """A pump timestamp (seconds since the epoch, pump time) -> the same instant on this
    computer's calendar (seconds since the epoch, UTC), for a pump whose clock was measured
    skew_s seconds ahead (negative: behind). 0 and None are the wire's "unknown" and stay
    None: an unknown date never becomes a date near 1970."""
    if not pump_ts:
        return None
    return int(pump_ts) - shift_s(skew_s)


def to_pump(calendar_ts: int | None, skew_s: int) -> int | None:
    """The inverse of to_calendar: a calendar instant -> the pump time that stands for it."""
    if calendar_ts is None:
        return None
    return int(calendar_ts) + shift_s(skew_s)


def duration_text(seconds: int) -> str:
    """A length of time in words with its units: 172800 -> '2 days', 5400 -> '1 h 30 min',
    42 -> '42 s'; from an hour up, to the nearest minute: 172799 -> 'about 2 days'."""
    seconds = abs(int(seconds))
    if seconds == 0:
        return "0 s"
    about = ""
    if seconds >= 3600 and seconds % 60:
        seconds, about = (seconds + 30) // 60 * 60, "about "
    days, rest = divmod(seconds, DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day" + ("s" if days != 1 else ""))
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if secs:
        parts.append(f"{secs} s")
    return about + " ".join(parts)


def skew_text(skew_s: int) -> str:
    """'2 days (172800 s) ahead of this computer's clock', '3 s behind this computer's clock'."""
    if skew_s == 0:
        return "in step with this computer's clock"
    where = "ahead of" if skew_s > 0 else "behind"
    exact = f" ({abs(skew_s)} s)" if abs(skew_s) >= 60 else ""
    return f"{duration_text(skew_s)}{exact} {where} this computer's clock"


def warning(skew_s: int | None) -> str | None:
    """The line every view shows for a pump clock past the threshold (None within it)."""
    if skew_s is None or not past_threshold(skew_s):
        return None
    direction = "earlier" if skew_s > 0 else "later"
    state = "AHEAD" if skew_s > 0 else "BEHIND"
    return (f"PUMP CLOCK {state}: the pump's clock is {skew_text(skew_s)}. Every date here is on "
            f"{ON_CALENDAR}: {duration_text(skew_s)} {direction} than the pump's clock puts it. Set the "
            f"pump's clock ('ithcli clock set'); until then, read dates from ithcli, not from the pump's own clock")


def log_note(skew_s: int | None, *, what: str = "event times", measured: str = "in this session") -> str | None:
    """What moving the pump's stamps by one skew cannot know (None when nothing is moved)."""
    if skew_s is None or not past_threshold(skew_s):
        return None
    return (f"{what} are the pump's stamps moved by one skew, measured {measured} (stamps before a clock "
            "set the pump logged are first moved by its step); the pump does not record how its clock drifted, "
            "so a stamp from before the drift is off by it")


def iso(ts: int | float | None) -> str | None:
    """Seconds since the epoch -> ISO 8601 in UTC with its offset written out
    ("2026-12-02T10:40:00+00:00"), as every JSON time is, whatever zone people are shown
    (localtime.py); 0/None (the wire's 'unknown') -> None."""
    if not ts:
        return None
    if type(ts) is int and _YEARS_1000_TO_9999[0] <= ts <= _YEARS_1000_TO_9999[1]:
        # whole seconds in four-digit years: the same text as datetime's, in 60 % of its time
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


#: where strftime's %Y is four digits, as isoformat's year is (1000-01-01 .. 9999-12-31, UTC)
_YEARS_1000_TO_9999 = (-30_610_224_000, 253_402_300_799)


def calendar_iso(skew_s: int) -> Callable[[int | None], str | None]:
    """iso(to_calendar(pump_ts, skew_s)) as a function of pump_ts, the shift worked out once:
    for a view that moves many dates by one skew."""
    shift = shift_s(skew_s)

    def on_calendar(pump_ts: int | None) -> str | None:
        return iso(int(pump_ts) - shift) if pump_ts else None
    return on_calendar


def iso_known(ts: int | float | None) -> str:
    """iso() of a time known to be set, for text that slices it; ValueError for 0/None."""
    text = iso(ts)
    if text is None:
        raise ValueError(f"no time: {ts!r}")
    return text


def clock_view(pump_time: int, read_at: int, skew_s: int) -> dict:
    """The "pump_clock" object of every --json result that shows dates."""
    return {
        "pump_time": iso(pump_time),  # the pump's own clock at the read
        "read_at": iso(read_at),  # this computer's clock when the reply arrived
        "skew_s": int(skew_s),  # pump_time - read_at: + the pump's clock is ahead
        "threshold_s": CLOCK_SKEW_THRESHOLD_S,
        "dates_on": ON_CALENDAR,
        # added to every pump timestamp shown here (-172800: two days earlier than the pump's
        # clock; 0: within the threshold, shown as the pump gives them)
        "dates_shifted_s": -shift_s(skew_s),
        "warning": warning(skew_s),
    }
