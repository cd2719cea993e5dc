"""Start an ith-emulator process and read its ready line: the one way `--port emulator`,
the fault campaign, the tests and the bench scripts start a pump.

The emulator's side of it (emulator/__main__.py; README, "Running an emulated pump"): the
first line on its stdout, its *ready line*, is the pyserial URL of the port it serves
(`/dev/pts/N` or `socket://HOST:PORT`), printed once the port, its key file (created with
fresh keys when missing) and any control socket exist; nothing else ever goes to stdout.
A pump that cannot start prints nothing there: one line on stderr, exit 1 (2: arguments).

    with emulator_process.start(["--pty", "--serial", "ABC123"]) as emu:
        emu.url, emu.serial, emu.keys, emu.key_file
    # without --serial the emulator picks a unique serial: emu.serial is read from its key file
    # stopped: SIGTERM (it saves its state), SIGKILL if it hangs, reaped, files removed

ithcli never imports the emulator, so by default the pump is `python -m emulator` in a
subprocess (`spawn`). A caller that has imported the emulator may pass another `starter`
running the same entry point (the tests fork it: tests/emulator_harness.py); reading the
ready line, the timeouts, the errors and stopping are the same whichever starts it.
Every failure to start is one EmulatorStartError, one line, a LinkError for the CLI.

A ward (`ith-emulator --pumps N` or `--ward FILE`: many pumps in one process) is started the
same way; its ready line is the path of its manifest (ward_manifest.py), read once it is printed:

    with emulator_process.start_ward(pumps=50, args=["--listen", "127.0.0.1:0"]) as ward:
        ward.manifest_path, ward.pumps[0].url, ward.pumps[0].keys(), ward.control(0, "state")
"""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Protocol, Self

from .errors import IthcliError, LinkError
from .keystore import read_key_file
from .ward_manifest import Manifest, WardPump, read_manifest

START_TIMEOUT = 15.0  # a loaded 2-core machine starts one in ~0.2 s; a hung one is reported
#: a ward's start and stop may take longer by this much a pump (~5 ms each: files fsynced)
WARD_PER_PUMP = 0.05
STOP_TIMEOUT = 10.0  # SIGTERM to SIGKILL: it only saves its state file on the way out
#: what `spawn` runs (the `ith-emulator` console script runs the same main())
COMMAND: tuple[str, ...] = (sys.executable, "-m", "emulator")
_READY = re.compile(r"socket://\S+:\d+|/\S+")  # the two URL forms the emulator prints


class EmulatorError(LinkError):
    """An emulator process failed: it did not start, or its control socket closed."""

    def __init__(self, message: str, stderr: str = ""):
        super().__init__(message)
        #: everything it wrote on stderr (the message quotes its last line)
        self.stderr = stderr


class EmulatorStartError(EmulatorError):
    """The emulator did not get to its ready line: it could not be run, it exited, it printed
    something else, it took too long, or its key file cannot be read. It has been stopped."""


