"""Local time for people (--tz, env ITHCLI_TZ; default this computer's zone), UTC with its
offset written out in JSON: the zone arithmetic alone, then ithcli against real emulators.

The emulated pumps' clocks are frozen (--time-scale 1e-9) and in step with this computer's to
well within the 5-minute skew threshold, so the dates they give are the same in every run:
a time read from the JSON (UTC) is the one the human output must show in the zone.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cli_harness import assert_one_line_error

from ithcli import localtime

KOLKATA = ZoneInfo("Asia/Kolkata")
PARIS = ZoneInfo("Europe/Paris")


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _shown(text: str, tz, label: str) -> str:
    """An ISO time from the JSON as the human output shows it in tz."""
    return f"{datetime.fromisoformat(text).astimezone(tz):%Y-%m-%d %H:%M:%S} {label}"


# --- the zone arithmetic -------------------------------------------------------------------
@pytest.mark.parametrize("text,name,offset", [
    ("Asia/Kolkata", "Asia/Kolkata", "+05:30"), ("UTC", "UTC", "+00:00"), ("z", "UTC", "+00:00"),
    ("+05:30", "+05:30", "+05:30"), ("-0800", "-08:00", "-08:00"), ("+01", "+01:00", "+01:00"),
    ("Etc/GMT+5", "Etc/GMT+5", "-05:00"),  # IANA's POSIX-style sign: 5 hours west
])
def test_zones_people_name(text, name, offset):
    zone = localtime.parse(text)
    assert zone.name == name and zone.offset(1_796_181_374) == offset


@pytest.mark.parametrize("text", ["Mars/Olympus", "", "+15:00", "+05:60", "Europe", "../etc", "CET-1CEST"])
def test_what_is_not_a_zone_is_refused_saying_what_is(text):
    with pytest.raises(ValueError, match="--tz"):
        localtime.parse(text)


def test_each_time_carries_its_zone_letters_or_offset():
    when = 1_796_181_374  # 2026-12-02T03:16:14Z
    assert localtime.label(localtime.parse("Asia/Kolkata").at(when)) == "IST"
    assert localtime.label(localtime.parse("Europe/Paris").at(when)) == "CET"
    assert localtime.label(localtime.parse("+05:30").at(when)) == "+05:30"  # no letters for a bare offset
    assert localtime.label(localtime.parse("Asia/Dubai").at(when)) == "+04:00"  # tzdata says "+04"


def test_days_start_at_local_midnight_and_daylight_saving_days_are_23_and_25_hours():
    paris = localtime.parse("Europe/Paris")
    noon = int(datetime(2027, 3, 28, 12, tzinfo=PARIS).timestamp())  # clocks go forward at 02:00
    assert paris.day_start(noon) == int(datetime(2027, 3, 28, tzinfo=PARIS).timestamp())
    assert paris.next_day_start(noon) - paris.day_start(noon) == 23 * 3600
    autumn = int(datetime(2027, 10, 31, 12, tzinfo=PARIS).timestamp())
    assert paris.next_day_start(autumn) - paris.day_start(autumn) == 25 * 3600
    kolkata = localtime.parse("Asia/Kolkata")
    late = int(datetime(2026, 12, 1, 20, 0, tzinfo=UTC).timestamp())  # already 2 December in Kolkata
    assert kolkata.date_text(late) == "2026-12-02"
    assert kolkata.day_start(late) == int(datetime(2026, 12, 1, 18, 30, tzinfo=UTC).timestamp())
    assert paris.start_of(date(2027, 3, 28)) == int(datetime(2027, 3, 27, 23, tzinfo=UTC).timestamp())


def test_the_local_zone_is_the_one_tz_names_else_etc_localtime(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    assert localtime.local_zone().name == "Asia/Kolkata"
    monkeypatch.setenv("TZ", ":Europe/Paris")
    assert localtime.local_zone().name == "Europe/Paris"
    monkeypatch.setenv("TZ", "CET-1CEST")  # a POSIX rule: the C library's offset in force now
    assert localtime.local_zone().tz.utcoffset(None) in (timedelta(hours=1), timedelta(hours=2))


def test_the_forecast_samples_the_zones_midnights():
    """forecast.project with a zone's days: every sample after the start is a local midnight, the
    rows are the zone's days, and the pump drains exactly as with UTC's (the alarm, empty)."""
    from ithcli import forecast

    kolkata = localtime.parse("Asia/Kolkata")
    t0 = int(datetime(2030, 1, 1, 5, tzinfo=UTC).timestamp())
    steps = [(0, 200_000), (8 * 60, 400_000)]
    fc = forecast.project(pump_time=t0, reservoir_ul=5_000, low_alarm_ul=2_000, steps=steps, days=kolkata)
    utc = forecast.project(pump_time=t0, reservoir_ul=5_000, low_alarm_ul=2_000, steps=steps)
    assert (fc.low_alarm_at, fc.empty_at) == (utc.low_alarm_at, utc.empty_at)  # the pump drains the same
    midnights = [t for t, _ in fc.series[1:] if t not in (fc.low_alarm_at, fc.empty_at)]
    assert midnights and all(datetime.fromtimestamp(t, KOLKATA).time().isoformat() == "00:00:00" for t in midnights)
    rows = forecast.daily_rows(fc)
    assert rows[0]["from"] == kolkata.day_start(t0) and all(kolkata.day_start(r["to"]) == r["to"] for r in rows)


# --- ithcli against a real emulator ---------------------------------------------------------
def _iso_times(value) -> list[str]:
    """Every ISO 8601 date-time string anywhere in a JSON document."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _iso_times(v)]
    if isinstance(value, list):
        return [t for v in value for t in _iso_times(v)]
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}.*", value):
        return [value]
    return []


