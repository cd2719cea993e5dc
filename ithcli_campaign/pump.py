"""An ith-emulator process and a fault-free view of its truth.

`EmulatorProcess.start(workdir)` runs `python -m emulator` on TCP with a control
socket (the test-only channel for the emulator's own faults). `TruthClient` is a
separate, direct, authenticated connection to the pump (not through the fault
proxy): HELLO + AUTH, then sealed INTERROGATE, READ_PROGRAM, READ_LOG. It is what
the campaign believes; ithcli's own output is what it checks.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from protocol import Command, ErrorReason, Role, security
from protocol import session as wire
from protocol.messages import MAX_LOG_PAGE

START_TIMEOUT = 15.0


class CampaignError(RuntimeError):
    """The campaign's own machinery failed (not a finding about ithcli)."""


def control_request(path: str, op: str, **kw) -> dict:
    """One JSON request on an emulator's control socket, one JSON reply (EOFError when the
    socket closes first). The test harness uses it too."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30.0)
        sock.connect(path)
        sock.sendall(json.dumps({"op": op, **kw}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError(f"control socket {path} closed before its reply")
            data += chunk
    return json.loads(data)


def wait_or_kill(proc: subprocess.Popen, seconds: float = 10) -> None:
    """Wait for a process asked to stop; kill it if it has not within `seconds`."""
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class EmulatorProcess:
    def __init__(self, workdir: Path, args: list[str], state: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key_file = self.workdir / "pump-keys.json"
        self.control_path = str(self.workdir / "ctl.sock")
        if len(self.control_path) > 100:
            import tempfile

            self.control_path = os.path.join(tempfile.mkdtemp(prefix="ithc-"), "ctl.sock")
        self.state_path = str(self.workdir / "pump-state.json") if state else None
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "emulator", "--listen", "127.0.0.1:0", "--control", self.control_path,
               "--key-file", str(self.key_file), *self.args]
        if self.state_path:
            cmd += ["--state", self.state_path]
        err = open(self.workdir / "emulator.stderr", "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        err.close()
        line = b""
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc.stdout is not None  # stdout=PIPE
        fd = self.proc.stdout.fileno()
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 256)
                if not chunk:
                    break
                line += chunk
        self.url = line.decode().strip()
        if not self.url.startswith("socket://"):
            self.kill()
            raise CampaignError(f"the emulator did not start: {(self.workdir / 'emulator.stderr').read_text()[-500:]}")
        return self

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.url[len("socket://"):].rpartition(":")
        return host, int(port)

    def keys(self) -> dict[str, bytes]:
        data = json.loads(self.key_file.read_text())
        return {role: bytes.fromhex(k) for role, k in data["keys"].items()}

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
        try:
            reply = control_request(self.control_path, op, **kw)
        except EOFError:
            raise CampaignError("the control socket closed") from None
        if not reply.get("ok", True):
            raise CampaignError(f"control {op}: {reply}")
        return reply

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            wait_or_kill(self.proc)
        assert self.proc.stdout is not None  # start() opens it with PIPE
        self.proc.stdout.close()
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9: no clean shutdown, no last save."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None  # start() opens it with PIPE
        self.proc.stdout.close()

    def cleanup(self) -> None:
        shutil.rmtree(os.path.dirname(self.control_path), ignore_errors=True) if "ithc-" in self.control_path else None


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

    def _request(self, command, body=None, *, may_reopen: bool = True) -> dict:
        event = self._exchange(self.session.request(command, body), command)
        if (isinstance(event, wire.Unauthenticated) and may_reopen
                and event.reason == ErrorReason.NOT_AUTHENTICATED):
            self._open_session()  # the pump reset: sessions die with its RAM
            return self._request(command, body, may_reopen=False)
        if not isinstance(event, wire.Reply):
            raise CampaignError(f"the pump answered {Command(command).name} with {_describe(event)}")
        return event.body

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

    def status(self) -> dict:
        return self._request(Command.INTERROGATE)

    def program(self) -> dict:
        return self._request(Command.READ_PROGRAM)

    def events_since(self, index: int) -> list[dict]:
        events: list[dict] = []
        while True:
            page = self._request(Command.READ_LOG, {"first_index": index, "max_count": MAX_LOG_PAGE})
            if page["oldest_index"] > index and not events:
                index = page["oldest_index"]
            batch = page["events"]
            events += batch
            if not batch:
                return events
            index = batch[-1]["index"] + 1
            if index >= page["event_count"]:
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
