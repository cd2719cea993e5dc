"""`ithcli clock` end to end: show, set to this computer's time or a given one (two-phase,
read back, audited), a step over a day needing --confirm-clock-step, refusals that send
nothing, and the escalation windows still right across a set forward and a set back
(the pump logs CLOCK_SET; ithcli/history.py moves earlier events by its step)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from cli_harness import assert_one_line_error
from test_cli_program import MORPHINE, applied_txids, status

HOUR, DAY = 3600, 86_400


def _pump_time(cli) -> int:
    return int(datetime.fromisoformat(status(cli)["pump_time"].replace("Z", "+00:00")).timestamp())


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_clock_show_gives_both_clocks_and_the_skew(pump):
    emu, cli = pump(*MORPHINE)
    emu.control("advance", seconds=2 * DAY)
    shown = cli("--json", "clock", "show").json()
    assert {"pump_time", "computer_time", "skew_s", "warning"} <= set(shown)
    assert 2 * DAY - 60 <= shown["skew_s"] <= 2 * DAY and "AHEAD" in shown["warning"]
    assert "ahead of this computer's clock" in cli("clock", "show").stdout


def test_setting_the_clock_to_this_computers_time_is_verified_logged_and_audited(pump, tmp_path):
    emu, cli = pump(*MORPHINE)
    emu.control("advance", seconds=2 * DAY)  # the pump's clock two days ahead
    refused = cli("clock", "set", "--yes")
    assert_one_line_error(refused, 6, "back by", "--confirm-clock-step")
    assert applied_txids(emu) == []
    result = cli("--json", "clock", "set", "--yes", "--confirm-clock-step")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["outcome"] == "verified" and out["command"] == "clock"
    assert -2 * DAY - 5 <= out["step_s"] <= -2 * DAY + 60
    assert abs(status(cli)["clock_skew_s"]) <= 60  # the frozen pump clock stays where it was set
    sets = cli("--json", "log", "--type", "clock_set").json()
    # back 2 days less the seconds the exchanges took: "back 2 days" or "back 1 day 23 h 59 min"
    assert len(sets["events"]) == 1 and "pump clock set: back " in sets["events"][0]["description"]
    assert sets["clock_sets"][0]["step_s"] == out["step_s"]
    audit = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [a["step_s"] for a in audit if a.get("event") == "clock-set"] == [out["step_s"]]
    assert any(a.get("event") == "verified" and a.get("kind") == "CLOCK" for a in audit)
    report = cli("--json", "report").json()
    assert [c["command"] for c in report["changes"]] == ["clock"]
    assert [e["type"] for e in report["pump_clock_and_patient_log"]] == ["clock_set"]


def test_a_given_time_needs_its_utc_offset_and_a_time_outside_the_pumps_range_is_refused(pump):
    emu, cli = pump(*MORPHINE)
    assert_one_line_error(cli("clock", "set", "--to", "2026-03-01T08:00:00", "--yes"), 2, "UTC offset")
    assert_one_line_error(cli("clock", "set", "--to", "yesterday", "--yes"), 2, "ISO 8601")
    assert_one_line_error(cli("clock", "set", "--to", "2019-12-31T23:00:00Z", "--yes", "--confirm-clock-step"),
                          6, "outside the times")
    assert applied_txids(emu) == []
    # an offset is applied: 09:00+01:00 is 08:00Z
    now = _pump_time(cli)
    local = datetime.fromtimestamp(now + HOUR, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + "+01:00"
    result = cli("--json", "clock", "set", "--to", local, "--yes")
    assert result.code == 0, result.stderr
    assert abs(result.json()["step_s"]) <= 2  # the frozen pump's own time, given in another zone


def test_a_rise_just_before_a_clock_set_forward_is_still_in_the_24_hour_window(pump):
    emu, cli = pump(*MORPHINE)  # 2 mg/day; morphine: +50 % soft, +100 % hard over 24 hours
    assert cli("program", "--dose", "2.9 mg/day", "--yes").code == 0
    emu.control("advance", seconds=23 * HOUR)
    forward = _iso(_pump_time(cli) + 3 * DAY)
    assert cli("clock", "set", "--to", forward, "--yes", "--confirm-clock-step").code == 0
    # by the pump's clock the rise is now 3 days 23 h old; in real time 23 h: 2 -> 4.2 is +110 % in 24 h
    raised = cli("--json", "program", "--dose", "4.2 mg/day", "--yes", "--override-soft-limit", "RISE_7D=t")
    assert raised.code == 6, raised.stderr
    assert raised.json()["refused"][0]["rule"] == "rise-24hours"
    assert status(cli)["daily_dose"] == {"value": 2.9, "unit": "mg/day"}


def test_a_rise_before_a_clock_set_back_leaves_the_24_hour_window_after_24_real_hours(pump):
    emu, cli = pump(*MORPHINE)
    assert cli("program", "--dose", "2.9 mg/day", "--yes").code == 0
    back = _iso(_pump_time(cli) - 2 * DAY)
    assert cli("clock", "set", "--to", back, "--yes", "--confirm-clock-step").code == 0
    emu.control("advance", seconds=25 * HOUR)
    # the rise's stamp is still "after" now - 24 h by the pump's clock; moved by the step it is 25 h old,
    # so 2.9 -> 3.9 is +34 % on the day (and +95 % on the week): within every soft budget
    raised = cli("--json", "program", "--dose", "3.9 mg/day", "--yes")
    assert raised.code == 0, raised.stderr
    log = cli("--json", "log").json()
    changed = [e for e in log["events"] if e["type"] == "program_changed"]
    # the first change is shown on the clock as it is now (moved back 2 days), its stamp as logged
    assert changed[0]["time"] != changed[0]["pump_time"]
    assert changed[0]["time"] < changed[1]["time"]
