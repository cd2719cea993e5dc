"""ithcli.runner: many pumps' writes from one thread (issue 17, for issue 13's ward).

The matrix runs over tests/loopback.py links (the real emulator handler in process, the real
ClientSession, the real WriteFlow, journal and audit) on a virtual clock; a sample runs the
same jobs over several ith-emulator processes on ptys and TCP from this one thread."""
from __future__ import annotations

import json
import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from loopback import KEYS, Loopback, VirtualClock, new_pump

from emulator.faults import Faults
from ithcli import steps, write_kinds
from ithcli.app import PumpSession, Records, Settings
from ithcli.client import PumpClient
from ithcli.errors import DeviceRejected, IthcliError, LinkError, Unconfirmed
from ithcli.keystore import MemoryKeyStore
from ithcli.link import open_link
from ithcli.runner import Job, LinkTransport, Runner, open_session
from ithcli.writes import Expect, Verified, WriteFlow, WriteRequest, execute
from protocol import InfusionMode, Role, bodies
from protocol.therapy import rate_for_dose

LOOP_KEYS = {"reader": KEYS[Role.READER], "clinician": KEYS[Role.CLINICIAN]}
NO_CLIENT: Any = None  # a flow the runner drives sends nothing itself


def error_of(job: Job) -> Any:
    """The job's error, as ithcli's typed error it must be."""
    assert isinstance(job.error, IthcliError), job.error
    return job.error


class LoopTransport:
    """A Loopback as a runner Transport: the pump answers at once (no descriptor to poll)."""

    def __init__(self, link: Loopback):
        self.link = link
        self.rx = b""

    def fileno(self) -> None:
        return None

    def send(self, data: bytes) -> None:
        self.rx += self.link.send(data)

    def receive(self) -> bytes:
        data, self.rx = self.rx, b""
        return data


def program_request(status: bodies.Status, dose_ng: int) -> WriteRequest:
    """A CONTINUOUS program of dose_ng/day: what `ithcli program --dose` would send."""
    conc = status.concentration_ng_per_ml
    rate = rate_for_dose(dose_ng, conc)
    expected = bodies.Program(InfusionMode.CONTINUOUS, status.drug, conc, dose_ng, rate,
                              (bodies.DeliveredStep(0, dose_ng, rate),))
    return WriteRequest(kind=write_kinds.PROGRAM,
                        prepare=partial(bodies.PrepareProgramRequest, mode=InfusionMode.CONTINUOUS,
                                        drug=status.drug, concentration_ng_per_ml=conc,
                                        steps=(bodies.ProgramStep(0, dose_ng),)),
                        expect=Expect(program=expected), describe={"test": True})


def pump_session(state: Path, port: str) -> PumpSession:
    return PumpSession(Settings(port=port, operator="runner-test"), Records(state))


def write_job(session: PumpSession, keystore, dose_ng: int, *, stale: bool = False):
    """Open a clinician session, read, then one verified write: the steps batch would compose."""
    entry = yield from open_session(keystore, "clinician")
    session.serial = entry.serial
    status = yield from steps.interrogate()
    program = yield from steps.read_program()
    based_on = status.last_txid + 7 if stale else status.last_txid  # stale: another write landed since
    flow = WriteFlow(session, NO_CLIENT, program_request(status, dose_ng), log_index=status.event_count,
                     based_on_txid=based_on, read_program=program.program)
    return (yield from flow.steps())


def exchange_log(log: list, name: str):
    def hook(command, request, reply, outcome):
        log.append((name, command.name, outcome))
    return hook


# --- the matrix, in process -----------------------------------------------------------------

CASES = ("verified", "refused", "commit-reply-lost", "prepare-reply-lost", "reset-after-prepare")


