"""An in-process link to the pure pump handler (python-can's virtual bus idea).

Bytes a ClientSession writes go through the real framing, emulator.handler.respond
and the pump's own Session, and the reply bytes come back: the protocol and the
emulator's semantics without a process or a socket. End-to-end behaviour is still
tested over real ptys and TCP; this is for the pure core and for matrices.

Two levels:

- `Loopback(pump)`: one connection; `send(bytes)` returns the pump's answer. For tests
  that drive protocol.session.ClientSession themselves.
- `InProcessPump(*emulator_args)`: a pump built from ith-emulator's own command line,
  its control channel (emulator.control.dispatch: advance, fault, ...) and a URL,
  `inprocess://NAME`, that pyserial opens in this process (a protocol handler, like its
  own loop://). The real ithcli runs in this process against it (`run_ithcli`), through
  the campaign's fault logic (ithcli_campaign.proxy.FaultLine, the same code as the
  proxy on TCP and ptys) and on a `VirtualClock`: a read with nothing to read moves the
  clock by its timeout instead of waiting, so timeouts, UNAUTH_GRACE and delays cost
  no real time. Matrices (every error reason times every write kind, the cut at every
  byte) run here; tests/test_mitm.py and tests/test_campaign.py keep real-process
  samples of each.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import os
import socket
import sys
import threading
import time
import types
from pathlib import Path
from typing import TypeVar, cast

import serial
from serial.serialutil import SerialBase, SerialException

import protocol
from emulator import control as emulator_control
from emulator.clock import PumpClock
from emulator.faults import Faults
from emulator.handler import respond
from emulator.pump import Pump
from emulator.pump.write_kinds import PrepareRequest
from emulator.security_state import Backoff
from emulator.server import STALE_GAP
from emulator.session import Session
from ithcli_campaign.proxy import TO_CLI, TO_PUMP, FaultLine
from ithcli_campaign.pump import TruthClient
from protocol import Role, security
from protocol.framing import FrameDecoder, RawFrame
from protocol.session import ClientSession, HelloReply, SessionOpen

KEYS = {Role.READER: bytes(range(32)), Role.CLINICIAN: bytes(range(32, 64))}
B = TypeVar("B", bound=PrepareRequest)


def new_pump(serial: str = "LOOP1") -> Pump:
    return Pump.new(model="peristaltic-40", serial=serial, drug=protocol.Drug.MORPHINE,
                    concentration_ng_per_ml=10_000_000, reservoir_ul=18_000, flow_nl_per_day=200_000,
                    low_reservoir_alarm_ul=2_000, battery_seconds=5 * 365 * 86_400, start_time=1_900_000_000)


def based(pump, body: B) -> B:
    """A PREPARE body checked against the pump as it is now (compare-and-set: its last_txid)."""
    return dataclasses.replace(body, based_on_txid=pump.last_txid)


class Loopback:
    """One connection to `pump`: its own pump-side Session (and so its own AUTH back-off).

    As emulator/server.py does for each link: a pump reset since the session opened ends
    it (the session keys die with the pump's RAM), and with a `clock`, idle() gives up on a
    partial frame after STALE_GAP of silence (a truncated frame)."""

    def __init__(self, pump: Pump, keys: dict[Role, bytes] | None = None, faults: Faults | None = None,
                 backoff: Backoff | None = None, clock=None):
        self.pump = pump
        self.session = Session(KEYS if keys is None else keys, backoff or Backoff())
        self.faults = faults or Faults()
        self._decoder = FrameDecoder()
        self._resets_seen = pump.resets
        self._clock = clock
        self._last_rx = clock() if clock else 0.0

    def send(self, data: bytes) -> bytes:
        """The pump's answer to these bytes (b"" for none)."""
        if self._clock is not None:
            self._last_rx = self._clock()
        return self._answer(self._decoder.feed(data))

    def idle(self) -> bytes:
        """The line has been quiet until now (the clock's): a partial frame older than STALE_GAP
        is dropped and what follows it re-scanned; the answers to any frame found in it."""
        out = b""
        while self._decoder.pending and self._clock is not None and self._clock() - self._last_rx >= STALE_GAP:
            out += self._answer(self._decoder.flush_stale())
        return out

    def _answer(self, items) -> bytes:
        out = b""
        for item in items:
            if isinstance(item, RawFrame):
                if self._resets_seen != self.pump.resets:
                    self.session.end()
                    self._resets_seen = self.pump.resets
                out += respond(self.pump, item, self.faults, self.session) or b""
        return out


def open_session(link: Loopback, role: Role = Role.CLINICIAN, key: bytes | None = None) -> ClientSession:
    """A ClientSession with an open session over `link` (raises if the handshake fails)."""
    client = ClientSession()
    hello = [e for e in client.receive_data(link.send(client.hello(role))) if isinstance(e, HelloReply)]
    assert hello, "no HELLO reply"
    key = KEYS[role] if key is None else key
    assert hello[0].key_id == security.key_id(key) or key is not KEYS[role]
    opened = [e for e in client.receive_data(link.send(client.authenticate(key))) if isinstance(e, SessionOpen)]
    assert opened and client.is_open, "the session did not open"
    return client


# --- the emulator in this process, behind a URL the real ithcli opens -----------------------------


class VirtualClock:
    """Monotonic seconds that move only when something waits: a read that finds nothing
    moves it by the read's timeout, sleep() by its argument. Never the wall clock."""

    def __init__(self, start: float = 1_000.0):
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


_PUMPS: dict[str, InProcessPump] = {}
_names = itertools.count(1)
SCHEME = "inprocess"


class InProcessPump:
    """A pump as `ith-emulator *args` would make it (its own parser and defaults), with a frozen
    pump clock that moves only by control("advance"), its control channel in process, and a
    URL (`.url`) every connection to which gets its own pump-side session through `.line`
    (a FaultLine: arm proxy faults on it) on `.clock` (a VirtualClock)."""

    def __init__(self, *args: str, clock: VirtualClock | None = None):
        from emulator.__main__ import _new_pump, build_parser

        parser = build_parser()
        parsed = parser.parse_args([str(a) for a in args])
        start = parsed.start_time if parsed.start_time is not None else int(time.time())
        self.pump_clock = PumpClock(start, 1.0, monotonic=lambda: 0.0)  # frozen: advance() moves it
        self.pump = _new_pump(parser, parsed, self.pump_clock)
        self.clock = clock or VirtualClock()
        self.line = FaultLine(clock=self.clock.monotonic)
        self.keys = {Role.READER: security.new_key(), Role.CLINICIAN: security.new_key()}
        self.ctx = emulator_control.Context(self.pump, self.pump_clock)
        self.name = f"pump{next(_names)}"
        self.url = f"{SCHEME}://{self.name}"
        self.connections = 0
        _PUMPS[self.name] = self

    @property
    def faults(self) -> Faults:
        """The emulator's own faults (armed by control("fault", ...))."""
        return self.ctx.faults

    def control(self, op: str, **kw) -> dict:
        """What the emulator's control socket answers, in process."""
        reply = emulator_control.dispatch(self.ctx, {"op": op, **kw})
        assert reply.get("ok", True), reply
        return reply

    def connect(self) -> Loopback:
        self.connections += 1
        return Loopback(self.pump, self.keys, self.faults, Backoff(monotonic=self.clock.monotonic),
                        clock=self.clock.monotonic)

    def pair(self, key_store: Path) -> None:
        """Put this pump's keys into an ithcli key store, as ithcli keys import would."""
        key_store = Path(key_store)
        key_store.mkdir(parents=True, exist_ok=True)
        os.chmod(key_store, 0o700)
        data = {"format": "ithcli-pump-keys", "version": 1, "serial": self.pump.serial,
                "keys": {role.name.lower(): key.hex() for role, key in self.keys.items()}}
        target = key_store / f"{self.name}.json"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)

    def truth(self, role: Role = Role.READER) -> TruthClient:
        """The campaign's fault-free TruthClient, on a connection of its own (no FaultLine)."""
        return _LoopbackTruth(self, role)

    def close(self) -> None:
        _PUMPS.pop(self.name, None)


