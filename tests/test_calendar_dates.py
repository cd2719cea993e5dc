"""Dates on the calendar (issue 16): every date ithcli shows or compares is on this computer's
calendar, moved by the pump clock's measured skew, and a clock more than 5 minutes off is
warned about wherever dates are shown.

The pure conversion (ithcli/calendar.py) and the views built on it are tested in-process;
the user's view end to end with real ith-emulator processes whose clock is moved ahead of
this computer's through the control socket (`advance`: the pump's clock only goes forward).
"""
from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from cli_harness import Cli
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli_program import BACLOFEN

from emulator.program import Program
from emulator.pump import Pump
from ithcli import calendar, druglib, forecast
from ithcli.calendar import (
    CLOCK_SKEW_THRESHOLD_S,
    clock_view,
    duration_text,
    measure_skew,
    shift_s,
    to_calendar,
    to_pump,
    warning,
)
from ithcli.status import describe, event_view
from protocol import Drug, EventType, InfusionMode, MriMode, Priority, bodies

DAY = 86_400
T0 = 1_900_000_000
TWO_DAYS = 2 * DAY

# 6 mL at 0.5 mL/day (morphine 10 mg/mL: 5 mg/day) with the alarm at 2 mL: two days ahead of
# this computer the pump holds 5 mL, and its alarm comes 6 days after its clock, empty 10 days
SIX_ML = ("--drug", "morphine", "--concentration", "10 mg/mL", "--volume", "6 mL", "--flow", "0.5 mL/day")


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _dig(view: dict, path: tuple[str, ...]) -> str:
    """The date at `path` (keys, one a level) in a describe() view."""
    value: object = view
    for key in path:
        assert isinstance(value, dict), (path, value)
        value = value[key]
    assert isinstance(value, str), (path, value)
    return value


def _ts(text: str) -> int:
    return int(_date(text).timestamp())


# --- the pure conversion -----------------------------------------------------------

def test_skew_is_the_pump_clock_minus_this_computers_when_the_reply_arrived():
    assert measure_skew(T0, T0 + 0.9) == 0  # in step: both floored to whole seconds
    assert measure_skew(T0 + TWO_DAYS, T0 + 0.5) == TWO_DAYS  # ahead: positive
    assert measure_skew(T0 - 3600, T0) == -3600  # behind: negative


def test_a_pump_two_days_ahead_has_its_timestamps_put_two_days_earlier_on_the_calendar():
    assert to_calendar(T0 + 10 * DAY, TWO_DAYS) == T0 + 8 * DAY
    assert to_calendar(T0 + 10 * DAY, -TWO_DAYS) == T0 + 12 * DAY  # a pump behind: later
    assert to_pump(to_calendar(T0, TWO_DAYS), TWO_DAYS) == T0


def test_the_threshold_is_five_minutes_and_within_it_the_pumps_own_times_are_shown():
    assert CLOCK_SKEW_THRESHOLD_S == 300
    for skew in (0, 1, -1, 299, 300, -300):
        assert to_calendar(T0, skew) == T0 and shift_s(skew) == 0 and warning(skew) is None
    for skew in (301, -301):
        assert to_calendar(T0, skew) == T0 - skew and warning(skew) is not None


def test_an_unknown_pump_date_stays_unknown_never_a_date_near_1970():
    assert to_calendar(0, TWO_DAYS) is None
    assert to_calendar(None, TWO_DAYS) is None


def test_the_warning_names_how_far_which_way_and_the_calendar_the_dates_are_on():
    ahead = warning(TWO_DAYS)
    assert ahead is not None and "PUMP CLOCK AHEAD" in ahead and "2 days (172800 s) ahead" in ahead
    assert "this computer's calendar (UTC)" in ahead and "2 days earlier than the pump's clock" in ahead
    behind = warning(-5400)
    assert behind is not None
    assert "PUMP CLOCK BEHIND" in behind and "1 h 30 min (5400 s) behind" in behind and "later" in behind
    assert duration_text(172_799) == "about 2 days" and duration_text(42) == "42 s"


