"""Refill forecast: the reservoir volume over time, following the program step by step.

Pure integer arithmetic mirroring the pump's own rules (emulator/pump/delivery.py and
protocol/therapy.py): time in whole seconds of pump time (UTC), the reservoir in
nL, rates in nL/day; delivery carries the sub-nL remainder (nL*s/day) from one
interval to the next, a threshold is reached at the first whole second at which
at least the volume above it has been delivered, and the low-reservoir alarm is
raised once the reservoir is at or below its level.

A flex schedule's steps are per-day rates by start minute of pump time (READ_PROGRAM);
the rate changes at each step's start, every day.

Dates on the calendar: the forecast runs in pump time (the schedule's steps are
minutes of the pump's day), and `on_calendar` then moves every time by the pump
clock's skew (calendar.py). So that the chart's days are this computer's calendar
days, `project` samples the reservoir at this computer's midnights (pump time
t with (t - shift) a midnight), not the pump's: UTC's, or those of the zone people
read (`days`: localtime.Zone, whose days are 23 to 25 hours across daylight saving).

What the pump does not tell: it reports its reservoir in whole uL (rounded down)
and not its sub-nL remainder. The forecast starts from those bounds (the volume
rounded down, the largest remainder), so its dates are never later than the
pump's; they are earlier by at most the time one uL takes at the rate then running
(minutes at usual flows).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from protocol.bodies import Program, Status

DAY = 86_400
MINUTE = 60
NL_PER_UL = 1000
#: how far ahead the forecast looks: the slowest pump (0.048 mL/day) empties 40 mL in 834 days
HORIZON_DAYS = 1100


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Days(Protocol):
    """A calendar's days (seconds since the epoch): localtime.Zone is one."""

    def day_start(self, ts: float) -> int: ...

    def next_day_start(self, ts: float) -> int: ...

    def date_text(self, ts: float) -> str: ...


class UtcDays:
    """UTC's days: every day 86,400 s, midnights at multiples of DAY."""

    def day_start(self, ts: float) -> int:
        return int(ts) - int(ts) % DAY

    def next_day_start(self, ts: float) -> int:
        return self.day_start(ts) + DAY

    def date_text(self, ts: float) -> str:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(ts, UTC).date().isoformat()


UTC_DAYS = UtcDays()


class _OneDay:
    """A zone's days, the day last asked about remembered: the forecast walks forward through
    time, so nearly every question is about the same day (a zone's day costs datetime arithmetic)."""

    def __init__(self, days: Days) -> None:
        self.days = days
        self.start, self.end = 0, 0

    def _span(self, ts: float) -> None:
        if not self.start <= ts < self.end:
            self.start, self.end = self.days.day_start(ts), self.days.next_day_start(ts)

    def day_start(self, ts: float) -> int:
        self._span(ts)
        return self.start

    def next_day_start(self, ts: float) -> int:
        self._span(ts)
        return self.end

    def date_text(self, ts: float) -> str:
        return self.days.date_text(ts)


@dataclass(frozen=True)
class Schedule:
    """(start_minute, rate_nl_per_day) steps, sorted, the first at 00:00; empty = no delivery."""

    steps: tuple[tuple[int, int], ...]

    def rate_at(self, t: int) -> int:
        if not self.steps:
            return 0
        tod = t % DAY
        rate = self.steps[-1][1]
        for start, step_rate in self.steps:
            if start * MINUTE <= tod:
                rate = step_rate
        return rate

    def next_boundary(self, t: int, shift: int = 0, days: Days = UTC_DAYS) -> int:
        """The next step start, pump midnight or calendar midnight after t (pump time): the
        calendar's midnights (pump time t - shift at a midnight of `days`) give the daily samples."""
        base = t - t % DAY
        candidates = [base + DAY, _next_midnight(t, shift, days)]
        candidates += [base + start * MINUTE for start, _ in self.steps if base + start * MINUTE > t]
        return min(candidates)


def _next_midnight(t: int, shift: int, days: Days = UTC_DAYS) -> int:
    """The first pump time after t that is a midnight of `days` on the calendar (pump time - shift)."""
    return days.next_day_start(t - shift) + shift


def _at_midnight(t: int, shift: int, days: Days = UTC_DAYS) -> bool:
    return days.day_start(t - shift) == t - shift


@dataclass
class Forecast:
    start: int  # the time the forecast starts at (pump time, or on_calendar's)
    start_nl: int  # the reservoir assumed at start (after any running bolus)
    low_alarm_nl: int
    low_alarm_at: int | None  # None: not within the horizon (or no delivery)
    empty_at: int | None
    already_low: bool  # the alarm is active now
    delivery_from: int | None  # when delivery (re)starts; None: never (stopped)
    #: (time, reservoir nL) at the start, each midnight of `days`, the alarm and the empty time
    series: list[tuple[int, int]] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    horizon_end: int = 0
    #: seconds taken off pump time to give the times above (0: pump time; see on_calendar)
    shift_s: int = 0
    #: the calendar whose midnights the series samples (UTC's, or the zone people read)
    days: Days = UTC_DAYS


