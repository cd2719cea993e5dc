"""Local time for people: the zone every time shown to a person is in (--tz, env ITHCLI_TZ).

JSON never uses it: JSON times are UTC with an explicit "+00:00" offset (calendar.iso), the
same whatever zone a person reads them in. People read their own clock: by default this
computer's local zone (on a terminal and in a pipe alike: a person reads a piped report
too, and a script reads --json), or the zone --tz names:

    an IANA name       Europe/Paris, Asia/Kolkata, America/New_York (daylight saving included)
    UTC (or Z)         Coordinated Universal Time
    a fixed offset     +05:30, -08:00, +0100, +01 (ISO 8601's sign: east of Greenwich is +)
    local              this computer's zone (the default)

Every time shown carries its zone: "2026-12-02 17:10:00 IST", or its offset where the zone
has no letters for it ("2026-12-02 17:10:00 +05:30" for --tz +05:30).

Pure but for reading the zone database (and, for the local zone, TZ and /etc/localtime).
"""
from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

#: what --tz takes besides a zone name (ISO 8601 offsets: east of Greenwich is +)
_OFFSET = re.compile(r"^(?P<sign>[+-])(?P<h>\d{2})(?::?(?P<m>\d{2}))?$")
#: names of UTC itself, shown as "UTC"
_UTC_NAMES = {"UTC", "Z", "ETC/UTC", "ETC/UCT", "UCT", "ETC/ZULU", "ZULU", "UNIVERSAL", "ETC/UNIVERSAL",
              "GMT", "ETC/GMT", "ETC/GMT0", "GMT0", "ETC/GREENWICH", "GREENWICH"}


@dataclass(frozen=True)
class Zone:
    """A time zone as people are shown it: its tzinfo and the name that says which it is."""

    name: str  # "Asia/Kolkata", "+05:30", "UTC", or the local zone's name
    tz: tzinfo

    def at(self, ts: float) -> datetime:
        """The instant ts (seconds since the epoch) on this zone's clock."""
        return datetime.fromtimestamp(ts, UTC).astimezone(self.tz)

    def label(self, ts: float) -> str:
        """The zone as every time shows it: its abbreviation at ts ("CET", "IST", "UTC"), or its
        UTC offset ("+05:30") where it has none in letters."""
        return label(self.at(ts))

    def offset(self, ts: float) -> str:
        """Its UTC offset at ts, as ISO 8601 writes it: "+05:30"."""
        return _offset_text(self.at(ts))

    def day_start(self, ts: float) -> int:
        """The start (local midnight) of the day ts falls on, in seconds since the epoch."""
        return self.start_of(self.at(ts).date())

    def next_day_start(self, ts: float) -> int:
        """The first local midnight after ts (days are 23 to 25 hours long across daylight saving)."""
        return self.start_of(self.at(ts).date() + timedelta(days=1))

    def start_of(self, day: date) -> int:
        """The first instant of a local calendar day (a midnight skipped by daylight saving: the
        first that exists)."""
        # fold 0 (PEP 495): a midnight that occurs twice is its first; one that a clock moved
        # forward over maps to the first instant after the gap, the day's first that exists
        return int(datetime(day.year, day.month, day.day, tzinfo=self.tz).timestamp())

    def date_text(self, ts: float) -> str:
        """The local calendar date of ts: "2026-12-02"."""
        return self.at(ts).date().isoformat()


def label(when: datetime) -> str:
    """An aware datetime's zone as shown: letters when the zone has them, else its offset."""
    name = when.tzname() or ""
    return name if name.isalpha() else _offset_text(when)


def _offset_text(when: datetime) -> str:
    offset = when.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse(text: str) -> Zone:
    """--tz's value as a Zone; ValueError with what is accepted when it names none."""
    name = text.strip()
    if not name:
        raise ValueError("--tz '': give a zone name (Europe/Paris), UTC, an offset (+05:30) or local")
    if name.lower() == "local":
        return local_zone()
    if name.upper() in _UTC_NAMES:
        return Zone("UTC", UTC)
    match = _OFFSET.match(name)
    if match:
        hours, minutes = int(match["h"]), int(match["m"] or 0)
        if hours > 14 or minutes >= 60 or (hours == 14 and minutes):
            raise ValueError(f"--tz {text!r}: a UTC offset is -14:00 to +14:00")
        sign = -1 if match["sign"] == "-" else 1
        offset = sign * timedelta(hours=hours, minutes=minutes)
        return Zone(_offset_text(datetime(2000, 1, 1, tzinfo=timezone(offset))), timezone(offset))
    return Zone(name, _named(name, text))