def test_many_pumps_interleave_with_the_three_outcomes(tmp_path):
    clock = VirtualClock()
    runner = Runner(clock=clock.monotonic, sleep=clock.sleep)
    log: list = []
    pumps = {}
    for i in range(40):
        case = CASES[i % len(CASES)]
        pump = new_pump(f"LOOP{i:03d}")
        faults = Faults()
        if case == "commit-reply-lost":
            faults.arm("drop_commit_reply")
        elif case == "prepare-reply-lost":
            faults.arm("drop_prepare_reply")
        elif case == "reset-after-prepare":
            faults.arm("reset_after_prepare")
        session = pump_session(tmp_path / "state", f"loop://{pump.serial}")
        job = runner.add(pump.serial, LoopTransport(Loopback(pump, faults=faults, clock=clock.monotonic)),
                         write_job(session, MemoryKeyStore(pump.serial, LOOP_KEYS), 2_000_000 + 1000 * i,
                                   stale=case == "refused"),
                         timeout=2.0, on_exchange=exchange_log(log, pump.serial))
        pumps[pump.serial] = (case, pump, session, job)

    runner.run()

    # interleaved: every pump's HELLO went out before any pump's COMMIT
    first_commit = next(i for i, (_, command, _) in enumerate(log) if command == "COMMIT")
    assert {name for name, command, _ in log[:first_commit] if command == "HELLO"} == set(pumps)
    for serial, (case, pump, session, job) in pumps.items():
        commits = [outcome for name, command, outcome in log if name == serial and command == "COMMIT"]
        journal = session.pending.get(serial)
        if case == "verified":
            assert job.outcome == "verified" and isinstance(job.value, Verified)
            assert pump.last_txid == job.value.txid and commits == ["ok"] and journal is None
            assert pump.program.steps[0].dose_ng_per_day == 2_000_000 + 1000 * int(serial[4:])
        elif case == "refused":  # an authenticated refusal: failed for certain, nothing committed
            assert job.outcome == "failed" and isinstance(job.error, DeviceRejected)
            assert error_of(job).details["changed_since_read"] is True and commits == [] and journal is None
        elif case == "commit-reply-lost":  # applied, but no reply: unconfirmed, never resent
            assert job.outcome == "unconfirmed" and isinstance(job.error, Unconfirmed)
            assert commits == ["link"], "a COMMIT without a reply is sent once"
            assert journal is not None and journal["txid"] == error_of(job).txid == pump.last_txid
        elif case == "prepare-reply-lost":  # PREPARE only: nothing applied, no journal entry
            assert job.outcome == "failed" and isinstance(job.error, LinkError)
            assert "nothing was applied" in error_of(job).message and commits == [] and journal is None
        else:  # COMMIT answered in clear by a pump that reset: proves nothing
            assert job.outcome == "unconfirmed" and commits == ["unauthenticated"]
            assert journal is not None and journal["txid"] == error_of(job).txid
    audit = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    events = [(r["pump_serial"], r["event"]) for r in audit]
    assert events.count(("LOOP000", "commit-sent")) == 1 and ("LOOP000", "verified") in events
    assert ("LOOP002", "commit-sent") in events and ("LOOP002", "verified") not in events


def _one_pump_exchanges(tmp_path, fault: str | None) -> tuple[list, BaseException | None]:
    """The same write through the blocking path (execute over a PumpClient) on an in-process pump."""
    from loopback import InProcessPump

    emu = InProcessPump("--serial", "BLOCK1")
    if fault:
        emu.faults.arm(fault)
    keys = {role.name.lower(): key for role, key in emu.keys.items()}
    client = PumpClient(open_link(emu.url), timeout=0.2)
    log: list = []
    client.on_exchange = exchange_log(log, "x")
    session = pump_session(tmp_path / "blocking", emu.url)
    error = None
    try:
        session.serial = client.open_session(MemoryKeyStore("BLOCK1", keys), "clinician").serial
        status, program = client.interrogate(), client.read_program()
        execute(session, client, program_request(status, 2_500_000), log_index=status.event_count,
                based_on_txid=status.last_txid, read_program=program.program)
    except Unconfirmed as exc:
        error = exc
    finally:
        client.link.close()
        emu.close()
    return log, error


@pytest.mark.parametrize("fault", [None, "drop_commit_reply"])
def test_the_runner_says_what_the_blocking_path_says(tmp_path, fault):
    blocking, blocking_error = _one_pump_exchanges(tmp_path, fault)
    clock = VirtualClock()
    runner = Runner(clock=clock.monotonic, sleep=clock.sleep)
    pump, faults = new_pump("RUN1"), Faults()
    log: list[tuple[str, str, str]] = []
    if fault:
        faults.arm(fault)
    job = runner.add("RUN1", LoopTransport(Loopback(pump, faults=faults)),
                     write_job(pump_session(tmp_path / "run", "loop://RUN1"), MemoryKeyStore("RUN1", LOOP_KEYS),
                               2_500_000), timeout=0.2, on_exchange=exchange_log(log, "x"))
    runner.run()
    assert log == blocking  # the same messages, in the same order, with the same outcomes
    if fault:
        assert isinstance(blocking_error, Unconfirmed)
        error_of_blocking = blocking_error
        assert type(job.error) is type(blocking_error)
        assert error_of(job).message.replace(str(error_of(job).txid), "T") == \
            error_of_blocking.message.replace(str(error_of_blocking.txid), "T")
    else:
        assert job.outcome == "verified"


