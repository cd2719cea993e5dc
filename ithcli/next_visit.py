"""The next visit against the reservoir: when a change would let it alarm or run empty first.

A visit is a date on this computer's calendar; the pump's projections are moved onto it
by the clock skew measured at the read (calendar.py) before they are compared.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from protocol.bodies import Status


def parse_date(text, option: str):
    """An option's ISO date or date-time as a timestamp (on the --tz zone's clock, as dates are
    shown, when it names no offset: localtime.in_zone); None when not given."""
    if not text:
        return None
    from datetime import datetime

    from .localtime import in_zone

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO date (e.g. 2027-01-15)") from None
    return int(in_zone(when).timestamp())


def low_alarm_at(raw: Status, volume_ul: int, per_day_nl: int) -> int | None:
    """When the low-reservoir alarm comes if the reservoir holds volume_ul at per_day_nl."""
    from .status import reaches

    return reaches(raw.pump_time, volume_ul, raw.low_reservoir_alarm_ul, per_day_nl)


def visit_check(raw: Status, volume_ul: int, per_day_nl: int, visit: int, skew_s: int) -> list:
    """The reservoir running empty before the next visit needs a confirmation; the low-reservoir
    alarm coming first is a warning. Both are compared on the calendar (the pump's dates moved
    by its measured clock skew), since the visit is a calendar date."""
    from .calendar import to_calendar
    from .limits import Finding
    from .localtime import fmt_day
    from .status import reaches

    empty_at = to_calendar(reaches(raw.pump_time, volume_ul, 0, per_day_nl), skew_s)
    if empty_at is not None and empty_at < visit:
        return [Finding("confirm", "empty-before-visit",
                        f"the reservoir runs empty {fmt_day(empty_at)}, before the next visit "
                        f"{fmt_day(visit)}: delivery would stop; bring the refill forward",
                        "--confirm-empty-before-visit")]
    alarm_at = to_calendar(low_alarm_at(raw, volume_ul, per_day_nl), skew_s)
    if alarm_at is not None and alarm_at < visit:
        return [Finding("warn", "alarm-before-visit",
                        f"the low-reservoir alarm comes {fmt_day(alarm_at)}, before the next visit "
                        f"{fmt_day(visit)}: bring the refill forward")]
    return []
