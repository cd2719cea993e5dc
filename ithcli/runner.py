"""Many pumps from one thread: step functions (ithcli/steps.py) driven over many links at once.

Each job is one pump: a transport (its link), its own protocol.session.ClientSession, and
a generator of steps (usually opening a session, then one or more writes.WriteFlow.steps()).
The runner sends each job's next request, polls every link's descriptor, feeds the bytes
that arrive to that job's session and resumes the job with the reply, so the exchanges of
all the pumps interleave while each pump sees one request at a time, as it would from
`ithcli program`. The exchange rules are PumpClient's (ithcli/client.py), per pump:

- a Read (and a HELLO) is asked again after a timeout or corrupted frames, up to
  READ_ATTEMPTS; an answer in clear inside a session is waited on UNAUTH_GRACE for the
  sealed one, then is SessionLost: a Read opens a new session once (the job's `reopen`
  steps) and asks again, or fails;
- a WriteOnce (PREPARE_*, COMMIT) and an AUTH are sent once: no valid reply is ReplyLost,
  thrown into the job, where WriteFlow makes a COMMIT without a reply *unconfirmed*;
- `timeout` is per job (each exchange's), on the runner's `clock`.

    runner = Runner(max_active=50)
    for pump in pumps:
        flow = WriteFlow(...)                       # journal, audit and pending writes: the pump's own
        runner.add(pump.serial, LinkTransport(open_link(pump.url)), job(flow), timeout=2.0)
    for job in runner.run():
        job.outcome                                 # verified, failed, unconfirmed (or not-run, interrupted)

What stays with the caller, as batch needs: the jobs themselves (their journal records go
through WriteFlow's on_commit_sent and on_echo); stop-on-failure (`on_done` sees each job
as it ends and may call cancel_queued(); a job's own steps can check `runner.stopping`
before starting another write). Ctrl-C is taken between exchanges, never inside one: the
first stops queued jobs and sets `stopping` while the running ones finish; a second
throws KeyboardInterrupt into each running job at its pending exchange (a COMMIT in
flight then ends unconfirmed, never resent). run() returns; `interrupted` counts them.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol import Command, ProtocolError, Role, bodies
from protocol import session as wire

from .client import READ_ATTEMPTS, UNAUTH_GRACE, Corrupt, NoReply, ReplyLost, decided, hello_refused, key_for
from .errors import AuthError, DeviceRejected, IthcliError, LinkError, PumpProtocolError, SessionLost, Unconfirmed
from .steps import Ask, Auth, Hello, Read, Steps, command_of

#: on_exchange(command, request_body_or_None, reply_body_or_None, outcome): PumpClient.on_exchange's shape
ExchangeHook = Callable[[Command, "bodies.Body | None", "bodies.Body | None", str], None]


class Transport(Protocol):
    """One pump's link as the runner uses it: never blocks on input."""

    def fileno(self) -> int | None:
        """The descriptor to poll for input; None: receive() is asked on every turn."""

    def send(self, data: bytes) -> None:
        """Send these bytes (LinkError when the link is gone)."""

    def receive(self) -> bytes:
        """What has arrived, without waiting: b"" for nothing (LinkError when the link is gone)."""


class LinkTransport:
    """An ithcli.link.Link (a tty, a pty or socket://, opened with open_link) as a Transport."""

    def __init__(self, link: Any):
        self.link = link
        link.discard_input()  # a pty keeps replies nobody read: they cannot be mistaken for ours

    def fileno(self) -> int | None:
        fd: int | None = self.link.fileno()
        return fd

    def send(self, data: bytes) -> None:
        self.link.write(data)

    def receive(self) -> bytes:
        data: bytes = self.link.read_nowait()
        return data

    def close(self) -> None:
        self.link.close()


