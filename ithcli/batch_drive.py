"""A batch's pumps driven from one thread: its per-pump code as ithcli.runner jobs.

batch.Runner's per-pump code (preflight, the preview, the steps) is written as blocking
calls on a PumpSession and its client, the same the commands and the API make. Here the
client is a StepClient: every exchange the code asks for is handed to one
ithcli.runner.Runner on the calling thread, which sends it, polls every link at once and
hands the reply (or the error) back. The runner's exchange rules are PumpClient's
(retries of reads, a new session for an unauthenticated answer, a write sent once). The
code runs one of two ways:

- inline(): on the runner's thread, by replay. The code runs until it asks for an exchange
  not answered yet; once the pump answers it runs again from its start, the exchanges
  before answered from the record. Only for code that only reads (batch.Runner picks: a
  read-only preflight, an interrogate or assert step); no thread is involved.
- on_worker(): on a worker thread (writes, what settles a step sent before, anything that
  records as it goes). Only one thread runs at a time: a worker runs until it asks for an
  exchange (or ends) while the runner waits, and the runner runs while every worker waits.

Either way no two threads contend for the GIL: 64 runnable threads handing it over at every
blocking call cost more than the work itself (docs/performance.md, Batch), and a hand-over
between the runner and a worker costs a read about a fifth of its CPU, which inline saves.

Ctrl-C is the runner's (taken between exchanges): the first stops jobs not started yet
and calls `on_stop` (batch's stop flag: running pumps end after the step in flight); a
second throws KeyboardInterrupt into each pump's code at its pending exchange, where a
COMMIT in flight ends unconfirmed, never resent. run() then raises KeyboardInterrupt.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from protocol import bodies
from protocol import session as wire

from . import runner as steps_runner
from . import steps
from .app import PumpSession
from .audit import AuditLog
from .errors import LinkError
from .runner import Job, LinkTransport
from .steps import Read, Steps, WriteOnce

_ASK, _DONE, _RAISE, _SEND, _THROW = range(5)


class _Channel:
    """One pump's hand-over between its worker and the runner's thread: one side at a time."""

    def __init__(self) -> None:
        self.to_worker: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self.to_runner: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()

    def ask(self, ask: steps.Ask) -> Any:
        """On the worker: hand `ask` to the runner, wait for its reply (or its error, raised here)."""
        self.to_runner.put((_ASK, ask))
        kind, value = self.to_worker.get()
        if kind == _THROW:
            raise value
        return value


class _Workers:
    """Daemon threads kept for the next pump: starting a thread per pump and phase costs
    ~50 us; a worker left waiting (a bug in the runner) never keeps ithcli from exiting."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        if spawn:
            threading.Thread(target=self._loop, name="ithcli-batch-pump", daemon=True).start()
        self._tasks.put(task)

    def _loop(self) -> None:
        while True:
            self._tasks.get()()
            with self._lock:
                self._idle += 1


_WORKERS = _Workers()


def on_worker(fn: Callable[[], Any], client: StepClient) -> Steps[Any]:
    """fn() (blocking code using `client`) on a worker thread, as runner steps: each exchange
    it asks for is yielded, the reply sent back into it (or the error thrown in)."""
    channel = _Channel()

    def work() -> None:
        client.channel_to_runner = channel
        try:
            value = fn()
        except BaseException as exc:  # the runner raises it in its thread: the job's error
            client.channel_to_runner = None
            channel.to_runner.put((_RAISE, exc))
        else:
            client.channel_to_runner = None
            channel.to_runner.put((_DONE, value))

    _WORKERS.submit(work)
    kind, value = channel.to_runner.get()
    while kind == _ASK:
        try:
            reply = yield value
        except GeneratorExit:  # the job dropped unfinished: its worker must not wait for ever
            channel.to_worker.put((_THROW, KeyboardInterrupt()))
            raise
        except BaseException as exc:
            channel.to_worker.put((_THROW, exc))
        else:
            channel.to_worker.put((_SEND, reply))
        kind, value = channel.to_runner.get()
    if kind == _RAISE:
        raise value
    return value


class _Miss(BaseException):
    """Replay ran past what the pump has answered: the exchange to ask for. A BaseException, so
    no `except Exception` of the code replayed takes it for a failure of its own."""

    def __init__(self, ask: steps.Ask):
        super().__init__()
        self.ask = ask


