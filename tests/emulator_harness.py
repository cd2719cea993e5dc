"""Start the emulator as a real process and talk to it: shared by every test module.

    emu = start_emulator(tmp_path, "--serial", "ABC123", transport="tcp")
    client = RawClient(emu.url, keys=emu.keys)       # HELLO + AUTH as CLINICIAN, then sealed
    status = client.request(Command.INTERROGATE).body
    emu.control("advance", seconds=86400)
    emu.stop()  # SIGTERM; returns the exit code

Every emulator is provisioned with its own fresh random keys (emu.key_file, emu.keys).
`RawClient(url)` without keys is an unauthenticated raw client: the attacker's view.

Each emulator is a process of its own, on a real pty or TCP socket. By default it is forked
from the test process, which has imported the emulator once, and runs
`emulator.__main__.main(args)` (the console script's entry point) with its own stdin, stdout,
stderr, signals and exit code: the ~0.15 s of a fresh interpreter's start-up and imports is
not paid ~300 times. ITHCLI_TEST_SPAWN=1 starts every one as `python -m emulator` instead;
tests about the start-up itself (arguments, the console script) always spawn.
"""
from __future__ import annotations

import faulthandler
import gc
import io
import itertools
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import serial

import protocol
from ithcli.link import close_port  # pyserial's socket:// close sleeps 0.3 s; ithcli closes it without
from ithcli_campaign.pump import control_request
from protocol import Command, FrameDecoder, RawFrame, Role, security
from protocol.session import ClientSession, SessionOpen
from protocol.session import HandshakeError as SessionHandshakeError

DEFAULT_SERIAL = "EMU00001"  # the emulator's default --serial
ROLES = {"reader": Role.READER, "clinician": Role.CLINICIAN}

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count(1)


class EmulatorError(RuntimeError):
    pass


class EmulatorProcess:
    def __init__(self, proc: subprocess.Popen, url: str, control_path: str,
                 state_path: str | None, stderr_path: str, key_file: str | None = None):
        self.proc = proc
        self.url = url
        self.control_path = control_path
        self.state_path = state_path
        self.stderr_path = stderr_path
        #: the pump's key file and its keys (role name -> key), read back after start
        self.key_file = key_file
        self.keys: dict[str, bytes] = read_keys(key_file) if key_file and os.path.exists(key_file) else {}

    def control(self, op: str, **kw) -> dict:
        """Send one JSON request on the control socket; return the reply dict."""
        try:
            return control_request(self.control_path, op, **kw)
        except EOFError:
            raise EmulatorError(f"control socket closed; stderr: {self.stderr()}") from None

    def stderr(self) -> str:
        try:
            return Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> int:
        """SIGTERM, wait, return the exit code (SIGKILL if it does not stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_pipes()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()


SPAWN = os.environ.get("ITHCLI_TEST_SPAWN", "") == "1"


class ForkedProcess:
    """What the tests use of subprocess.Popen, for a child forked from this process that runs
    `target(*args)` and exits with its result (os._exit: nothing of the test process runs in
    it after the fork). stdin is /dev/null, stdout a pipe (.stdout), stderr the given file; every
    other descriptor of the test process is closed in the child, its signals are as a fresh
    interpreter's, and its garbage collector leaves the inherited objects alone."""

    def __init__(self, target, args, *, stderr_path: str, cwd: str):
        read_end, write_end = os.pipe()
        err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                gc.freeze()
                faulthandler.disable()  # the test runner's, on a descriptor closed below
                for fd, target_fd in ((null, 0), (write_end, 1), (err, 2)):
                    os.dup2(fd, target_fd)
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                # as a fresh interpreter has them (SIGPIPE ignored, SIGINT a KeyboardInterrupt)
                for sig, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                                     (signal.SIGPIPE, signal.SIG_IGN), (signal.SIGALRM, signal.SIG_DFL),
                                     (signal.SIGCHLD, signal.SIG_DFL)):
                    signal.signal(sig, handler)
                signal.alarm(0)
                os.chdir(cwd)
                sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
                sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
                sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
                logging.root.handlers.clear()  # the emulator's basicConfig, not the test runner's
                result = target(*args)
                code = result if isinstance(result, int) else 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                try:
                    traceback.print_exc()
                except BaseException:
                    pass
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        for fd in (write_end, err, null):
            os.close(fd)
        self.pid = pid
        self.returncode: int | None = None
        self.stdout = os.fdopen(read_end, "rb")
        self.args = args

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _emulator_main(argv: list[str]) -> int:
    from emulator.__main__ import main

    return main(argv)


