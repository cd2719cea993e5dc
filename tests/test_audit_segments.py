"""The audit log in segments (issue 14): it rotates at a new day (and by size), the chain runs on
across files, and a missing, reordered or edited segment is named; archived segments verify
through their checkpoints; a report for one day reads only that day's files.

Logs of several days are written in this process with an injected computer clock (AuditLog's
clock); what users run on them (`ithcli audit verify|segments|archive`, `ithcli report`) runs as
real ithcli processes. The day boundary with a real pump: an ith-emulator whose pump clock is
moved across midnight through its control socket, read through ithcli.api.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_harness import DEFAULT_KEY_STORE, Cli, assert_one_line_error
from test_cli_program import BACLOFEN

import ithcli.audit
from ithcli import api
from ithcli.audit import AuditLog
from ithcli.audit_segments import segments_dir

DAY0 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def _log_over_days(path: Path, days: int = 4, per_day: int = 5, serials=("P-1",),
                   shapes: list[dict] | None = None) -> AuditLog:
    """per_day readings a day of each pump, a minute apart from 08:00 UTC, `days` days running.
    shapes: the entries of one real reading (else a stand-in entry), given each pump's serial."""
    now = [DAY0]
    log = AuditLog(path, clock=lambda: now[0])
    for d in range(days):
        for i in range(per_day):
            for serial in serials:
                now[0] = DAY0 + d * 86400 + 8 * 3600 + i * 60
                for shape in shapes or [{"event": "exchange", "command": "INTERROGATE", "outcome": "ok"}]:
                    log.append({**shape, "pump_serial": serial, "n": [d, i]}, durable=False)
    return log


def _real_reading(pump) -> list[dict]:
    """The entries one `ithcli interrogate` of a real emulator writes (its handshake and reading)."""
    emu, cli = pump(*BACLOFEN)
    assert cli("interrogate").code == 0
    entries = [json.loads(line) for line in open(cli.audit_path)]
    return [{k: v for k, v in e.items() if k not in ("time", "prev", "hash", "pump_serial")} for e in entries]


def _segment(path: Path, n: int) -> Path:
    return next(segments_dir(path).glob(f"{n:06d}-*.jsonl"))


def _verify(tmp_path: Path, path: Path, *args: str):
    return Cli(tmp_path / "state")("--json", "audit", "verify", *args, env={"ITHCLI_AUDIT_LOG": str(path)})


