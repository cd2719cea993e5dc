"""`ithcli log` end to end."""
from __future__ import annotations

from cli_harness import run_cli


def test_log_decodes_power_on_and_alarms_with_priorities(start_emulator):
    emu = start_emulator("--volume", "3 mL", "--flow", "1 mL/day")
    emu.control("advance", seconds=4 * 86400)  # low alarm on day 1, empty on day 3
    result = run_cli("--port", emu.url, "--json", "log")
    assert result.code == 0, result.stderr
    events = result.json()["events"]
    types = [e["type"] for e in events]
    assert types[0] == "power_on"
    assert "reservoir_empty" in types
    high = [e for e in events if e["priority"] == "high"]
    assert any("empty reservoir" in e["description"] for e in high)
    assert [e["index"] for e in events] == sorted(e["index"] for e in events)


def test_log_filters_by_type_priority_since_and_limit(start_emulator):
    emu = start_emulator("--volume", "3 mL", "--flow", "1 mL/day")
    emu.control("advance", seconds=4 * 86400)
    alarms = run_cli("--port", emu.url, "--json", "log", "--type", "alarm_raised").json()["events"]
    assert alarms and all(e["type"] == "alarm_raised" for e in alarms)
    high = run_cli("--port", emu.url, "--json", "log", "--priority", "high").json()["events"]
    assert high and all(e["priority"] == "high" for e in high)
    # --since compares with the times as shown (this computer's calendar): from the first alarm on
    since = alarms[0]["time"]
    late = run_cli("--port", emu.url, "--json", "log", "--since", since).json()["events"]
    assert late and all(e["time"] >= since for e in late)
    assert "power_on" not in [e["type"] for e in late]
    last = run_cli("--port", emu.url, "--json", "log", "--limit", "1").json()["events"]
    assert len(last) == 1


def test_log_pages_through_more_events_than_one_reply_holds(start_emulator):
    emu = start_emulator()
    for _ in range(40):
        emu.control("reset")  # each logs a power-on and raises the reset alarm
    events = run_cli("--port", emu.url, "--json", "log").json()["events"]
    assert len(events) > 32
    assert [e["index"] for e in events] == list(range(events[0]["index"], events[0]["index"] + len(events)))


def test_log_human_output(start_emulator):
    emu = start_emulator()
    out = run_cli("--port", emu.url, "log").stdout
    assert "Event log of" in out and "pump started" in out


def test_bad_since_is_a_usage_error(start_emulator):
    emu = start_emulator()
    result = run_cli("--port", emu.url, "log", "--since", "yesterday")
    assert result.code == 2
    assert "Traceback" not in result.stderr