if not SPAWN:
    import emulator.__main__
    import emulator.keys
    import emulator.store  # noqa: F401


def _read_first_line(proc: subprocess.Popen, timeout: float) -> str:
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").partition("\n")[0].strip() if b"\n" in data else ""


def _short_dir(tmp_path) -> str:
    # a UNIX socket path must stay under ~104 bytes
    if len(str(tmp_path)) < 80:
        return str(tmp_path)
    return tempfile.mkdtemp(prefix="ith-")


def write_key_file(path, serial: str, roles=("reader", "clinician")) -> dict[str, bytes]:
    """A fresh key file (mode 0600) with new random keys for `serial`; returns the keys."""
    keys = {role: security.new_key() for role in roles}
    data = {"format": "ithcli-pump-keys", "version": 1, "serial": serial,
            "keys": {role: key.hex() for role, key in keys.items()}}
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    return keys


def read_keys(path) -> dict[str, bytes]:
    data = json.loads(Path(path).read_text())
    return {role: bytes.fromhex(text) for role, text in data["keys"].items()}


def _serial_for(args, state_path) -> str:
    args = [str(a) for a in args]
    if state_path is not None and os.path.exists(state_path):
        try:  # a restored pump keeps its serial whatever the command line says
            return json.loads(Path(state_path).read_text())["pump"]["serial"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    for i, arg in enumerate(args):
        if arg == "--serial" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--serial="):
            return arg.partition("=")[2]
    return DEFAULT_SERIAL


def start_emulator(tmp_path, *args, transport="pty", state_path=None, time_scale=None,
                   key_file=None) -> EmulatorProcess:
    """Start one emulator. Unless `--key-file` is in args, it gets `key_file` (created by the
    emulator if missing: pass the previous process's to restart the same pump) or else a new
    tmp_path/keys-N.json with fresh keys for the serial in args (or in the state file)."""
    n = next(_counter)
    control_path = os.path.join(_short_dir(tmp_path), f"ctl-{n}.sock")
    stderr_path = os.path.join(str(tmp_path), f"emulator-{n}.stderr")
    if transport == "pty":
        where = ["--pty"]
    elif transport == "tcp":
        where = ["--listen", "127.0.0.1:0"]
    else:
        raise ValueError(f"unknown transport {transport!r}")
    cmd = [sys.executable, "-m", "emulator", *where, "--control", control_path]
    if state_path is not None:
        cmd += ["--state", str(state_path)]
    if time_scale is not None:
        cmd += ["--time-scale", str(time_scale)]
    cmd += [str(a) for a in args]
    if "--key-file" in cmd or any(a.startswith("--key-file=") for a in cmd):
        given = [a for a in cmd if a.startswith("--key-file=")]
        key_file = given[0].partition("=")[2] if given else cmd[cmd.index("--key-file") + 1]
    else:
        if key_file is None:
            key_file = os.path.join(str(tmp_path), f"keys-{n}.json")
            write_key_file(key_file, _serial_for(args, state_path))
        cmd += ["--key-file", str(key_file)]
    if SPAWN:
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO)
    else:  # the same arguments, to the same entry point, in a process forked from this one
        proc = ForkedProcess(_emulator_main, (cmd[3:],), stderr_path=stderr_path, cwd=str(REPO))
    url = _read_first_line(proc, START_TIMEOUT)
    emu = EmulatorProcess(proc, url, control_path,
                          str(state_path) if state_path is not None else None, stderr_path,
                          str(key_file) if url else None)
    if not url:
        emu.kill()
        raise EmulatorError(f"emulator did not print its URL (exit {proc.returncode}); "
                            f"command {cmd}; stderr: {emu.stderr()}")
    return emu


