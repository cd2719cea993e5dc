"""An in-process link to the pure pump handler (python-can's virtual bus idea).

Bytes a ClientSession writes go through the real framing, emulator.handler.respond
and the pump's own Session, and the reply bytes come back: the protocol and the
emulator's semantics without a process or a socket. End-to-end behaviour is still
tested over real ptys and TCP; this is for the pure core and for matrices.
"""
from __future__ import annotations

import protocol
from emulator.faults import Faults
from emulator.handler import respond
from emulator.pump import Pump
from emulator.security_state import Backoff
from emulator.session import Session
from protocol import Role, security
from protocol.framing import FrameDecoder, RawFrame
from protocol.session import ClientSession, HelloReply, SessionOpen

KEYS = {Role.READER: bytes(range(32)), Role.CLINICIAN: bytes(range(32, 64))}


def new_pump(serial: str = "LOOP1") -> Pump:
    return Pump.new(model="peristaltic-40", serial=serial, drug=protocol.Drug.MORPHINE,
                    concentration_ng_per_ml=10_000_000, reservoir_ul=18_000, flow_nl_per_day=200_000,
                    low_reservoir_alarm_ul=2_000, battery_seconds=5 * 365 * 86_400, start_time=1_900_000_000)


def based(pump, body: dict) -> dict:
    """A PREPARE body checked against the pump as it is now (compare-and-set: its last_txid)."""
    return {**body, "based_on_txid": pump.last_txid}


class Loopback:
    """One connection to `pump`: its own pump-side Session (and so its own AUTH back-off)."""

    def __init__(self, pump: Pump, keys: dict[Role, bytes] | None = None, faults: Faults | None = None,
                 backoff: Backoff | None = None):
        self.pump = pump
        self.session = Session(KEYS if keys is None else keys, backoff or Backoff())
        self.faults = faults or Faults()
        self._decoder = FrameDecoder()

    def send(self, data: bytes) -> bytes:
        """The pump's answer to these bytes (b"" for none)."""
        out = b""
        for item in self._decoder.feed(data):
            if isinstance(item, RawFrame):
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