def _named(name: str, given: str) -> tzinfo:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError, ImportError):  # not a key, no such zone, no zone database
        raise ValueError(f"--tz {given!r} is not a time zone: give an IANA name such as "
                         "Europe/Paris or Asia/Kolkata, UTC, an offset such as +05:30, or local") from None


def local_zone() -> Zone:
    """This computer's zone: the one TZ names, else /etc/localtime's; a TZ that is a POSIX rule
    (CET-1CEST) or no zone database: the C library's offset in force now."""
    import time

    time.tzset()  # a TZ set after start-up (a forked child's environment) is what counts
    key = os.environ.get("TZ", "").lstrip(":")
    try:
        if key and key.lower() != "local":
            return parse(key)
        from zoneinfo import ZoneInfo

        with open("/etc/localtime", "rb") as fh:
            tz = ZoneInfo.from_file(fh, key="localtime")
        target = os.path.realpath("/etc/localtime")
        name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "local"
        return Zone("UTC" if name.upper() in _UTC_NAMES else name, tz)
    except (OSError, ValueError, ImportError):
        now = datetime.now().astimezone()
        return Zone(label(now), now.tzinfo or UTC)


@functools.cache
def _zone_named(setting: str | None) -> Zone:
    return local_zone() if setting is None else parse(setting)


#: the --tz of the command line's App (check() keeps it): what a thread outside Click's context
#: (a batch's workers) shows times in
_chosen: str | None = None


def check(setting: str | None) -> None:
    """A --tz value is a usage error (exit 2) at once when it names no zone, whatever the command;
    a good one is the zone of this process's times from now on."""
    global _chosen
    from .errors import UsageError

    if setting is not None:  # None: this computer's own zone, read when a time is first shown
        try:
            _zone_named(setting)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    _chosen = setting


def zone() -> Zone:
    """The zone for people: --tz of the command running (found through its Click context, so
    an option read after the App was made still counts; else the one check() kept), else
    this computer's."""
    return _zone_named(_setting())


def _setting() -> str | None:
    click = sys.modules.get("click")
    ctx = click.get_current_context(silent=True) if click is not None else None
    settings = getattr(ctx.find_root().obj, "settings", None) if ctx is not None else None
    if settings is None:
        return _chosen
    return getattr(settings, "tz", None) or None


def fmt_time(ts: float | None, *, seconds: bool = True) -> str:
    """An instant for people, in the zone: "2026-12-02 17:10:00 IST"; "unknown" for None/0."""
    if not ts:
        return "unknown"
    z = zone()
    when = z.at(ts)
    shown = f"{when:%Y-%m-%d %H:%M:%S}" if seconds else f"{when:%Y-%m-%d %H:%M}"
    return f"{shown} {z.label(ts)}"


def fmt_iso(text: str | None) -> str | None:
    """An ISO 8601 time as the JSON carries it, for people (fmt_time); None stays None (said
    nowhere: a limit's message leaves out what it does not know)."""
    return fmt_time(to_ts(text)) if text else None


def fmt_clock(ts: float) -> str:
    """The time of day of an instant, with its zone: "17:10 IST"."""
    z = zone()
    return f"{z.at(ts):%H:%M} {z.label(ts)}"


def fmt_day(ts: float | None) -> str:
    """The local calendar date of an instant: "2026-12-02"; "unknown" for None/0."""
    return zone().date_text(ts) if ts else "unknown"


def to_ts(text: str | None) -> int | None:
    """An ISO 8601 time as ithcli writes it ("...+00:00", "...Z") -> seconds since the epoch;
    None for None or ""; a time without an offset is UTC (how ithcli's records wrote it)."""
    if not text:
        return None
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


def in_zone(when: datetime) -> datetime:
    """A date-time a person typed: one without an offset is on their clock (the zone), as the
    times are shown to them; one with an offset is that instant."""
    if when.tzinfo is not None:
        return when
    return when.replace(tzinfo=zone().tz)


def describe() -> str:
    """The zone times are shown in, for a view's "Dates" line: "UTC", "Asia/Kolkata, IST,
    UTC+05:30", "UTC+05:30" (--tz +05:30)."""
    import time

    z = zone()
    now = time.time()
    short, offset = z.label(now), z.offset(now)
    if z.name == "UTC":
        return "UTC"
    if z.name == offset:
        return f"UTC{offset}"
    return ", ".join([z.name] + ([short] if short not in (z.name, offset) else []) + [f"UTC{offset}"])
