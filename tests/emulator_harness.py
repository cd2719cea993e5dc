"""Start the emulator as a real process and talk to it: shared by every test module.

    emu = start_emulator(tmp_path, "--serial", "ABC123", transport="tcp")
    client = RawClient(emu.url, keys=emu.keys)       # HELLO + AUTH as CLINICIAN, then sealed
    status = client.request(Command.INTERROGATE).body
    emu.control("advance", seconds=86400)
    emu.stop()  # SIGTERM; returns the exit code

Every emulator is provisioned with its own fresh random keys (emu.key_file, emu.keys).
`RawClient(url)` without keys is an unauthenticated raw client: the attacker's view.

Each emulator is a process of its own, on a real pty or TCP socket, started by ithcli's
launcher (ithcli/emulator_process.py: the ready line, timeouts, errors and stop() are the
ones `--port emulator` and the campaign use). The tests give it their own starter: by default
the emulator is forked from the test process, which has imported the emulator once, and runs
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
from ithcli import emulator_process
from ithcli.emulator_process import EmulatorError, EmulatorProcess  # noqa: F401  (the tests' names)
from ithcli.link import close_port  # pyserial's socket:// close sleeps 0.3 s; ithcli closes it without
from protocol import Command, FrameDecoder, RawFrame, Role, bodies, security
from protocol.framing import encode_frame
from protocol.session import ClientSession, SessionOpen
from protocol.session import HandshakeError as SessionHandshakeError

ROLES = {"reader": Role.READER, "clinician": Role.CLINICIAN}

START_TIMEOUT = 10.0
REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count(1)


SPAWN = os.environ.get("ITHCLI_TEST_SPAWN", "") == "1"


class ForkedProcess:
    """What the tests use of subprocess.Popen, for a child forked from this process that runs
    `target(*args)` and exits with its result (os._exit: nothing of the test process runs in
    it after the fork). stdin is /dev/null, stdout a pipe (.stdout), stderr the given file; every
    other descriptor of the test process is closed in the child, its signals are as a fresh
    interpreter's, and its garbage collector leaves the inherited objects alone."""

    def __init__(self, target, args, *, stderr: int | None, cwd: str | None):
        read_end, write_end = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                gc.freeze()
                faulthandler.disable()  # the test runner's, on a descriptor closed below
                for fd, target_fd in ((null, 0), (write_end, 1), (stderr, 2)):
                    if fd is not None:  # stderr None: the test process's own
                        os.dup2(fd, target_fd)
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                # as a fresh interpreter has them (SIGPIPE ignored, SIGINT a KeyboardInterrupt)
                for sig, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                                     (signal.SIGPIPE, signal.SIG_IGN), (signal.SIGALRM, signal.SIG_DFL),
                                     (signal.SIGCHLD, signal.SIG_DFL)):
                    signal.signal(sig, handler)
                signal.alarm(0)
                if cwd is not None:
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
        for fd in (write_end, null):  # stderr is the caller's to close
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
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        assert self.returncode is not None  # poll() set it
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


def fork_emulator(args: list[str], *, stderr: int | None, cwd: str | None) -> ForkedProcess:
    """ithcli.emulator_process's starter for the tests: `emulator.__main__.main(args)` in a child
    forked from this process (which has imported the emulator) instead of a fresh interpreter."""
    return ForkedProcess(_emulator_main, (args,), stderr=stderr, cwd=cwd)


STARTER = emulator_process.spawn if SPAWN else fork_emulator
if not SPAWN:
    import emulator.__main__
    import emulator.keys
    import emulator.store  # noqa: F401


def _read_first_line(proc, timeout: float) -> str:
    return emulator_process.read_first_line(proc.stdout, timeout) or ""


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


def start_emulator(tmp_path, *args, transport="pty", state_path=None, time_scale=None,
                   key_file=None) -> EmulatorProcess:
    """Start one emulator (ithcli.emulator_process, forked: see STARTER). Unless `--key-file` is
    in args, it gets `key_file` (created by the emulator if missing: pass the previous
    process's to restart the same pump) or else a new tmp_path/keys-N.json, which the
    emulator creates with fresh keys for its serial."""
    n = next(_counter)
    if transport not in ("pty", "tcp"):
        raise ValueError(f"unknown transport {transport!r}")
    argv = ["--pty"] if transport == "pty" else ["--listen", "127.0.0.1:0"]
    if state_path is not None:
        argv += ["--state", str(state_path)]
    if time_scale is not None:
        argv += ["--time-scale", str(time_scale)]
    argv += [str(a) for a in args]
    try:
        return emulator_process.start(
            argv, timeout=START_TIMEOUT, starter=STARTER, cwd=str(REPO),
            key_file=str(key_file or os.path.join(str(tmp_path), f"keys-{n}.json")),
            control=os.path.join(_short_dir(tmp_path), f"ctl-{n}.sock"),
            stderr=os.path.join(str(tmp_path), f"emulator-{n}.stderr"))
    except emulator_process.EmulatorStartError as exc:  # the whole stderr, for the failing test
        raise emulator_process.EmulatorStartError(f"{exc}; arguments {argv}; stderr: {exc.stderr}",
                                                  exc.stderr) from None


