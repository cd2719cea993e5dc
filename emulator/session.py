"""One connection's handshake and secure channel (protocol/security.py), pump side.

    HELLO {client_nonce, role}  -> {pump_nonce (fresh), key_id}   ends any session
    AUTH  {role, client_proof}  -> {pump_proof}                   opens one (in clear)
    then every frame both ways is sealed by the SecureChannel.

Pure: no I/O and no clock of its own. The pump counts and logs refusals; the
per-pump Backoff (security_state.py) is shared by every connection, so opening
more connections buys an attacker no extra guesses.
"""
from __future__ import annotations

from protocol import PROTOCOL_VERSION, Command, ErrorReason, RawFrame, Role, security

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
        self.backoff = backoff
        self._hello: tuple[bytes, bytes, Role] | None = None  # (client nonce, pump nonce, role)
        self.channel: security.SecureChannel | None = None

    @property
    def role(self) -> Role | None:
        return Role(self.channel.role) if self.channel is not None else None

    def end(self) -> None:
        self._hello = None
        self.channel = None

    def hello(self, body: dict) -> dict:
        """First half of the handshake: always a new one (any session on this connection ends)."""
        self.end()
        if body["protocol_version"] < PROTOCOL_VERSION:  # an older programmer: not an auth failure
            raise Refusal(ErrorReason.UNSUPPORTED_VERSION,
                          f"this pump speaks protocol version {PROTOCOL_VERSION}; the programmer's highest is "
                          f"{body['protocol_version']}")
        role = Role(body["role"])
        key = self.keys.get(role)
        if key is None:
            raise AuthRefusal(ErrorReason.NOT_PERMITTED, f"this pump holds no {role.name} key")
        pump_nonce = security.new_nonce()
        self._hello = (bytes(body["client_nonce"]), pump_nonce, role)
        return {"protocol_version": PROTOCOL_VERSION, "pump_nonce": pump_nonce, "key_id": security.key_id(key)}

    def auth(self, body: dict) -> dict:
        """Second half: check the programmer's proof, prove ours, open the channel."""
        self.channel = None  # an AUTH restarts the handshake too
        if self._hello is None:
            raise AuthRefusal(ErrorReason.NOT_AUTHENTICATED, "AUTH without a HELLO on this connection")
        if self.backoff.retry_in() > 0:  # the proof is not even looked at
            raise AuthRefusal(ErrorReason.RATE_LIMITED,
                              f"too many failed attempts: {self.backoff.retry_in_text()}")
        client_nonce, pump_nonce, role = self._hello
        self._hello = None  # one proof per pump nonce
        key = self.keys[role]
        expected = security.client_proof(key, client_nonce, pump_nonce, role)
        # compare the proof even when the role differs, so timing tells nothing either
        good = security.proofs_equal(bytes(body["proof"]), expected)
        if not good or Role(body["role"]) != role:
            self.backoff.failed()
            raise AuthRefusal(ErrorReason.AUTH_FAILED, "authentication failed")
        self.backoff.succeeded()
        self.channel = security.SecureChannel.derive(key, client_nonce, pump_nonce, role, pump_side=True)
        return {"proof": security.pump_proof(key, client_nonce, pump_nonce, role)}

    def open(self, frame: RawFrame) -> RawFrame:
        """Verify and decrypt a sealed frame: NoSession, or security.AuthError (drop it)."""
        if self.channel is None:
            raise NoSession()
        return self.channel.open(frame)

    def seal(self, command: int, payload: bytes, seq: int) -> bytes:
        return self.channel.seal(command, payload, seq=seq, response=True)

    def check_permitted(self, command: Command) -> None:
        if self.role is Role.CLINICIAN or command in READER_COMMANDS:
            return
        raise AuthRefusal(ErrorReason.NOT_PERMITTED,
                          f"{command.name} needs a CLINICIAN session (this one is {self.role.name})")
