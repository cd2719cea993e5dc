"""The audit log at clinic scale (issue 14): every reader streams it one line at a time.

verify's memory does not follow the log's size; report keeps only what its session needs
and builds exactly the report it built from the whole log; four real ithcli processes
appending to one log at once leave one unbroken chain; a log written in an older key
order (the hash not last on its line) still verifies and reads.
"""
from __future__ import annotations

import json
import threading
import tracemalloc
from datetime import UTC, datetime

from cli_harness import Cli
from test_cli_program import BACLOFEN

from ithcli import druglib
from ithcli import report as logic
from ithcli.audit import AuditLog, _line, entry_hash
from ithcli.audit_segments import segments_dir
from ithcli.report_read import read_for_session


def _peak_bytes_of_verify(path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count, problems = AuditLog(path).verify()
        assert problems == []
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_verify_memory_does_not_follow_the_log_size(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    padding = "x" * 200  # entries of a realistic size: the whole file is ~6 MB
    for i in range(20_000):
        log.append({"event": "exchange", "command": "INTERROGATE", "n": i, "pad": padding}, durable=False)
    size = log.path.stat().st_size
    count, peak = _peak_bytes_of_verify(log.path)
    assert count == 20_000
    # reading the file whole (as before) needs at least its size; a line at a time needs a few lines
    assert peak < size / 20, (peak, size)


def test_an_edited_line_is_named_and_an_older_key_order_still_verifies(tmp_path):
    path = tmp_path / "audit.jsonl"
    prev = "0" * 64
    lines: list[bytes] = []
    for i in range(3):  # as an older writer wrote them: keys sorted, "hash" among them, not last
        entry: dict[str, object] = {"time": f"2026-12-01T10:00:0{i}+00:00", "event": "exchange", "n": i, "prev": prev}
        entry["hash"] = entry_hash(entry)
        prev = entry_hash({k: v for k, v in entry.items() if k != "hash"})
        lines.append(_line(entry))
    assert lines[0].index(b'"hash"') < lines[0].index(b'"prev"')  # really not how append() writes
    path.write_bytes(b"".join(lines))
    same_day = datetime(2026, 12, 1, 10, 0, 3, tzinfo=UTC).timestamp()  # no new day's segment starts
    log = AuditLog(path, clock=lambda: same_day)
    assert log.verify() == (3, [])
    log.append({"event": "exchange", "n": 3})  # appended in today's form after them
    assert log.verify() == (4, [])
    assert [r["n"] for r in log.records()] == [0, 1, 2, 3]

    text = path.read_bytes().split(b"\n")
    text[3] = text[3].replace(b'"n":3', b'"n":4')  # the fast-path line, edited
    path.write_bytes(b"\n".join(text))
    count, problems = AuditLog(path).verify()
    assert count == 4 and problems == ["line 4: contents do not match its hash (edited)"]


def test_verify_without_parsing_names_a_reordered_line_and_reads_a_nested_prev(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(4):  # the second holds a "prev" key of its own: that line is parsed, not skimmed
        log.append({"event": "exchange", "n": i, "response": {"prev": "f" * 64} if i == 1 else {}})
    assert log.verify() == (4, [])
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(lines[0] + lines[2] + lines[1] + lines[3])
    count, problems = AuditLog(log.path).verify()
    assert count == 4 and problems == [f"line {n}: does not follow the entry before it (removed or reordered)"
                                       for n in (2, 3, 4)]


def _retimed(records: list[dict]) -> list[dict]:
    """The same entries a minute apart, so that session windows can fall between any two."""
    t0 = int(datetime(2026, 12, 1, 8, tzinfo=UTC).timestamp())
    return [{**r, "time": datetime.fromtimestamp(t0 + 60 * i, UTC).isoformat()} for i, r in enumerate(records)]


def test_report_reads_only_what_its_session_needs_and_builds_the_same_report(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    for args in (("interrogate",), ("program", "--dose", "550 mcg/day", "--yes"), ("interrogate",),
                 ("refill", "--volume", "20 mL", "--concentration", "2000 mcg/mL", "--withdrawn", "17.9 mL",
                  "--yes"), ("interrogate",), ("bolus", "--dose", "50 mcg", "--over", "10 min", "--yes"),
                 ("interrogate",)):
        assert cli(*args).code == 0
    records = _retimed(AuditLog(cli.audit_path).records())
    times = sorted({t for r in records if (t := logic.entry_time(r)) is not None})
    library = druglib.load()
    writes = 0
    for since in times[:: max(1, len(times) // 12)]:
        for until in (None, since + 600, since + 1800):
            kept, serials = read_for_session(iter(records), since=since, until=until)
            assert serials == ["BAC-0001"]
            whole = logic.build(records, serial="BAC-0001", since=since, until=until, library=library)
            part = logic.build(kept, serial="BAC-0001", since=since, until=until, library=library)
            assert part == whole, (since, until)
            mine, _ = read_for_session(iter(records), since=since, until=until, serial="BAC-0001")
            assert logic.build(mine, serial="BAC-0001", since=since, until=until, library=library) == whole
            writes += len(whole["changes"])
    assert writes > 0  # the windows held changes, with their before and after


def test_report_memory_follows_the_session_not_the_log(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    assert cli("interrogate").code == 0
    assert cli("program", "--dose", "550 mcg/day", "--yes").code == 0
    old = _retimed(AuditLog(cli.audit_path).records())
    status = next(r for r in old if r.get("command") == "INTERROGATE" and r.get("outcome") == "ok")
    day = int(datetime(2026, 12, 2, tzinfo=UTC).timestamp())
    # a long history before the day asked for: 5,000 readings of the same pump
    history = [{**status, "time": datetime.fromtimestamp(day - 5000 * 60 + 60 * i, UTC).isoformat()}
               for i in range(5000)]
    today = [{**r, "time": datetime.fromtimestamp(day + 60 * i, UTC).isoformat()} for i, r in enumerate(old)]
    other = [{**r, "pump_serial": "OTHER-2"} for r in today]  # another pump's day, in the same log
    kept, serials = read_for_session(iter(old + history + today + other), since=day, until=day + 86400,
                                           serial="BAC-0001")
    assert serials == ["BAC-0001", "OTHER-2"] and not any(r in kept for r in other)
    # the day's entries, the newest status from before it and a few entries of context: not the history
    mine = [r for r in today if r.get("pump_serial") == "BAC-0001"]  # build reads no other
    def key(r: dict) -> tuple:
        return r["time"], r.get("event"), r.get("command")

    assert {key(r) for r in mine} <= {key(r) for r in kept} and history[-1] in kept
    assert len(kept) - len(mine) <= 10, len(kept) - len(mine)
    # the day's readings but its newest (and a write's before and after) keep only what build() reads
    readings = [r for r in kept if r.get("command") == "INTERROGATE" and key(r) in {key(m) for m in mine}]
    assert readings[-1] in mine and all(set(r["response"]) <= {"alarms", "event_count"} for r in readings[:-3])


def test_four_ithcli_processes_appending_at_once_leave_one_chain_across_segments(start_emulator, tmp_path):
    """Four stations on one log, its segments small so that they rotate under the load: the lock
    (audit.jsonl.lock, not the file that rotation renames) keeps one chain through every file."""
    emus = [start_emulator("--time-scale", "1e-9", *BACLOFEN, transport="tcp") for _ in range(4)]
    shared = tmp_path / "audit.jsonl"
    env = {"ITHCLI_AUDIT_LOG": str(shared), "ITHCLI_AUDIT_SEGMENT_BYTES": "6000"}
    rounds = 4
    failures: list[str] = []

    def station(k: int) -> None:
        cli = Cli(tmp_path / f"state-{k}", port=emus[k].url, operator=f"station-{k}")
        for _ in range(rounds):
            result = cli("interrogate", env=env)
            if result.code != 0:
                failures.append(result.stderr)

    threads = [threading.Thread(target=station, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(list(segments_dir(shared).iterdir())) >= 3
    log = AuditLog(shared)
    count, problems = log.verify()
    assert problems == [] and count > 0
    operators = [r.get("operator") for r in log.records()]
    for k in range(4):  # every station's entries are in the one chain
        assert operators.count(f"station-{k}") >= rounds
    result = Cli(tmp_path / "state-0")("--json", "audit", "verify", env={"ITHCLI_AUDIT_LOG": str(shared)})
    assert result.code == 0 and json.loads(result.stdout)["entries"] == count == len(operators)
