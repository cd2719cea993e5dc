"""Fuzzing the emulator's whole request path: emulator.handler.respond(pump, frame, faults, session).

respond() is pure (no I/O), so hypothesis drives it directly, seeded with every valid
request (tests/test_codec.SAMPLES) and with bodies generated from the Construct
definitions, then mutated (bit flips, cuts, extensions, other command codes and
flags), in clear and sealed in a real session (so mutations reach the decoder and
the pump, past the tag), with the emulator's faults armed at random. Whatever
arrives: no exception escapes, nothing hangs (a watchdog, not a timing assertion),
and every reply is a well-formed frame the programmer can open and decode, echoing
the request's seq, or no reply at all.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec import BODIES, SAMPLES  # the valid messages, and bodies from the definitions

import protocol
from emulator.faults import FAULTS, Faults
from emulator.handler import respond
from emulator.pump import Pump
from emulator.security_state import Backoff
from emulator.session import Session
from protocol import Command, Role, security
from protocol.framing import RawFrame, encode_frame, parse_frame
from protocol.session import ClientSession, HelloReply, SessionOpen

REQUEST_KEYS = sorted(k for k in SAMPLES if not k & 0x80)
HANG_S = 30  # a watchdog for a hang, far above any real example (milliseconds)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _pump() -> Pump:
    return Pump.new(model="peristaltic-40", serial="FUZZ1", drug=protocol.Drug.MORPHINE,
                    concentration_ng_per_ml=10_000_000, reservoir_ul=18_000, flow_nl_per_day=200_000,
                    low_reservoir_alarm_ul=2_000, battery_seconds=5 * 365 * 86_400, start_time=1_900_000_000)


def _frame(data: bytes) -> RawFrame:
    used, item = parse_frame(data)
    assert isinstance(item, RawFrame) and used == len(data)
    return item


@contextmanager
def watchdog(seconds: int):
    def fire(*_):
        raise AssertionError(f"respond() hung for {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class Programmer:
    """The programmer's side of one session, in-process, against respond(): the handshake is
    protocol.session.ClientSession's (`.client`); `.session` is the pump's side of it."""

    def __init__(self, role: Role = Role.CLINICIAN):
        self.keys = {Role.READER: security.new_key(), Role.CLINICIAN: security.new_key()}
        self.pump = _pump()
        self.session = Session(self.keys, Backoff())
        self.faults = Faults()
        self.client = ClientSession(seq=0)
        self._handshake(self.client.hello(role), HelloReply)
        self._handshake(self.client.authenticate(self.keys[role]), SessionOpen)
        channel = self.client.channel
        assert channel is not None, "the session is open"
        self.channel = channel

    def _handshake(self, request: bytes, expected: type) -> None:
        reply = respond(self.pump, _frame(request), self.faults, self.session)
        assert reply is not None, "the pump answers every handshake step"
        events = self.client.receive_data(reply)
        assert [type(e) for e in events] == [expected], events

    def decode(self, reply: bytes) -> protocol.Message:
        frame = _frame(reply)
        if frame.auth is not None:
            frame = self.channel.open(frame)
        return protocol.decode(frame)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, value in ops:
        if op == "flip" and b:
            b[pos % len(b)] ^= 1 << (value % 8)
        elif op == "set" and b:
            b[pos % len(b)] = value
        elif op == "cut":
            del b[pos % (len(b) + 1):]
        elif op == "insert":
            b[pos % (len(b) + 1):pos % (len(b) + 1)] = bytes([value])
        elif op == "extend":
            b += bytes([value]) * (pos % 40)
    return bytes(b)


OPS = st.lists(st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "extend"]),
                         st.integers(0, 400), st.integers(0, 255)), max_size=4)


@st.composite
def requests(draw):
    """(command code, the body when unmutated, payload bytes, mutations, sealed, response flag)."""
    k = draw(st.sampled_from(REQUEST_KEYS))
    if draw(st.booleans()):
        body = SAMPLES[k]
    else:
        body = draw(BODIES[k])
    ops = draw(OPS) if draw(st.integers(0, 2)) == 0 else []  # two in three stay valid
    command = k if draw(st.integers(0, 9)) else draw(st.integers(0, 255))
    return command, body if not ops else None, protocol.build_fields(k, body), ops, \
        draw(st.integers(0, 5)) > 0, draw(st.integers(0, 19)) == 0


@FUZZ
@given(st.lists(requests(), min_size=1, max_size=8),
       st.lists(st.sampled_from(sorted(FAULTS)), max_size=2),
       st.sampled_from([Role.CLINICIAN, Role.READER]))
def test_respond_never_raises_or_hangs_and_always_answers_well_formed(reqs, faults, role):
    p = Programmer(role)
    for name in faults:
        p.faults.arm(name)
    seq = 10
    with watchdog(HANG_S):
        prepared = None
        for command, body, payload, ops, sealed, response in reqs:
            seq += 1
            if body is not None and command == Command.COMMIT and prepared is not None:
                payload = protocol.build_fields(command, {"txid": prepared})  # commit what was prepared
            elif body is not None and "txid" in body:
                prepared = body["txid"]
            payload = mutate(payload, ops)
            if len(payload) > protocol.MAX_PAYLOAD:
                payload = payload[:protocol.MAX_PAYLOAD]
            if sealed:
                data = p.channel.seal(command, payload, seq=seq, response=response)
            else:
                data = encode_frame(command, payload, seq=seq, response=response)
            reply = respond(p.pump, _frame(data), p.faults, p.session)
            if reply is None:
                continue
            frame = _frame(reply)  # sync, length and CRC good
            assert frame.is_response and frame.seq == seq
            message = p.decode(reply)  # opens (when sealed) and decodes: never garbage
            assert message.command == Command.ERROR or int(message.command) == command
            p.pump.status()  # the pump is still whole


@FUZZ
@given(st.binary(max_size=600), st.integers(0, 255), st.integers(0, 3))
def test_respond_to_arbitrary_sealed_payloads(payload, command, flags):
    """Arbitrary payload bytes under every command code, sealed in a live session."""
    p = Programmer()
    with watchdog(HANG_S):
        data = p.channel.seal(command, payload[:protocol.MAX_PAYLOAD], seq=7, response=bool(flags & 1))
        reply = respond(p.pump, _frame(data), p.faults, p.session)
    if reply is not None:
        assert p.decode(reply).seq == 7


def test_every_valid_request_is_answered():
    """The seeds themselves: each valid request gets a reply that decodes (an answer or an ERROR)."""
    p = Programmer()
    for seq, k in enumerate(REQUEST_KEYS, start=100):
        if k in (Command.HELLO, Command.AUTH):
            continue
        data = p.channel.seal(k, protocol.build_fields(k, SAMPLES[k]), seq=seq, response=False)
        reply = respond(p.pump, _frame(data), p.faults, p.session)
        assert reply is not None, f"no answer to a valid {Command(k).name}"
        message = p.decode(reply)
        assert message.seq == seq and message.command in (Command(k), Command.ERROR)