def test_the_pump_clock_object_of_json_results():
    view = clock_view(T0 + TWO_DAYS, T0, TWO_DAYS)
    assert view == {"pump_time": calendar.iso(T0 + TWO_DAYS), "read_at": calendar.iso(T0), "skew_s": TWO_DAYS,
                    "threshold_s": 300, "dates_on": "this computer's calendar (UTC)",
                    "dates_shifted_s": -TWO_DAYS, "warning": warning(TWO_DAYS)}
    assert clock_view(T0 + 4, T0, 4)["warning"] is None and clock_view(T0 + 4, T0, 4)["dates_shifted_s"] == 0


# --- the status, the log and the forecast on the calendar -----------------------------

def _pump(volume_ul: int = 10_000, steps=((0, 400_000),), battery_days: int = 5 * 365) -> Pump:
    pump = Pump.new(model="peristaltic-20", serial="F1", drug=Drug.BACLOFEN, concentration_ng_per_ml=2_000_000,
                    reservoir_ul=volume_ul, flow_nl_per_day=250_000, low_reservoir_alarm_ul=2_000,
                    battery_seconds=battery_days * DAY, start_time=T0)
    steps = list(steps)
    pump.program = Program.from_doses(InfusionMode.FLEX if len(steps) > 1 else InfusionMode.CONTINUOUS, steps,
                                      2_000_000)
    return pump


def _raw(**kw) -> bodies.Status:
    return dataclasses.replace(_pump(battery_days=30).status(), **kw)


def test_describe_moves_every_pump_date_and_keeps_the_pumps_clock_and_cross_check():
    lib = druglib.load(None)
    raw = _raw(mri_mode=MriMode.SAFE, mri_auto_exit_at=T0 + 4 * 3600, last_txid=7, last_programmed_at=T0 - 3600)
    raw = dataclasses.replace(raw, replace_by=raw.eri_at + 120 * DAY)  # the pump's own figure is 30 days late
    own = describe(raw, lib, read_at=T0, port="p", emulated=False)  # in step
    ahead = describe(raw, lib, read_at=T0 - TWO_DAYS, port="p", emulated=False)  # pump two days ahead
    assert own["clock_skew_s"] == 0 and ahead["clock_skew_s"] == TWO_DAYS
    dates = [("projected_low_reservoir_date",), ("projected_empty_date",), ("battery", "eri_date"),
             ("battery", "replace_by"), ("battery", "replace_by_computed"), ("mri_auto_exit_at",),
             ("last_programming", "at")]
    for path in dates:
        assert _date(_dig(own, path)) - _date(_dig(ahead, path)) == timedelta(days=2), path
    assert ahead["pump_time"] == own["pump_time"] == calendar.iso(T0)  # the pump's clock, as it reads
    assert ahead["read_at"] == calendar.iso(T0 - TWO_DAYS)
    assert ahead["battery"]["replace_by_mismatch"] is True  # the pump's own arithmetic, unmoved
    assert ahead["pump_clock"]["warning"] and own["pump_clock"]["warning"] is None
    # a later read of the same session described with the session's skew
    again = describe(raw, lib, read_at=T0, port="p", emulated=False, skew_s=TWO_DAYS)
    assert again["projected_empty_date"] == ahead["projected_empty_date"]


def test_a_log_event_keeps_its_pump_stamp_and_shows_its_calendar_time():
    event = bodies.Event(index=3, time=T0 + TWO_DAYS, type=EventType.REFILL, priority=Priority.NONE,
                         arg1=20_000, arg2=2_000_000)
    view = event_view(event, "mcg/day", TWO_DAYS)
    assert view["time"] == calendar.iso(T0) and view["pump_time"] == calendar.iso(T0 + TWO_DAYS)
    assert event_view(event, "mcg/day", 60)["time"] == calendar.iso(T0 + TWO_DAYS)  # within 5 min: as stamped


@settings(max_examples=30, deadline=None)
@given(starts=st.lists(st.integers(1, 1439), max_size=6, unique=True),
       doses=st.lists(st.integers(100_000, 4_000_000), min_size=7, max_size=7),
       volume=st.integers(2_500, 20_000), shift=st.integers(-5 * DAY, 5 * DAY))