def test_interrogate_shows_times_in_the_zone_asked_for_and_json_stays_utc(pump):
    emu, cli = pump()
    data = cli("--json", "--tz", "Asia/Kolkata", "interrogate")
    assert data.code == 0, data.stderr
    status = data.json()
    times = _iso_times(status)
    assert times and all(t.endswith("+00:00") for t in times), times  # UTC, the offset written out
    human = cli("--tz", "Asia/Kolkata", "interrogate")
    assert human.code == 0, human.stderr
    assert _shown(status["pump_time"], KOLKATA, "IST") + " (the pump's own clock)" in human.stdout
    assert "Low-reservoir alarm  " + _shown(status["projected_low_reservoir_date"], KOLKATA, "IST") in human.stdout
    assert "this computer's calendar (Asia/Kolkata, IST, UTC+05:30)" in human.stdout
    assert " UTC" not in human.stdout.replace("UTC+05:30", "")
    # a fixed offset is shown as one; the environment's ITHCLI_TZ is --tz
    offset = cli("interrogate", env={"ITHCLI_TZ": "+05:30"})
    assert _shown(status["pump_time"], KOLKATA, "+05:30") + " (the pump's own clock)" in offset.stdout


def test_by_default_people_read_this_computers_zone_on_a_terminal_and_in_a_pipe(pump):
    emu, cli = pump()
    status = cli("--json", "interrogate").json()
    piped = cli("interrogate", env={"TZ": "Asia/Kolkata"})
    assert _shown(status["pump_time"], KOLKATA, "IST") in piped.stdout
    from cli_harness import run_cli_on_terminal

    on_terminal = run_cli_on_terminal("interrogate", columns=120, env={"TZ": "Europe/Paris", "NO_COLOR": "1",
                                                                        "ITHCLI_PORT": emu.url,
                                                                        "ITHCLI_STATE_DIR": cli.state_dir})
    assert on_terminal.code == 0, on_terminal.stderr
    paris = datetime.fromisoformat(status["pump_time"]).astimezone(PARIS)
    assert f"{paris:%Y-%m-%d %H:%M:%S} {paris.tzname()}" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", on_terminal.stdout)


