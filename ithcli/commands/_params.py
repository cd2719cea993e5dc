"""Click parameter types shared by the commands: dates and date-times people type."""
from __future__ import annotations

from datetime import datetime, timedelta

import click


class When(click.ParamType):
    """An ISO date or date-time (2026-11-01, 2026-11-01T08:00, ...Z, ...+05:30). One that gives no
    offset is on the reader's clock, the --tz zone the times are shown in: it stays naive here
    (the zone is known once the global options are) and in_zone() places it.

    With end_of_day, a bare date means the end of that day (the start of the next):
    `--until 2026-11-01` includes all of 1 November.
    """

    name = "DATE"

    def __init__(self, end_of_day: bool = False):
        self.end_of_day = end_of_day

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        text = value.strip()
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO date or date-time (e.g. 2026-11-01 or 2026-11-01T08:00)", param, ctx)
        if self.end_of_day and len(text) == 10:  # a bare YYYY-MM-DD
            when += timedelta(days=1)
        return when


def in_zone(when: datetime | None) -> datetime | None:
    """A When's value as an instant: without an offset, on the --tz zone's clock (localtime.py)."""
    from ..localtime import in_zone as place

    return None if when is None else place(when)


def timestamp(when: datetime | None) -> int | None:
    """A When's value as seconds since the epoch (in_zone's instant); None when not given."""
    placed = in_zone(when)
    return None if placed is None else int(placed.timestamp())
