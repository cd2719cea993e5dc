"""Clinician views end to end: forecast, monitor, report, log filters (real emulator processes)."""
from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from cli_harness import DEFAULT_KEY_STORE, Cli, assert_one_line_error
from test_cli_program import BACLOFEN, FROZEN

SCHEDULE = """
[[step]]
start = "00:00"
dose = "400 mcg/day"

[[step]]
start = "08:00"
dose = "600 mcg/day"

[[step]]
start = "20:00"
dose = "500 mcg/day"
"""


def _date(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))




def _today() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def test_forecast_follows_a_flex_schedule_to_the_pumps_actual_alarm(pump, tmp_path):
    emu, cli = pump("--model", "peristaltic-20", "--serial", "BAC-0001", "--drug", "baclofen",
                    "--concentration", "2000 mcg/mL", "--volume", "6 mL", "--flow", "0.25 mL/day",
                    "--start-time", _today().strftime("%Y-%m-%dT05:00:00Z"))
    schedule = tmp_path / "flex.toml"
    schedule.write_text(SCHEDULE)
    programmed = cli("program", "--mode", "flex", "--schedule", str(schedule), "--yes")
    assert programmed.code == 0, programmed.stderr
    emu.control("advance", seconds=86_400 + 12_345)  # part-way through a step, with a part-uL left over
    visit = (_today() + timedelta(days=60)).date().isoformat()
    result = cli("--json", "forecast", "--next-visit", visit)
    assert result.code == 0, result.stderr
    fc = result.json()
    assert fc["mode"] == "flex" and [s["start"] for s in fc["steps"]] == ["00:00", "08:00", "20:00"]
    assert fc["alarm_before_next_visit"] is True and fc["empty_before_next_visit"] is True
    assert any("before the next visit" in w for w in fc["warnings"])
    assert fc["series"][0]["reservoir_ml"] == fc["reservoir_ml"]
    # the forecast's dates are on this computer's calendar: back on the pump's clock for the log
    moved = timedelta(seconds=fc["pump_clock"]["dates_shifted_s"])
    forecast_alarm = _date(fc["low_reservoir_alarm_date"]) - moved

    human = cli("forecast", "--next-visit", visit)
    assert human.code == 0, human.stderr
    assert "LOW-RESERVOIR ALARM" in human.stdout and "EMPTY" in human.stdout and "WARNING" in human.stdout

    emu.control("advance", seconds=40 * 86_400)
    log = cli("--json", "log", "--alarms").json()
    raised = [e for e in log["events"] if e["type"] == "alarm_raised" and e["alarm"] == "low_reservoir"]
    assert len(raised) == 1 and raised[0]["priority"] == "medium"
    actual = _date(raised[0]["pump_time"])  # the pump's own stamp
    # never later than the pump, and well within one step of the schedule (the shortest is 4 h)
    assert forecast_alarm <= actual <= forecast_alarm + timedelta(hours=4)
    assert actual - forecast_alarm <= timedelta(seconds=433)  # at most the time 1 uL takes at 0.2 mL/day


def _env(cli: Cli) -> dict:
    """The environment of a long-running ithcli started by hand (monitor), bound to cli's pump."""
    assert cli.port is not None, "a monitor needs the pump's port"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
    env.update(ITHCLI_STATE_DIR=cli.state_dir, ITHCLI_KEY_STORE=DEFAULT_KEY_STORE, ITHCLI_OPERATOR="test",
               ITHCLI_PORT=cli.port, COLUMNS="120")
    return env


def _monitor(cli: Cli, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ithcli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(cli))


def _readings(proc: subprocess.Popen, after: int, then) -> tuple[list[dict], str]:
    """The monitor's JSON lines to the end (and its stderr); `then()` is called once the
    `after`-th reading is in, while the monitor runs on."""
    assert proc.stdout is not None and proc.stderr is not None
    readings = []
    try:
        for line in proc.stdout:
            readings.append(json.loads(line))
            if len(readings) == after:
                then()
        proc.wait(30)
    finally:
        proc.kill()
    return readings, proc.stderr.read()