def test_the_log_and_the_clock_show_the_zones_time(pump):
    emu, cli = pump()
    log = cli("--json", "log").json()
    first = log["events"][0]
    human = cli("--tz", "Asia/Kolkata", "log")
    assert _shown(first["time"], KOLKATA, "IST") in human.stdout
    assert all(t.endswith("+00:00") for t in _iso_times(log))
    clock = cli("--json", "clock", "show").json()
    shown = cli("--tz", "Asia/Kolkata", "clock", "show")
    assert _shown(clock["pump_time"], KOLKATA, "IST") in shown.stdout
    # a date-time typed without an offset is on the reader's clock: the first event's second on
    # Kolkata's clock keeps it, the next second does not (read as UTC, both would be 5 h 30 min late)
    at = datetime.fromisoformat(first["time"])

    def since(when: datetime) -> list[dict]:
        local = when.astimezone(KOLKATA).replace(tzinfo=None).isoformat()
        return cli("--json", "--tz", "Asia/Kolkata", "log", "--since", local).json()["events"]
    assert since(at)[0]["index"] == first["index"]
    assert all(e["index"] != first["index"] for e in since(at + timedelta(seconds=1)))


def test_reports_today_is_the_local_day(pump):
    emu, cli = pump()
    assert cli("interrogate").code == 0  # something in the audit log today
    report = cli("--json", "--tz", "Asia/Kolkata", "report")
    assert report.code == 0, report.stderr
    session = report.json()["session"]
    since = datetime.fromisoformat(session["since"])
    # Kolkata's midnight is 18:30 UTC the day before: never the UTC day's start
    assert session["since"].endswith("T18:30:00+00:00")
    now = datetime.now(UTC)
    assert timedelta(0) <= now - since < timedelta(days=1)
    assert since.astimezone(KOLKATA).date() == now.astimezone(KOLKATA).date()
    assert session["rule"] == "today (Asia/Kolkata, IST, UTC+05:30)"
    human = cli("--tz", "Asia/Kolkata", "report")
    assert f"today (Asia/Kolkata, IST, UTC+05:30): {since.astimezone(KOLKATA):%Y-%m-%d} 00:00:00 IST to now" in (
        human.stdout.replace("\n", " "))
    assert all(t.endswith("+00:00") for t in _iso_times(report.json()))


def test_the_forecasts_days_are_the_zones(pump):
    emu, cli = pump()
    fc = cli("--json", "--tz", "Asia/Kolkata", "forecast").json()
    marks = {fc["low_reservoir_alarm_date"], fc["empty_date"]}
    midnights = [p["time"] for p in fc["series"][1:] if p["time"] not in marks]
    assert midnights and all(t.endswith("T18:30:00+00:00") for t in midnights)
    human = cli("--tz", "Asia/Kolkata", "forecast")
    assert "Reservoir at the end of each" in human.stdout and "(Asia/Kolkata, IST, UTC+05:30)" in human.stdout
    alarm = datetime.fromisoformat(fc["low_reservoir_alarm_date"]).astimezone(KOLKATA)
    assert f"LOW-RESERVOIR ALARM {alarm:%H:%M} IST" in human.stdout.replace("\n", " ")


@pytest.mark.parametrize("args", [("interrogate",), ("keys", "list")])
def test_a_bad_zone_is_a_one_line_usage_error_whatever_the_command(pump, args):
    emu, cli = pump()
    assert_one_line_error(cli("--tz", "Mars/Olympus", *args), 2, "--tz 'Mars/Olympus' is not a time zone")
    refused = cli("--json", *args, env={"ITHCLI_TZ": "+25:00"})
    assert refused.code == 2 and json.loads(refused.stdout)["error"]["kind"] == "usage"
