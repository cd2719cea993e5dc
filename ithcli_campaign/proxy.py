"""A fault-injecting proxy between ithcli and ith-emulator, on TCP or on a pty.

It stays out of both real programs: the CLI connects to the proxy's socket:// URL
(FaultProxy) or opens its pseudo-terminal's device path (PtyFaultProxy), the proxy
connects to the emulator's TCP port, and bytes are forwarded both ways.
Both inputs are clean (the real programs write whole frames), so the proxy splits
each direction into frames with protocol.parse_frame (the header is in clear even
in a sealed session) and can aim a fault at one frame: "the COMMIT request", "the
reply to the COMMIT", "the 3rd frame towards the pump". Byte-level faults then act
inside that frame's bytes.

Faults (Fault.kind):
    flip       flip one bit of the byte at `offset`
    drop       remove `length` bytes at `offset`
    dup        repeat `length` bytes at `offset`
    reorder    swap the `length` bytes at `offset` with the `length` bytes after them
    truncate   send only the first `offset` bytes of the frame; the rest never comes
    delay      hold the frame (and everything after it) for `delay` seconds
    replay     send the frame twice (a recorded frame played again)
    cut        send the first `offset` bytes of the frame, then close both sides
    forge      swallow the frame and send in its place a clear ERROR `reason` with the same
               seq, as a man-in-the-middle would (it needs no key)
    patch      set the byte at `offset` to `value` and recompute the CRC (an attacker
               rewriting a clear HELLO's role or version in flight)
    hold       keep the frame (and everything after it in that direction, as a line keeps
               its order) until release() is called: an interleaving that never depends on
               how fast the machine is (tests/test_lost_update.py, tests/test_race.py)

The proxy runs in threads of the process that starts it (the campaign runner); it
can also be run alone: `python -m ithcli_campaign.proxy --upstream HOST:PORT`.
The fault logic itself does no I/O (FaultLine: bytes in, bytes due out, with an
injectable clock): FaultProxy and PtyFaultProxy move its bytes over sockets and ptys,
and tests/loopback.py over an in-process link to the emulator's handler.
"""
from __future__ import annotations

import errno
import math
import os
import select
import socket
import threading
import time
import tty
from dataclasses import asdict, dataclass, field

from protocol import Command, ErrorReason, RawFrame, encode, parse_frame
from protocol.bodies import ErrorResponse
from protocol.crc import crc32c

TO_PUMP = "to_pump"
TO_CLI = "to_cli"
#: what a faulty line does (the campaign draws from these)
KINDS = ("flip", "drop", "dup", "reorder", "truncate", "delay", "replay", "cut")
#: what a man-in-the-middle does (aimed by tests/test_mitm.py; each needs its reason or value)
ATTACK_KINDS = ("forge", "patch")
#: what a test does to order two programmers' frames (released by FaultLine.release)
HOLD_KINDS = ("hold",)
HELD = math.inf  # the due time of a held frame
PREPARES = {int(c) for c in (Command.PREPARE_PROGRAM, Command.PREPARE_REFILL, Command.PREPARE_BOLUS,
                             Command.PREPARE_MRI_ENTER, Command.PREPARE_MRI_EXIT)}


def frame_command(raw: bytes) -> int:
    return raw[6]


def frame_seq(raw: bytes) -> int:
    return int.from_bytes(raw[4:6], "big")


@dataclass
class Fault:
    kind: str
    direction: str = TO_PUMP
    #: which frames it aims at: "commit" (the COMMIT request, or its reply when
    #: direction is to_cli), "prepare" (a PREPARE_* or its reply), "hello" (a HELLO or its
    #: reply), "after_commit" (a request after a COMMIT, or its reply: the read-back), "any"
    target: str = "any"
    #: the n-th matching frame in that direction (0 = the first) since the proxy was armed
    index: int = 0
    offset: int = 0
    length: int = 1
    bit: int = 0
    delay: float = 0.0
    reason: int = 0  # forge: the ErrorReason
    value: int = 0  # patch: the new byte
    # filled in when it fires
    fired: bool = False
    frame_len: int | None = None
    frame_command: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Conn:
    client: socket.socket | _PtyEnd | None  # None: an in-process line (FaultLine.open)
    upstream: socket.socket | None
    buffers: dict = field(default_factory=lambda: {TO_PUMP: bytearray(), TO_CLI: bytearray()})
    #: per direction: [(due time, bytes)] in order
    queues: dict = field(default_factory=lambda: {TO_PUMP: [], TO_CLI: []})
    commit_seqs: set = field(default_factory=set)
    prepare_seqs: set = field(default_factory=set)
    hello_seqs: set = field(default_factory=set)
    after_commit_seqs: set = field(default_factory=set)
    close_after: dict = field(default_factory=dict)  # direction -> index in queue after which to close


