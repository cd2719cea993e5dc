"""One connection's handshake and secure channel (protocol/security.py), pump side.

    HELLO HelloRequest(version, client_nonce, role) -> HelloResponse(version, pump_nonce (fresh), key_id)
          ends any session
    AUTH  AuthRequest(role, client_proof)            -> AuthResponse(pump_proof): opens one (in clear)
    then every frame both ways is sealed by the SecureChannel.

The proofs and the session keys cover the transcript of both HELLOs and the AUTH
request (security.py), so a HELLO rewritten in flight (role, version) fails AUTH.

Pure: no I/O and no clock of its own. The pump counts and logs refusals pump-wide
(security_state.FailureLog); the AUTH back-off is this connection's own
(security_state.Backoff), so nobody without a key can keep a programmer that holds
one out of its own connection (docs/security.md, "Back-off").
"""
from __future__ import annotations

from protocol import PROTOCOL_VERSION, Command, ErrorReason, RawFrame, Role, bodies, build_payload, security

from .pump import Refusal
from .security_state import Backoff

#: what a READER session may ask for; a CLINICIAN may do everything
READER_COMMANDS = frozenset({Command.INTERROGATE, Command.READ_LOG, Command.READ_PROGRAM})


class AuthRefusal(Refusal):
    """A refusal for authentication or authorisation: counted and logged by the pump."""


class NoSession(Exception):
    """A sealed frame arrived on a connection without an authenticated session."""


class Session:
    def __init__(self, keys: dict[Role, bytes], backoff: Backoff):
        self.keys = keys
        self.backoff = backoff  # this connection's
        self._hello: tuple[bytes, Role] | None = None  # (transcript th1, role) after a HELLO
        self.channel: security.SecureChannel | None = None

    @property
    def role(self) -> Role | None:
        return Role(self.channel.role) if self.channel is not None else None

    def end(self) -> None:
        self._hello = None
        self.channel = None

    def hello(self, body: bodies.HelloRequest, payload: bytes) -> bodies.HelloResponse:
        """First half of the handshake: always a new one (any session on this connection ends)."""
        self.end()
        if body.protocol_version < PROTOCOL_VERSION:  # an older programmer: not an auth failure
            raise Refusal(ErrorReason.UNSUPPORTED_VERSION,
                          f"this pump speaks protocol version {PROTOCOL_VERSION}; the programmer's highest is "
                          f"{body.protocol_version}")
        role = Role(body.role)
        key = self.keys.get(role)
        if key is None:
            raise AuthRefusal(ErrorReason.NOT_PERMITTED, f"this pump holds no {role.name} key")
        reply = bodies.HelloResponse(PROTOCOL_VERSION, security.new_nonce(), security.key_id(key))
        # the transcript is over the payloads exactly as sent and received
        th1 = security.transcript_hello(payload, build_payload(Command.HELLO, reply, response=True))
        self._hello = (th1, role)
        return reply

    def auth(self, body: bodies.AuthRequest, payload: bytes) -> bodies.AuthResponse:
        """Second half: check the programmer's proof, prove ours, open the channel."""
        self.channel = None  # an AUTH restarts the handshake too
        if self._hello is None:
            raise AuthRefusal(ErrorReason.NOT_AUTHENTICATED, "AUTH without a HELLO on this connection")
        if self.backoff.retry_in() > 0:  # the proof is not even looked at
            raise AuthRefusal(ErrorReason.RATE_LIMITED,
                              f"too many failed attempts: {self.backoff.retry_in_text()}")
        th1, role = self._hello
        self._hello = None  # one proof per pump nonce
        key = self.keys[role]
        expected = security.client_proof(key, th1)
        # compare the proof even when the role differs, so timing tells nothing either
        good = security.proofs_equal(bytes(body.proof), expected)
        if not good or Role(body.role) != role:
            self.backoff.failed()
            raise AuthRefusal(ErrorReason.AUTH_FAILED, "authentication failed")
        self.backoff.succeeded()
        th2 = security.transcript_add(th1, payload)
        reply = bodies.AuthResponse(security.pump_proof(key, th2))
        th3 = security.transcript_add(th2, build_payload(Command.AUTH, reply, response=True))
        self.channel = security.SecureChannel.derive(key, th3, role, pump_side=True)
        return reply

    def open(self, frame: RawFrame) -> RawFrame:
        """Verify and decrypt a sealed frame: NoSession, or security.AuthError (drop it)."""
        if self.channel is None:
            raise NoSession()
        return self.channel.open(frame)

    def seal(self, command: int, payload: bytes, seq: int) -> bytes:
        if self.channel is None:
            raise NoSession()
        return self.channel.seal(command, payload, seq=seq, response=True)

    def check_permitted(self, command: Command) -> None:
        role = self.role
        if role is Role.CLINICIAN or command in READER_COMMANDS:
            return
        raise AuthRefusal(ErrorReason.NOT_PERMITTED, f"{command.name} needs a CLINICIAN session "
                          f"(this one is {role.name if role is not None else 'not open'})")