#: what a PumpSession learns between exchanges (its session's role, the pump's serial, the last
#: read): set back before each replay, so that each replay finds the session as the first run did
_SESSION_STATE = ("role", "serial", "last_status", "last_read_at", "clock_skew_s")


def inline(fn: Callable[[], Any], client: StepClient, session: Any) -> Steps[Any]:
    """fn() on this thread, as runner steps, by replay: fn runs until it asks for an exchange not
    answered yet, which is yielded; once answered, fn runs again from its start, every earlier
    exchange answered from the record, and so on until it returns or raises. Only for code that
    changes nothing before its last exchange but what it sets again the same way (batch.Runner
    says which): what `session` (the PumpSession fn uses) learns between exchanges is set back
    before each replay. Each exchange is asked once; a replay asking another exchange than the
    one recorded is a bug, and fails the pump (LinkError, "internal error")."""
    record: list[tuple[steps.Ask, bool, Any]] = []  # (ask, answered, reply or error)
    before = {name: getattr(session, name) for name in _SESSION_STATE}
    while True:
        for name, value in before.items():
            setattr(session, name, value)
        client.replay = (record, [0])
        _quiet_until_caught_up(client)
        try:
            return fn()
        except _Miss as miss:
            ask = miss.ask
        finally:
            client.replay = None
            _quiet_until_caught_up(None)
        if isinstance(ask, steps.Hello):
            client.session.close()  # a new session: as PumpClient.open_session starts one
        try:
            reply = yield ask
        except GeneratorExit:
            raise
        except BaseException as exc:
            record.append((ask, False, exc))
        else:
            record.append((ask, True, reply))


_LOUD = logging.NOTSET


def _quiet_until_caught_up(client: StepClient | None) -> None:
    """What a replayed run logs before it reaches its first new exchange was logged by the run
    before it: said once (only this thread runs while it replays)."""
    global _LOUD
    if client is not None and client.replay is not None and client.replay[0]:
        if logging.root.manager.disable != logging.CRITICAL:
            _LOUD = logging.root.manager.disable
            _disable(logging.CRITICAL)
    elif client is None:
        _disable(_LOUD)


def _disable(level: int) -> None:
    """logging.disable only when it changes something: each call clears every logger's cache
    (a batch of 1,000 pumps made 15,000 calls, 5 % of its CPU)."""
    if logging.root.manager.disable != level:
        logging.disable(level)


class StepClient:
    """PumpClient's interface for code on a worker: each exchange is asked of the runner."""

    def __init__(self, link: Any, timeout: float):
        self.link = link
        self.timeout = timeout
        self.session = wire.ClientSession()  # the job's: the runner seals and opens with it
        self.on_exchange: Any = None
        self.reopen: Any = None  # the runner opens a new session itself (BatchSession.reopen_steps)
        self.tell_waiting = False
        self.channel_to_runner: _Channel | None = None
        #: inline(): the exchanges answered so far and how many this run of fn has used
        self.replay: tuple[list[tuple[steps.Ask, bool, Any]], list[int]] | None = None
        self.jobs: list[Job] = []  # the runner's jobs for this pump: corrupt frames and retries

    @property
    def channel(self) -> Any:
        return self.session.channel

    @property
    def corrupt_frames(self) -> int:
        return sum(j.corrupt_frames for j in self.jobs)

    @property
    def retries(self) -> int:
        return sum(j.retries for j in self.jobs)

    def end_session(self) -> None:
        self.session.close()

    def _ask(self, ask: steps.Ask) -> Any:
        if self.replay is not None:
            return self._replayed(ask)
        channel = self.channel_to_runner
        if channel is None:
            raise LinkError(f"{self.link.url}: no exchange outside the batch's runner")
        return channel.ask(ask)

    def _replayed(self, ask: steps.Ask) -> Any:
        assert self.replay is not None
        record, used = self.replay
        if used[0] == len(record):
            raise _Miss(ask)
        recorded, answered, value = record[used[0]]
        used[0] += 1
        if used[0] == len(record):  # caught up: what it does from here on is new
            _disable(_LOUD)
        if type(recorded) is not type(ask) or steps.command_of(recorded) != steps.command_of(ask):
            raise LinkError(f"internal error: a replay asked {steps.command_of(ask).name} where "
                            f"{steps.command_of(recorded).name} was asked: nothing more is sent to this pump")
        if not answered:
            raise value
        return value

    def read(self, request: bodies.Request[Any], *, may_reopen: bool = True) -> Any:
        return bodies.reply_to(request, self._ask(Read(request)))

    def write_once(self, request: bodies.Request[Any]) -> Any:
        return bodies.reply_to(request, self._ask(WriteOnce(request)))

    def open_session(self, keystore: Any, role: str) -> Any:
        """HELLO + AUTH as `role` (the runner's open_session steps): the key-store entry used."""
        if self.replay is None:  # (inline() closes it before a HELLO it sends)
            self.session.close()
        handshake = steps_runner.open_session(keystore, role)
        try:
            ask = next(handshake)
            while True:
                try:
                    reply = self._ask(ask)
                except (Exception, KeyboardInterrupt) as exc:
                    ask = handshake.throw(exc)
                else:
                    ask = handshake.send(reply)
        except StopIteration as done:
            return done.value

    def interrogate(self) -> bodies.Status:
        status: bodies.Status = self.read(bodies.InterrogateRequest())
        return status

    def read_program(self) -> bodies.ReadProgramResponse:
        program: bodies.ReadProgramResponse = self.read(bodies.ReadProgramRequest())
        return program

    def read_log(self, first_index: int = 0, max_count: int = 28) -> bodies.ReadLogResponse:
        page: bodies.ReadLogResponse = self.read(bodies.ReadLogRequest(first_index, max_count))
        return page

    def read_whole_log(self, since_index: int = 0) -> tuple[int, list[bodies.Event]]:
        return steps.drive(self, steps.read_whole_log(since_index))