def project(*, pump_time: int, reservoir_ul: int, low_alarm_ul: int, steps: list[tuple[int, int]],
            low_alarm_active: bool = False, delivery_from: int | None = None, bolus_nl: int = 0,
            horizon_days: int = HORIZON_DAYS, midnight_shift_s: int = 0, days: Days = UTC_DAYS) -> Forecast:
    """Run the reservoir down from pump_time, recording every midnight, the alarm and empty.

    steps: (start_minute, rate_nl_per_day). delivery_from: the pump time delivery
    starts (None: at pump_time). bolus_nl: a running bolus's volume still to go,
    taken at once (the alarm can only come earlier than forecast, never later).
    midnight_shift_s: the midnights recorded are those of a calendar that is this
    many seconds behind pump time (calendar.shift_s of the skew; 0: the pump's own), and
    of `days` (UTC's, or a zone's: localtime.Zone).
    Every time in the result is pump time (on_calendar moves them).
    """
    shift = midnight_shift_s
    schedule = Schedule(tuple(sorted(steps)))
    t = pump_time
    res = max(0, reservoir_ul * NL_PER_UL - bolus_nl)
    low = low_alarm_ul * NL_PER_UL
    end_of_horizon = pump_time + horizon_days * DAY
    fc = Forecast(start=pump_time, start_nl=res, low_alarm_nl=low, low_alarm_at=None, empty_at=None,
                  already_low=low_alarm_active, delivery_from=delivery_from if schedule.steps else None,
                  horizon_end=end_of_horizon, days=days if isinstance(days, UtcDays) else _OneDay(days))
    fc.series.append((t, res))
    low_pending = not low_alarm_active and res > low
    if not low_alarm_active and res <= low:
        fc.low_alarm_at = t  # at or below the level: the pump raises it now
    if res == 0:
        fc.empty_at = t
    if not schedule.steps or not any(rate for _, rate in schedule.steps):
        fc.delivery_from = None
        return fc
    if delivery_from is not None and delivery_from > t:
        t = _hold(fc, t, delivery_from, end_of_horizon, shift)
    _drain(fc, schedule, t, low_pending=low_pending, end_of_horizon=end_of_horizon, shift=shift)
    return fc


def _hold(fc: Forecast, t: int, delivery_from: int, end_of_horizon: int, shift: int) -> int:
    """Nothing drains until delivery restarts: the volume holds, sampled at each midnight
    until then; the time the hold ends."""
    while t < delivery_from and t < end_of_horizon:
        t = min(delivery_from, _next_midnight(t, shift, fc.days))
        if _at_midnight(t, shift, fc.days):
            fc.series.append((t, fc.start_nl))
    return t


def _drain(fc: Forecast, schedule: Schedule, t: int, *, low_pending: bool, end_of_horizon: int, shift: int) -> None:
    """Deliver from t, interval by interval (each ends at a step start, a midnight, or the
    alarm or empty crossing), recording the alarm, empty and each midnight in fc."""
    res, low = fc.start_nl, fc.low_alarm_nl
    # the pump's sub-nL remainder (nL*s/day) is not reported: take the most it can be, so that
    # the forecast delivers at least what the pump does and its dates are never later
    rem = DAY - 1
    while t < end_of_horizon and res > 0:
        rate = schedule.rate_at(t)
        end = min(schedule.next_boundary(t, shift, fc.days), end_of_horizon)
        if rate > 0:
            for level in ([low] if low_pending else []) + [0]:
                need = res - level
                crossing = t + max(1, _ceil_div(need * DAY - rem, rate))
                end = min(end, crossing)
        delivered, rem = divmod(rem + rate * (end - t), DAY)
        res -= min(delivered, res)
        t = end
        if low_pending and res <= low:
            low_pending = False
            fc.low_alarm_at = t
            fc.series.append((t, res))
        if res == 0:
            fc.empty_at = t
            if fc.series[-1][0] != t:
                fc.series.append((t, res))
            break
        if _at_midnight(t, shift, fc.days):
            fc.series.append((t, res))


def on_calendar(fc: Forecast, shift: int) -> Forecast:
    """The forecast with every time moved from pump time to this computer's calendar:
    time - shift (calendar.shift_s of the pump clock's skew). Project with the same
    midnight_shift_s, so that the samples fall on the calendar's midnights."""
    def move(t: int | None) -> int | None:
        return None if t is None else t - shift

    return replace(fc, start=fc.start - shift, low_alarm_at=move(fc.low_alarm_at), empty_at=move(fc.empty_at),
                   delivery_from=move(fc.delivery_from), series=[(t - shift, nl) for t, nl in fc.series],
                   assumptions=list(fc.assumptions), horizon_end=fc.horizon_end - shift,
                   shift_s=fc.shift_s + shift)