def test_monitor_streams_json_lines_that_show_the_alarm_when_it_fires(pump):
    emu, cli = pump("--volume", "3 mL", "--flow", "0.5 mL/day")  # alarm at 2 mL: after 2 days
    proc = _monitor(cli, "--json", "monitor", "--interval", "0.1", "--count", "8")
    readings, stderr = _readings(proc, 2, lambda: emu.control("advance", seconds=3 * 86_400))
    assert proc.returncode == 0, stderr
    assert len(readings) == 8 and [r["reading"] for r in readings] == list(range(1, 9))
    first = readings[0]
    assert first["ok"] and first["alarms"] == [] and first["stale"] is False and first["age_s"] < 1
    assert first["reservoir_ml"] == 3 and first["active_step"]["start"] == "00:00"
    assert set(first["link"]) >= {"round_trip_ms", "corrupt_frames", "retries"}
    fired = [r for r in readings if r["alarms_raised"]]
    assert len(fired) == 1, [r["alarms_raised"] for r in readings]
    assert fired[0]["alarms_raised"] == [{"name": "low_reservoir", "priority": "medium"}]
    assert any(e["type"] == "alarm_raised" and e["priority"] == "medium" for e in fired[0]["events"])
    assert fired[0]["reservoir_ml"] == 1.5
    assert all({"name": "low_reservoir", "priority": "medium"} in r["alarms"]
               for r in readings[readings.index(fired[0]):])


def test_monitor_carries_on_through_a_pump_reset_in_a_new_session_and_shows_the_reset_alarm(pump):
    emu, cli = pump()
    proc = _monitor(cli, "--json", "monitor", "--interval", "0.1", "--count", "4")
    # after the first reading the pump resets: it forgets our session with its RAM
    readings, stderr = _readings(proc, 1, lambda: emu.control("reset"))
    assert proc.returncode == 0, stderr
    assert all(r["ok"] for r in readings) and len(readings) == 4
    assert "reset" not in {a["name"] for a in readings[0]["alarms"]}
    # the reading after the reset (the monitor may have read once more before it landed) shows
    # the alarm, and so does every reading after it
    seen = [i for i, r in enumerate(readings) if {"name": "reset", "priority": "low"} in r["alarms"]]
    assert seen and seen == list(range(seen[0], 4)), [r["alarms"] for r in readings]
    assert stderr.count("ERROR NOT_AUTHENTICATED in clear") == 1, stderr
    assert stderr.count("the pump may have reset: a reset loses every session): opening a new session") == 1


def test_monitor_retries_failed_readings_marks_data_stale_then_exits_with_the_link_code(pump):
    emu, cli = pump(transport="tcp")
    proc = _monitor(cli, "--json", "--timeout", "0.3", "monitor", "--interval", "0.3", "--stale-after", "0.1",
                    "--max-failures", "3")
    readings, stderr = _readings(proc, 2, emu.kill)
    assert proc.returncode == 3
    assert "ithcli: error: monitor stopped: 3 readings in a row failed" in stderr
    # the stream stays JSON lines to the end: the error object is one line too
    assert readings[-1]["error"]["exit_code"] == 3 and readings[-1]["error"]["kind"] == "link"
    good, failed = readings[:2], readings[2:-1]
    assert all(r["ok"] for r in good)
    assert len(failed) == 2 and not any(r["ok"] for r in failed)
    for r in failed:
        assert r["error"]["kind"] == "link" and r["stale"] is True and r["age_s"] > 0.1
        assert r["last_good_read_at"] == good[-1]["read_at"]
    assert [r["link"]["consecutive_failures"] for r in failed] == [1, 2]


def test_monitor_human_output_without_a_terminal(pump):
    emu, cli = pump(*BACLOFEN)
    result = cli("monitor", "--interval", "0.1", "--count", "2")
    assert result.code == 0, result.stderr
    assert "#1 " in result.stdout and "#2 " in result.stdout and "reservoir 18 mL" in result.stdout
    assert "Monitor stopped after 2 reading(s), 0 failed." in result.stdout