class _LoopbackSocket:
    """The few socket methods TruthClient uses, over a Loopback (replies are immediate: no
    reply now is no reply ever, a timeout)."""

    def __init__(self, link: Loopback):
        self._link = link
        self._rx = b""

    def sendall(self, data: bytes) -> None:
        self._rx += self._link.send(data)

    def recv(self, size: int) -> bytes:
        if not self._rx:
            raise TimeoutError("no reply")
        data, self._rx = self._rx[:size], self._rx[size:]
        return data

    def close(self) -> None:
        pass


class _LoopbackTruth(TruthClient):
    def __init__(self, pump: InProcessPump, role: Role):  # not super().__init__: that dials TCP
        self.timeout = 10.0  # never waited: a reply comes at once or never
        # duck-typed: TruthClient uses only sendall, recv and close of the socket it dials
        self.sock = cast(socket.socket, _LoopbackSocket(pump.connect()))
        self.session = ClientSession()
        self.key, self.role = pump.keys[role], role
        self._open_session()


class InProcessSerial(SerialBase):
    """pyserial's side of `inprocess://NAME`: one connection to that InProcessPump through its
    FaultLine. Closes as a TCP peer does (SerialException) when a cut fault closes the line."""

    def open(self) -> None:
        name = self.portstr.partition("://")[2]
        if name not in _PUMPS:
            raise SerialException(f"no in-process pump {name!r}")
        self._pump = _PUMPS[name]
        self._link = self._pump.connect()
        self._conn = self._pump.line.open()
        self._rx = bytearray()
        self._closed = False  # the line was cut
        self.is_open = True

    def _reconfigure_port(self, *args, **kwargs) -> None:
        pass

    def _deliver(self) -> None:
        """Move whatever the line has due, both ways."""
        line = self._pump.line
        stale = self._link.idle()
        if stale and not self._closed:
            line.feed(self._conn, TO_CLI, stale)
        while not self._closed:
            data, cut = line.take(self._conn, TO_PUMP)
            if data:
                reply = self._link.send(data)
                if cut:
                    self._closed = True  # the pump got the bytes; its answer never comes back
                    return
                if reply:
                    line.feed(self._conn, TO_CLI, reply)
            elif cut:
                self._closed = True
                return
            back, cut = line.take(self._conn, TO_CLI)
            self._rx += back
            if cut:
                self._closed = True
            if not data:
                return

    @property
    def in_waiting(self) -> int:
        self._deliver()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        self._deliver()
        if not self._rx:
            if self._closed:
                raise SerialException("socket disconnected")
            # nothing to read: wait this read's timeout, or until the next queued bytes are due
            due = self._pump.line.next_due(self._conn)
            clock = self._pump.clock
            wait = self._timeout if self._timeout is not None else 1.0
            if due is not None and due > clock.now:
                wait = min(wait, due - clock.now)
            clock.sleep(wait)
            self._deliver()
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def write(self, data: bytes) -> int:
        if self._closed or not self.is_open:
            raise SerialException("socket disconnected")
        self._pump.line.feed(self._conn, TO_PUMP, bytes(data))
        self._deliver()
        return len(data)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def reset_output_buffer(self) -> None:
        pass

    def close(self) -> None:
        self.is_open = False