class BatchSession(PumpSession):
    """A PumpSession whose link is opened up front (attach) and whose client is a StepClient."""

    step_client: StepClient | None = None

    def attach(self) -> StepClient:
        """Open the link (LinkError: the port cannot be opened) and put a StepClient on it."""
        if self.step_client is None or self._client is None:
            from .link import open_link

            link = self._link = open_link(self.port, verbose=self.settings.verbose)
            link.discard_input()  # a pty keeps replies nobody read: they cannot be mistaken for ours
            client = self.step_client = StepClient(link, self.settings.timeout)
            client.on_exchange = self.audit_exchange
            self._client = client  # type: ignore[assignment]  # PumpClient's interface, asked of the runner
        return self.step_client

    def _connect(self) -> Any:
        raise LinkError(f"the link to {self.port} was closed during the batch: nothing more is sent to it")

    def reopen_steps(self) -> Steps[Any]:
        """A new session (the same role) after an answer in clear; refused if another pump answers."""
        entry = yield from steps_runner.open_session(self.keystore(), self.role or "reader")
        if entry.serial != self.serial:
            raise self._wrong_pump(self.serial or "", entry.serial)
        return entry


class Driver:
    """Runs many pumps' steps on one runner (each on its session's link); see the module's docstring."""

    def __init__(self, jobs: int, on_stop: Callable[[], None]):
        self.runner = steps_runner.Runner(max_active=max(1, jobs), on_stop=on_stop, after_turn=self._write_reads)
        self._audits: dict[int, AuditLog] = {}  # the logs the pumps' exchanges go to (one, in practice)

    def add(self, name: str, session: BatchSession, job_steps: Steps[Any]) -> Job:
        """job_steps: the pump's steps (inline(), on_worker() or a generator of them)."""
        audit = session.records.audit
        self._audits.setdefault(id(audit), audit)
        client = session.attach()
        job = self.runner.add(name, _Transport(client.link), job_steps, timeout=client.timeout,
                              on_exchange=session.audit_exchange, reopen=session.reopen_steps,
                              session=client.session)
        client.jobs.append(job)
        return job

    def run(self) -> list[Job]:
        """Every job to its end; KeyboardInterrupt when a Ctrl-C stopped the run. The reads' audit
        entries are written a runner turn at a time (AuditLog.holding_reads), a write's at once."""
        with contextlib.ExitStack() as holding:
            for audit in self._audits.values():
                holding.enter_context(audit.holding_reads())
            done = self.runner.run()
        if self.runner.interrupted:
            raise KeyboardInterrupt
        return done

    def _write_reads(self) -> None:
        for audit in self._audits.values():
            audit.write_held()


class _Transport(LinkTransport):
    """LinkTransport without its discard of input: attach discarded it once, when the link opened."""

    def __init__(self, link: Any):
        self.link = link
