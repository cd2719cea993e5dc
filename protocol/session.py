"""The programmer's side of one connection, sans-IO: bytes in, events out (h11's model).

    s = ClientSession()
    port.write(s.hello(Role.READER))                 # HELLO, in clear
    for event in s.receive_data(port.read()):        # ... until a HelloReply
    port.write(s.authenticate(key))                  # AUTH: the proof over the transcript
    for event in s.receive_data(port.read()):        # ... until SessionOpen (pump's proof checked)
    port.write(s.request(InterrogateRequest()))      # sealed from now on
    for event in s.receive_data(port.read()):        # ... until Reply or Refused

It never touches a transport, a clock or a key store: ithcli, the campaign, the
tests and the fuzzers all drive this one object, so the handshake and the sealing
are written once. The rules it enforces, whoever drives it:

- One request is outstanding at a time; frames for any other seq are Dropped.
- Inside a session only sealed replies that verify count (Reply, Refused). A reply
  in clear to the outstanding request (an ERROR of any reason, or anything else)
  is Unauthenticated: it proves nothing about what the pump did, because anyone on
  the line can send it. The request stays outstanding, so a genuine sealed reply
  that follows still counts. What an Unauthenticated answer means for a read or a
  write is the caller's decision (for ithcli: writes/verdicts.py).
- The HELLO reply must speak our protocol version; the AUTH reply must carry the
  pump's proof over the same transcript, or the handshake fails (HandshakeError).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from . import security
from .bodies import AuthRequest, AuthResponse, Body, ErrorResponse, HelloRequest, HelloResponse, Request, expect
from .codec import build_payload, decode, encode
from .constants import PROTOCOL_VERSION, Command, ErrorReason, Flag, Role
from .errors import FrameError, ProtocolError
from .framing import FrameDecoder, RawFrame


class HandshakeError(ProtocolError):
    """The handshake cannot go on: another protocol version, or the pump's proof is wrong."""


class VersionMismatch(HandshakeError):
    """The pump speaks another protocol version (both are named in the message)."""

    def __init__(self, pump_version: int):
        super().__init__(f"the pump speaks protocol version {pump_version}; this programmer speaks "
                         f"version {PROTOCOL_VERSION}: no session was opened")
        self.pump_version = pump_version


# --- events ------------------------------------------------------------------


@dataclass(frozen=True)
class HelloReply:
    """The pump's HELLO: which key it holds for the role asked (key_id), and its nonce."""

    key_id: bytes
    protocol_version: int


@dataclass(frozen=True)
class SessionOpen:
    """AUTH verified both ways: every frame from now on is sealed."""

    role: Role


@dataclass(frozen=True)
class Reply:
    """The authenticated answer to the outstanding request (sealed inside a session)."""

    command: Command
    body: Body  # the reply class of the request (bodies.reply_to narrows it)


@dataclass(frozen=True)
class Refused:
    """An ERROR answering the outstanding request. `authenticated` is False only for the
    handshake's own requests (HELLO and AUTH are answered in clear by design)."""

    reason: ErrorReason
    detail: str
    authenticated: bool


@dataclass(frozen=True)
class Unauthenticated:
    """A frame in clear answering the outstanding request inside a session: proves nothing."""

    command: int
    reason: ErrorReason | None  # when it was an ERROR
    detail: str

    def describe(self) -> str:
        if self.reason is None:
            return f"a reply in clear (command 0x{self.command:02x})"
        return f"ERROR {self.reason.name} in clear" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Invalid:
    """An authenticated reply whose payload is not valid protocol (a pump bug, not noise)."""

    why: str


@dataclass(frozen=True)
class Dropped:
    """Bytes that were not an answer: line noise (`corrupt`) or a frame for another seq."""

    why: str
    corrupt: bool


Event = HelloReply | SessionOpen | Reply | Refused | Unauthenticated | Invalid | Dropped

#: the events that answer the outstanding request for good
DECISIVE = (HelloReply, SessionOpen, Reply, Refused, Invalid)