def daily_rows(fc: Forecast, *, max_rows: int = 62) -> list[dict]:
    """One row per day of fc's times (fc.days': UTC's or a zone's; or per group of days when
    there are many) for the chart: the volume at the end of the row's last day ("to": its
    end, the next day's midnight), how many days it holds, and what happens in it. For the
    calendar's days, give on_calendar's forecast."""
    days = fc.days
    midnights = [(t, nl) for t, nl in fc.series if days.day_start(t) == t and t > fc.start]
    if fc.empty_at and (not midnights or midnights[-1][0] <= fc.empty_at):
        midnights.append((days.next_day_start(fc.empty_at), 0))
    if not midnights:
        return []
    group = max(1, _ceil_div(len(midnights), max_rows))
    rows = []
    first_day = days.day_start(fc.start)
    for i in range(0, len(midnights), group):
        chunk = midnights[i:i + group]
        day_start = first_day if i == 0 else midnights[i - 1][0]
        day_end = chunk[-1][0]
        rows.append({"from": day_start, "to": day_end, "days": len(chunk), "end_nl": chunk[-1][1],
                     "alarm": fc.low_alarm_at is not None and day_start <= fc.low_alarm_at < day_end,
                     "empty": fc.empty_at is not None and day_start <= fc.empty_at < day_end})
    return rows


def from_pump(raw: Status, program: Program, *, skew_s: int = 0, days: Days = UTC_DAYS) -> Forecast:
    """The forecast for what the pump reported: INTERROGATE (raw) and READ_PROGRAM's program,
    on this computer's calendar for a pump clock skew_s seconds ahead (calendar.py: moved
    only past its threshold; 0: the pump's own times), sampled at the midnights of `days`
    (UTC's, or the zone people read: localtime.zone())."""
    from protocol import Alarm, InfusionMode, MriMode

    from .calendar import shift_s as calendar_shift
    from .catheter import bridge_running
    from .status import alarm_name

    steps = [(s.start_minute, s.rate_nl_per_day) for s in program.steps]
    assumptions = ["the reservoir starts at the pump's figure in whole uL (rounded down): dates are never "
                   "later than the pump's, by at most the time 1 uL takes"]
    now = raw.pump_time
    delivery_from = None
    bolus_nl = 0
    alarms = raw.alarms
    if program.mode == InfusionMode.STOPPED or not steps:
        assumptions.append("delivery is stopped: the reservoir does not drain")
    elif raw.mri_mode == MriMode.SAFE:
        delivery_from = raw.mri_auto_exit_at or now
        assumptions.append("MRI-safe mode: delivery is assumed to restart at the automatic exit")
    elif alarms & Alarm.EOS:
        steps = []
        assumptions.append("battery at end of service: delivery has stopped")
    elif bridge_running(raw):
        assumptions.append("a bridge bolus runs in place of the program: the forecast takes its volume at "
                           "once and the program from now")
    elif raw.current_rate_nl_per_day == 0 and Schedule(tuple(sorted(steps))).rate_at(now) > 0:
        assumptions.append("delivery is suspended now (" + ", ".join(
            alarm_name(a) for a in Alarm if alarms & a) + "): the forecast assumes it resumes now")
    if raw.bolus_remaining_ng and raw.concentration_ng_per_ml:
        bolus_nl = _ceil_div(raw.bolus_remaining_ng * 1_000_000, raw.concentration_ng_per_ml)
        assumptions.append("a bolus is running: its remaining volume is taken at once (the alarm can only "
                           "come later than forecast)")
    shift = calendar_shift(skew_s)
    fc = project(pump_time=now, reservoir_ul=raw.reservoir_ul, low_alarm_ul=raw.low_reservoir_alarm_ul,
                 steps=steps, low_alarm_active=bool(alarms & Alarm.LOW_RESERVOIR), delivery_from=delivery_from,
                 bolus_nl=bolus_nl, midnight_shift_s=shift, days=days)
    if shift:
        assumptions.append("the pump's clock keeps its skew: every time is moved by the skew measured now, "
                           "and the schedule's steps run at their pump-clock times")
    fc.assumptions = assumptions + fc.assumptions
    return on_calendar(fc, shift)


def ml(nl: int):
    """nL -> mL as an exact Decimal, floored to whole uL as the pump reports volumes."""
    from decimal import Decimal

    return Decimal(nl // NL_PER_UL) / 1000
