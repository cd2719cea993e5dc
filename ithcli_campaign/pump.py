"""An ith-emulator process and a fault-free view of its truth.

`EmulatorProcess(workdir, args).start()` runs `python -m emulator` on TCP with a control
socket (the test-only channel for the emulator's own faults), through ithcli's emulator
launcher (ithcli/emulator_process.py, the one `--port emulator` uses). `TruthClient` is a
separate, direct, authenticated connection to the pump (not through the fault
proxy): HELLO + AUTH, then sealed INTERROGATE, READ_PROGRAM, READ_LOG. It is what
the campaign believes; ithcli's own output is what it checks.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TypeVar

from ithcli import emulator_process
from protocol import Command, ErrorReason, Role, bodies, security
from protocol import session as wire
from protocol.messages import MAX_LOG_PAGE

R = TypeVar("R", bound=bodies.Body)


class CampaignError(RuntimeError):
    """The campaign's own machinery failed (not a finding about ithcli)."""


class EmulatorProcess:
    """The campaign's pump: its files in `workdir` (key file, stderr, state with state=True)."""

    def __init__(self, workdir: Path, args: list[str], state: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_file = self.workdir / "pump-keys.json"
        self.state_path = str(self.workdir / "pump-state.json") if state else None
        self.args = list(args)
        self.process: emulator_process.EmulatorProcess | None = None

    def start(self) -> EmulatorProcess:
        args = ["--listen", "127.0.0.1:0", *self.args]
        if self.state_path:
            args += ["--state", self.state_path]
        control = str(self.workdir / "ctl.sock")  # a UNIX socket path must stay under ~104 bytes
        try:
            self.process = emulator_process.start(args, key_file=str(self.key_file),
                                                  control=control if len(control) <= 100 else True,
                                                  stderr=str(self.workdir / "emulator.stderr"))
        except emulator_process.EmulatorError as exc:
            raise CampaignError(str(exc)) from None
        return self

    @property
    def url(self) -> str:
        return self.process.url if self.process else ""

    @property
    def address(self) -> tuple[str, int]:
        assert self.process is not None, "start() first"
        return self.process.address

    def keys(self) -> dict[str, bytes]:
        assert self.process is not None, "start() first"
        return self.process.keys

    def pair(self, key_store: Path) -> None:
        """Put the pump's key file into an ithcli key store (owner-only)."""
        key_store.mkdir(parents=True, exist_ok=True)
        os.chmod(key_store, 0o700)
        target = key_store / f"campaign-{self.key_file.stat().st_ino}.json"
        if not target.exists():
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.key_file.read_bytes())

    def control(self, op: str, **kw) -> dict:
        assert self.process is not None, "start() first"
        try:
            reply = self.process.control(op, **kw)
        except emulator_process.EmulatorError as exc:
            raise CampaignError(str(exc)) from None
        if not reply.get("ok", True):
            raise CampaignError(f"control {op}: {reply}")
        return reply

    def stop(self) -> int | None:
        return self.process.stop() if self.process else None

    def kill(self) -> None:
        """kill -9: no clean shutdown, no last save."""
        if self.process:
            self.process.kill()

    def cleanup(self) -> None:
        """Nothing left to remove: stop() removed the launcher's private files."""


class TruthClient:
    """A direct, fault-free, authenticated connection to the pump (reader role).

    The handshake, sealing and reply matching are protocol.session.ClientSession's;
    this class moves its bytes over the socket and keeps time."""

    def __init__(self, address: tuple[str, int], key: bytes, role: Role = Role.READER, timeout: float = 10.0):
        self.timeout = timeout
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.session = wire.ClientSession()
        self.key, self.role = key, role
        self._open_session()

    @property
    def channel(self) -> security.SecureChannel | None:
        return self.session.channel

    def _open_session(self) -> None:
        try:
            hello = self._exchange(self.session.hello(self.role), Command.HELLO)
            if isinstance(hello, wire.HelloReply):
                auth = self._exchange(self.session.authenticate(self.key), Command.AUTH)
                if isinstance(auth, wire.SessionOpen):
                    return
                hello = auth
        except wire.HandshakeError as exc:  # another protocol version, or the pump's proof is wrong
            raise CampaignError(f"the truth client could not open a session: {exc}") from None
        raise CampaignError(f"the truth client could not open a session: {_describe(hello)}")

    def _request(self, request: bodies.Request[R], *, may_reopen: bool = True) -> R:
        event = self._exchange(self.session.request(request), request.COMMAND)
        if (isinstance(event, wire.Unauthenticated) and may_reopen
                and event.reason == ErrorReason.NOT_AUTHENTICATED):
            self._open_session()  # the pump reset: sessions die with its RAM
            return self._request(request, may_reopen=False)
        if not isinstance(event, wire.Reply):
            raise CampaignError(f"the pump answered {request.COMMAND.name} with {_describe(event)}")
        return bodies.reply_to(request, event.body)

    def _exchange(self, request: bytes, command) -> wire.Event:
        """Send one request built by the session; its answer: a decisive event, or an
        Unauthenticated one (a clear answer inside the session). Noise and frames for other
        seqs are skipped."""
        self.sock.sendall(request)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                raise CampaignError("the pump closed the truth connection")
            for event in self.session.receive_data(data):
                if isinstance(event, (*wire.DECISIVE, wire.Unauthenticated)):
                    return event
        self.session.forget()
        raise CampaignError(f"no reply to the truth client's {Command(command).name}")

    def status(self) -> bodies.Status:
        return self._request(bodies.InterrogateRequest())

    def program(self) -> bodies.ReadProgramResponse:
        return self._request(bodies.ReadProgramRequest())

    def events_since(self, index: int) -> list[bodies.Event]:
        events: list[bodies.Event] = []
        while True:
            page = self._request(bodies.ReadLogRequest(index, MAX_LOG_PAGE))
            if page.oldest_index > index and not events:
                index = page.oldest_index
            batch = page.events
            events += batch
            if not batch:
                return events
            index = batch[-1].index + 1
            if index >= page.event_count:
                return events

    def close(self) -> None:
        self.sock.close()


def _describe(event: wire.Event) -> str:
    if isinstance(event, wire.Refused):
        return f"ERROR {getattr(event.reason, 'name', event.reason)}" + (f" ({event.detail})" if event.detail else "")
    if isinstance(event, wire.Unauthenticated):
        return event.describe()
    if isinstance(event, wire.Invalid):
        return f"an invalid reply: {event.why}"
    return type(event).__name__
