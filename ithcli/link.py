"""The link: bytes to and from a pump over any pyserial URL. Knows nothing of frames.

`open_link("emulator")` starts a private ith-emulator on a pseudo-terminal
(ithcli/emulator_process.py) and opens the pty it prints, exactly as a USB serial
adapter would be opened.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import select
import shlex
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from .errors import LinkError

if TYPE_CHECKING:
    from .emulator_process import EmulatorProcess

log = logging.getLogger(__name__)

EMULATOR_PORT = "emulator"
# how long one read call may block; reads loop on it until their own deadline
_POLL = 0.05


class Link:
    """One open port. `read(deadline)` returns whatever bytes arrive before deadline."""

    def __init__(self, url: str, serial_port, emulator: EmulatorProcess | None = None):
        self.url = url
        self._port = serial_port
        self._emulator = emulator
        #: (serial, {role: key}) of the private emulator: its keys live in memory only
        self.emulator_keys = (emulator.serial, emulator.keys) if emulator is not None else None
        self._poller: select.poll | None = None
        #: bytes received so far: 0 after a timeout means nothing at all answers on this port
        self.bytes_in = 0

    @property
    def emulated(self) -> bool:
        return self._emulator is not None

    def write(self, data: bytes) -> None:
        import serial

        try:
            fd = self.fileno()  # a device's, or a socket:// link's socket: written as a device is
            if fd is not None:
                self._write_fd(fd, data)
            else:
                self._port.write(data)
                self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"link to {self.url} failed while sending: {_why(exc)}") from None

    def read(self, deadline: float) -> bytes:
        """Bytes received before `deadline` (time.monotonic()); b"" if none came."""
        import serial

        try:
            fd, sock = self._fd, self._socket
            if fd is not None:
                data = self._read_fd(fd, deadline)
                self.bytes_in += len(data)
                return data
            if sock is not None:
                # a socket:// link is read as a device is: pyserial's in_waiting says 1 at most,
                # so its own read took a frame a byte at a time (2-5 ms an exchange, not 0.1)
                data = self._read_socket(sock, deadline)
                self.bytes_in += len(data)
                return data
            while True:
                waiting = self._port.in_waiting
                data = self._port.read(waiting or 1)
                if data:
                    self.bytes_in += len(data)
                    return data
                if time.monotonic() >= deadline:
                    return b""
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"link to {self.url} failed while receiving: {_why(exc)}") from None

    # Device ports (ttys, ptys) and socket:// links are driven with poll() on their non-blocking
    # descriptor: pyserial's own read/write use select(), which fails once a descriptor passes
    # 1024 (a batch over ~200 ports gets there: each port holds 5 descriptors; a ward of 1000
    # sockets too), and its PosixPollSerial.read crashes on a timeout in pyserial 3.5.
    @property
    def _fd(self) -> int | None:
        fd = getattr(self._port, "fd", None)
        return fd if isinstance(fd, int) and fd >= 0 else None

    @property
    def _socket(self) -> socket.socket | None:
        """A socket:// link's socket (pyserial's, non-blocking); None for a device."""
        return getattr(self._port, "_socket", None) if self._fd is None else None

    def _read_fd(self, fd: int, deadline: float) -> bytes:
        return self._poll_read(fd, deadline, partial(_read_now, fd))

    def _read_socket(self, sock: socket.socket, deadline: float) -> bytes:
        return self._poll_read(sock.fileno(), deadline, partial(_recv_now, sock))

    def _poll_read(self, fd: int, deadline: float, take: Callable[[], bytes]) -> bytes:
        """Wait (until `deadline`) for `fd` to be readable, then take what has arrived."""
        poller = self._poller
        if poller is None:  # one per port, registered once: a batch reads thousands of times
            poller = self._poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        while True:
            left = deadline - time.monotonic()
            events = poller.poll(max(0, min(left, _POLL)) * 1000)
            for _, event in events:
                if event & select.POLLIN:
                    data = take()
                    if data:
                        return data
                if event & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    raise OSError("the device hung up")
            if time.monotonic() >= deadline:
                return b""

    def _write_fd(self, fd: int, data: bytes) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + 5
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
                continue
            except BlockingIOError:
                pass
            poller.poll(100)  # wait until the device takes more
            if time.monotonic() >= deadline:
                raise OSError("write timed out")

    # --- for a driver of many links (ithcli/runner.py): poll the descriptor, then read what came
    def fileno(self) -> int | None:
        """The descriptor to poll for input (a device's, or a socket:// link's socket); None: none."""
        fd, sock = self._fd, self._socket
        return fd if sock is None else sock.fileno()

    def read_nowait(self) -> bytes:
        """Whatever bytes have arrived, without waiting (b"" if none)."""
        import serial

        sock = self._socket
        try:
            if sock is not None:  # pyserial's socket:// reads one byte per call when asked in_waiting
                data = self._read_socket(sock, 0.0)
            elif self._fd is not None:
                data = self._read_fd(self._fd, 0.0)
            else:
                waiting = self._port.in_waiting
                data = self._port.read(waiting) if waiting else b""
            self.bytes_in += len(data)
            return bytes(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"link to {self.url} failed while receiving: {_why(exc)}") from None

    def discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except Exception:  # best effort: a dead link is reported by the next read
            pass

    def close(self) -> None:
        try:
            close_port(self._port)
        finally:
            if self._emulator is not None:
                self._emulator.stop(timeout=5)  # a command's end should not wait long on a hung one
                self._emulator = None