def test_lost_read_replies_are_asked_again_and_stop_on_failure_is_the_callers(tmp_path):
    clock = VirtualClock()
    done: list = []

    def on_done(job: Job) -> None:  # stop-on-failure, decided here
        done.append(job.name)
        if job.error is not None:
            runner.cancel_queued()

    runner = Runner(clock=clock.monotonic, sleep=clock.sleep, max_active=1, on_done=on_done)
    first = new_pump("R1")
    log: list[tuple[str, str, str]] = []
    faults = Faults()
    faults.arm("drop_reply", 2)  # sealed requests only: the first INTERROGATE is asked three times
    runner.add("R1", LoopTransport(Loopback(first, faults=faults)),
               write_job(pump_session(tmp_path, "loop://R1"), MemoryKeyStore("R1", LOOP_KEYS), 2_600_000),
               on_exchange=exchange_log(log, "R1"))
    second = new_pump("R2")
    runner.add("R2", LoopTransport(Loopback(second)),
               write_job(pump_session(tmp_path, "loop://R2"), MemoryKeyStore("R2", LOOP_KEYS), 2_600_000, stale=True))
    third = runner.add("R3", LoopTransport(Loopback(new_pump("R3"))),
                       write_job(pump_session(tmp_path, "loop://R3"), MemoryKeyStore("R3", LOOP_KEYS), 2_600_000))
    jobs = runner.run()
    assert [j.outcome for j in jobs] == ["verified", "failed", "not-run"]
    assert done == ["R1", "R2"] and third.state == "not-run"
    # the first INTERROGATE three times, then the read-back's
    assert [o for _, c, o in log if c == "INTERROGATE"] == ["link", "link", "ok", "ok"] and jobs[0].retries == 2


def test_ctrl_c_once_lets_running_writes_finish_and_starts_no_more(tmp_path):
    clock = VirtualClock()
    runner = Runner(clock=clock.monotonic, sleep=clock.sleep, max_active=1)

    def hook(command, request, reply, outcome):
        if command.name == "PREPARE_PROGRAM":
            os.kill(os.getpid(), signal.SIGINT)  # the runner's handler takes it between exchanges

    a, b = new_pump("C1"), new_pump("C2")
    runner.add("C1", LoopTransport(Loopback(a)),
               write_job(pump_session(tmp_path, "loop://C1"), MemoryKeyStore("C1", LOOP_KEYS), 2_700_000),
               on_exchange=hook)
    runner.add("C2", LoopTransport(Loopback(b)),
               write_job(pump_session(tmp_path, "loop://C2"), MemoryKeyStore("C2", LOOP_KEYS), 2_700_000))
    jobs = runner.run()
    assert [j.outcome for j in jobs] == ["verified", "not-run"]
    assert runner.interrupted == 1 and runner.stopping and b.last_txid == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


def test_ctrl_c_twice_makes_a_commit_in_flight_unconfirmed_never_resent(tmp_path):
    clock = VirtualClock()
    runner = Runner(clock=clock.monotonic, sleep=clock.sleep)
    log: list = []

    def hook(command, request, reply, outcome):
        log.append(command.name)
        if command.name == "PREPARE_PROGRAM":
            runner.interrupt()
            runner.interrupt()

    pump = new_pump("C3")
    session = pump_session(tmp_path, "loop://C3")
    job = runner.add("C3", LoopTransport(Loopback(pump)),
                     write_job(session, MemoryKeyStore("C3", LOOP_KEYS), 2_800_000), on_exchange=hook)
    runner.run()
    assert job.outcome == "unconfirmed" and error_of(job).details["interrupted"] is True
    assert log.count("COMMIT") == 1 and pump.last_txid == error_of(job).txid  # it landed; only a read can say
    assert (session.pending.get("C3") or {}).get("txid") == error_of(job).txid


# --- a real-process sample: several ith-emulator processes, one thread ---------------------


def test_several_emulator_processes_over_pty_and_tcp_from_one_thread(start_emulator, tmp_path):
    emus = [start_emulator("--serial", f"PROC{i}", transport=("pty", "tcp")[i % 2]) for i in range(4)]
    assert emus[3].control("fault", name="drop_commit_reply")["ok"]
    runner = Runner()
    links = []
    for emu in emus:
        link = open_link(emu.url)
        links.append(link)
        keystore = MemoryKeyStore(emu.serial, emu.keys)
        runner.add(emu.serial, LinkTransport(link),
                   write_job(pump_session(tmp_path / "state", emu.url), keystore, 3_200_000), timeout=1.0)
    try:
        jobs = runner.run()
    finally:
        for link in links:
            link.close()
    assert [j.outcome for j in jobs] == ["verified", "verified", "verified", "unconfirmed"]
    client = PumpClient(open_link(emus[3].url))
    try:
        client.open_session(MemoryKeyStore(emus[3].serial, emus[3].keys), "reader")
        assert client.interrogate().last_txid == error_of(jobs[3]).txid  # applied; the runner never resent it
    finally:
        client.link.close()
