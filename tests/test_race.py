"""Two programmers at once, many times, for real (issue 16).

Two real ithcli processes (forked warm, ithcli_campaign/warm.py) program the same real
ith-emulator over TCP at the same time with different doses, round after round. Each goes
through its own fault proxy (ithcli_campaign.proxy.FaultProxy), which forwards untouched
unless a round holds a PREPARE (a "hold" fault, released by the test). Two kinds of round:

- free: both started together at a barrier, nothing held: whatever interleaving the
  machine produces (most rounds overlap: both read the same state);
- forced: both PREPAREs held until both programmers have read, then one is let through,
  and the other only once the first is verified: the compare-and-set refusal, every time.

After every round, whatever the interleaving: at least one change was committed and
verified; a refused one says why (exit 5), committed nothing and left nothing pending; the
pump's log holds a TX_APPLIED for exactly the verified ones, once each, and the pump
delivers the dose of the one applied last; two verified changes in one round only when the
second was checked against the state the first left (its PREPARE based on the first's
txid): never a lost update. Each programmer's audit log shows exactly its verified change.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_harness import cli_env
from test_lost_update import address, audit, hold_prepare

from ithcli_campaign.proxy import FaultProxy
from ithcli_campaign.pump import TruthClient
from ithcli_campaign.warm import WarmCli
from protocol import EventType

FROZEN = ("--time-scale", "1e-9")  # the pump clock moves only when a test advances it
ROUNDS = 30
FORCED_EVERY = 3  # every third round is forced; the others are free
TIMEOUT = "30"  # ithcli --timeout: a held PREPARE waits for its reply this long (a hang guard only)


@dataclass
class Programmer:
    name: str
    warm: WarmCli
    proxy: FaultProxy
    state_dir: Path
    env: dict = field(default_factory=dict)

    def program(self, dose: str) -> Run:
        argv = ["--port", self.proxy.url, "--timeout", TIMEOUT, "--json", "program", "--dose", dose, "--yes"]
        code, out, err = self.warm.run(argv, self.env, 120)
        return Run(self.name, dose, code, out, err)

    def records_since(self, line: int) -> list[dict]:
        return audit(self.state_dir)[line:]


@dataclass
class Run:
    who: str
    dose: str
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (f"{self.who} --dose {self.dose!r} -> exit {self.code}\nstderr: {self.stderr}\n"
                f"stdout: {self.stdout[:1500]}")


def ng_per_day(dose: str) -> int:
    value, unit = dose.split()
    assert unit == "mg/day"
    return round(float(value) * 1_000_000)


def doses(i: int) -> tuple[str, str]:
    """Round i's two doses: different from each other and from whatever the pump holds before
    (the last round's are 0.2 mg/day away), so neither run is 'unchanged'; within the drug's limits."""
    base = 2 + (2 * i % 10) / 10
    return f"{base + 0.05:.2f} mg/day", f"{base + 0.1:.2f} mg/day"


@pytest.fixture
def rig(start_emulator, tmp_path):
    emu = start_emulator(*FROZEN, transport="tcp")  # morphine 10 mg/mL at 2 mg/day
    truth = TruthClient(address(emu), emu.keys["reader"])
    programmers = []
    try:
        for name in ("alice", "bob"):
            state = tmp_path / name
            programmers.append(Programmer(name, WarmCli(tmp_path / f"warm-{name}"), FaultProxy(address(emu)),
                                          state, cli_env({"ITHCLI_STATE_DIR": str(state), "ITHCLI_OPERATOR": name})))
        yield emu, truth, programmers
    finally:
        for p in programmers:
            p.proxy.release()
            p.proxy.close()
            p.warm.close()
        truth.close()


def run_together(a: Programmer, b: Programmer, dose_a: str, dose_b: str, *, forced_winner: int | None) -> list[Run]:
    """Start both at once. forced_winner None: nothing held. 0 or 1: both PREPAREs held until
    both have read the pump; then that one goes on, and the other once the first has finished."""
    programmers, dose = (a, b), (dose_a, dose_b)
    runs: list[Run | None] = [None, None]
    barrier = threading.Barrier(2)

    def go(k: int) -> None:
        barrier.wait()
        runs[k] = programmers[k].program(dose[k])

    for p in programmers:
        p.proxy.arm([hold_prepare()] if forced_winner is not None else [])
    threads = [threading.Thread(target=go, args=(k,), daemon=True) for k in (0, 1)]
    for t in threads:
        t.start()
    if forced_winner is not None:
        deadline = time.monotonic() + 60  # a guard against a hang, never a measured time
        while not all(p.proxy.holding() for p in programmers):
            assert time.monotonic() < deadline and all(t.is_alive() for t in threads), \
                f"both programmers never got as far as their PREPARE: {[str(r) for r in runs if r]}"
            time.sleep(0.01)
        winner, loser = forced_winner, 1 - forced_winner
        programmers[winner].proxy.release()
        threads[winner].join(150)
        programmers[loser].proxy.release()
    for t in threads:
        t.join(150)
        assert not t.is_alive(), "an ithcli run never finished"
    for p in programmers:
        p.proxy.disarm()
    done = [r for r in runs if r is not None]
    assert len(done) == 2, "an ithcli run ended without a result (its thread raised)"
    return done


def lost_the_race(run: Run) -> str:
    """What a refused run says: 'changed' (the compare-and-set refusal: someone else's change was
    applied after this one's read) or 'superseded' (another programmer's PREPARE replaced this one's
    prepared change before its COMMIT). Either way: exit 5, one line, nothing committed."""
    assert run.code == 5, str(run)
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ithcli: error: "), str(run)
    out = run.json()
    error = out["error"]
    assert error["exit_code"] == 5 and error["kind"] == "rejected", str(run)
    if "changed by someone else since ithcli read it" in error["message"]:
        assert "Nothing was committed" in error["message"] and out["outcome"] == "not-committed", str(run)
        assert out["changed_since_read"] is True
        return "changed"
    # both PREPAREs reached the pump before either COMMIT: the pump keeps one prepared change, the
    # later one, so the earlier COMMIT is refused (docs/protocol.md, "Two-phase writes")
    # (when the other's COMMIT had already landed, ithcli says so above; otherwise this)
    assert "another programmer prepared a change after this one" in error["message"], str(run)
    assert "Nothing was committed" in error["message"] and out["outcome"] == "not-committed", str(run)
    assert out["displaced"] is True
    return "superseded"


def check_round(i: int, truth: TruthClient, programmers: list[Programmer], runs: list[Run],
                log_start: int, read_txid: int, audit_start: list[int]) -> dict[str, str]:
    """Every invariant of one round; returns who lost and how ({name: 'changed'|'superseded'})."""
    where = f"round {i}: " + " | ".join(str(r) for r in runs)
    for run in runs:
        assert run.code in (0, 5), where
        assert "Traceback" not in run.stderr, where
    winners = [r for r in runs if r.code == 0]
    assert winners, f"nobody's change was committed: {where}"
    txid_of = {}
    for run in winners:
        out = run.json()
        assert out["verified"] is True and out["outcome"] == "verified", where
        txid_of[out["txid"]] = run
    lost = {run.who: lost_the_race(run) for run in runs if run.code != 0}

    # the pump's own log: a TX_APPLIED for exactly the verified changes, once each
    applied = [e.arg1 for e in truth.events_since(log_start) if e.type == EventType.TX_APPLIED]
    assert sorted(applied) == sorted(txid_of), f"applied {applied}, verified {sorted(txid_of)}: {where}"
    last = txid_of[applied[-1]]
    status = truth.status()
    assert status.last_txid == applied[-1], where
    assert status.daily_dose_ng_per_day == ng_per_day(last.dose), f"the pump delivers the wrong dose: {where}"
    steps = truth.program().program.steps
    assert [s.dose_ng_per_day for s in steps] == [ng_per_day(last.dose)], where

    # what each programmer's change was checked against, from its own audit log
    for p, start in zip(programmers, audit_start, strict=True):
        records = p.records_since(start)
        mine = next(r for r in runs if r.who == p.name)
        verified = [r["txid"] for r in records if r.get("event") == "verified"]
        assert verified == ([mine.json()["txid"]] if mine.code == 0 else []), f"{p.name}'s audit: {where}"
        assert not list((p.state_dir / "pending").glob("*.json")), f"{p.name} left a pending write: {where}"
        if mine.code == 0:
            based_on = [r["request"]["based_on_txid"] for r in records if r.get("command") == "PREPARE_PROGRAM"]
            assert len(based_on) == 1, where
            position = applied.index(mine.json()["txid"])
            # the first applied was checked against the round's start; a second only against the first
            expected = read_txid if position == 0 else applied[position - 1]
            assert based_on[0] == expected, f"{p.name}'s change was checked against a stale state: {where}"
    return lost


def test_two_programmers_at_once_many_times_never_lose_an_update(rig):
    emu, truth, programmers = rig
    a, b = programmers
    free_raced = forced = 0
    outcomes = []
    for i in range(ROUNDS):
        start = truth.status()
        audit_start = [len(audit(p.state_dir)) for p in programmers]
        dose_a, dose_b = doses(i)
        is_forced = i % FORCED_EVERY == FORCED_EVERY - 1
        winner = (i // FORCED_EVERY) % 2 if is_forced else None  # alice and bob win forced rounds in turn
        runs = run_together(a, b, dose_a, dose_b, forced_winner=winner)
        lost = check_round(i, truth, programmers, runs, start.event_count, start.last_txid, audit_start)
        outcomes.append((i, "forced" if is_forced else "free", [r.code for r in runs], lost))
        if is_forced:
            assert winner is not None
            # both read the same state; one was applied first: the other is refused compare-and-set
            assert [r.code for r in runs] == ([0, 5] if winner == 0 else [5, 0]), outcomes[-1]
            assert lost == {programmers[1 - winner].name: "changed"}, outcomes[-1]
            forced += 1
        elif lost:
            free_raced += 1
    # free rounds raced for real (one refused), not one after the other: otherwise they prove nothing
    assert free_raced >= 1, outcomes
    assert forced == ROUNDS // FORCED_EVERY
    # the whole run: every change each programmer was told was verified is in the pump's log, once
    for p in programmers:
        verified = [r["txid"] for r in audit(p.state_dir) if r.get("event") == "verified"]
        assert len(verified) == len(set(verified))
    applied = [e.arg1 for e in truth.events_since(0) if e.type == EventType.TX_APPLIED]
    told = [r["txid"] for p in programmers for r in audit(p.state_dir) if r.get("event") == "verified"]
    assert sorted(applied) == sorted(told)
    for p in programmers:  # and each audit log is intact
        code, out, err = p.warm.run(["--json", "audit", "verify"], p.env, 60)
        assert code == 0, err
