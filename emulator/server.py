"""The I/O loop: pty master or TCP clients, the control socket, the pump's clock.

Single-threaded over `selectors`, so the pump is never touched by two things at
once. One Loop (ward_loop.py) serves one Server (a pump) or many (a ward, ward.py); each
Server keeps its own pump, clock, keys, links, control socket and state file. Each byte
stream has its own FrameDecoder and its own secure session
(session.py; the AUTH back-off is per connection, the failure count the pump's); garbage, bad CRCs and oversized
lengths are dropped silently (counted, logged at -v), and a partial frame is given
up after STALE_GAP of silence. All writes are non-blocking with a bounded output
buffer: a pty nobody reads cannot hang the loop.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import selectors
import socket
import stat
import time
import tty
from collections import Counter, deque
from collections.abc import Callable

from protocol import FrameDecoder, FrameError, RawFrame, Role

from . import control, handler
from .clock import PumpClock
from .pump import Pump
from .security_state import DEFAULT_BACKOFF_CAP_S, Backoff
from .session import Session
from .ward_loop import STALE_GAP, Loop

log = logging.getLogger("emulator.server")

READ_SIZE = 4096
MAX_OUTPUT = 256 * 1024  # bytes queued for a reader that is not reading; then dropped
MAX_CONTROL_LINE = 64 * 1024


#: how often a count alone (sessions opened) is saved: with the next change, else on a tick this long after
COUNTS_EVERY_S = 60.0


class Link:
    """One byte stream to a programmer: a pty master or an accepted TCP socket."""

    def __init__(self, name: str, fd: int, session: Session, sock: socket.socket | None = None):
        self.name = name
        self.fd = fd
        self.sock = sock
        #: one secure session per connection (a pty is one connection for its whole life)
        self.session = session
        #: the pump's reset count when this session began: a reset since ends it (RAM is lost)
        self.resets_seen = 0
        self.decoder = FrameDecoder()
        self.out = bytearray()
        self.last_rx = 0.0
        #: --baud pacing: (due time, one byte) waiting for the line, and when the line is free
        self.paced: deque[tuple[float, bytes]] = deque()
        self.tx_free_at = 0.0

    def recv(self) -> bytes:
        """Bytes read; b"" means the peer closed."""
        if self.sock is not None:
            return self.sock.recv(READ_SIZE)
        try:
            return os.read(self.fd, READ_SIZE)
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open (we keep one, so only transient)
                raise BlockingIOError from None
            raise

    def send(self, data: bytes) -> int:
        if self.sock is not None:
            return self.sock.send(data)
        return os.write(self.fd, data)


class ControlConn:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = bytearray()
        self.out = bytearray()


class Server:
    """One pump on its transport(s): its links, its control socket, its clock ticks and saves.
    Alone (Server(...).serve()) it runs a Loop of its own; in a ward, Loop.add() it to a shared one."""

    def __init__(self, pump: Pump, clock: PumpClock, save: Callable[[Pump], None] | None = None, *,
                 keys: dict[Role, bytes] | None = None, backoff_cap: float = DEFAULT_BACKOFF_CAP_S,
                 baud: int | None = None, loop: Loop | None = None):
        self.pump = pump
        #: pace replies like a UART at this rate (10 bits a byte); None: as fast as the transport takes them
        self.baud = baud
        self.clock = clock
        self.keys = dict(keys or {})  # none: nothing but HELLO is ever answered
        #: each connection gets its own AUTH back-off with this cap (security_state.Backoff)
        self.backoff_cap = backoff_cap
        self._save = save
        self._saved_changes = pump.changes
        self._saved_counted = pump.counted
        self._saved_at = 0.0  # monotonic
        self.ctx = control.Context(pump, clock)
        self.stats: Counter[str] = Counter()
        self._links: list[Link] = []
        self._closers: list[Callable[[], None]] = []
        self.next_tick = 0.0  # when the loop next ticks this pump's clock (Loop.add sets it)
        self.loop = loop or Loop()
        self._own_loop = loop is None
        self.sel = self.loop.sel
        self.loop.add(self)

    # --- opening transports -------------------------------------------------

    def open_pty(self) -> str:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            # keep the slave open ourselves: the master then never sees EIO when a client closes
            os.set_blocking(master, False)
            url = os.ttyname(slave)
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        link = Link(url, master, self._new_session())
        link.resets_seen = self.pump.resets
        self._links.append(link)
        self.sel.register(master, selectors.EVENT_READ, (self, "link", link))
        self._closers += [lambda: os.close(master), lambda: os.close(slave)]
        return url

    def _new_session(self) -> Session:
        return Session(self.keys, Backoff(self.backoff_cap))

    def open_tcp(self, host: str, port: int) -> str:
        family, type_, proto, _, addr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, type_, proto)
        self._closers.append(listener.close)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(addr)
        listener.listen(16)
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, (self, "listen", listener))
        bound_host, bound_port = listener.getsockname()[:2]
        if host in ("", "0.0.0.0", "::"):
            bound_host = "127.0.0.1"
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        return f"socket://{bound_host}:{bound_port}"

    def open_control(self, path: str) -> None:
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise OSError(f"control path {path} exists and is not a socket")
            os.unlink(path)  # a stale socket from a killed emulator
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

        def close() -> None:
            listener.close()
            try:
                os.unlink(path)
            except OSError:
                pass

        try:
            listener.bind(path)
        except OSError:
            listener.close()
            raise
        self._closers.append(close)
        listener.listen(8)
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, (self, "control-listen", listener))

    # --- running ----------------------------------------------------------------

    def request_stop(self) -> None:
        """Safe to call from a signal handler: stops the loop (every pump on it)."""
        self.loop.request_stop()

    def serve(self) -> None:
        self.loop.serve()

    def finish(self) -> None:
        """The loop is stopping: catch the clock up and save, whatever changed."""
        self.tick()
        self._maybe_save(force=True)

    def detach(self) -> None:
        """Unregister every descriptor of this pump from a loop that goes on without it (a ward's
        pump that failed): a number the kernel hands out again must not find a stale entry."""
        for key in [k for k in self.sel.get_map().values() if k.data[0] is self]:
            self.sel.unregister(key.fileobj)

    def close(self) -> None:
        for link in list(self._links):
            if link.sock is not None:
                self._drop_link(link)
        for closer in reversed(self._closers):
            try:
                closer()
            except OSError:
                pass
        self._closers.clear()
        if self._own_loop:
            self._own_loop = False
            self.loop.close()

    def dispatch(self, kind: str, obj, events: int) -> None:
        """One descriptor's events; one connection's trouble must not stop the pump."""
        try:
            self._dispatch(kind, obj, events)
        except Exception:
            log.exception("error on %s", kind)
            if kind == "client":
                self._drop_link(obj)
            elif kind == "control":
                self._drop_control(obj)

    # --- events ---------------------------------------------------------------

    def _dispatch(self, kind: str, obj, events: int) -> None:
        if kind == "listen":
            sock, peer = obj.accept()
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = Link(f"tcp {peer[0]}:{peer[1]}", sock.fileno(), self._new_session(), sock)
            link.resets_seen = self.pump.resets
            self._links.append(link)
            self.sel.register(sock, selectors.EVENT_READ, (self, "client", link))
            log.info("client connected: %s", link.name)
        elif kind in ("link", "client"):
            if events & selectors.EVENT_WRITE:
                self._flush_out(obj)
            if events & selectors.EVENT_READ:
                self._read_link(obj)
        elif kind == "control-listen":
            sock, _ = obj.accept()
            sock.setblocking(False)
            conn = ControlConn(sock)
            self.sel.register(sock, selectors.EVENT_READ, (self, "control", conn))
        elif kind == "control":
            if events & selectors.EVENT_WRITE:
                self._flush_control(obj)
            if events & selectors.EVENT_READ:
                self._read_control(obj)

    def _read_link(self, link: Link) -> None:
        try:
            data = link.recv()
        except BlockingIOError:
            return
        except OSError as exc:
            log.info("%s: read failed: %s", link.name, exc)
            data = b""
        if not data:
            if link.sock is not None:
                log.info("client disconnected: %s", link.name)
                self._drop_link(link)
            return
        link.last_rx = time.monotonic()
        self.stats["bytes_in"] += len(data)
        self._handle_items(link, link.decoder.feed(data))
        if link.decoder.pending:
            self.loop.partial.add((self, link))

    def flush_stale(self, link: Link, now: float) -> None:
        # everything still buffered after the gap is stale: drop it all, keeping good frames
        while link.decoder.pending and now - link.last_rx >= STALE_GAP:
            self._handle_items(link, link.decoder.flush_stale())
        if not link.decoder.pending or link not in self._links:
            self.loop.partial.discard((self, link))

    def _handle_items(self, link: Link, items: list) -> None:
        for item in items:
            if isinstance(item, FrameError):
                self.stats[item.kind] += 1
                log.debug("%s: dropped (%s): %s", link.name, item.kind, item)
                continue
            self._handle_frame(link, item)

    def _handle_frame(self, link: Link, frame: RawFrame) -> None:
        self.stats["frames_in"] += 1
        log.debug("%s: rx seq=%d cmd=0x%02x flags=0x%02x len=%d",
                  link.name, frame.seq, frame.command, frame.flags, len(frame.payload))
        if link.resets_seen != self.pump.resets:
            # the pump reset since this session opened: its keys died with the pump's RAM
            link.session.end()
            link.resets_seen = self.pump.resets
        reply = handler.respond(self.pump, frame, self.ctx.faults, link.session)
        # persist before acknowledging (or deliberately not, under a fault): nothing
        # answered may be lost by a kill -9
        self._maybe_save()
        if reply is None:
            return
        log.debug("%s: tx seq=%d cmd=0x%02x len=%d", link.name, frame.seq, reply[6], len(reply))
        self._write(link, reply)

    def _write(self, link: Link, data: bytes) -> None:
        if self.baud:
            # each byte leaves when a UART would have finished sending it: the last byte of a
            # reply arrives len * 10 / baud seconds after the line became free, as on a real line
            now = time.monotonic()
            start = max(now, link.tx_free_at)
            per_byte = 10 / self.baud
            for i in range(len(data)):
                link.paced.append((start + (i + 1) * per_byte, data[i:i + 1]))
            link.tx_free_at = start + len(data) * per_byte
            self.loop.paced.add((self, link))
            return
        self._write_now(link, data)

    def release_paced(self, link: Link, now: float) -> None:
        chunk = bytearray()
        while link.paced and link.paced[0][0] <= now:
            chunk += link.paced.popleft()[1]
        if not link.paced or link not in self._links:
            self.loop.paced.discard((self, link))
        if chunk and link in self._links:
            self._write_now(link, bytes(chunk))

    def _write_now(self, link: Link, data: bytes) -> None:
        if len(link.out) + len(data) > MAX_OUTPUT:
            # nobody is reading: stale replies would only confuse the next reader
            self.stats["output_dropped"] += len(link.out)
            log.warning("%s: no reader, dropping %d queued bytes", link.name, len(link.out))
            link.out.clear()
        link.out += data
        self._flush_out(link)

    def _flush_out(self, link: Link) -> None:
        while link.out:
            try:
                sent = link.send(bytes(link.out))
            except BlockingIOError:
                break
            except OSError as exc:
                log.info("%s: write failed: %s", link.name, exc)
                if link.sock is not None:
                    self._drop_link(link)
                else:
                    link.out.clear()
                return
            del link.out[:sent]
            self.stats["bytes_out"] += sent
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if link.out else 0)
        key = self.sel.get_key(link.sock if link.sock is not None else link.fd)
        if key.events != wanted:
            self.sel.modify(key.fileobj, wanted, key.data)

    def _drop_link(self, link: Link) -> None:
        if link in self._links:
            self._links.remove(link)
        self.loop.partial.discard((self, link))
        self.loop.paced.discard((self, link))
        if link.sock is not None:
            try:
                self.sel.unregister(link.sock)
            except (KeyError, ValueError):
                pass
            link.sock.close()

    # --- control channel ------------------------------------------------------------

    def _read_control(self, conn: ControlConn) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop_control(conn)
            return
        conn.inbuf += data
        while b"\n" in conn.inbuf:
            line, _, rest = bytes(conn.inbuf).partition(b"\n")
            conn.inbuf = bytearray(rest)
            if line.strip():
                reply = control.handle_line(self.ctx, line)
                # a control op may move the clock without logging: always persist
                self._maybe_save(force=True)
                conn.out += reply
        if len(conn.inbuf) > MAX_CONTROL_LINE:
            conn.out += json.dumps({"ok": False, "error": "line too long"}).encode() + b"\n"
            conn.inbuf.clear()
        self._flush_control(conn)

    def _flush_control(self, conn: ControlConn) -> None:
        try:
            while conn.out:
                del conn.out[: conn.sock.send(bytes(conn.out))]
        except BlockingIOError:
            pass
        except OSError:
            self._drop_control(conn)
            return
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        key = self.sel.get_key(conn.sock)
        if key.events != wanted:
            self.sel.modify(conn.sock, wanted, key.data)

    def _drop_control(self, conn: ControlConn) -> None:
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    # --- time and persistence -----------------------------------------------------------

    def tick(self) -> None:
        before = self.pump.log.count
        self.pump.tick()
        new = min(self.pump.log.count - before, len(self.pump.log.events))
        if new and log.isEnabledFor(logging.DEBUG):
            for event in list(self.pump.log.events)[-new:]:
                log.debug("event %d at %d: %s", event.index, event.time, event.type.name)
        self._maybe_save(counts_too=True)

    def _maybe_save(self, force: bool = False, counts_too: bool = False) -> None:
        """Save what changed, fsync'd, before the reply: nothing answered may be lost by a kill -9.
        A count alone (a session opened, whose SESSION_OPENED event is itself a change when it is
        logged) is saved with the next change, by the clock's tick once COUNTS_EVERY_S have
        passed, or at the end: a ward's 200 sessions do not queue on 200 disk writes in its loop."""
        now = time.monotonic()
        if not (force or self.pump.changes != self._saved_changes or (
                counts_too and self.pump.counted != self._saved_counted and now - self._saved_at >= COUNTS_EVERY_S)):
            return
        if self._save is None:
            return
        try:
            self._save(self.pump)
            self._saved_changes, self._saved_counted, self._saved_at = self.pump.changes, self.pump.counted, now
        except OSError as exc:
            self.stats["save_failed"] += 1
            log.error("cannot save state: %s", exc)
