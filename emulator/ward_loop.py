"""The selectors loop under every emulator: one pump (`ith-emulator`) or a ward of them
(`ith-emulator --pumps N`, ward.py) served by one thread. Each Server (server.py) registers
its descriptors here with (server, kind, object) as their data; the loop hands each event to
its server and does nothing else to a pump, so a pump in a ward behaves on the wire exactly
as a pump alone."""
from __future__ import annotations

import logging
import selectors
import socket
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Link, Server

log = logging.getLogger("emulator.server")

STALE_GAP = 0.1  # s of silence after which a partial frame is a truncated one
TICK = 0.5  # s of real time between a pump's clock catch-ups (alarms fire without requests)


class Loop:
    """One selectors loop for any number of Servers. Each registered descriptor's data is
    (server, kind, object); the wake socket's server is None. Pump clocks tick in turn: the
    servers sit in a deque in the order of their next tick (all tick every TICK), so a ward of
    a thousand pumps ticks a few at a time instead of stalling every reply for all of them."""

    def __init__(self, *, isolate: bool = False) -> None:
        #: a ward's: a pump whose clock fails stops alone, as its own process would have, and the
        #: others go on (alone, the failure ends the emulator as it always did)
        self.isolate = isolate
        self.sel = selectors.DefaultSelector()
        self.servers: deque[Server] = deque()
        self.stopping = False
        #: links holding a partial frame (given up after STALE_GAP) or paced bytes (--baud)
        self.partial: set[tuple[Server, Link]] = set()
        self.paced: set[tuple[Server, Link]] = set()
        # a signal handler writes here to wake select() (see request_stop)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, (None, "wake", None))

    def add(self, server: Server) -> None:
        """Serve `server` too (its clock first ticks when serve() begins)."""
        self.servers.append(server)

    def request_stop(self) -> None:
        """Safe to call from a signal handler."""
        self.stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def serve(self) -> None:
        start, count = time.monotonic(), len(self.servers)
        for i, server in enumerate(self.servers):  # spread over TICK, in the deque's order
            server.next_tick = start + TICK * i / count
        while not self.stopping:
            now = time.monotonic()
            self._tick_due(now)
            timeout = self._timeout(now)
            for key, events in self.sel.select(max(0.0, timeout)):
                server, kind, obj = key.data
                if server is None:
                    self._drain_wake()
                else:
                    server.dispatch(kind, obj, events)
            now = time.monotonic()
            for server, link in list(self.partial):
                server.flush_stale(link, now)
            for server, link in list(self.paced):
                server.release_paced(link, now)
        for server in list(self.servers):
            self._run(server, server.finish)

    def _tick_due(self, now: float) -> None:
        servers = self.servers
        while servers and servers[0].next_tick <= now:
            server = servers.popleft()
            if self._run(server, server.tick):
                server.next_tick = now + TICK
                servers.append(server)

    def _run(self, server: Server, step) -> bool:
        """step() for one server; False when it failed and was stopped (isolate)."""
        if not self.isolate:
            step()
            return True
        try:
            step()
            return True
        except Exception:
            log.exception("pump %s failed: it stops; the other pumps go on", server.pump.serial)
            if server in self.servers:
                self.servers.remove(server)
            server.detach()
            server.close()
            return False

    def _timeout(self, now: float) -> float:
        timeout = self.servers[0].next_tick - now if self.servers else TICK
        for _, link in self.partial:
            timeout = min(timeout, link.last_rx + STALE_GAP - now)
        for _, link in self.paced:
            timeout = min(timeout, link.paced[0][0] - now)
        return timeout

    def _drain_wake(self) -> None:
        try:
            self._wake_r.recv(64)
        except BlockingIOError:
            pass

    def close(self) -> None:
        while self.servers:  # a server that owns this loop closes it again: nothing left then
            self.servers.popleft().close()
        self._wake_r.close()
        self._wake_w.close()
        self.sel.close()
