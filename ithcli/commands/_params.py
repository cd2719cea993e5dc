"""Click parameter types shared by the commands: dates and date-times in UTC."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click


class When(click.ParamType):
    """An ISO date or date-time, UTC unless it says otherwise (2026-11-01, 2026-11-01T08:00, ...Z).

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
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if self.end_of_day and len(text) == 10:  # a bare YYYY-MM-DD
            when += timedelta(days=1)
        return when