def _register_scheme() -> None:
    """`inprocess://` for serial.serial_for_url, as pyserial's own protocol_* handlers are found."""
    package = "ithcli_test_urls"
    if package in sys.modules:
        return
    pkg = types.ModuleType(package)
    pkg.__path__ = []
    handler = types.ModuleType(f"{package}.protocol_{SCHEME}")
    vars(handler)["Serial"] = InProcessSerial
    sys.modules[package] = pkg
    sys.modules[handler.__name__] = handler
    serial.protocol_handler_packages.append(package)


_register_scheme()


class _TimeShim(types.ModuleType):
    """The `time` module as ithcli's link and client see it in process: monotonic and sleep
    from a VirtualClock, everything else the real module's."""

    def __init__(self, clock: VirtualClock):
        super().__init__("time")
        self.monotonic = clock.monotonic
        self.sleep = clock.sleep

    def __getattr__(self, name):
        return getattr(time, name)


@contextlib.contextmanager
def _environment(env: dict):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


_one_at_a_time = threading.Lock()  # a run owns the process's environment, stdio and ithcli's clock


def run_ithcli(argv: list[str], env: dict, clock: VirtualClock) -> tuple[int, str, str]:
    """The real ithcli (ithcli.cli.main, the console script's entry point) in this process:
    (exit code, stdout, stderr), with `env` as its whole environment, stdin at end of file,
    and its link and client timing on `clock`. Runs from several threads take turns."""
    with _one_at_a_time:
        return _run_ithcli(argv, env, clock)


def _run_ithcli(argv: list[str], env: dict, clock: VirtualClock) -> tuple[int, str, str]:
    import ithcli.cli
    import ithcli.client
    import ithcli.link

    out, err = io.StringIO(), io.StringIO()
    shim = _TimeShim(clock)
    saved = (ithcli.client.time, ithcli.link.time, sys.stdin)
    ithcli.client.time = ithcli.link.time = shim
    sys.stdin = io.StringIO("")
    code = 0
    try:
        with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                ithcli.cli.main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        ithcli.client.time, ithcli.link.time, sys.stdin = saved
    return code, out.getvalue(), err.getvalue()
