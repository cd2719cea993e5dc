"""protocol.session.ClientSession against the pump's real handler, in process (tests/loopback.py).

The rules every programmer built on it inherits: only sealed replies that verify count
inside a session, the handshake is bound to what both sides said (a role or version
rewritten in flight opens nothing), peers of another protocol version are told both
versions, and one connection's failed AUTH attempts never lock another connection out.
"""
from __future__ import annotations

import pytest
from loopback import KEYS, Loopback, new_pump, open_session

import protocol
from emulator.security_state import Backoff
from protocol import Command, ErrorReason, Role, bodies, security
from protocol.crc import crc32c
from protocol.framing import FrameDecoder, RawFrame, encode_frame, parse_frame
from protocol.session import (
    ClientSession,
    Dropped,
    HandshakeError,
    HelloReply,
    Refused,
    Reply,
    Unauthenticated,
    VersionMismatch,
)

ROLE_OFFSET = 9 + 1 + 16  # frame offset of the role byte in a HELLO request
VERSION_OFFSET = 9  # frame offset of protocol_version in a HELLO body


def patched(frame: bytes, offset: int, value: int) -> bytes:
    """A frame with one byte rewritten and its CRC recomputed, as an attacker on the line does."""
    b = bytearray(frame)
    b[offset] = value
    b[-4:] = crc32c(bytes(b[2:-4])).to_bytes(4, "big")
    return bytes(b)


def only(events, kind):
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def test_a_session_opens_and_sealed_replies_count():
    link = Loopback(new_pump())
    client = open_session(link, Role.READER)
    reply = only(client.receive_data(link.send(client.request(bodies.InterrogateRequest()))), Reply)
    assert reply.command == Command.INTERROGATE and reply.body.serial_number == "LOOP1"
    assert client.pending is None


@pytest.mark.parametrize("reason", list(ErrorReason))
def test_a_clear_error_inside_a_session_decides_nothing_and_the_sealed_reply_still_wins(reason):
    link = Loopback(new_pump())
    client = open_session(link)
    request = client.request(bodies.InterrogateRequest())
    forged = protocol.encode(Command.ERROR, bodies.ErrorResponse(Command.INTERROGATE, reason, "forged"),
                             seq=client.seq, response=True)
    event = only(client.receive_data(forged), Unauthenticated)
    assert event.reason == reason and "in clear" in event.describe()
    assert client.pending is not None  # still waiting for the genuine answer
    assert only(client.receive_data(link.send(request)), Reply).body.serial_number == "LOOP1"


def test_a_clear_reply_of_any_command_inside_a_session_is_unauthenticated():
    link = Loopback(new_pump())
    client = open_session(link)
    client.request(bodies.ReadProgramRequest())
    forged = protocol.encode(Command.READ_PROGRAM, bodies.ReadProgramResponse(7, link.pump.program_body()),
                             seq=client.seq, response=True)
    assert only(client.receive_data(forged), Unauthenticated).reason is None


def test_frames_for_other_seqs_and_bad_tags_are_dropped():
    link = Loopback(new_pump())
    client = open_session(link)
    sealed_reply = link.send(client.request(bodies.InterrogateRequest()))
    client.forget()
    client.request(bodies.InterrogateRequest())  # a new seq: the old reply answers nothing now
    stray = only(client.receive_data(sealed_reply), Dropped)
    assert not stray.corrupt
    tampered = bytearray(link.send(client.request(bodies.InterrogateRequest())))
    tampered[12] ^= 0x01  # a payload bit; CRC recomputed so only the tag can catch it
    tampered[-4:] = crc32c(bytes(tampered[2:-4])).to_bytes(4, "big")
    bad = only(client.receive_data(bytes(tampered)), Dropped)
    assert bad.corrupt and "authentication" in bad.why


def test_a_role_rewritten_in_flight_opens_no_session():
    """READER asked, CLINICIAN delivered: the pump's transcript and ours disagree."""
    for key in (KEYS[Role.READER], KEYS[Role.CLINICIAN]):  # whichever key the client tried
        pump = new_pump()
        link = Loopback(pump)
        client = ClientSession()
        hello = patched(client.hello(Role.READER), ROLE_OFFSET, Role.CLINICIAN)
        reply = only(client.receive_data(link.send(hello)), HelloReply)
        assert reply.key_id == security.key_id(KEYS[Role.CLINICIAN])  # what the pump was told
        refused = only(client.receive_data(link.send(client.authenticate(key))), Refused)
        assert refused.reason == ErrorReason.AUTH_FAILED and not client.is_open
        assert link.session.channel is None and pump.auth.total == 1


def test_a_version_rewritten_in_flight_opens_no_session():
    link = Loopback(new_pump())
    client = ClientSession()
    hello = patched(client.hello(Role.CLINICIAN), VERSION_OFFSET, protocol.PROTOCOL_VERSION + 1)
    only(client.receive_data(link.send(hello)), HelloReply)
    refused = only(client.receive_data(link.send(client.authenticate(KEYS[Role.CLINICIAN]))), Refused)
    assert refused.reason == ErrorReason.AUTH_FAILED and not client.is_open