@dataclass(eq=False)
class Job:
    """One pump's conversation, and once it ends, its result (`value`) or its error."""

    name: str
    transport: Transport
    steps: Steps[Any]
    timeout: float = 2.0
    on_exchange: ExchangeHook | None = None
    #: steps that open a new session (open_session(...)) when a read's answer was not authenticated
    reopen: Callable[[], Steps[Any]] | None = None
    session: wire.ClientSession = field(default_factory=wire.ClientSession)
    state: str = "queued"  # queued, running, done, not-run
    value: Any = None
    error: BaseException | None = None
    corrupt_frames: int = 0
    retries: int = 0
    # the exchange in flight
    ask: Ask | None = field(default=None, repr=False)
    deadline: float = 0.0
    attempt: int = 0
    may_reopen: bool = True
    corrupt: list[str] = field(default_factory=list, repr=False)
    clear: wire.Unauthenticated | None = field(default=None, repr=False)
    reopening: Steps[Any] | None = field(default=None, repr=False)  # the new session's steps, while they run
    reask: Ask | None = field(default=None, repr=False)  # the read to ask again once that session is open
    abandoned: bool = False
    fd: int | None = field(default=None, repr=False)  # its transport's descriptor, polled from its start

    @property
    def outcome(self) -> str:
        """verified (a write's Verified) or ok (anything else returned), failed (for certain:
        the error's details["outcome"] says how), unconfirmed, interrupted, not-run."""
        if self.state != "done":
            return self.state
        if isinstance(self.error, Unconfirmed):
            return "unconfirmed"
        if isinstance(self.error, KeyboardInterrupt):
            return "interrupted"
        if self.error is not None:
            return "failed"
        from .writes import Verified

        return "verified" if isinstance(self.value, Verified) else "ok"


