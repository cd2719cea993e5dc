"""Reads held in memory and written together (AuditLog.holding_reads, what batch does a runner
turn at a time): nothing lost, nothing reordered, a write never waits, the chain whole.
tests/test_batch_ward.py runs the same through a real batch over a ward emulator."""
from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from ithcli.audit import AuditLog


def lines(path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def events(path) -> list[str]:
    return [e["event"] for e in lines(path)] if os.path.exists(path) else []


def test_held_reads_reach_the_file_at_write_held_in_the_order_appended(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"event": "before"}, durable=False)
    with log.holding_reads():
        for i in range(3):
            entry = log.append({"event": f"read-{i}"}, durable=False)
            assert "hash" not in entry  # not written yet: no place in the chain
        assert events(path) == ["before"]
        log.write_held()
        assert events(path) == ["before", "read-0", "read-1", "read-2"]
        log.write_held()  # nothing held: nothing written
        assert len(lines(path)) == 4
    assert log.verify() == (4, [])


def test_a_durable_entry_is_written_at_once_after_the_reads_held_before_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    with log.holding_reads():
        log.append({"event": "read"}, durable=False)
        written = log.append({"event": "commit"})  # a write's entry never waits
        assert written["event"] == "commit" and written["hash"] == lines(path)[-1]["hash"]
        assert events(path) == ["read", "commit"]
        log.append({"event": "read-after"}, durable=False)
    assert events(path) == ["read", "commit", "read-after"]
    assert log.verify() == (3, [])


def test_held_reads_are_written_when_the_holding_ends_by_an_error(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    with pytest.raises(KeyboardInterrupt), log.holding_reads():
        log.append({"event": "read"}, durable=False)
        raise KeyboardInterrupt  # Ctrl-C in the middle of a batch
    assert events(path) == ["read"]
    log.append({"event": "after"}, durable=False)  # no longer held: written at once
    assert events(path) == ["read", "after"]


def test_a_holding_inside_another_leaves_the_writing_to_the_outer_one(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    with log.holding_reads():
        with log.holding_reads():
            log.append({"event": "inner"}, durable=False)
        assert events(path) == []
    assert events(path) == ["inner"]


def _appender(path: str, n: int) -> None:
    log = AuditLog(path)
    for i in range(n):
        log.append({"event": f"other-{i}"}, durable=False)


def test_another_process_writing_between_turns_keeps_one_chain(tmp_path):
    # two programmers on one log: held reads go in after the other's entries, chained to them
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    with log.holding_reads():
        log.append({"event": "mine-0"}, durable=False)
        other = multiprocessing.get_context("fork").Process(target=_appender, args=(str(path), 5))
        other.start()
        other.join(30)
        assert other.exitcode == 0
        log.write_held()
        log.append({"event": "mine-1"}, durable=False)
    assert events(path) == [*(f"other-{i}" for i in range(5)), "mine-0", "mine-1"]
    assert log.verify() == (7, [])


def test_held_reads_close_a_segment_at_a_new_day_like_any_entry(tmp_path):
    path = tmp_path / "audit.jsonl"
    now = [86_400 * 20_000 + 86_399.0]  # one second before a UTC midnight
    log = AuditLog(path, clock=lambda: now[0])
    log.append({"event": "yesterday"})
    with log.holding_reads():
        log.append({"event": "read"}, durable=False)
        now[0] += 2  # the turn ends after midnight: the entry carries the time it is written
        log.write_held()
    assert [e["event"] for e in lines(path)] == ["segment-start", "read"]
    assert log.verify() == (3, [])