def run_emulator(*args, timeout: float = 20, spawn: bool = False) -> subprocess.CompletedProcess:
    """`ith-emulator *args` run to its end (a refusal at start, --help): its exit code, stdout and
    stderr as text. Forked like start_emulator's (spawn=True, or ITHCLI_TEST_SPAWN=1: a fresh
    `python -m emulator`)."""
    argv = [str(a) for a in args]
    if spawn or SPAWN:
        return subprocess.run([sys.executable, "-m", "emulator", *argv], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO)
    with tempfile.TemporaryDirectory(prefix="ith-emu-run-") as tmp:
        err_path = os.path.join(tmp, "stderr")
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            proc = fork_emulator(argv, stderr=err, cwd=str(REPO))
        finally:
            os.close(err)
        try:
            out = b""
            deadline = time.monotonic() + timeout
            fd = proc.stdout.fileno()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
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
        said = Path(err_path).read_text(errors="replace")
    return subprocess.CompletedProcess(argv, code, out.decode(errors="replace"), said)


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
        if Command(command) not in PREPARES or not isinstance(body, dict) or "based_on_txid" in body:
            return body
        last = 0
        if self.channel is not None:
            last = bodies.expect(self.request(Command.READ_PROGRAM).body, bodies.ReadProgramResponse).last_txid
        return {**body, "based_on_txid": last}

    def seal(self, command, body=None, seq=None) -> bytes:
        """A sealed request frame (not sent): for capture, replay and tampering tests."""
        body = self.based_on_current(command, body)
        seq = self.next_seq() if seq is None else seq
        return self.seal_payload(command, _payload(command, body), seq)

    def seal_payload(self, command, payload: bytes, seq: int) -> bytes:
        """A sealed frame around any payload bytes (even malformed ones)."""
        channel = self.channel
        assert channel is not None, "sealing needs a session (or a channel set by the test)"
        return channel.seal(int(command), payload, seq=seq, response=False)

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
        if Command(command) in PREPARES and isinstance(body, dict) and "based_on_txid" not in body:
            body = {**body, "based_on_txid": 0}  # an attacker's guess: it is refused before that matters
        seq = self.next_seq() if seq is None else seq
        return self.exchange(encode_frame(command, _payload(command, body), seq=seq), seq,
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
            clear = self.session.hello(Role.READER)
            seq = self.session.seq
            self.send_raw(clear)
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


def _payload(command, body) -> bytes:
    """A request's payload: from its typed body (protocol.bodies), or, this being a raw client,
    from a plain dict of field values (protocol.build_fields: every field still checked)."""
    if isinstance(body, bodies.Body):
        return protocol.build_payload(command, body)
    return protocol.build_fields(command, body or {})


# --- requests every protocol-level test module makes --------------------------------

def commit(client, txid):
    return client.request(Command.COMMIT, bodies.CommitRequest(txid))


def status(client) -> bodies.Status:
    return bodies.expect(client.request(Command.INTERROGATE).body, bodies.Status)


def read_program(client) -> bodies.ReadProgramResponse:
    return bodies.expect(client.request(Command.READ_PROGRAM).body, bodies.ReadProgramResponse)


def read_log(client, first=0) -> list[bodies.Event]:
    """Every event from index `first` to the end, page by page."""
    from protocol.messages import MAX_LOG_PAGE

    events: list[bodies.Event] = []
    while True:
        page = bodies.expect(client.request(Command.READ_LOG, bodies.ReadLogRequest(first, MAX_LOG_PAGE)).body,
                             bodies.ReadLogResponse)
        if not page.events:
            return events
        events += page.events
        first = page.events[-1].index + 1


def ok(message, command):
    """The reply is `command` (not an ERROR); its body."""
    assert message.command == command, message.body
    return message.body


def refused(message, reason):
    """The reply is an ERROR with `reason` and a non-empty detail; the detail."""
    assert message.command == Command.ERROR, f"expected a refusal, got {message.body}"
    error = bodies.expect(message.body, bodies.ErrorResponse)
    assert error.reason == reason, message.body
    assert error.detail
    return error.detail