def test_report_holds_every_change_of_the_session_with_before_and_after(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    assert cli("program", "--dose", "550 mcg/day", "--yes").code == 0
    assert cli("refill", "--volume", "20 mL", "--concentration", "2000 mcg/mL", "--withdrawn", "17.9 mL",
               "--yes").code == 0
    assert cli("bolus", "--dose", "50 mcg", "--over", "10 min", "--yes").code == 0
    html, txt = tmp_path / "chart.html", tmp_path / "chart.txt"

    offline = Cli(cli.state_dir, operator="test-operator")  # no port: from the audit log alone
    result = offline("--json", "report", "--export", str(html))
    assert result.code == 0, result.stderr
    r = result.json()
    assert r["serial_number"] == "BAC-0001" and r["audit_log"]["intact"] is True
    assert r["session"]["rule"] == "today (UTC)" and r["session"]["operators"] == ["test-operator"]
    assert [c["command"] for c in r["changes"]] == ["program", "refill", "bolus"]
    assert all(c["outcome"] == "verified" and c["txid"] for c in r["changes"])
    program, refill, bolus = r["changes"]
    assert program["before"]["daily_dose"] == {"value": 500, "unit": "mcg/day"}
    assert program["after"]["daily_dose"] == {"value": 550, "unit": "mcg/day"}
    assert program["after"]["flow_ml_per_day"] == 0.275
    assert refill["before"]["reservoir_ml"] == 18 and refill["after"]["reservoir_ml"] == 20
    assert refill["request"]["withdrawn"] == {"value": 17.9, "unit": "mL"}
    assert bolus["before"]["bolus_remaining"] == {"value": 0, "unit": "mcg"}
    assert bolus["after"]["bolus_remaining"] == {"value": 50, "unit": "mcg"}
    assert bolus["request"]["dose"] == {"value": 50, "unit": "mcg"}
    assert r["status_source"]["from"] == "audit log"
    assert r["status"]["daily_dose"] == {"value": 550, "unit": "mcg/day"}
    page = html.read_text()
    for text in ("Session report: pump BAC-0001", "500 mcg/day", "550 mcg/day", "VERIFIED", "refill", "bolus"):
        assert text in page, text

    live = cli("report", "--export", str(txt))  # settings read from the pump now
    assert live.code == 0, live.stderr
    chart = " ".join(txt.read_text().split())  # as words: long lines wrap
    assert "read from the pump at" in chart and "Change 3: bolus" in chart and "STALE" not in chart
    assert "hash chain intact" in chart


def test_report_marks_old_settings_stale_and_picks_one_pump_from_a_shared_log(pump, start_emulator, tmp_path):
    emu, cli = pump(*BACLOFEN)
    assert cli("interrogate").code == 0
    other = start_emulator(*FROZEN, "--serial", "OTHER-2")
    assert cli("--port", other.url, "interrogate").code == 0
    cli = Cli(cli.state_dir)  # no port from here on: the audit log alone
    both = cli("report")
    assert_one_line_error(both, 2, "BAC-0001", "OTHER-2", "--pump")
    time.sleep(1.1)
    one = cli("--json", "report", "--pump", "BAC-0001", "--stale-after", "0")
    assert one.code == 0, one.stderr
    r = one.json()
    assert r["serial_number"] == "BAC-0001" and r["changes"] == []
    assert r["status_source"]["stale"] is True and r["status_source"]["age_s"] >= 1
    human = cli("report", "--pump", "BAC-0001", "--stale-after", "0")
    assert "STALE" in human.stdout and "Changes in this session: none." in human.stdout
    future = cli("--json", "report", "--pump", "BAC-0001", "--since", "2999-01-01")
    assert future.code == 0 and future.json()["session"]["entries"] == 0
    assert_one_line_error(cli("report", "--export", str(tmp_path / "x.docx")), 2,
                          ".html, .pdf, .svg, .txt or .fhir.json")


def test_log_until_and_alarms_with_iec_priorities(start_emulator):
    from cli_harness import run_cli

    # the pump's clock starts at today's midnight: the days below are whole calendar days
    emu = start_emulator(*FROZEN, "--volume", "3 mL", "--flow", "1 mL/day",
                         "--start-time", _today().isoformat())
    emu.control("advance", seconds=4 * 86_400)  # low alarm on day 1 (medium), empty on day 3 (high)
    log = run_cli("--port", emu.url, "--json", "log", "--alarms").json()
    alarms = log["events"]
    assert [(e["alarm"], e["priority"]) for e in alarms] == [("low_reservoir", "medium"),
                                                              ("empty_reservoir", "high")]
    # --until is a date on this computer's calendar, where the log shows the pump's events
    low_day = alarms[0]["time"][:10]
    next_day = (_date(alarms[0]["time"]) + timedelta(days=1)).date().isoformat()
    early = run_cli("--port", emu.url, "--json", "log", "--until", low_day).json()["events"]
    assert early and all(e["time"] < next_day for e in early)
    assert "reservoir_empty" not in [e["type"] for e in early]
    assert any(e["type"] == "alarm_raised" for e in early)  # a bare date includes that whole day
    human = run_cli("--port", emu.url, "log", "--alarms").stdout
    assert "MEDIUM" in human and "HIGH" in human
    bad = run_cli("--port", emu.url, "log", "--since", "2026-01-03", "--until", "2026-01-02T00:00")
    assert bad.code == 2 and "Traceback" not in bad.stderr


def _plain(screen: str) -> str:
    """Terminal output without its control sequences (colours, cursor moves)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)


def _on_a_terminal(cli: Cli, *args: str, until: bytes = b"", interrupt: bool = False, then=None,
                   timeout: float = 30) -> tuple[int, str]:
    """Run ithcli with stdout and stderr on a pseudo-terminal (a clinician's terminal): what
    the terminal showed, and the exit code. Once `until` is on screen: Ctrl-C with interrupt,
    and `then()` if given."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    env = dict(_env(cli), LINES="40", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "ithcli", *args], stdout=slave, stderr=slave,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                chunk = None
            except OSError:  # EIO: the terminal's last writer has gone
                chunk = b""
            if chunk:
                screen += chunk
            if (interrupt or then) and not sent and until in screen:
                if then:
                    then()
                if interrupt:
                    proc.send_signal(signal.SIGINT)
                sent = True
            if chunk == b"" or (chunk is None and proc.poll() is not None):
                break
            if chunk is None:
                time.sleep(0.02)
        return proc.wait(10), screen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_monitor_on_a_terminal_draws_a_live_dashboard_and_ctrl_c_ends_it_with_exit_0(pump):
    emu, cli = pump(*BACLOFEN)
    code, screen = _on_a_terminal(cli, "monitor", "--interval", "0.2", until=b"reading 3", interrupt=True)
    assert code == 0, screen[-2000:]
    assert "\x1b[" in screen  # drawn with terminal control sequences, redrawn in place
    text = _plain(screen)
    assert "Pump BAC-0001" in text and "baclofen" in text
    assert "Reservoir" in text and "18 mL of 20 mL" in text and "Daily dose" in text
    assert "reading 3; Ctrl-C to stop" in text
    assert "Monitor stopped after" in text and "0 failed" in text
    assert "Traceback" not in text


def test_monitor_dashboard_marks_data_stale_when_the_pump_stops_answering(pump):
    # the dashboard keeps the last good reading on screen, marked STALE, while it retries
    emu, cli = pump(*BACLOFEN, transport="tcp")
    emu_killed = []

    def kill():  # once two readings are on screen
        emu.kill()
        emu_killed.append(True)

    code, screen = _on_a_terminal(cli, "--timeout", "0.3", "monitor", "--interval", "0.3", "--stale-after", "0.2",
                                  "--max-failures", "3", until=b"reading 2", then=kill, timeout=60)
    assert emu_killed and code == 3, screen[-2000:]
    text = _plain(screen)
    assert "Pump BAC-0001" in text and "READING FAILED" in text and "STALE" in text
    assert "ithcli: error: monitor stopped: 3 readings in a row failed" in text


def test_report_for_a_pump_the_audit_log_does_not_hold_names_the_ones_it_does(pump, start_emulator):
    emu, cli = pump(*BACLOFEN)
    assert cli("interrogate").code == 0
    other = start_emulator(*FROZEN, "--serial", "OTHER-2")
    assert cli("--port", other.url, "interrogate").code == 0
    cli = Cli(cli.state_dir)  # the audit log alone
    nope = cli("report", "--pump", "NOPE")
    assert_one_line_error(nope, 2, "--pump NOPE", "no entry for that pump", "BAC-0001, OTHER-2")
    assert nope.stdout == ""  # no empty report
    as_json = cli("--json", "report", "--pump", "NOPE")
    assert as_json.code == 2 and as_json.json()["error"]["exit_code"] == 2
    assert "BAC-0001, OTHER-2" in as_json.json()["error"]["message"]
    assert cli("report", "--pump", "BAC-0001").code == 0  # one it holds still reports