class FaultLine:
    """The fault logic with no I/O: arming faults, splitting frames, applying faults, queues.

    One FaultLine serves any number of connections (open() for an in-process one; the
    proxies below make one per client). feed(conn, direction, data) takes the bytes one
    side wrote; take(conn, direction) returns the bytes due at the other side now, and
    whether a cut closes the line after them. `clock` (time.monotonic unless injected)
    decides when a delayed frame is due."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()  # faults and counts: the test's thread arms, the line's applies
        self._queue_lock = threading.Lock()  # queues: the test's thread releases a hold
        self._faults: list[Fault] = []
        self._seen: dict[tuple[str, str], int] = {}
        self.frames: list[tuple[str, int, int]] = []  # (direction, command, length) since armed
        self._held: list[list] = []  # the queues holding a frame (Fault kind "hold")

    # --- arming ----------------------------------------------------------------
    def arm(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults = list(faults)
            self._seen = {}
            self.frames = []

    def disarm(self) -> list[Fault]:
        with self._lock:
            faults, self._faults = self._faults, []
            return faults

    def holding(self) -> bool:
        """A frame is held in the line now (not merely matched: queued and waiting for release())."""
        with self._queue_lock:
            return any(due == HELD for queue in self._held for due, _ in queue)

    def release(self) -> None:
        """Let every held frame (and what waits behind it) go on, in order."""
        with self._queue_lock:
            now = self.clock()
            for queue in self._held:
                queue[:] = [(min(due, now), data) for due, data in queue]
            self._held.clear()

    # --- the sans-IO interface ---------------------------------------------------
    def open(self) -> _Conn:
        """A connection with no sockets: feed() it and take() from it."""
        return _Conn(None, None)

    def feed(self, conn: _Conn, direction: str, data: bytes) -> None:
        """Bytes written by the CLI (direction TO_PUMP) or by the pump (TO_CLI)."""
        self._feed(conn, direction, data)

    def take(self, conn: _Conn, direction: str) -> tuple[bytes, bool]:
        """The bytes due at the far end of `direction` now, and True when a cut closes the
        line after them."""
        out = b""
        with self._queue_lock:
            queue = conn.queues[direction]
            now = self.clock()
            while queue and queue[0][0] <= now:
                _, data = queue.pop(0)
                out += data
                if direction in conn.close_after:
                    conn.close_after[direction] -= 1
                    if conn.close_after[direction] <= 0:
                        return out, True
        return out, False

    def next_due(self, conn: _Conn) -> float | None:
        """When the next queued bytes are due (None: nothing queued; math.inf: held)."""
        with self._queue_lock:
            due = [q[0][0] for q in conn.queues.values() if q]
        return min(due) if due else None

    def _feed(self, conn: _Conn, direction: str, data: bytes) -> None:
        buf = conn.buffers[direction]
        buf += data
        while buf:
            used, item = parse_frame(buf)
            if used == 0:
                break
            raw = bytes(buf[:used])
            del buf[:used]
            if isinstance(item, RawFrame):
                self._frame(conn, direction, item, raw)
            else:  # not expected from the real programs: forward untouched
                self._enqueue(conn, direction, 0.0, raw)

    def _frame(self, conn: _Conn, direction: str, frame: RawFrame, raw: bytes) -> None:
        with self._lock:
            self.frames.append((direction, frame.command, len(raw)))
            if direction == TO_PUMP and not frame.is_response:
                if conn.commit_seqs and frame.command != Command.COMMIT:
                    conn.after_commit_seqs.add(frame.seq)
                if frame.command == Command.COMMIT:
                    conn.commit_seqs.add(frame.seq)
                if frame.command in PREPARES:
                    conn.prepare_seqs.add(frame.seq)
                if frame.command == Command.HELLO:
                    conn.hello_seqs.add(frame.seq)
            seqs = {"commit": conn.commit_seqs, "prepare": conn.prepare_seqs, "hello": conn.hello_seqs,
                    "after_commit": conn.after_commit_seqs}
            targets = {"any"}
            if direction == TO_PUMP:
                if frame.command == Command.COMMIT:
                    targets.add("commit")
                if frame.command in PREPARES:
                    targets.add("prepare")
                if frame.command == Command.HELLO:
                    targets.add("hello")
                if frame.seq in conn.after_commit_seqs:
                    targets.add("after_commit")
            elif frame.is_response:
                targets.update(name for name, held in seqs.items() if frame.seq in held)
            chosen = None
            for target in targets:
                n = self._seen.get((direction, target), 0)
                self._seen[(direction, target)] = n + 1
                for fault in self._faults:
                    if (not fault.fired and chosen is None and fault.direction == direction
                            and fault.target == target and fault.index == n):
                        chosen = fault
            if chosen is not None:
                chosen.fired = True
                chosen.frame_len = len(raw)
                chosen.frame_command = frame.command
        if chosen is None:
            self._enqueue(conn, direction, 0.0, raw)
            return
        self._apply(conn, direction, chosen, raw)

    def _apply(self, conn: _Conn, direction: str, f: Fault, raw: bytes) -> None:
        b = bytearray(raw)
        n = len(b)
        o = min(max(f.offset, 0), n)
        if f.kind == "flip":
            b[o % n] ^= 1 << (f.bit % 8)
        elif f.kind == "drop":
            del b[o:o + f.length]
        elif f.kind == "dup":
            b[o:o] = b[o:o + f.length]
        elif f.kind == "reorder":
            a, c = b[o:o + f.length], b[o + f.length:o + 2 * f.length]
            b[o:o + len(a) + len(c)] = c + a
        elif f.kind == "truncate":
            del b[o:]
        elif f.kind == "delay":
            self._enqueue(conn, direction, f.delay, bytes(b))
            return
        elif f.kind == "hold":
            self._enqueue(conn, direction, HELD, bytes(b))
            return
        elif f.kind == "replay":
            b += raw
        elif f.kind == "forge":
            body = ErrorResponse(frame_command(raw) & 0x7F, ErrorReason(f.reason),
                                 "forged in clear by a man-in-the-middle")
            b = bytearray(encode(Command.ERROR, body, seq=frame_seq(raw), response=True))
        elif f.kind == "patch":
            b[o % n] = f.value & 0xFF
            b[-4:] = crc32c(bytes(b[2:-4])).to_bytes(4, "big")
        elif f.kind == "cut":
            del b[o:]
            self._enqueue(conn, direction, 0.0, bytes(b))
            conn.close_after[direction] = len(conn.queues[direction])
            return
        else:
            raise ValueError(f"unknown fault {f.kind!r}")
        self._enqueue(conn, direction, 0.0, bytes(b))

    def _enqueue(self, conn: _Conn, direction: str, delay: float, data: bytes) -> None:
        with self._queue_lock:
            queue = conn.queues[direction]
            due = self.clock() + delay
            if queue:
                due = max(due, queue[-1][0])  # a line keeps its order: later bytes wait behind a held frame
            queue.append((due, data))
            if due == HELD and not any(q is queue for q in self._held):
                self._held.append(queue)


class _Proxy(FaultLine):
    """A FaultLine between two real ends: a thread per connection moves its bytes."""

    def __init__(self, upstream: tuple[str, int]):
        super().__init__()
        self.upstream = upstream
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _upstream(self) -> socket.socket:
        upstream = socket.create_connection(self.upstream, timeout=5)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream.settimeout(5)
        return upstream

    def _start(self, conn: _Conn) -> threading.Thread:
        t = threading.Thread(target=self._serve, args=(conn,), daemon=True, name="proxy-conn")
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return t

    def close(self) -> None:
        self._stop.set()
        self.release()  # nothing stays held in a closing proxy
        for t in list(self._threads):
            t.join(timeout=2)

    # --- serving ---------------------------------------------------------------
    def _serve(self, conn: _Conn) -> None:
        client, upstream = conn.client, conn.upstream
        assert client is not None and upstream is not None  # only FaultLine.open's in-process lines have None
        peers: dict[socket.socket | _PtyEnd, str] = {client: TO_PUMP, upstream: TO_CLI}
        try:
            while not self._stop.is_set():
                due = self.next_due(conn)
                wait = max(0.0, due - self.clock()) if due is not None else 0.05
                readable, _, _ = select.select(list(peers), [], [], min(wait, 0.05))
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return  # one side closed: close both
                    self._feed(conn, peers[sock], data)
                if self._flush(conn):
                    return  # a cut fault closed the link
        except OSError:
            return
        finally:
            for end in (client, upstream):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def _flush(self, conn: _Conn) -> bool:
        """Send what is due; True when a cut closed the link."""
        for direction in (TO_PUMP, TO_CLI):
            sock = conn.upstream if direction == TO_PUMP else conn.client
            assert sock is not None  # only _serve's connections come here: both ends set
            data, cut = self.take(conn, direction)
            if data:
                sock.sendall(data)
            if cut:
                return True
        return False


class FaultProxy(_Proxy):
    """TCP: listen on 127.0.0.1 (port 0: a free one); each ithcli connection gets its own
    connection to the emulator, closed when either side closes."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0):
        super().__init__(upstream)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(8)
        self._listener.settimeout(0.2)
        self.url = f"socket://{host}:{self._listener.getsockname()[1]}"
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True, name="proxy-accept")
        self._accepter.start()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accepter.join(timeout=2)
        super().close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = self._upstream()
            except OSError:
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.settimeout(5)
            self._start(_Conn(client, upstream))