class Runner:
    """Drives many jobs from the calling thread; see the module's docstring."""

    def __init__(self, *, max_active: int | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, on_done: Callable[[Job], None] | None = None,
                 on_stop: Callable[[], None] | None = None, after_turn: Callable[[], None] | None = None):
        self.max_active = max_active
        self.clock = clock
        self.sleep = sleep
        self.on_done = on_done
        self.on_stop = on_stop  # told when a first Ctrl-C (or stop()) stops the run: batch's stop flag
        self.after_turn = after_turn  # called after each turn: batch writes the turn's held reads to the audit log
        self.jobs: list[Job] = []
        self.stopping = False  # Ctrl-C (or stop()): no queued job starts; jobs may check it between writes
        self.interrupted = 0
        self._queue: list[Job] = []
        self._active: list[Job] = []
        self._poller = select.poll()
        self._fds: dict[int, Job] = {}
        self._polled: list[Job] = []  # running jobs whose transport has no descriptor: asked every turn
        self._signals = 0
        self._wake: tuple[int, int] | None = None  # while run() handles SIGINT: a pipe that ends a poll

    def add(self, name: str, transport: Transport, steps: Steps[Any], *, timeout: float = 2.0,
            on_exchange: ExchangeHook | None = None, reopen: Callable[[], Steps[Any]] | None = None,
            session: wire.ClientSession | None = None) -> Job:
        """`session`: a pump's session kept from an earlier run (batch: preflight's, for the steps)."""
        job = Job(name, transport, steps, timeout, on_exchange, reopen)
        if session is not None:
            job.session = session
        self.jobs.append(job)
        self._queue.append(job)
        return job

    def cancel_queued(self) -> list[Job]:
        """Jobs not started yet never start (state not-run): stop-on-failure, decided by the caller."""
        cancelled, self._queue = self._queue, []
        for job in cancelled:
            job.state = "not-run"
        return cancelled

    def stop(self) -> None:
        """What a first Ctrl-C does: queued jobs never start, running ones finish."""
        self.stopping = True
        self.cancel_queued()
        if self.on_stop is not None:
            self.on_stop()

    def interrupt(self) -> None:
        """What Ctrl-C does (the runner's SIGINT handler calls it; taken between exchanges)."""
        self._signals += 1
        if self._wake is not None:  # poll() is retried after a handler (PEP 475): wake it for real
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"!")

    # --- the loop ------------------------------------------------------------------
    def run(self) -> list[Job]:
        """Run every job to its end; every job, in the order added."""
        with self._sigint():
            while True:
                self._take_signals()
                self._start_queued()
                if not self._active:
                    break
                self._turn()
                if self.after_turn is not None:
                    self.after_turn()
        return self.jobs

    @contextlib.contextmanager
    def _sigint(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        wake = self._wake = os.pipe()
        os.set_blocking(wake[1], False)
        self._poller.register(wake[0], select.POLLIN)
        previous = signal.signal(signal.SIGINT, lambda signum, frame: self.interrupt())
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self._poller.unregister(wake[0])
            self._wake = None
            os.close(wake[0])
            os.close(wake[1])

    def _take_signals(self) -> None:
        while self._signals:
            self._signals -= 1
            self.interrupted += 1
            if self.interrupted == 1:
                self.stop()
            else:
                for job in list(self._active):
                    self._abandon(job)

    def _start_queued(self) -> None:
        while self._queue and (self.max_active is None or len(self._active) < self.max_active):
            job = self._queue.pop(0)
            job.state = "running"
            self._active.append(job)
            fd = job.fd = job.transport.fileno()
            if fd is not None:
                self._fds[fd] = job
                self._poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
            else:
                self._polled.append(job)
            self._resume(job, None, None)

    def _turn(self) -> None:
        """Wait for input or the nearest deadline, hand what came to its job, expire the late."""
        polled = list(self._polled)  # (asked once per turn, not once per job: a ward's 1000 links)
        got = [j for j in polled if j.state == "running" and self._receive(j)]
        waiting = [j.deadline for j in self._active if j.ask is not None]
        wait = max(0.0, min(waiting) - self.clock()) if waiting else 0.0
        if got or self._signals:
            wait = 0.0
        if self._fds:  # (the wake pipe, when there is one, is registered in the same poller)
            wait = min(wait, 0.01) if polled else wait
            for fd, _ in self._poller.poll(wait * 1000):
                job = self._fds.get(fd)
                if job is not None and job.state == "running":
                    self._receive(job)
                elif self._wake is not None and fd == self._wake[0]:
                    os.read(fd, 512)  # a Ctrl-C woke this poll: run() takes it next
        elif wait:
            self.sleep(wait)
        now = self.clock()
        for job in list(self._active):
            if job.ask is not None and now >= job.deadline:
                self._expire(job)

    # --- one job's exchanges ------------------------------------------------------------
    def _resume(self, job: Job, reply: Any, error: BaseException | None) -> None:
        """Hand the reply (or the error) to the job and send what it asks next, or end it."""
        ask: Ask | None
        while True:
            steps = job.reopening or job.steps
            try:
                ask = steps.throw(error) if error is not None else steps.send(reply)
            except StopIteration as done:
                if job.reopening is None:
                    return self._end(job, done.value, None)
                job.reopening, ask, reply, error = None, job.reask, None, None  # a new session: ask again
                job.may_reopen = False
            except (Exception, KeyboardInterrupt) as exc:
                if job.reopening is None:
                    return self._end(job, None, exc)
                job.reopening, reply, error = None, None, exc  # the new session failed: the read did
                continue
            else:
                job.may_reopen = True
            assert ask is not None
            error = self._send(job, ask)
            if error is None:
                return

    def _send(self, job: Job, ask: Ask, attempt: int = 1) -> BaseException | None:
        """Send `ask` on the job's link; None, or the error to throw into the job instead."""
        if job.abandoned:
            return KeyboardInterrupt()
        job.ask, job.attempt, job.corrupt, job.clear = ask, attempt, [], None
        s = job.session
        try:
            if isinstance(ask, Hello):
                frame = s.hello(Role[ask.role.upper()])
            elif isinstance(ask, Auth):
                frame = s.authenticate(ask.key)
            else:
                frame = s.request(ask.body)
        except ProtocolError as exc:
            return PumpProtocolError(f"cannot build {command_of(ask).name}: {exc}")
        job.deadline = self.clock() + job.timeout
        try:
            job.transport.send(frame)
        except LinkError as exc:
            self._record(job, ask, None, exc.kind)
            return exc
        return None

    def _receive(self, job: Job) -> bool:
        """Feed what arrived to the job's session; True when anything came."""
        ask = job.ask
        try:
            data = job.transport.receive()
        except LinkError as exc:
            if ask is not None:
                self._failed(job, ask, exc)
            return True
        if not data or ask is None:
            return bool(data)
        try:
            events = job.session.receive_data(data)
        except wire.VersionMismatch as exc:
            self._failed(job, ask, PumpProtocolError(str(exc)))
            return True
        except wire.HandshakeError as exc:
            self._failed(job, ask, AuthError(f"{exc}; nothing was sent"))
            return True
        for event in events:
            if isinstance(event, wire.Dropped):
                if event.corrupt:
                    job.corrupt_frames += 1
                    job.corrupt.append(event.why)
            elif isinstance(event, wire.Unauthenticated):
                if job.clear is None:
                    job.clear = event
                    job.deadline = min(job.deadline, self.clock() + UNAUTH_GRACE)
            else:
                try:
                    reply = decided(command_of(ask), event)
                except IthcliError as exc:
                    self._failed(job, ask, exc)
                else:
                    self._record(job, ask, reply, "ok")
                    job.ask = None
                    self._resume(job, reply, None)
                return True
        return True

    def _expire(self, job: Job) -> None:
        """Nothing decided before the deadline: as PumpClient._exchange_once ends."""
        assert job.ask is not None
        job.session.forget()
        command = command_of(job.ask).name
        error: IthcliError | Corrupt
        if job.clear is not None:
            clear = job.clear
            error = SessionLost(f"the answer to {command} came in clear and is not authenticated: "
                                f"{clear.describe()}",
                                details={"unauthenticated": clear.describe(),
                                         "reason": clear.reason.name if clear.reason is not None else None})
        elif job.corrupt:
            error = Corrupt(f"{len(job.corrupt)} corrupted frame(s): {job.corrupt[-1]}")
        else:
            error = NoReply(f"no reply within {job.timeout:g} s")
        self._failed(job, job.ask, error)

    def _failed(self, job: Job, ask: Ask, error: Exception) -> None:
        """An exchange that decided nothing, or a refusal: ask again, reopen, or tell the job."""
        job.session.forget()
        job.ask = None
        self._record(job, ask, None, "unauthenticated" if isinstance(error, SessionLost)
                     else getattr(error, "kind", type(error).__name__))
        retry = isinstance(ask, (Read, Hello))
        if isinstance(error, (NoReply, Corrupt)):
            if retry and job.attempt < READ_ATTEMPTS:
                job.retries += 1
                thrown = self._send(job, ask, job.attempt + 1)
                if thrown is not None:
                    self._resume(job, None, thrown)
                return
            error = _gave_up(job, ask, error) if retry else ReplyLost(
                f"no valid reply to {command_of(ask).name}: {error}")
        elif isinstance(error, SessionLost) and isinstance(ask, Read) and job.reopen is not None:
            if job.may_reopen:
                job.reask, job.reopening = ask, job.reopen()  # _resume asks `ask` again once it is open
                return self._resume(job, None, None)
            error = LinkError(f"the answers to {command_of(ask).name} on {job.name} are not authenticated even "
                              f"in a new session ({error.message}): the pump may be failing, or someone on "
                              "the link is answering for it")
        self._resume(job, None, error)

    def _abandon(self, job: Job) -> None:
        """A second Ctrl-C: the job's pending exchange is given up and KeyboardInterrupt thrown in."""
        job.abandoned = True
        if job.ask is not None:
            self._record(job, job.ask, None, "interrupted")
            job.session.forget()
            job.ask = None
            self._resume(job, None, KeyboardInterrupt())

    def _end(self, job: Job, value: Any, error: BaseException | None) -> None:
        job.state, job.value, job.error, job.ask = "done", value, error, None
        self._active.remove(job)
        if job.fd is None:
            self._polled.remove(job)
        elif self._fds.get(job.fd) is job:
            del self._fds[job.fd]
            self._poller.unregister(job.fd)
        if self.on_done is not None:
            self.on_done(job)

    def _record(self, job: Job, ask: Ask, reply: Any, outcome: str) -> None:
        if job.on_exchange is None:
            return
        if isinstance(ask, (Hello, Auth)):  # never the key, nonces or proofs
            job.on_exchange(command_of(ask), None, None, outcome)
        else:
            job.on_exchange(command_of(ask), ask.body, reply if isinstance(reply, bodies.Body) else None, outcome)


def _gave_up(job: Job, ask: Ask, last: Exception) -> IthcliError:
    command = command_of(ask).name
    if isinstance(last, Corrupt):
        return PumpProtocolError(f"no valid reply to {command} after {READ_ATTEMPTS} attempts: {last}")
    return LinkError(f"no reply from the pump on {job.name} to {command} after {READ_ATTEMPTS} attempts "
                     f"of {job.timeout:g} s")


def open_session(keystore: Any, role: str) -> Steps[Any]:
    """HELLO + AUTH as `role` and only as `role`, as steps (PumpClient.open_session's rules,
    without its wait on a RATE_LIMITED pump): the key-store entry used (its serial is the pump's)."""
    last: Exception | None = None
    for _ in range(READ_ATTEMPTS):
        try:
            hello: wire.HelloReply = yield Hello(role)
        except DeviceRejected as exc:
            raise hello_refused(exc, role) from None
        entry = key_for(keystore, role, hello.key_id)
        try:
            yield Auth(entry.key)  # sent once: a lost reply restarts the handshake with fresh nonces
        except ReplyLost as exc:
            last = exc
            continue
        return entry
    raise LinkError(f"could not open a session with the pump: {last}")