def close_port(port) -> None:
    """Close a port. pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"
    (a third of a CLI command's run time): close that socket ourselves, without it."""
    sock = getattr(port, "_socket", None)
    if sock is not None and getattr(port, "is_open", False):
        import socket

        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        port._socket = None
        port.is_open = False
        return
    port.close()


def open_link(url: str | None, *, verbose: int = 0) -> Link:
    if not url:
        raise LinkError("no port given: pass --port URL or set ITHCLI_PORT (try --port emulator)")
    emulator: EmulatorProcess | None = None
    if url == EMULATOR_PORT:
        emulator = _start_emulator(verbose)
        url = emulator.url
    try:
        port = _open_serial(url)
    except BaseException:
        if emulator is not None:
            emulator.stop()
        raise
    return Link(url, port, emulator)


def _open_serial(url: str):
    import serial

    # a serial line is one link: two programs on it would steal each other's bytes, so a
    # device port is locked (flock, exclusive) for as long as ithcli holds it open
    device = "://" not in url
    try:
        # reads block at most _POLL; callers loop on their own deadline
        return serial.serial_for_url(url, timeout=_POLL, write_timeout=5, baudrate=115200,
                                     exclusive=True if device else None)
    except (serial.SerialException, OSError, ValueError) as exc:
        if device and "exclusively lock" in str(exc):
            raise PortInUse(f"port {url} is in use by another program (ithcli locks a serial port while it "
                            "uses it): wait for the other command to finish, then run this one again") from None
        raise LinkError(f"cannot open port {url}: {_open_why(exc)}") from None


class PortInUse(LinkError):
    """Another process holds the device port's lock; nothing was sent."""


def _start_emulator(verbose: int) -> EmulatorProcess:
    """A private ith-emulator on a pty, provisioned with fresh random keys (its key file is
    created in the launcher's private directory, read into memory, and goes when it stops)."""
    from .emulator_process import start  # only for --port emulator: no cost to a real port

    extra = shlex.split(os.environ.get("ITHCLI_EMULATOR_ARGS", ""))
    # with -v its stderr is ours, so its warnings show; else a file quoted if it fails to start
    emulator = start(["--pty", *extra], show_stderr=bool(verbose))
    log.debug("emulator %s started (pid %d) on %s", emulator.serial, emulator.pid, emulator.url)
    return emulator


# pyserial wraps the OS's reason in its own words, repeating the port ("could not open port X:
# [Errno 2] could not open port X: [Errno 2] ..."): these are cut, the reason is said once
_PYSERIAL_PREFIX = re.compile(r"^(?:(?:could not|cannot) (?:open|configure) port(?: \S+)?: |\[Errno -?\d+\] )+",
                              re.IGNORECASE)
#: what to do about the reasons a port does not open, said after the reason
_OPEN_HINTS = {
    errno.ENOENT: "no such device (`ithcli ports` lists this computer's serial ports)",
    errno.EACCES: "permission denied (your user needs read and write access to it: on Linux, the dialout group)",
    errno.EPERM: "permission denied (your user needs read and write access to it: on Linux, the dialout group)",
    errno.ENOTTY: "not a serial device",
    errno.ECONNREFUSED: "connection refused (nothing listens there)",
    errno.EBUSY: "the device is busy",
}


def _open_why(exc: BaseException) -> str:
    """Why a port did not open, once, in a few words (and what to do, where that is known)."""
    root = _os_error(exc)
    if root is not None and root.errno in _OPEN_HINTS:
        return _OPEN_HINTS[root.errno]
    if isinstance(root, socket.gaierror):
        return f"unknown host ({_why(root)})"
    return _why(exc)


def _os_error(exc: BaseException) -> OSError | None:
    """The OS error under a pyserial one (the exception itself, its cause or its context)."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short chain: pyserial raises from the OSError it caught
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.strerror:
            return seen
        errno_arg = seen.args[0] if seen.args and isinstance(seen.args[0], int) else None
        if errno_arg is not None and errno_arg > 0:
            return OSError(errno_arg, os.strerror(errno_arg))
        seen = seen.__cause__ or seen.__context__
    return None


def _why(exc: BaseException) -> str:
    """The reason in an OS or pyserial error, said once: its first line, without pyserial's repeated
    "could not open port X:" and "[Errno N]" prefixes; the OS's own words where it gave them."""
    root = _os_error(exc)
    text = root.strerror if root is not None and root.strerror else (str(exc).strip() or type(exc).__name__)
    text = _PYSERIAL_PREFIX.sub("", text.splitlines()[0]).strip() or type(exc).__name__
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _read_now(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def _recv_now(sock: socket.socket) -> bytes:
    try:
        data = sock.recv(4096, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""
    if not data:
        raise OSError("the connection was closed")
    return data