def test_this_is_protocol_version_5():
    assert protocol.PROTOCOL_VERSION == 5 and protocol.HELLO_FRAME_VERSION == 1


@pytest.mark.parametrize("old", [1, 2, 3, 4])
def test_a_pump_reply_rewritten_to_an_older_version_is_refused_naming_both(old):
    link = Loopback(new_pump())
    client = ClientSession()
    reply = patched(link.send(client.hello(Role.CLINICIAN)), VERSION_OFFSET, old)
    with pytest.raises(VersionMismatch, match=f"pump speaks protocol version {old}; this programmer speaks version 5"):
        client.receive_data(reply)


@pytest.mark.parametrize("old", [1, 2, 3, 4])
def test_an_older_programmer_is_told_both_versions_in_a_frame_it_can_read(old):
    """A programmer of protocol version 1 or 2 frames its HELLO at version 1 and reads
    version-1 frames for the answer to it: the pump's refusal must be one of those,
    naming both versions."""
    pump = new_pump()
    link = Loopback(pump)
    old_hello = encode_frame(Command.HELLO, bytes([old]) + bytes(16) + bytes([Role.CLINICIAN]), seq=5, version=1)
    answer = link.send(old_hello)
    assert answer[2] == 1  # header version 1
    used, frame = parse_frame(answer)
    assert used == len(answer) and isinstance(frame, RawFrame), frame
    message = protocol.decode(frame)
    error = bodies.expect(message.body, bodies.ErrorResponse)
    assert message.command == Command.ERROR and error.reason == ErrorReason.UNSUPPORTED_VERSION
    assert error.detail == f"this pump speaks protocol version 5; the programmer's highest is {old}"
    assert pump.auth.total == 0  # an old programmer is not an attacker
    assert pump.log.count == 1  # nor a session: nothing but POWER_ON in the log


@pytest.mark.parametrize("old", [1, 2, 3, 4])
def test_an_older_pump_is_refused_naming_both_versions(old):
    """What a version-1 or version-2 pump answers to our HELLO (it accepts any newer
    programmer's HELLO, framed at 1)."""
    client = ClientSession()
    hello = client.hello(Role.READER)
    assert hello[2] == protocol.HELLO_FRAME_VERSION  # an older pump can read it
    old_reply = encode_frame(Command.HELLO, bytes([old]) + bytes(16) + bytes(8), seq=client.seq,
                             response=True, version=1)
    with pytest.raises(VersionMismatch, match=f"version {old}.*version 5"):
        client.receive_data(old_reply)
    assert not client.is_open


def test_only_hello_and_error_frames_may_carry_the_old_header_version():
    decoder = FrameDecoder()
    old_interrogate = encode_frame(Command.INTERROGATE, b"", seq=1, version=1)
    assert isinstance(decoder.feed(old_interrogate)[0], protocol.FrameError)
    v2_interrogate = encode_frame(Command.INTERROGATE, b"", seq=1, version=2)  # a version-2 programmer's
    assert isinstance(decoder.feed(v2_interrogate)[0], protocol.FrameError)
    old_error = protocol.encode(Command.ERROR, bodies.ErrorResponse(1, ErrorReason.BUSY, ""),
                                seq=1, response=True, version=1)
    assert isinstance(decoder.feed(old_error)[0], RawFrame)
    assert protocol.encode(Command.INTERROGATE, bodies.InterrogateRequest(), seq=1)[2] == protocol.PROTOCOL_VERSION


def test_a_pump_that_cannot_prove_the_key_is_refused():
    link = Loopback(new_pump())
    client = ClientSession()
    only(client.receive_data(link.send(client.hello(Role.CLINICIAN))), HelloReply)
    client.authenticate(KEYS[Role.CLINICIAN])
    impostor = protocol.encode(Command.AUTH, bodies.AuthResponse(bytes(32)), seq=client.seq, response=True)
    with pytest.raises(HandshakeError, match="did not prove"):
        client.receive_data(impostor)
    assert not client.is_open


def test_failed_auth_on_one_connection_never_locks_out_another():
    pump = new_pump()
    attacker_link = Loopback(pump, backoff=Backoff(cap_s=30))
    reasons = []
    for _ in range(8):
        attacker = ClientSession()
        only(attacker.receive_data(attacker_link.send(attacker.hello(Role.CLINICIAN))), HelloReply)
        reasons.append(only(attacker.receive_data(attacker_link.send(attacker.authenticate(security.new_key()))),
                            Refused))
    assert [r.reason for r in reasons[:3]] == [ErrorReason.AUTH_FAILED] * 3
    assert reasons[-1].reason == ErrorReason.RATE_LIMITED and "retry in" in reasons[-1].detail
    own_link = Loopback(pump)  # another connection: its own back-off
    clinician = open_session(own_link)
    reply = only(clinician.receive_data(own_link.send(clinician.request(bodies.InterrogateRequest()))), Reply)
    assert reply.body.auth_failures == 8
    assert pump.auth.total == 8  # every attempt counted pump-wide
