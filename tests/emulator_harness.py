"""Start the emulator as a real process and talk to it: shared by every test module.

    emu = start_emulator(tmp_path, "--serial", "ABC123", transport="tcp")
    client = RawClient(emu.url)
    status = client.request(Command.INTERROGATE).body
    emu.control("advance", seconds=86400)
    emu.stop()  # SIGTERM; returns the exit code
"""
from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

import protocol
from protocol import Command, FrameDecoder, RawFrame

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count(1)


class EmulatorError(RuntimeError):
    pass


class EmulatorProcess:
    def __init__(self, proc: subprocess.Popen, url: str, control_path: str,
                 state_path: str | None, stderr_path: str):
        self.proc = proc
        self.url = url
        self.control_path = control_path
        self.state_path = state_path
        self.stderr_path = stderr_path

    def control(self, op: str, **kw) -> dict:
        """Send one JSON request on the control socket; return the reply dict."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30.0)
            sock.connect(self.control_path)
            sock.sendall(json.dumps({"op": op, **kw}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise EmulatorError(f"control socket closed; stderr: {self.stderr()}")
                data += chunk
        return json.loads(data)

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


def start_emulator(tmp_path, *args, transport="pty", state_path=None, time_scale=None) -> EmulatorProcess:
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
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO)
    url = _read_first_line(proc, START_TIMEOUT)
    emu = EmulatorProcess(proc, url, control_path,
                          str(state_path) if state_path is not None else None, stderr_path)
    if not url:
        emu.kill()
        raise EmulatorError(f"emulator did not print its URL (exit {proc.returncode}); "
                            f"command {cmd}; stderr: {emu.stderr()}")
    return emu


class RawClient:
    """The raw protocol over pyserial, with no retries and no interpretation."""

    def __init__(self, url: str, timeout: float = 2.0):
        self.timeout = timeout
        self.port = serial.serial_for_url(url, timeout=0.05)
        # replies left in a pty by an earlier client would otherwise be read as ours
        self.port.reset_input_buffer()
        self.decoder = FrameDecoder()
        self._seq = itertools.count(1)
        self.dropped: list = []  # frame errors and unmatched frames seen while reading

    def request(self, command, body=None, seq=None) -> protocol.Message:
        """Send one request; return the first response with the same seq."""
        seq = next(self._seq) & 0xFFFF if seq is None else seq
        self.port.write(protocol.encode(command, body or {}, seq=seq))
        self.port.flush()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for frame in self._read_some():
                if frame.seq == seq and frame.is_response:
                    return protocol.decode(frame)
                self.dropped.append(frame)
        raise TimeoutError(f"no reply to {Command(command).name} seq={seq} within {self.timeout} s")

    def send_raw(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read_frames(self, timeout: float) -> list[RawFrame]:
        """Every good frame that arrives within timeout (waits the whole time)."""
        frames: list[RawFrame] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frames += self._read_some()
        return frames

    def _read_some(self) -> list[RawFrame]:
        data = self.port.read(self.port.in_waiting or 1)
        frames = []
        for item in self.decoder.feed(data) if data else []:
            if isinstance(item, RawFrame):
                frames.append(item)
            else:
                self.dropped.append(item)
        return frames

    def close(self) -> None:
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