class _PtyEnd:
    """The proxy's side of a pseudo-terminal, with the few socket methods _serve uses.
    The proxy keeps the slave open too, so the line stays up between ithcli runs (as
    a serial cable does) and bytes sent while no one listens wait for the next reader."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.closed = False

    def fileno(self) -> int:
        return self.master

    def recv(self, size: int) -> bytes:
        try:
            return os.read(self.master, size)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True  # first: the device path is gone from here on
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class PtyFaultProxy(_Proxy):
    """A pty: ithcli opens a device path and drives it as a serial port (its poll() path,
    as for a USB adapter). One line to the emulator carries session after session, with
    no connect or disconnect between them, so a frame delayed past one run's end reaches
    the next, as on a real serial line. A cut closes the pty and the emulator connection;
    the next run gets a new device path (an adapter unplugged and plugged in again)."""

    def __init__(self, upstream: tuple[str, int]):
        super().__init__(upstream)
        self._line: tuple[_PtyEnd, threading.Thread] | None = None

    @property
    def url(self) -> str:
        if self._line is not None and self._line[0].closed:
            # cut: the pty is closed, though its thread may still be closing the other
            # side; handing out the old path now would send the next run to a dead device
            self._line[1].join(5)
        if self._line is None or self._line[0].closed or not self._line[1].is_alive():
            end = _PtyEnd()
            try:
                upstream = self._upstream()
            except OSError:
                end.close()
                raise
            self._line = (end, self._start(_Conn(end, upstream)))
        return self._line[0].path


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m ithcli_campaign.proxy",
                                description="Forward a socket:// link with one seeded fault.")
    p.add_argument("--upstream", required=True, metavar="HOST:PORT")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fault", action="append", default=[], metavar="JSON",
                   help='e.g. \'{"kind": "cut", "direction": "to_cli", "target": "commit", "offset": 5}\'')
    args = p.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    proxy = FaultProxy((host, int(port)), port=args.port)
    proxy.arm([Fault(**json.loads(text)) for text in args.fault])
    print(proxy.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
