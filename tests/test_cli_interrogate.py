"""`ithcli interrogate` end to end: a real ith-emulator process, the real CLI process."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cli_harness import run_cli

BACLOFEN = ("--model", "peristaltic-20", "--serial", "BAC-0042", "--drug", "baclofen",
            "--concentration", "2000 mcg/mL", "--volume", "18 mL", "--flow", "0.25 mL/day")


def _date(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_interrogate_json_reports_what_the_pump_holds(start_emulator, transport):
    emu = start_emulator(*BACLOFEN, transport=transport)
    result = run_cli("--port", emu.url, "--json", "interrogate")
    assert result.code == 0, result.stderr
    s = result.json()
    assert s["serial_number"] == "BAC-0042"
    assert s["model"] == "peristaltic-20"
    assert s["drug"] == "baclofen"
    # baclofen is dosed in mcg/day: 0.25 mL/day x 2000 mcg/mL = 500 mcg/day
    assert s["concentration"] == {"value": 2000, "unit": "mcg/mL"}
    assert s["daily_dose"] == {"value": 500, "unit": "mcg/day"}
    assert s["flow_ml_per_day"] == 0.25
    assert s["reservoir_ml"] == 18
    assert s["reservoir_capacity_ml"] == 20
    assert s["low_reservoir_alarm_ml"] == 2
    # (18 - 2) mL at 0.25 mL/day: the alarm is 64 days after the pump's clock
    low = _date(s["projected_low_reservoir_date"])
    assert low - _date(s["pump_time"]) == timedelta(days=64)
    assert _date(s["projected_empty_date"]) - _date(s["pump_time"]) == timedelta(days=72)
    assert s["battery"]["state"] == "ok"
    assert s["alarms"] == []
    assert s["mri_mode"] == "off"
    assert s["emulated"] is False
    for key in ("battery", "read_at", "last_programming", "mode", "firmware"):
        assert key in s


def test_morphine_dose_is_in_mg_per_day(start_emulator):
    emu = start_emulator("--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "0.2 mL/day")
    s = run_cli("--port", emu.url, "--json", "interrogate").json()
    assert s["daily_dose"] == {"value": 2, "unit": "mg/day"}
    assert s["concentration"] == {"value": 10, "unit": "mg/mL"}


def test_human_output_shows_the_status_and_not_emulated_for_a_real_port(start_emulator):
    emu = start_emulator(*BACLOFEN)
    result = run_cli("--port", emu.url, "interrogate")
    assert result.code == 0, result.stderr
    out = result.stdout
    for text in ("BAC-0042", "peristaltic-20", "baclofen", "2000 mcg/mL", "500 mcg/day",
                 "18 mL of 20 mL", "No active alarms"):
        assert text in out, text
    assert "EMULATED" not in out


def test_port_emulator_starts_a_private_pump_and_says_emulated():
    result = run_cli("--port", "emulator", "interrogate")
    assert result.code == 0, result.stderr
    assert "EMULATED" in result.stdout
    assert run_cli("--port", "emulator", "--json", "interrogate").json()["emulated"] is True


def test_port_emulator_takes_extra_emulator_args_from_env():
    result = run_cli("--json", "interrogate", env={
        "ITHCLI_PORT": "emulator",
        "ITHCLI_EMULATOR_ARGS": "--drug ziconotide --concentration '25 mcg/mL' --flow '0.1 mL/day'",
    })
    assert result.code == 0, result.stderr
    s = result.json()
    assert s["drug"] == "ziconotide"
    assert s["daily_dose"] == {"value": 2.5, "unit": "mcg/day"}


def test_port_from_environment(start_emulator):
    emu = start_emulator()
    result = run_cli("--json", "interrogate", env={"ITHCLI_PORT": emu.url})
    assert result.code == 0, result.stderr
    assert result.json()["serial_number"]


def test_alarms_appear_with_priority_once_the_reservoir_runs_low(start_emulator):
    emu = start_emulator("--volume", "3 mL", "--flow", "0.5 mL/day")
    emu.control("advance", seconds=3 * 86400)  # 1.5 mL delivered: below the 2 mL threshold
    s = run_cli("--port", emu.url, "--json", "interrogate").json()
    assert {"name": "low_reservoir", "priority": "medium"} in s["alarms"]
    assert s["reservoir_ml"] == 1.5
    human = run_cli("--port", emu.url, "interrogate").stdout
    assert "MEDIUM" in human and "low reservoir" in human


def test_projected_alarm_date_matches_when_the_emulator_raises_it(start_emulator):
    emu = start_emulator("--volume", "5 mL", "--flow", "0.3 mL/day")
    s = run_cli("--port", emu.url, "--json", "interrogate").json()
    projected = _date(s["projected_low_reservoir_date"])
    assert s["pump_clock"]["dates_shifted_s"] == 0  # a pump in step: its own dates
    emu.control("advance", seconds=20 * 86400)
    log = run_cli("--port", emu.url, "--json", "log", "--type", "alarm_raised").json()
    raised = [e for e in log["events"] if "low reservoir" in e["description"]]
    assert len(raised) == 1
    # the clock jumped 20 days ahead of this computer's since the projection: the log shows the
    # alarm on the calendar 20 days earlier, and its pump stamp is where the projection put it
    assert abs(_date(raised[0]["pump_time"]) - projected) <= timedelta(seconds=2)
    assert abs(_date(raised[0]["pump_time"]) - _date(raised[0]["time"]) - timedelta(days=20)) <= timedelta(
        seconds=2)


def test_battery_at_eri_shows_replace_by_ninety_days_later(start_emulator):
    emu = start_emulator("--battery-days", "100")
    emu.control("advance", seconds=30 * 86400)
    s = run_cli("--port", emu.url, "--json", "interrogate").json()
    b = s["battery"]
    assert b["state"] == "eri"
    assert {"name": "eri", "priority": "medium"} in s["alarms"]
    assert _date(b["replace_by"]) - _date(b["eri_date"]) == timedelta(days=90)
    assert b["replace_by_mismatch"] is False


def test_the_installed_console_script_runs(start_emulator, tmp_path):
    """`ithcli` as installed (beside this interpreter or on PATH; else `python -m ithcli`)."""
    import os
    import subprocess

    from cli_harness import DEFAULT_KEY_STORE, console_script

    emu = start_emulator()
    proc = subprocess.run([*console_script("ithcli", "ithcli"), "--port", emu.url, "--key-store", DEFAULT_KEY_STORE,
                           "--json", "interrogate"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ITHCLI_STATE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr


def test_timestamps_are_utc_iso(start_emulator):
    emu = start_emulator()
    s = run_cli("--port", emu.url, "--json", "interrogate").json()
    read_at = _date(s["read_at"])
    assert read_at.tzinfo == UTC
    assert abs(read_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert abs(s["clock_skew_s"]) < 300