def test_sampling_at_this_computers_midnights_changes_no_date(starts, doses, volume, shift):
    """The chart's days are the calendar's: samples at its midnights, the pump's delivery unchanged."""
    steps = list(zip([0] + sorted(starts), doses, strict=False))  # as many steps as starts
    rates = [(m, d // 2) for m, d in steps]  # nL/day at 2 mg/mL
    base = forecast.project(pump_time=T0 + 12_345, reservoir_ul=volume, low_alarm_ul=2_000, steps=rates)
    fc = forecast.project(pump_time=T0 + 12_345, reservoir_ul=volume, low_alarm_ul=2_000, steps=rates,
                          midnight_shift_s=shift)
    assert (fc.low_alarm_at, fc.empty_at) == (base.low_alarm_at, base.empty_at)
    moved = forecast.on_calendar(fc, shift)
    assert moved.low_alarm_at == fc.low_alarm_at - shift and moved.empty_at == fc.empty_at - shift
    midnights = [t for t, _ in moved.series[1:] if t not in (moved.low_alarm_at, moved.empty_at)]
    assert midnights and all(t % DAY == 0 for t in midnights)
    volumes = [nl for _, nl in moved.series]
    assert volumes == sorted(volumes, reverse=True)
    rows = forecast.daily_rows(moved)
    assert all(r["from"] % DAY == 0 or r is rows[0] for r in rows) and all(r["to"] % DAY == 0 for r in rows)


def test_the_forecast_of_a_pump_two_days_ahead_comes_two_days_earlier_on_the_calendar():
    pump = _pump(6_000, [(0, 400_000), (480, 600_000)])
    raw, program = pump.status(), pump.program_body()
    own = forecast.from_pump(raw, program)
    ahead = forecast.from_pump(raw, program, skew_s=TWO_DAYS + 7)
    assert own.low_alarm_at is not None and ahead.low_alarm_at is not None
    assert own.empty_at is not None and ahead.empty_at is not None
    assert own.low_alarm_at - ahead.low_alarm_at == TWO_DAYS + 7
    assert own.empty_at - ahead.empty_at == TWO_DAYS + 7
    assert any("skew" in a for a in ahead.assumptions) and not any("skew" in a for a in own.assumptions)
    assert forecast.from_pump(raw, program, skew_s=200).low_alarm_at == own.low_alarm_at  # within 5 min


# --- end to end: real emulator processes, the pump's clock moved ahead ------------------

def _json(cli: Cli, *args: str) -> tuple[dict, str]:
    result = cli("--json", *args)
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout), result.stderr  # stdout is the JSON object and nothing else


def _human(cli: Cli, *args: str) -> str:
    result = cli(*args)
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return " ".join(result.stdout.split())  # as words: long lines wrap


def _to_alarm(s: dict) -> timedelta:
    """From now to the low-reservoir alarm at 0.5 mL/day, by the pump's integer arithmetic."""
    ul = round(s["reservoir_ml"] * 1000)
    return timedelta(seconds=(ul - 2000) * 1000 * DAY // 500_000)


def _two_days_ahead(pump, *args):
    emu, cli = pump(*args)  # a frozen clock: it moves only when the test advances it
    emu.control("advance", seconds=TWO_DAYS)
    return emu, cli


def _assert_two_days_ahead(clock: dict) -> int:
    skew = clock["skew_s"]
    # two days ahead, less the seconds the test has run since the frozen clock was started
    assert TWO_DAYS - 120 <= skew <= TWO_DAYS, clock
    assert clock["dates_shifted_s"] == -skew and clock["threshold_s"] == 300
    assert "PUMP CLOCK AHEAD" in clock["warning"] and "this computer's calendar" in clock["warning"]
    assert _ts(clock["pump_time"]) - _ts(clock["read_at"]) == skew
    return skew


def test_interrogate_of_a_pump_two_days_ahead_shows_its_dates_two_days_earlier_and_warns(pump):
    emu, cli = _two_days_ahead(pump, *SIX_ML)
    s, stderr = _json(cli, "interrogate")
    skew = _assert_two_days_ahead(s["pump_clock"])
    assert s["clock_skew_s"] == skew and s["reservoir_ml"] == 5
    # (5 - 2) mL at 0.5 mL/day: 6 days from now on this computer's calendar; the pump's clock
    # would put it two days later
    low, empty = _date(s["projected_low_reservoir_date"]), _date(s["projected_empty_date"])
    assert low == _date(s["read_at"]) + timedelta(days=6) and empty == _date(s["read_at"]) + timedelta(days=10)
    assert _date(s["pump_time"]) + timedelta(days=6) - low == timedelta(seconds=skew)
    assert "PUMP CLOCK AHEAD" in stderr  # --json: the object on stdout, the warning on stderr too
    assert _date(s["battery"]["replace_by"]) - _date(s["battery"]["eri_date"]) == timedelta(days=90)

    human = _human(cli, "interrogate")
    assert "PUMP CLOCK AHEAD: the pump's clock is about 2 days" in human or \
        "PUMP CLOCK AHEAD: the pump's clock is 2 days" in human
    assert "Every date here is on this computer's calendar (UTC)" in human
    shown = _date(s["read_at"]) + timedelta(days=6)
    assert shown.strftime("%Y-%m-%d") in human.split("Low-reservoir alarm")[1][:30]
    pump_says = (_date(s["pump_time"]) + timedelta(days=6)).strftime("%Y-%m-%d %H:%M")
    assert pump_says not in human  # the pump-clock date is not what people read


def test_a_pump_clock_within_five_minutes_shows_no_warning_and_past_them_it_does(pump):
    emu, cli = pump(*SIX_ML)
    emu.control("advance", seconds=240)  # 4 minutes ahead, less the seconds since it started
    s, stderr = _json(cli, "interrogate")
    assert 0 < s["pump_clock"]["skew_s"] <= 240
    assert s["pump_clock"]["warning"] is None and s["pump_clock"]["dates_shifted_s"] == 0
    # (about 6 - 2) mL at 0.5 mL/day: about 8 days after the pump's clock, as the pump gives it
    assert _date(s["projected_low_reservoir_date"]) - _date(s["pump_time"]) == _to_alarm(s)
    assert "PUMP CLOCK" not in stderr
    assert "PUMP CLOCK" not in _human(cli, "interrogate")
    assert "PUMP CLOCK" not in _human(cli, "forecast")
    fc, _ = _json(cli, "forecast")
    assert fc["pump_clock"]["warning"] is None

    emu.control("advance", seconds=120)  # 6 minutes ahead: past the threshold
    s, stderr = _json(cli, "interrogate")
    assert s["pump_clock"]["skew_s"] > 300 and "PUMP CLOCK AHEAD" in s["pump_clock"]["warning"]
    assert _date(s["projected_low_reservoir_date"]) - _date(s["read_at"]) == _to_alarm(s)  # moved
    assert "PUMP CLOCK AHEAD" in _human(cli, "interrogate")


def test_forecast_compares_the_next_visit_with_calendar_dates_not_the_pumps(pump):
    emu, cli = _two_days_ahead(pump, *SIX_ML)
    # the alarm comes 6 days from now on the calendar: 8 by the pump's clock, after a visit in 7
    visit = (datetime.now(UTC) + timedelta(days=7)).date().isoformat()
    fc, stderr = _json(cli, "forecast", "--next-visit", visit)
    skew = _assert_two_days_ahead(fc["pump_clock"])
    alarm = _date(fc["low_reservoir_alarm_date"])
    assert alarm == _date(fc["read_at"]) + timedelta(days=6)
    assert _date(fc["pump_time"]) + timedelta(days=6) - alarm == timedelta(seconds=skew)
    assert fc["alarm_before_next_visit"] is True and fc["empty_before_next_visit"] is False
    assert any("before the next visit" in w for w in fc["warnings"])
    assert "PUMP CLOCK AHEAD" in stderr
    # the chart's days are this computer's: samples at its midnights, not the pump's
    middle = [_date(p["time"]) for p in fc["series"][1:] if p["time"] not in (fc["low_reservoir_alarm_date"],
                                                                              fc["empty_date"])]
    assert middle and all(t.hour == t.minute == t.second == 0 for t in middle)
    assert fc["series"][0]["time"] == fc["read_at"]

    human = _human(cli, "forecast", "--next-visit", visit)
    assert "PUMP CLOCK AHEAD" in human and "this computer's calendar" in human
    assert "WARNING: the low-reservoir alarm comes" in human
    assert f"{alarm.date().isoformat()} " in human.split("Low-reservoir alarm:")[1][:20]


def test_report_of_a_pump_two_days_ahead_warns_and_puts_its_times_on_the_calendar(pump):
    emu, cli = _two_days_ahead(pump, *BACLOFEN)
    assert cli("program", "--dose", "550 mcg/day", "--yes").code == 0
    live, stderr = _json(cli, "report")
    skew = _assert_two_days_ahead(live["pump_clock"])
    assert "PUMP CLOCK AHEAD" in stderr and live["times_note"]
    # (17.5 - 2) mL at 0.275 mL/day: 56.4 days from now on the calendar (58.4 by the pump's clock)
    assert _date(live["status"]["projected_low_reservoir_date"]) == _date(live["status"]["read_at"]) + timedelta(
        seconds=15_500 * 1000 * DAY // 275_000)
    change = live["changes"][0]
    # applied by the pump's clock two days from now; on the calendar, when the audit log says it was sent
    assert abs(_date(change["applied_at"]) - _date(change["time"])) < timedelta(minutes=2)
    assert _date(live["pump_clock"]["pump_time"]) - _date(change["applied_at"]) == timedelta(seconds=skew)
    human = _human(cli, "report")
    assert "PUMP CLOCK AHEAD" in human and "Note: the pump's times" in human

    offline = Cli(cli.state_dir)  # no port: the clock as measured at the audit log's last status
    logged, _ = _json(offline, "report")
    assert "PUMP CLOCK AHEAD" in logged["pump_clock"]["warning"]
    assert abs(_date(logged["changes"][0]["applied_at"]) - _date(change["time"])) < timedelta(minutes=2)
    assert "PUMP CLOCK AHEAD" in _human(offline, "report")


def test_log_shows_the_pumps_events_on_the_calendar_with_the_sessions_skew(pump):
    emu, cli = pump("--volume", "3 mL", "--flow", "1 mL/day")
    emu.control("advance", seconds=4 * DAY)  # low alarm on day 1, empty on day 3: 4 days ahead
    log, stderr = _json(cli, "log")
    clock = log["pump_clock"]
    assert 4 * DAY - 120 <= clock["skew_s"] <= 4 * DAY and "PUMP CLOCK AHEAD" in stderr
    for e in log["events"]:
        assert _ts(e["pump_time"]) - _ts(e["time"]) == clock["skew_s"]
    empty = next(e for e in log["events"] if e["type"] == "reservoir_empty")
    # emptied 3 days after the start by the pump's clock: a day before now on the calendar
    assert _date(empty["time"]) < _date(clock["read_at"]) - timedelta(hours=23)
    assert log["times_note"] and "does not record how its clock drifted" in log["times_note"]
    human = _human(cli, "log")
    assert "PUMP CLOCK AHEAD" in human and "Times on this computer's calendar (UTC), moved by" in human
    assert "does not record how its clock drifted" in human


def test_monitor_readings_carry_the_pump_clock_and_show_its_warning(pump):
    emu, cli = _two_days_ahead(pump, *SIX_ML)
    reading, _ = _json(cli, "monitor", "--count", "1")
    _assert_two_days_ahead(reading["pump_clock"])
    assert _date(reading["projected_low_reservoir_date"]) == _date(reading["read_at"]) + timedelta(days=6)
    assert "PUMP CLOCK AHEAD" in _human(cli, "monitor", "--count", "1")