def run_emulator(*args, timeout: float = 20, spawn: bool = False) -> subprocess.CompletedProcess:
    """`ith-emulator *args` run to its end (a refusal at start, --help): its exit code, stdout and
    stderr as text. Forked like start_emulator's (spawn=True, or ITHCLI_TEST_SPAWN=1: a fresh
    `python -m emulator`)."""
    args = [str(a) for a in args]
    if spawn or SPAWN:
        return subprocess.run([sys.executable, "-m", "emulator", *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO)
    with tempfile.TemporaryDirectory(prefix="ith-emu-run-") as tmp:
        err_path = os.path.join(tmp, "stderr")
        proc = ForkedProcess(_emulator_main, (args,), stderr_path=err_path, cwd=str(REPO))
        try:
            out = b""
            deadline = time.monotonic() + timeout
            fd = proc.stdout.fileno()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(args, timeout)
                ready, _, _ = select.select([fd], [], [], left)
                chunk = os.read(fd, 65536) if ready else b""
                if ready and not chunk:
                    break
                out += chunk
            code = proc.wait(max(0.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        err = Path(err_path).read_text(errors="replace")
    return subprocess.CompletedProcess(args, code, out.decode(errors="replace"), err)


class HandshakeError(AssertionError):
    """The pump refused the handshake (its ERROR message is kept) or failed to prove its key."""

    def __init__(self, message: str, reply: protocol.Message | None = None):
        super().__init__(message)
        self.reply = reply


PREPARES = frozenset({Command.PREPARE_PROGRAM, Command.PREPARE_REFILL, Command.PREPARE_BOLUS,
                      Command.PREPARE_MRI_ENTER, Command.PREPARE_MRI_EXIT})


class RawClient:
    """The raw protocol over pyserial, with no retries and no interpretation.

    With `keys` (role name -> key, e.g. emu.keys) it opens a session as `role` on
    connect: HELLO + AUTH, then every request is sealed and every sealed reply opened
    (`.channel`). Without keys it is a raw, unauthenticated client (an attacker).
    Every byte written is kept in `.wire_out` (one entry per write) and every byte
    read in `.wire_in`, for replay and eavesdropping tests.

    The handshake (proofs, transcript, session keys) is protocol.session.ClientSession's
    (`.session`): HELLO and AUTH are built by it and their replies fed back to it. The
    rest is deliberately raw: requests with any seq, sealed with the session's channel
    (or any channel a test sets), and any reply frame decoded as it is, sealed or not.
    """

    def __init__(self, url: str, timeout: float = 2.0, keys: dict[str, bytes] | None = None,
                 role: str = "clinician"):
        self.timeout = timeout
        self.port = serial.serial_for_url(url, timeout=0.05)
        # replies left in a pty by an earlier client would otherwise be read as ours
        self.port.reset_input_buffer()
        self.decoder = FrameDecoder()
        # the session numbers its HELLOs and AUTHs from 0x8001, the raw requests count from 1:
        # a late reply to one is never taken for the other's
        self.session = ClientSession(seq=0x8000)
        self._seq = itertools.count(1)
        self.dropped: list = []  # frame errors and unmatched frames seen while reading
        self.role: str | None = None
        self.wire_out: list[bytes] = []
        self.wire_in = bytearray()
        if keys is not None:
            try:
                self.handshake(role, keys[role])
            except BaseException:
                self.close()
                raise

    @property
    def channel(self) -> security.SecureChannel | None:
        """The session's channel (None: no session). Tests may set any channel, or None."""
        return self.session.channel

    @channel.setter
    def channel(self, channel: security.SecureChannel | None) -> None:
        self.session.channel = channel

    def next_seq(self) -> int:
        return next(self._seq) & 0xFFFF

    # --- the handshake ------------------------------------------------------------

    def hello(self, role: str) -> tuple[protocol.Message, bytes]:
        """HELLO (in clear) for `role`: (reply, the client nonce sent). Ends any session."""
        nonce = security.new_nonce()
        reply, _ = self._handshake_step(self.session.hello(ROLES[role], nonce=nonce), "HELLO")
        return reply, nonce

    def handshake(self, role: str, key: bytes) -> protocol.Message:
        """HELLO + AUTH with `key` as `role`; on success `.channel` is open and the AUTH reply
        returned. A refusal raises HandshakeError carrying the pump's ERROR message."""
        hello, _ = self.hello(role)
        if hello.command != Command.HELLO:
            raise HandshakeError(f"HELLO refused: {hello.body}", hello)
        # key_id is not checked: an attacker tries any key
        reply, events = self._handshake_step(self.session.authenticate(key), "AUTH")
        if reply.command != Command.AUTH:
            raise HandshakeError(f"AUTH refused: {reply.body}", reply)
        if not any(isinstance(e, SessionOpen) for e in events):
            raise HandshakeError(f"no session opened: {events}", reply)
        self.role = role
        return reply

    def _handshake_step(self, request: bytes, what: str) -> tuple[protocol.Message, list]:
        """Send a HELLO or AUTH the session built; feed its reply back to the session (which
        checks it: version, the pump's proof); the reply decoded, and the session's events."""
        seq = self.session.seq
        self.send_raw(request)
        frame = self.wait_reply(seq, f"{what} seq={seq}")
        reply = self.open(frame)
        try:
            events = self.session.receive_data(frame.raw)
        except SessionHandshakeError as exc:
            raise HandshakeError(f"{what}: {exc}", reply) from exc
        return reply, events

    # --- requests -----------------------------------------------------------------

    def based_on_current(self, command, body):
        if Command(command) not in PREPARES or body is None or "based_on_txid" in body:
            return body
        last = self.request(Command.READ_PROGRAM).body["last_txid"] if self.channel is not None else 0
        return {**body, "based_on_txid": last}

    def seal(self, command, body=None, seq=None) -> bytes:
        """A sealed request frame (not sent): for capture, replay and tampering tests."""
        body = self.based_on_current(command, body)
        seq = self.next_seq() if seq is None else seq
        return self.seal_payload(command, protocol.build_payload(command, body or {}), seq)

    def seal_payload(self, command, payload: bytes, seq: int) -> bytes:
        """A sealed frame around any payload bytes (even malformed ones)."""
        return self.channel.seal(int(command), payload, seq=seq, response=False)

    def request(self, command, body=None, seq=None) -> protocol.Message:
        """Send one request (sealed in a session, else in clear); return the reply with the same
        seq, opened when sealed (Message.auth is then the trailer; None for a reply in clear).

        A PREPARE_* without `based_on_txid` gets the pump's last_txid from a READ_PROGRAM
        first, as a programmer that has just read the pump would (compare-and-set tests give
        it explicitly)."""
        body = self.based_on_current(command, body)
        seq = self.next_seq() if seq is None else seq
        if self.channel is not None:
            return self.exchange(self.seal(command, body, seq), seq, f"{Command(command).name} seq={seq}")
        return self.request_clear(command, body, seq)

    def request_clear(self, command, body=None, seq=None) -> protocol.Message:
        """A request in clear, whatever the session (an attacker's frame, or a HELLO of any version)."""
        if Command(command) in PREPARES and body is not None and "based_on_txid" not in body:
            body = {**body, "based_on_txid": 0}  # an attacker's guess: it is refused before that matters
        seq = self.next_seq() if seq is None else seq
        return self.exchange(protocol.encode(command, body or {}, seq=seq), seq,
                             f"{Command(command).name} seq={seq}")

    def exchange(self, data: bytes, seq: int, what: str = "request") -> protocol.Message:
        """Send raw bytes; return the first response with this seq (opened if sealed)."""
        self.send_raw(data)
        return self.open(self.wait_reply(seq, what))

    def wait_reply(self, seq: int, what: str = "request", timeout: float | None = None) -> RawFrame:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            for frame in self._read_some():
                if frame.seq == seq and frame.is_response:
                    return frame
                self.dropped.append(frame)
        raise TimeoutError(f"no reply to {what} within {self.timeout if timeout is None else timeout} s")

    def open(self, frame: RawFrame) -> protocol.Message:
        """Decode a reply frame, opening it in the session when it is sealed."""
        if frame.flags & protocol.Flag.AUTH:
            assert self.channel is not None, "a sealed reply without a session"
            frame = self.channel.open(frame)
        return protocol.decode(frame)

    def send_raw(self, data: bytes) -> None:
        self.wire_out.append(bytes(data))
        self.port.write(data)
        self.port.flush()

    def read_frames(self, timeout: float) -> list[RawFrame]:
        """Every good frame that arrives within timeout (waits the whole time)."""
        frames: list[RawFrame] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frames += self._read_some()
        return frames

    def frames_before_barrier(self, hello: bool = False) -> list[RawFrame]:
        """Every good frame that arrives before the answer to a harmless request sent now: an
        INTERROGATE sealed in the session, or a HELLO without one (or with hello=True: a HELLO
        is never a failure, even to a pump that lost the session). The pump answers one link's
        frames in order, so anything it will ever answer among the bytes sent before has been
        answered by then: "no reply" without a fixed wait. A HELLO ends any session on this
        connection."""
        if self.channel is not None and not hello:
            seq = self.next_seq()
            self.send_raw(self.seal(Command.INTERROGATE, seq=seq))
        else:
            hello = self.session.hello(Role.READER)
            seq = self.session.seq
            self.send_raw(hello)
        frames: list[RawFrame] = []
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for frame in self._read_some():
                if frame.seq == seq and frame.is_response:
                    self.session.forget()
                    return frames
                frames.append(frame)
        raise TimeoutError(f"no answer to the barrier request (seq {seq}) within {self.timeout} s")

    def _read_some(self) -> list[RawFrame]:
        data = self.port.read(self.port.in_waiting or 1)
        if data:
            self.wire_in += data
        frames = []
        for item in self.decoder.feed(data) if data else []:
            if isinstance(item, RawFrame):
                frames.append(item)
            else:
                self.dropped.append(item)
        return frames

    def close(self) -> None:
        close_port(self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- requests every protocol-level test module makes --------------------------------

def commit(client, txid):
    return client.request(Command.COMMIT, {"txid": txid})


def status(client):
    return client.request(Command.INTERROGATE).body


def read_program(client):
    return client.request(Command.READ_PROGRAM).body


def read_log(client, first=0):
    """Every event from index `first` to the end, page by page."""
    from protocol.messages import MAX_LOG_PAGE

    events = []
    while True:
        page = client.request(Command.READ_LOG, {"first_index": first, "max_count": MAX_LOG_PAGE}).body
        if not page["events"]:
            return events
        events += page["events"]
        first = page["events"][-1]["index"] + 1


def ok(message, command):
    """The reply is `command` (not an ERROR); its body."""
    assert message.command == command, message.body
    return message.body


def refused(message, reason):
    """The reply is an ERROR with `reason` and a non-empty detail; the detail."""
    assert message.command == Command.ERROR, f"expected a refusal, got {message.body}"
    assert message.body["reason"] == reason, message.body
    assert message.body["detail"]
    return message.body["detail"]