class Child(Protocol):
    """What the launcher uses of a started process: subprocess.Popen, or a test's fork."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdout(self) -> IO[bytes] | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class Starter(Protocol):
    """Runs ith-emulator with `args`: stdin at end of file, stdout a pipe (.stdout), stderr on
    descriptor `stderr` (None: inherited), in `cwd` (None: this one)."""

    def __call__(self, args: list[str], *, stderr: int | None, cwd: str | None) -> Child: ...


def spawn(args: list[str], *, stderr: int | None, cwd: str | None) -> subprocess.Popen[bytes]:
    """The default starter: `python -m emulator ARGS`, a fresh interpreter."""
    return subprocess.Popen([*COMMAND, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr, cwd=cwd)


class _Started:
    """A started ith-emulator process (one pump or a ward): reading its ready line, its stderr,
    stopping it and removing the files made up for it. Subclasses take the ready line."""

    #: how much longer than START_TIMEOUT and STOP_TIMEOUT a start and a stop wait by default
    #: (a ward: a little per pump, each creating and saving its files)
    extra_time = 0.0

    def __init__(self, proc: Child, args: list[str], *, stderr_path: str | None, private_dir: str | None):
        self.proc = proc
        self.args = args
        self.stderr_path = stderr_path  # None: it writes on our stderr
        self._private_dir = private_dir  # the files we made up for it; removed when it stops
        self._stderr_kept = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float | None = None) -> Self:
        """Read the ready line and what it points to; on any failure stop the process and raise
        EmulatorStartError (one line: why, with its last line on stderr when it said one)."""
        limit = START_TIMEOUT + self.extra_time if timeout is None else timeout
        try:
            stdout = self.proc.stdout
            assert stdout is not None, "the starter gave no stdout pipe"
            line, ended = _first_line(stdout, limit)
            if line is None:
                raise self._fail(self._why_no_line(limit, ended))
            self._take_ready_line(line)
        except BaseException:
            self.kill()
            raise
        return self

    def _take_ready_line(self, line: str) -> None:
        raise NotImplementedError

    def _why_no_line(self, limit: float, ended: bool) -> str:
        code = self.proc.poll()
        if ended and code is None:  # its stdout ended: it is exiting (a refusal at start)
            try:
                code = self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
        said = _last_line(self.stderr())
        if code is None:
            waited = f"no port URL on its stdout within {limit:g} s" if not ended else "it closed its stdout"
            return waited + (f" (it said: {said})" if said else "")
        if said:
            return said
        return f"it was killed by signal {-code}" if code < 0 else f"it exited with code {code} before it was ready"

    def _fail(self, why: str) -> EmulatorStartError:
        return EmulatorStartError(f"the emulator did not start: {why}", self.stderr())

    def _control(self, path: str, op: str, **kw) -> dict:
        try:
            return control_request(path, op, **kw)
        except EOFError:
            said = _last_line(self.stderr())
            raise EmulatorError("the emulator's control socket closed" + (f": {said}" if said else ""),
                                self.stderr()) from None

    def stderr(self) -> str:
        """What it has written on stderr (kept after stop() removed a private file)."""
        if self.stderr_path is None:
            return ""
        try:
            with open(self.stderr_path, errors="replace") as fh:
                return fh.read()
        except OSError:
            return self._stderr_kept

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM (it saves its state and exits 0); SIGKILL if it has not exited within
        `timeout`. Reaps it, closes its pipe, removes its private files; safe to call again.
        Its exit code (negative: the signal that ended it)."""
        return self._end(signal.SIGTERM, STOP_TIMEOUT + self.extra_time if timeout is None else timeout)

    def kill(self) -> int | None:
        """SIGKILL: no clean shutdown, no last save (a pump losing power). Then as stop()."""
        return self._end(signal.SIGKILL, STOP_TIMEOUT)

    def _end(self, sig: int, timeout: float) -> int | None:
        proc = self.proc
        try:
            if proc.poll() is None:
                proc.send_signal(sig)
                stop_process(proc, timeout)
        finally:
            if proc.stdout is not None and not proc.stdout.closed:
                proc.stdout.close()
            self._remove_private_dir()
        return proc.returncode

    def _remove_private_dir(self) -> None:
        private = self._private_dir
        if private is None:
            return
        self._private_dir = None
        if self.stderr_path is not None and os.path.dirname(self.stderr_path) == private:
            self._stderr_kept = self.stderr()[-65536:]  # enough for any error message
        shutil.rmtree(private, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorProcess(_Started):
    """One started ith-emulator: its process, its files and, once ready, its URL and keys."""

    def __init__(self, proc: Child, args: list[str], *, key_file: str, control_path: str | None,
                 state_path: str | None, stderr_path: str | None, private_dir: str | None):
        super().__init__(proc, args, stderr_path=stderr_path, private_dir=private_dir)
        self.key_file = key_file
        self.control_path = control_path
        self.state_path = state_path
        self.url = ""
        self.serial = ""
        #: role name ("reader", "clinician") -> key, from its key file
        self.keys: dict[str, bytes] = {}

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of a TCP pump (`socket://HOST:PORT`)."""
        if not self.url.startswith("socket://"):
            raise ValueError(f"not a TCP pump: {self.url!r}")
        host, _, port = self.url[len("socket://"):].rpartition(":")
        return host.strip("[]"), int(port)

    def _take_ready_line(self, line: str) -> None:
        if not _READY.fullmatch(line):
            shown = line if len(line) <= 60 else line[:60] + "..."
            raise self._fail(f"it printed {shown!r} where its port URL belongs")
        self.url = line
        self.serial, self.keys = self._read_keys()

    def _read_keys(self) -> tuple[str, dict[str, bytes]]:
        try:
            data = read_key_file(Path(self.key_file))
        except IthcliError as exc:
            raise self._fail(f"its key file cannot be used: {exc.message}") from None
        return data["serial"], data["keys"]

    def control(self, op: str, **kw) -> dict:
        """One request on its control socket (started with control=...); the reply."""
        if self.control_path is None:
            raise EmulatorError("this emulator was started without a control socket")
        return self._control(self.control_path, op, **kw)


class WardProcess(_Started):
    """A started ward (`ith-emulator --pumps N` or `--ward FILE`): once ready, its manifest."""

    def __init__(self, proc: Child, args: list[str], *, ward_dir: str, stderr_path: str | None,
                 private_dir: str | None, pumps: int | None):
        super().__init__(proc, args, stderr_path=stderr_path, private_dir=private_dir)
        self.ward_dir = ward_dir
        if pumps is not None:
            self.extra_time = WARD_PER_PUMP * pumps
        self.manifest_path = ""
        self.manifest: Manifest | None = None

    @property
    def pumps(self) -> tuple[WardPump, ...]:
        """Every pump of the ward, in the manifest's order (empty before it is ready)."""
        return self.manifest.pumps if self.manifest is not None else ()

    def _take_ready_line(self, line: str) -> None:
        if not line.startswith("/") or not line.endswith(".json"):
            shown = line if len(line) <= 60 else line[:60] + "..."
            raise self._fail(f"it printed {shown!r} where its manifest's path belongs")
        try:
            manifest = read_manifest(line)
        except IthcliError as exc:
            raise self._fail(exc.message) from None
        if manifest.pid != self.pid:
            raise self._fail(f"its manifest {line} is another process's (pid {manifest.pid})")
        self.manifest_path, self.manifest = line, manifest

    def pump(self, which: int | str) -> WardPump:
        """A pump by its position in the manifest or its serial (IndexError, KeyError)."""
        if isinstance(which, int):
            return self.pumps[which]
        if self.manifest is None:
            raise KeyError(which)
        return self.manifest.pump(which)

    def control(self, which: int | str, op: str, **kw) -> dict:
        """One request on the control socket of one pump (by position or serial); the reply."""
        return self._control(self.pump(which).control, op, **kw)


def launch(args: Iterable[object] = (), *, key_file: str | None = None, control: bool | str = False,
           stderr: str | None = None, show_stderr: bool = False, starter: Starter = spawn,
           cwd: str | None = None) -> EmulatorProcess:
    """Start ith-emulator with `args` without waiting for it (wait_ready() does; start() both).

    key_file: its --key-file unless args give one (default: created by the emulator, with
    fresh keys, in a private directory). control: True for a control socket in that directory,
    or its path (unless args give --control). stderr: a file to append its stderr to (default:
    in the private directory; show_stderr: ours). The private directory goes when it stops."""
    argv = [str(a) for a in args]
    made: list[str] = []

    def private(name: str) -> str:
        if not made:  # short: a UNIX socket path must stay under ~104 bytes
            made.append(tempfile.mkdtemp(prefix="ith-emu-"))
        return os.path.join(made[0], name)

    given_key = _option(argv, "--key-file")
    if given_key is None:
        given_key = key_file or private("pump-keys.json")
        argv += ["--key-file", given_key]
    control_path = _option(argv, "--control")
    if control_path is None and control:
        control_path = control if isinstance(control, str) else private("control.sock")
        argv += ["--control", control_path]
    stderr_path = None if show_stderr else stderr or private("emulator.stderr")
    err = None if stderr_path is None else os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = starter(argv, stderr=err, cwd=cwd)
    except OSError as exc:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        raise EmulatorStartError(f"the emulator did not start: cannot run it: {_why(exc)}") from None
    finally:
        if err is not None:
            os.close(err)
    return EmulatorProcess(proc, argv, key_file=given_key, control_path=control_path,
                           state_path=_option(argv, "--state"), stderr_path=stderr_path,
                           private_dir=made[0] if made else None)


def start(args: Iterable[object] = (), *, timeout: float | None = None, key_file: str | None = None,
          control: bool | str = False, stderr: str | None = None, show_stderr: bool = False,
          starter: Starter = spawn, cwd: str | None = None) -> EmulatorProcess:
    """launch() and wait_ready(): a serving emulator, or EmulatorStartError."""
    return launch(args, key_file=key_file, control=control, stderr=stderr, show_stderr=show_stderr,
                  starter=starter, cwd=cwd).wait_ready(timeout)


def launch_ward(args: Iterable[object] = (), *, pumps: int | None = None, ward_file: str | None = None,
                ward_dir: str | None = None, stderr: str | None = None, show_stderr: bool = False,
                starter: Starter = spawn, cwd: str | None = None) -> WardProcess:
    """Start a ward emulator without waiting for it (wait_ready() does; start_ward() both).

    pumps: `--pumps N`; ward_file: `--ward FILE` (or give either in args; args add the
    options every pump shares, e.g. ["--listen", "127.0.0.1:0"]). ward_dir: its --ward-dir,
    kept when it stops (pass it again to restart the same pumps from their state files);
    default: a private directory removed when it stops. stderr, show_stderr: as launch()."""
    argv = [str(a) for a in args]
    if pumps is not None:
        argv += ["--pumps", str(pumps)]
    if ward_file is not None:
        argv += ["--ward", ward_file]
    if _option(argv, "--pumps") is None and _option(argv, "--ward") is None:
        raise ValueError("a ward needs pumps=N or ward_file=FILE")
    private = None
    if ward_dir is None or (stderr is None and not show_stderr):
        private = tempfile.mkdtemp(prefix="ith-ward-")  # short: the pumps' control sockets are in it
    given_dir = _option(argv, "--ward-dir")
    if given_dir is None:
        given_dir = ward_dir or os.path.join(private or "", "w")
        argv += ["--ward-dir", given_dir]
    stderr_path = None if show_stderr else stderr or os.path.join(private or "", "ward.stderr")
    err = None if stderr_path is None else os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = starter(argv, stderr=err, cwd=cwd)
    except OSError as exc:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
        raise EmulatorStartError(f"the emulator did not start: cannot run it: {_why(exc)}") from None
    finally:
        if err is not None:
            os.close(err)
    count = _option(argv, "--pumps")
    return WardProcess(proc, argv, ward_dir=os.path.abspath(given_dir), stderr_path=stderr_path,
                       private_dir=private, pumps=int(count) if count and count.isdigit() else None)


def start_ward(args: Iterable[object] = (), *, pumps: int | None = None, ward_file: str | None = None,
               ward_dir: str | None = None, timeout: float | None = None, stderr: str | None = None,
               show_stderr: bool = False, starter: Starter = spawn, cwd: str | None = None) -> WardProcess:
    """launch_ward() and wait_ready(): a serving ward with its manifest read, or EmulatorStartError.
    The default timeout grows with --pumps (WARD_PER_PUMP)."""
    return launch_ward(args, pumps=pumps, ward_file=ward_file, ward_dir=ward_dir, stderr=stderr,
                       show_stderr=show_stderr, starter=starter, cwd=cwd).wait_ready(timeout)


def read_first_line(stream: IO[bytes], timeout: float) -> str | None:
    """The first line on a pipe, without its newline; None if it ended or `timeout` passed first."""
    line, _ = _first_line(stream, timeout)
    return line


def _first_line(stream: IO[bytes], timeout: float) -> tuple[str | None, bool]:
    """(the first line or None, whether the pipe ended). poll(), not select(): a process
    holding hundreds of pumps has descriptors past 1024."""
    fd = stream.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, False
        if not poller.poll(left * 1000):
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return None, True
        data += chunk
    return data.partition(b"\n")[0].decode(errors="replace").strip(), False


def control_request(path: str, op: str, **kw) -> dict:
    """One JSON request on an emulator's control socket (test-only), one JSON reply;
    EOFError when the socket closes first."""
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


def stop_process(proc: Child, timeout: float = STOP_TIMEOUT) -> int | None:
    """Wait for a process asked to stop (a signal, or its stdin closed); SIGKILL it if it has not
    within `timeout`; reaped either way. Its exit code."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _option(argv: list[str], name: str) -> str | None:
    """The value of `name` in an argument list (`--name V` or `--name=V`; the last one wins)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.partition("=")[2]
    return value


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
