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


def test_routine_sessions_fold_into_one_line_per_stream_and_all_or_type_lists_each(pump):
    emu, cli = pump("--time-scale", "1e-9")
    for _ in range(6):  # a monitor's day in small: a reader session every 10 minutes and more
        assert cli("interrogate").code == 0
        emu.control("advance", seconds=601)  # past the pump's coalescing: each is logged on its own
    assert cli("program", "--dose", "2.2 mg/day", "--yes").code == 0  # a clinician session, and therapy
    every = cli("--json", "log").json()["events"]  # JSON keeps every event
    reader = [e for e in every if e["type"] == "session_opened" and e["description"].startswith("reader")]
    assert len(reader) >= 6
    human = cli("log").stdout
    words = " ".join(human.split())  # as words: a narrow table wraps
    assert f"{len(reader)} reader sessions opened in {len(reader)} entries since" in words
    assert "folded: --all or --type session_opened lists each" in words
    assert words.count("reader session opened") == 0  # no single reader line left
    assert "program applied" in words  # the therapy stays, each on its own line
    assert f"{len(reader)} routine entries" in words and "ithcli log --all lists each" in words
    for listing in (cli("log", "--all").stdout, cli("log", "--type", "session_opened").stdout):
        flat = " ".join(listing.split())
        assert flat.count("reader session opened") == len(reader) and "folded" not in flat
    again = cli("--json", "log", "--all").json()["events"]  # --all changes no JSON: each event, unfolded
    assert [e["index"] for e in again][:len(every)] == [e["index"] for e in every]
    assert not any("folded" in e for e in every + again)


def test_folding_keeps_order_streams_and_lone_events():
    from ithcli.commands.log import fold_routine

    def event(index, type_, arg1=0, arg2=0):
        return {"index": index, "time": f"t{index}", "type": type_, "arg1": arg1, "arg2": arg2, "priority": "none",
                "description": type_}

    records = [event(0, "power_on"), event(1, "session_opened", 1, 1), event(2, "auth_failure", 3, 2),
               event(3, "session_opened", 2, 1), event(4, "program_changed"), event(5, "session_opened", 1, 4),
               event(6, "auth_failure", 2, 2), event(7, "session_opened", 1, 0)]
    folded = fold_routine(records)
    assert [r["index"] for r in folded] == [0, 3, 4, "2-6", "1-7"]  # each stream where its last event is
    readers = folded[-1]
    assert readers["folded"] == 3 and readers["description"].startswith("6 reader sessions opened in 3 entries "
                                                                         "since t1")  # a 0 counts as one session
    assert folded[-2]["description"].startswith("5 authentication failures in 2 entries since t2")
    assert folded[1] is records[3]  # a stream of one (the clinician's) stays as it was
    assert fold_routine([r for r in records if r["type"] != "session_opened"])[-1]["folded"] == 2
