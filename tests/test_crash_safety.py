"""Crash safety: kill -9 at random points, torn last lines, a programmer killed mid-write.

- The emulator: a seeded loop kills it (SIGKILL) at random moments while a
  programmer runs PREPARE/COMMIT pairs back to back; every restart from the same
  --state must load, hold a program that is the last acknowledged one or the one
  in flight, and have lost no acknowledged transaction.
- The audit log (ithcli/audit.py) and the batch journal (ithcli/batch.py Journal):
  a last line torn at every byte offset is detected and handled (moved aside and
  recorded; ignored, never merged).
- ithcli itself: kill -9 while its COMMIT (or the reply) is held on the wire, at a
  protocol point made deterministic by the fault proxy; the next run learns the
  truth from the pump and never re-sends.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial
from cli_harness import Cli
from emulator_harness import RawClient

from ithcli.audit import AuditLog
from ithcli.batch import Journal
from ithcli_campaign.proxy import TO_CLI, TO_PUMP, Fault, FaultProxy
from protocol import Command, Drug, EventType, InfusionMode, Message

FROZEN = 1e-9
MORPHINE_10 = 10_000_000
#: how a RawClient finds the pump gone: the socket reset or closed (pyserial), no reply in time
LINK_DIED = (serial.SerialException, OSError, TimeoutError)


def _status(c):
    return c.request(Command.INTERROGATE).body


def _tx_applied(c, since=0):
    found, index = [], since
    while True:
        page = c.request(Command.READ_LOG, {"first_index": index, "max_count": 28}).body
        found += [e.arg1 for e in page.events if e.type == EventType.TX_APPLIED]
        if not page.events:
            return found
        index = page.events[-1].index + 1
        if index >= page.event_count:
            return found


# --- the emulator killed at random points during writes ------------------------------------------


def test_emulator_killed_at_random_points_loses_nothing_acknowledged(start_emulator, tmp_path):
    rng = random.Random(20260701)
    state = tmp_path / "pump.json"
    emu = start_emulator(transport="tcp", time_scale=FROZEN, state_path=state)
    key_file = emu.key_file
    acked: list[tuple[int, int]] = []  # (txid, dose) whose COMMIT reply came back
    txid = 1000
    for round_ in range(12):
        sent: list[tuple[int, int]] = []
        replies: list[Message] = []  # every reply the writer got, in order: the stream's position
        outcome: list = []  # how the writer ended: ("link", when) or ("failed", exception)
        stop = threading.Event()

        def writer(url=emu.url, keys=emu.keys, stop=stop, replies=replies, sent=sent, acked=acked,
                   outcome=outcome):  # this round's lists (the thread is joined before the next)
            nonlocal txid
            try:
                with RawClient(url, keys=keys, timeout=5.0) as c:
                    while not stop.is_set():
                        txid += 1
                        dose = rng.randrange(500_000, 5_000_000, 1000)
                        reply = c.request(Command.PREPARE_PROGRAM, {
                            "txid": txid, "mode": InfusionMode.CONTINUOUS, "drug": Drug.MORPHINE,
                            "concentration_ng_per_ml": MORPHINE_10,
                            "steps": [{"start_minute": 0, "dose_ng_per_day": dose}]})
                        replies.append(reply)
                        assert reply.command == Command.PREPARE_PROGRAM, reply.body  # the pump took it
                        sent.append((txid, dose))
                        reply = c.request(Command.COMMIT, {"txid": txid})
                        replies.append(reply)
                        assert reply.command == Command.COMMIT, reply.body  # and applied it
                        acked.append((txid, dose))
            except LINK_DIED:  # the pump died under us: expected, and only then (checked below)
                outcome.append(("link", time.monotonic()))
            except BaseException as exc:  # a refusal, a wrong reply: the test fails with it
                outcome.append(("failed", exc))
            else:
                outcome.append(("stopped", time.monotonic()))

        t = threading.Thread(target=writer)
        t.start()
        # a random point in the stream of writes: after the target-th reply (polled, not slept)
        target = rng.randrange(1, 16)
        deadline = time.monotonic() + 60  # a guard against a hang, not a measured time
        while len(replies) < target and t.is_alive():
            assert time.monotonic() < deadline, f"round {round_}: the writer got {len(replies)} replies"
            time.sleep(0.001)
        killed_at = time.monotonic()
        emu.kill()
        stop.set()
        t.join(30)
        assert not t.is_alive()
        assert len(outcome) == 1, outcome
        how, detail = outcome[0]
        if how == "failed":
            raise AssertionError(f"round {round_}: the writer failed while the pump was up") from detail
        # the link may die only with the pump (a writer that stops on its own stopped after the kill too)
        assert detail >= killed_at, f"round {round_}: the link {how} before the pump was killed"

        emu = start_emulator(transport="tcp", time_scale=FROZEN, state_path=state, key_file=key_file)
        with RawClient(emu.url, keys=emu.keys) as c:
            status = _status(c)
            program = c.request(Command.READ_PROGRAM).body
            applied = _tx_applied(c)
        last_acked = acked[-1] if acked else None
        in_flight = sent[-1] if sent else None
        allowed = {x for x in (last_acked, in_flight) if x is not None}
        assert allowed, f"round {round_}: no write was sent"
        assert (status.last_txid, program.program.daily_dose_ng_per_day) in allowed, (round_, status)
        # nothing acknowledged was lost, and nothing was applied twice
        assert {t for t, _ in acked} <= set(applied)
        assert len(applied) == len(set(applied))
        assert applied[-1] == status.last_txid
    assert acked, "no write was ever acknowledged"
    assert emu.stop() == 0


# --- torn last lines ------------------------------------------------------------------------------


def test_audit_log_torn_at_every_offset_is_moved_aside_and_recorded(tmp_path):
    reference = AuditLog(tmp_path / "ref.jsonl")
    for i in range(3):
        reference.append({"event": "exchange", "n": i})
    whole = reference.path.read_bytes()
    last = whole[whole.rstrip(b"\n").rfind(b"\n") + 1:]
    head = whole[: len(whole) - len(last)]
    for cut in range(1, len(last) - 1):  # a crash left `cut` bytes of the last line (no newline)
        path = tmp_path / f"audit-{cut}.jsonl"
        path.write_bytes(head + last[:cut])
        log = AuditLog(path)
        _, problems = log.verify()
        assert problems and "torn" in problems[-1]
        log.append({"event": "exchange", "n": "after"})
        count, problems = log.verify()
        assert problems == [] and count == 4, (cut, problems)
        records = log.records()
        assert records[-2]["event"] == "torn-line-removed" and records[-2]["bytes"] == cut
        assert Path(records[-2]["saved_to"]).read_bytes() == last[:cut]
        assert records[-1]["n"] == "after"
        for side in tmp_path.glob(f"audit-{cut}.jsonl.torn-*"):
            side.unlink()


def test_batch_journal_torn_at_every_offset_is_ignored_never_merged(tmp_path):
    ref = Journal(str(tmp_path / "ref.jsonl"), "plan1")
    ref.write(serial="P1", step=1, state="created")
    ref.write(serial="P1", step=1, state="sent", txid=7)
    whole = Path(ref.path).read_bytes()
    last = whole[whole.rstrip(b"\n").rfind(b"\n") + 1:]
    head = whole[: len(whole) - len(last)]
    for cut in range(1, len(last)):
        path = tmp_path / f"j-{cut}.jsonl"
        path.write_bytes(head + last[:cut])
        j = Journal(str(path), "plan1")
        assert j.last_states()[("P1", 1)]["state"] == "created", cut  # a torn record never counted
        j.write(serial="P1", step=1, state="confirmed", txid=7)
        states = j.last_states()
        assert states[("P1", 1)]["state"] == "confirmed", cut
        lines = path.read_bytes().split(b"\n")
        assert json.loads(lines[-2])["state"] == "confirmed"  # on a line of its own
        assert lines[:-2] == head.split(b"\n")[:-1]  # the torn bytes are gone from the journal...
        sides = list(tmp_path.glob(f"j-{cut}.jsonl.torn-*"))
        assert [p.read_bytes() for p in sides] == [last[:cut]]  # ...and kept beside it


# --- ithcli killed mid-write -------------------------------------------------------------------------


@pytest.mark.parametrize("where, applied", [(TO_PUMP, False), (TO_CLI, True)],
                         ids=["commit-held", "reply-held"])
def test_ithcli_killed_while_its_commit_is_in_flight(start_emulator, tmp_path, where, applied):
    emu = start_emulator(transport="tcp", time_scale=FROZEN)
    host, port = emu.url[len("socket://"):].rsplit(":", 1)
    proxy = FaultProxy((host, int(port)))
    cli = Cli(tmp_path / "state", port=proxy.url)
    fault = Fault(kind="hold", direction=where, target="commit")  # held until the proxy closes
    proxy.arm([fault])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
    env.update(ITHCLI_STATE_DIR=cli.state_dir, ITHCLI_PORT=proxy.url, ITHCLI_OPERATOR="t",
               ITHCLI_KEY_STORE=__import__("cli_harness").DEFAULT_KEY_STORE)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "ithcli", "--timeout", "30", "--json", "program",
                                 "--dose", "2.4 mg/day", "--yes"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not fault.fired and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert fault.fired, proc.communicate()
        # the COMMIT is held on its way (ithcli wrote its pending record before sending it), or
        # its reply is (the pump applied it before answering): either way, a kill now is mid-write
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        proxy.disarm()
        pending = json.loads((Path(cli.state_dir) / "pending" / f"{emu.serial}.json").read_text())
        assert AuditLog(cli.audit_path).verify()[1] == []
        # the next write is refused until the pump has been asked; the ask settles it truthfully
        again = cli("--json", "program", "--dose", "2.4 mg/day", "--yes")
        assert again.code == 8, again.stderr
        assert again.json()["reconciled"]["applied"] is applied
        assert again.json()["reconciled"]["txid"] == pending["txid"]
        with RawClient(emu.url, keys=emu.keys, role="reader") as c:
            status = _status(c)
            assert (status.last_txid == pending["txid"]) is applied
            assert _tx_applied(c).count(pending["txid"]) == (1 if applied else 0)
        assert not (Path(cli.state_dir) / "pending" / f"{emu.serial}.json").exists()
        assert AuditLog(cli.audit_path).verify()[1] == []
    finally:
        proxy.close()