def test_a_new_day_closes_the_segment_and_the_chain_runs_on(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = _log_over_days(path)
    names = sorted(p.name for p in segments_dir(path).iterdir())
    assert names == ["000001-2026-11-01.jsonl", "000002-2026-11-02.jsonl", "000003-2026-11-03.jsonl"]
    header = json.loads(path.read_text().splitlines()[0])  # the active file: segment 4, its header first
    last_of_3 = json.loads(_segment(path, 3).read_text().splitlines()[-1])
    assert header["event"] == "segment-start" and header["segment"] == 4 and header["day"] == "2026-11-04"
    assert header["prev"] == last_of_3["hash"] and header["previous"]["entries"] == 6  # 5 + its own header
    # segment 3 checked line by line as it closed, and its digest sealed for the reports that read it
    sealed = header["previous"]
    assert sealed["sha256"] == hashlib.sha256(_segment(path, 3).read_bytes()).hexdigest()
    assert sealed["problems"] == [] and sealed["first_prev"] == json.loads(
        _segment(path, 2).read_text().splitlines()[-1])["hash"]
    assert log.verify() == (4 * 5 + 3, [])
    assert [r["n"] for r in log.records() if "n" in r] == [[d, i] for d in range(4) for i in range(5)]
    result = _verify(tmp_path, path)
    assert result.code == 0, result.stderr
    data = result.json()
    assert data["ok"] and data["entries"] == 23 and [s["segment"] for s in data["segments"]] == [1, 2, 3, 4]
    listing = Cli(tmp_path / "state")("--json", "audit", "segments", env={"ITHCLI_AUDIT_LOG": str(path)}).json()
    assert [(s["segment"], s["day"], s["kind"]) for s in listing["segments"]] == [
        (1, "2026-11-01", "segment"), (2, "2026-11-02", "segment"), (3, "2026-11-03", "segment"),
        (4, "2026-11-04", "active")]


def test_a_segment_also_closes_when_it_grows_past_its_size(tmp_path):
    path = tmp_path / "audit.jsonl"
    now = DAY0
    log = AuditLog(path, segment_bytes=2000, clock=lambda: now)
    for i in range(40):
        log.append({"event": "exchange", "n": i, "pad": "x" * 100}, durable=False)
    closed = sorted(segments_dir(path).iterdir())
    assert len(closed) >= 3 and all(p.stat().st_size < 2000 + 300 for p in closed)
    assert all(p.name.endswith("-2026-11-01.jsonl") for p in closed)  # the same day, several files
    assert log.verify() == (40 + len(closed), [])


@pytest.mark.parametrize("damage, named", [
    ("remove", "segment 2 is missing between 000001-2026-11-01.jsonl and 000003-2026-11-03.jsonl"),
    ("swap", "000002-2026-11-02.jsonl holds segment 3: renamed or reordered"),
    ("edit", "000003-2026-11-03.jsonl line 4: contents do not match its hash (edited)"),
    ("forge", "000004-2026-11-04.jsonl: its first entry does not follow the last entry of 000003-2026-11-03.jsonl"),
    ("truncate", "000003-2026-11-03.jsonl holds 5 entries but 000004-2026-11-04.jsonl sealed 6 (its last entries"),
])
def test_a_missing_reordered_or_edited_segment_is_named(tmp_path, damage, named):
    path = tmp_path / "audit.jsonl"
    _log_over_days(path, days=5)
    two, three = _segment(path, 2), _segment(path, 3)
    if damage == "remove":
        two.unlink()
    elif damage == "swap":
        tmp = two.with_name("tmp")
        two.rename(tmp)
        three.rename(two)
        tmp.rename(three)
    elif damage == "edit":
        lines = three.read_text().splitlines(keepends=True)
        lines[3] = lines[3].replace('"n":[2,2]', '"n":[2,9]')
        three.write_text("".join(lines))
    elif damage == "forge":  # segment 3 rewritten whole and re-hashed: its own chain is perfect
        entries = [json.loads(x) for x in three.read_text().splitlines()]
        entries[3]["n"] = [2, 9]
        prev = entries[0]["prev"]
        out = []
        for entry in entries:
            body = {k: v for k, v in entry.items() if k != "hash"} | {"prev": prev}
            prev = ithcli.audit.entry_hash(body)
            out.append(json.dumps(body | {"hash": prev}, sort_keys=True, separators=(",", ":")) + "\n")
        three.write_text("".join(out))
    else:  # its last line cut off: its own chain is still perfect
        three.write_text("".join(three.read_text().splitlines(keepends=True)[:-1]))
    result = _verify(tmp_path, path)
    assert_one_line_error(result, 10, named)
    # the one segment on its own, and a range avoiding the damage, are checked as asked
    if damage in ("edit", "forge", "truncate"):
        alone = _verify(tmp_path, path, "--segments", "1-2")
        assert alone.code == 0 and alone.json()["entries"] == 11, alone.stderr
    if damage == "edit":
        assert_one_line_error(_verify(tmp_path, path, "--segments", "3"), 10, "line 4: contents do not match")


def test_an_archived_segment_verifies_through_its_checkpoint(tmp_path):
    path = tmp_path / "audit.jsonl"
    _log_over_days(path, days=4)
    cli = Cli(tmp_path / "state")
    env = {"ITHCLI_AUDIT_LOG": str(path)}
    shelf = tmp_path / "archive"
    done = cli("--json", "audit", "archive", "--through", "2", "--to", str(shelf), env=env)
    assert done.code == 0, done.stderr
    assert [c["segment"] for c in done.json()["archived"]] == [1, 2]
    assert sorted(p.name for p in shelf.iterdir()) == ["000001-2026-11-01.jsonl", "000002-2026-11-02.jsonl"]
    # (the record of archiving is today's: the active file of 2026-11-04 closed for it)
    assert sorted(p.name for p in segments_dir(path).iterdir()) == [
        "000001-2026-11-01.checkpoint.json", "000002-2026-11-02.checkpoint.json", "000003-2026-11-03.jsonl",
        "000004-2026-11-04.jsonl"]
    result = _verify(tmp_path, path)
    assert result.code == 0, result.stderr
    assert result.json()["archived_entries"] == 5 + 6  # segment 1, and segment 2 with its header
    assert _verify(tmp_path, path, "--archive", str(shelf)).code == 0
    # the archived file changed: named against its checkpoint
    archived = shelf / "000002-2026-11-02.jsonl"
    archived.write_text(archived.read_text().replace('"n":[1,3]', '"n":[1,4]'))
    assert_one_line_error(_verify(tmp_path, path, "--archive", str(shelf)), 10,
                          "does not match its checkpoint 000002-2026-11-02.checkpoint.json")
    # a checkpoint edited to match a forged archive: the chain sealed the real one
    cp_path = segments_dir(path) / "000002-2026-11-02.checkpoint.json"
    cp = json.loads(cp_path.read_text())
    cp_path.write_text(json.dumps(cp | {"sha256": "0" * 64}))
    assert_one_line_error(_verify(tmp_path, path), 10,
                          "000002-2026-11-02.checkpoint.json does not match the record of its archiving in the chain")
    # the active file is never archived
    refused = cli("audit", "archive", "--through", "9", "--before", "2030-01-01", "--to", str(shelf), env=env)
    assert_one_line_error(refused, 2, "give one of --through N or --before")


def test_a_torn_last_line_is_set_aside_before_the_segment_closes(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = _log_over_days(path, days=1)
    with open(path, "ab") as fh:
        fh.write(b'{"event":"exchange","n":[0,')  # a crash in the middle of a write
    assert_one_line_error(_verify(tmp_path, path), 10, "line 6 is incomplete (torn write)")
    log._clock = lambda: DAY0 + 86400 + 60  # the next entry is on the next day: the segment closes
    log.append({"event": "exchange", "n": [1, 0]})
    closed = _segment(path, 1).read_text().splitlines()
    assert json.loads(closed[-1])["event"] == "torn-line-removed"
    assert json.loads(closed[-1])["saved_to"].startswith(str(path))
    assert log.verify() == (5 + 1 + 2, [])
    # a torn line in a closed segment (damaged since) is named in it
    one = _segment(path, 1)
    one.write_bytes(one.read_bytes()[:-20])
    assert_one_line_error(_verify(tmp_path, path), 10, "000001-2026-11-01.jsonl line 6 is incomplete (torn write)")


def test_a_day_report_reads_only_that_days_segments(pump, tmp_path):
    path = tmp_path / "audit.jsonl"
    shapes = _real_reading(pump)
    _log_over_days(path, days=4, serials=("BAC-0001", "BAC-0002"), shapes=shapes)
    cli = Cli(tmp_path / "state")
    result = cli("--json", "--tz", "UTC", "report", "--pump", "BAC-0001", "--since", "2026-11-03T07:00",
                 "--until", "2026-11-03", env={"ITHCLI_AUDIT_LOG": str(path)})
    assert result.code == 0, result.stderr
    log = result.json()["audit_log"]
    assert log["read_from"] == ["000003-2026-11-03.jsonl"] and log["intact"]  # nothing of other days
    # BAC-0001's five readings that day (BAC-0002's lines are checked, not parsed)
    assert result.json()["session"]["entries"] == 5 * len(shapes)
    # a session after the last reading: its settings are the last reading's, in the segment before
    later = cli("--json", "--tz", "UTC", "report", "--pump", "BAC-0001", "--since", "2026-11-04T12:00",
                env={"ITHCLI_AUDIT_LOG": str(path)})
    assert later.code == 0 and later.json()["audit_log"]["read_from"] == ["audit.jsonl"]
    assert later.json()["status_source"]["from"] == "audit log"


def test_rotation_at_midnight_with_a_real_pump_and_a_report_of_each_day(start_emulator, tmp_path, monkeypatch):
    emu = start_emulator("--time-scale", "1e-9", "--start-time", "2026-11-01T23:58:00Z", *BACLOFEN)
    path = tmp_path / "audit.jsonl"
    now = [datetime(2026, 11, 1, 23, 59, 0, tzinfo=UTC).timestamp()]

    def ticking() -> float:  # the computer's clock, injected: a second an audit entry
        now[0] += 1
        return now[0]

    monkeypatch.setattr(ithcli.audit, "wall_clock", ticking)
    with api.open_pump(emu.url, operator="dr-roe", audit_log=str(path), key_store=DEFAULT_KEY_STORE,
                       state_dir=str(tmp_path / "state")) as pump:
        before = pump.status()
        emu.control("advance", seconds=45)  # the pump's clock to 23:59:45 on its side
        now[0] = datetime(2026, 11, 1, 23, 59, 53, tzinfo=UTC).timestamp()  # PREPARE at 23:59:59
        result = pump.set_program(dose="550 mcg/day")  # its entries a second apart, across midnight
        after = pump.status()
    assert result.outcome == "verified" and after.raw.pump_time - before.raw.pump_time >= 45
    assert sorted(p.name for p in segments_dir(path).iterdir()) == ["000001-2026-11-01.jsonl"]
    header = json.loads(path.read_text().splitlines()[0])
    assert header["segment"] == 2 and header["day"] == "2026-11-02"
    first_day = [json.loads(x) for x in _segment(path, 1).read_text().splitlines()]
    assert header["prev"] == first_day[-1]["hash"]
    assert any(e.get("command") == "PREPARE_PROGRAM" for e in first_day)  # asked before midnight...
    second_day = [json.loads(x) for x in path.read_text().splitlines()]
    assert any(e.get("event") == "verified" for e in second_day)  # ...read back and verified after it
    monkeypatch.undo()
    verified = _verify(tmp_path, path)
    assert verified.code == 0 and len(verified.json()["segments"]) == 2, verified.stderr
    cli = Cli(tmp_path / "state")
    env = {"ITHCLI_AUDIT_LOG": str(path)}
    first = cli("--json", "--tz", "UTC", "report", "--pump", "BAC-0001", "--since", "2026-11-01", "--until",
                "2026-11-01", env=env)
    assert first.code == 0, first.stderr
    # the write's outcome is in the next day's segment: read on into it, and the change is verified
    assert first.json()["audit_log"]["read_from"] == ["000001-2026-11-01.jsonl", "audit.jsonl"]
    assert [c["outcome"] for c in first.json()["changes"]] == ["verified"]
    second = cli("--json", "--tz", "UTC", "report", "--pump", "BAC-0001", "--since", "2026-11-02T00:00:03",
                 "--until", "2026-11-02", env=env)
    assert second.code == 0 and second.json()["audit_log"]["read_from"] == ["audit.jsonl"]
    assert second.json()["changes"] == [] and second.json()["session"]["entries"] >= 1


def test_verify_refuses_a_range_the_log_does_not_have(tmp_path):
    path = tmp_path / "audit.jsonl"
    _log_over_days(path, days=2)
    assert_one_line_error(_verify(tmp_path, path, "--segments", "7-9"), 2, "has no segment 7 to 9")
    bad = _verify(tmp_path, path, "--segments", "x")
    assert bad.code == 2 and "'x' is not a segment number or range" in bad.stderr
    shutil.rmtree(segments_dir(path))
    os.unlink(path)
    assert_one_line_error(_verify(tmp_path, path), 10, "no audit log at")


def _readings(cli) -> list[dict]:
    return [e for e in map(json.loads, open(cli.audit_path)) if e.get("command") == "INTERROGATE"]


def test_monitor_records_the_first_and_last_reading_and_counts_those_it_folds(pump):
    emu, cli = pump(*BACLOFEN)
    result = cli("--json", "monitor", "--count", "6", "--interval", "0.1")
    assert result.code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 6  # six readings shown...
    readings = _readings(cli)
    assert len(readings) == 2  # ...two recorded: the first, and the last with the four alike before it
    assert "readings_folded" not in readings[0] and readings[1]["readings_folded"] == 4
    assert readings[1]["response"]["pump_time"] >= readings[0]["response"]["pump_time"]
    every = cli("--json", "monitor", "--count", "3", "--interval", "0.1", "--record-every", "0")
    assert every.code == 0 and len(_readings(cli)) == 2 + 3  # every reading, as asked


def test_a_changed_reading_is_recorded_at_once_and_alike_ones_at_least_every_period():
    from ithcli.read_folding import ReadFolder

    now = [0.0]
    folder = ReadFolder(every_s=900, clock=lambda: now[0])
    base = {"alarms": [], "mode": "normal", "reservoir_ul": 18000, "pump_time": 100}
    assert folder.offer({}, base) == {}  # the first is recorded
    for t in range(1, 4):  # the clock and the volume move: folded
        now[0] = t * 2.0
        assert folder.offer({}, base | {"reservoir_ul": 18000 - t, "pump_time": 100 + t}) is None
    now[0] = 10.0
    assert folder.offer({}, base | {"alarms": ["low-reservoir"]}) == {"readings_folded": 3}  # a change: at once
    now[0] = 12.0
    assert folder.offer({}, base | {"alarms": ["low-reservoir"]}) is None
    now[0] = 10.0 + 900
    assert folder.offer({}, base | {"alarms": ["low-reservoir"]}) == {"readings_folded": 1}  # the period
    assert folder.flush() is None  # nothing folded since


def test_worker_processes_check_a_large_log_as_this_one_does(tmp_path, pump, monkeypatch):
    """Past PARALLEL_BYTES the parts are checked in forked workers (verify), or checked there while
    this process parses one pump's lines (report): the same entries and the same problems named."""
    import ithcli.audit_verify
    from ithcli.report_read import read

    path = tmp_path / "audit.jsonl"
    _log_over_days(path, days=4, serials=("BAC-0001", "BAC-0002"), shapes=_real_reading(pump))
    since = int(DAY0 + 86400)
    alone = read(AuditLog(path), since=since, until=since + 2 * 86400, serial="BAC-0001")
    monkeypatch.setattr(ithcli.audit_verify, "PARALLEL_BYTES", 0)
    parallel = read(AuditLog(path), since=since, until=since + 2 * 86400, serial="BAC-0001")
    assert alone[2]["checked_by_seal"] == []  # a small read checks every line itself
    # the closed segments read are checked against the digest sealed as each closed
    assert parallel[2].pop("checked_by_seal") == ["000002-2026-11-02.jsonl", "000003-2026-11-03.jsonl"]
    alone[2].pop("checked_by_seal")
    assert parallel == alone
    assert AuditLog(path).verify()[1] == []
    three = _segment(path, 3)
    three.write_text(three.read_text().replace('"n":[2,1]', '"n":[2,7]', 1))
    edited = AuditLog(path).verify()[1]
    assert len(edited) == 1 and edited[0].startswith("000003-2026-11-03.jsonl line ") and "(edited)" in edited[0]
    records, _, info = read(AuditLog(path), since=since, until=since + 2 * 86400, serial="BAC-0001")
    # changed since it closed: its digest no longer matches, so it is checked line by line and the line named
    assert not info["intact"] and info["problems"] == edited and info["checked_by_seal"] == ["000002-2026-11-02.jsonl"]


def test_a_line_edited_before_its_segment_closed_is_named_by_the_seal_too(tmp_path, monkeypatch):
    """The check at closing finds the edit and its seal records it: a report reading that segment
    through its seal names it as `audit verify` does (nothing is sealed as intact that was not)."""
    import ithcli.audit_verify
    from ithcli.report_read import read

    path = tmp_path / "audit.jsonl"
    log = _log_over_days(path, days=2)
    lines = path.read_text().splitlines(keepends=True)  # the active file: day 2, segment 2
    lines[2] = lines[2].replace('"n":[1,1]', '"n":[1,8]')
    path.write_text("".join(lines))
    log._clock = lambda: DAY0 + 2 * 86400 + 8 * 3600  # day 3: segment 2 closes, checked and sealed
    log.append({"event": "exchange", "command": "INTERROGATE", "outcome": "ok", "pump_serial": "P-1", "n": [2, 0]})
    sealed = json.loads(path.read_text().splitlines()[0])["previous"]
    named = "000002-2026-11-02.jsonl line 3: contents do not match its hash (edited)"
    assert sealed["problems"] == [named]
    assert AuditLog(path).verify()[1] == [named]
    monkeypatch.setattr(ithcli.audit_verify, "PARALLEL_BYTES", 0)
    _, _, info = read(AuditLog(path), since=int(DAY0), until=int(DAY0) + 2 * 86400, serial="P-1")
    assert info["checked_by_seal"] == ["000001-2026-11-01.jsonl", "000002-2026-11-02.jsonl"]
    assert info["problems"] == [named]


def test_threads_of_one_process_append_one_chain_across_rotations(tmp_path):
    """One lock descriptor a process serves every thread (flock alone would let them all in)."""
    import threading

    log = AuditLog(tmp_path / "audit.jsonl", segment_bytes=3000)

    def writer(k: int) -> None:
        for i in range(150):
            log.append({"event": "exchange", "writer": k, "n": i}, durable=False)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count, problems = log.verify()
    headers = len(list(segments_dir(log.path).iterdir()))
    assert problems == [] and headers > 10 and count == 4 * 150 + headers


def test_an_exchange_is_audited_as_jsonable_of_as_dict_gives_it(pump):
    """jsonable walks a body in one pass and writes exactly what the two passes it replaced
    (jsonable of as_dict) wrote, for the bodies of real exchanges: a status, a program, a log read."""
    from ithcli.output import jsonable
    from protocol.bodies import as_dict

    emu, cli = pump(*BACLOFEN)
    assert cli("program", "--dose", "550 mcg/day", "--yes").code == 0
    with api.open_pump(emu.url, operator="t", key_store=DEFAULT_KEY_STORE, audit_log=cli.audit_path,
                       state_dir=str(Path(cli.audit_path).parent)) as p:
        client = p._session.client()  # the bodies as the client decoded them, before any audit
        _, events = client.read_whole_log(0)
        bodies = [client.interrogate(), client.read_program(), *events]
    assert len(bodies) > 3
    for body in bodies:
        assert jsonable(body) == jsonable(as_dict(body))
        assert json.dumps(jsonable(body)) == json.dumps(jsonable(as_dict(body)))  # the same order too


def test_a_seal_lists_the_first_twenty_problems_and_counts_the_rest(tmp_path):
    from ithcli.audit_verify import seal

    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, clock=lambda: DAY0)
    for i in range(30):
        log.append({"event": "exchange", "n": i})
    edited = [line.replace(f'"n":{i}', f'"n":{i + 100}') for i, line in enumerate(path.read_text().splitlines(True))]
    path.write_text("".join(edited))
    problems = seal(path)["problems"]
    assert len(problems) == 21 and problems[0] == "audit.jsonl line 1: contents do not match its hash (edited)"
    assert problems[-1] == "and 10 more problems: run 'ithcli audit verify'"


def test_a_log_whose_directory_was_removed_starts_again_with_its_own_lock(tmp_path):
    """A long-lived process (the API) keeps its lock file open: when the directory goes (a state dir
    cleared), the next entry starts a new log under a new lock file, not the deleted one's."""
    path = tmp_path / "state" / "audit.jsonl"
    log = AuditLog(path)
    log.append({"event": "exchange", "n": 1})
    shutil.rmtree(path.parent)
    log.append({"event": "exchange", "n": 2})
    assert (path.parent / "audit.jsonl.lock").exists() and log.verify() == (1, [])