class ClientSession:
    """One connection's handshake, sealing and reply matching, for the programmer."""

    def __init__(self, seq: int | None = None):
        self.decoder = FrameDecoder()
        self._seq = random.randrange(0x10000) if seq is None else seq & 0xFFFF
        self.channel: security.SecureChannel | None = None
        self.role: Role | None = None
        self.pending: tuple[int, Command] | None = None  # (seq, command) awaiting an answer
        self._hello_request: bytes | None = None
        self._transcript: bytes | None = None  # th1 after HELLO, th2 after AUTH was sent
        self._key: bytes | None = None

    @property
    def is_open(self) -> bool:
        return self.channel is not None

    @property
    def seq(self) -> int:
        """The seq of the last request built."""
        return self._seq

    # --- building requests ------------------------------------------------------
    def hello(self, role: Role, nonce: bytes | None = None) -> bytes:
        """Start a handshake (any session on this connection ends). `nonce` for test vectors only."""
        self.channel = None
        self.role = Role(role)
        self._transcript = self._key = None
        body = HelloRequest(PROTOCOL_VERSION, security.new_nonce() if nonce is None else nonce, self.role)
        self._hello_request = build_payload(Command.HELLO, body)
        return self._clear(body)

    def authenticate(self, key: bytes) -> bytes:
        """The AUTH request proving `key`, once a HelloReply came. The pump's answer is
        checked against the same key and transcript when it arrives."""
        if self._transcript is None or self.role is None:
            raise HandshakeError("AUTH before the pump's HELLO reply")
        proof = security.client_proof(key, self._transcript)
        body = AuthRequest(self.role, proof)
        self._transcript = security.transcript_add(self._transcript, build_payload(Command.AUTH, body))
        self._key = key
        return self._clear(body)

    def request(self, body: Request[Any]) -> bytes:
        """A request (its command is its body's): sealed inside a session, in clear before one
        (only HELLO and AUTH are served in clear; an unauthenticated client gets
        NOT_AUTHENTICATED for the rest)."""
        if self.channel is None:
            return self._clear(body)
        command = body.COMMAND
        seq = self._next_seq()
        self.pending = (seq, command)
        return self.channel.seal(int(command), build_payload(command, body), seq=seq, response=False)

    def _clear(self, body: Request[Any]) -> bytes:
        command = body.COMMAND
        seq = self._next_seq()
        self.pending = (seq, command)
        return encode(command, body, seq=seq)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def forget(self) -> None:
        """Stop waiting for the outstanding request (a timeout) and drop any half frame."""
        self.pending = None
        self.decoder.reset()

    def close(self) -> None:
        """The session is over (the pump reset, or the caller gives it up)."""
        self.channel = None
        self.forget()

    # --- receiving --------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Every event in these bytes. Raises HandshakeError when the handshake cannot go on."""
        out: list[Event] = []
        for item in self.decoder.feed(data):
            if isinstance(item, FrameError):
                out.append(Dropped(str(item), corrupt=True))
                continue
            try:
                event = self._frame(item)
            except HandshakeError:
                self.forget()  # the handshake is over: nothing after it in these bytes counts
                raise
            out.append(event)
            if isinstance(event, DECISIVE):
                self.pending = None
        return out

    def _frame(self, frame: RawFrame) -> Event:
        if self.pending is None or not frame.is_response or frame.seq != self.pending[0]:
            return Dropped(f"a frame for seq {frame.seq} (cmd 0x{frame.command:02x}) that answers nothing "
                           "outstanding", corrupt=False)
        command = self.pending[1]
        sealed = bool(frame.flags & Flag.AUTH)
        if self.channel is not None:
            if not sealed:
                return self._unauthenticated(frame)
            try:
                frame = self.channel.open(frame)
            except security.AuthError as exc:
                return Dropped(f"a reply failed authentication: {exc}", corrupt=True)
        elif sealed:
            return Dropped("a sealed frame outside a session", corrupt=True)
        try:
            message = decode(frame)
        except ProtocolError as exc:
            return Invalid(f"invalid reply to {command.name}: {exc}")
        if message.command == Command.ERROR:
            if command in (Command.HELLO, Command.AUTH):
                self._hello_request = self._transcript = self._key = None
            error = expect(message.body, ErrorResponse)
            return Refused(error.reason, error.detail, authenticated=sealed)
        if message.command != command:
            return Invalid(f"the pump answered {command.name} with {message.command.name}")
        if command == Command.HELLO and self.channel is None:
            return self._hello_reply(frame, expect(message.body, HelloResponse))
        if command == Command.AUTH and self.channel is None:
            return self._auth_reply(frame, expect(message.body, AuthResponse))
        return Reply(command, message.body)

    def _unauthenticated(self, frame: RawFrame) -> Unauthenticated:
        try:
            message = decode(frame)
        except ProtocolError:
            return Unauthenticated(frame.command, None, "")
        if message.command == Command.ERROR:
            error = expect(message.body, ErrorResponse)
            return Unauthenticated(frame.command, error.reason, error.detail)
        return Unauthenticated(frame.command, None, "")

    def _hello_reply(self, frame: RawFrame, body: HelloResponse) -> HelloReply:
        if body.protocol_version != PROTOCOL_VERSION:
            raise VersionMismatch(body.protocol_version)
        if self._hello_request is None:
            raise HandshakeError("a HELLO reply without a HELLO")
        self._transcript = security.transcript_hello(self._hello_request, frame.payload)
        return HelloReply(bytes(body.key_id), body.protocol_version)

    def _auth_reply(self, frame: RawFrame, body: AuthResponse) -> SessionOpen:
        if self._transcript is None or self._key is None or self.role is None:
            raise HandshakeError("an AUTH reply without an AUTH")
        expected = security.pump_proof(self._key, self._transcript)
        if not security.proofs_equal(bytes(body.proof), expected):
            self._transcript = self._key = None
            raise HandshakeError("the pump did not prove it holds the key: it may be an impostor")
        th3 = security.transcript_add(self._transcript, frame.payload)
        self.channel = security.SecureChannel.derive(self._key, th3, self.role, pump_side=False)
        self._transcript = self._key = None
        return SessionOpen(self.role)
