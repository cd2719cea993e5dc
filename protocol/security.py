"""The secure link: per-pump keys, mutual challenge-response, sealed frames.

Handshake (both sides hold the same 32-byte long-term key for a role):

    programmer -> HELLO {version, client_nonce(16), role}
    pump       -> HELLO {version, pump_nonce(16), key_id(8)}      (no serial, no therapy)
    programmer -> AUTH  {client_proof = HMAC(K, "ithcli-client" | nc | np | role)}
    pump       -> AUTH  {pump_proof   = HMAC(K, "ithcli-pump"   | np | nc | role)}

key_id (HMAC(K, "ithcli-key-id")[:8]) lets the programmer pick the right key
without the pump revealing its serial number. Both sides then derive two
AES-256-GCM session keys (one per direction) with HKDF-SHA256 over both nonces,
so frames from another session never verify.

Every frame after AUTH carries Flag.AUTH and a 24-byte trailer: a 64-bit counter
(per direction, strictly increasing: replays and stale frames are refused) and
the 128-bit GCM tag. The header and counter are authenticated; the payload is
encrypted (serial numbers and therapy are confidential). The CRC stays, over the
ciphertext, for line noise; the tag is for attackers.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from .constants import AUTH_TRAILER_SIZE, PROTOCOL_VERSION, Flag
from .errors import ProtocolError
from .framing import RawFrame, encode_frame, header_bytes
from .messages import KEY_ID_SIZE, NONCE_SIZE, PROOF_SIZE  # noqa: F401  (re-exported)

KEY_SIZE = 32
_COUNTER = struct.Struct(">Q")
_TO_PUMP = b"\x00\x00\x00\x01"
_TO_PROGRAMMER = b"\x00\x00\x00\x02"


class AuthError(ProtocolError):
    """A frame or handshake failed authentication (bad tag, replay, wrong key)."""

    kind = "auth-failed"


def new_key() -> bytes:
    return os.urandom(KEY_SIZE)


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def key_id(key: bytes) -> bytes:
    return hmac.new(key, b"ithcli-key-id", hashlib.sha256).digest()[:KEY_ID_SIZE]


def client_proof(key: bytes, client_nonce: bytes, pump_nonce: bytes, role: int) -> bytes:
    return hmac.new(key, b"ithcli-client" + client_nonce + pump_nonce + bytes([role]), hashlib.sha256).digest()


def pump_proof(key: bytes, client_nonce: bytes, pump_nonce: bytes, role: int) -> bytes:
    return hmac.new(key, b"ithcli-pump" + pump_nonce + client_nonce + bytes([role]), hashlib.sha256).digest()


def proofs_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _hkdf(key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869), stdlib only."""
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


@dataclass
class SecureChannel:
    """One authenticated session, from one side's point of view. Not thread-safe."""

    send_key: bytes
    recv_key: bytes
    send_dir: bytes
    recv_dir: bytes
    role: int
    sent: int = 0  # last counter sent
    received: int = 0  # highest counter accepted

    @classmethod
    def derive(cls, key: bytes, client_nonce: bytes, pump_nonce: bytes, role: int, *, pump_side: bool):
        material = _hkdf(key, client_nonce + pump_nonce, b"ithcli-session" + bytes([role]), 2 * KEY_SIZE)
        to_pump, to_programmer = material[:KEY_SIZE], material[KEY_SIZE:]
        if pump_side:
            return cls(to_programmer, to_pump, _TO_PROGRAMMER, _TO_PUMP, role)
        return cls(to_pump, to_programmer, _TO_PUMP, _TO_PROGRAMMER, role)

    def seal(self, command: int, payload: bytes, *, seq: int, response: bool) -> bytes:
        """A whole frame: header in clear (authenticated), payload encrypted, trailer, CRC."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.sent += 1
        counter = _COUNTER.pack(self.sent)
        flags = int(Flag.AUTH) | (int(Flag.RESPONSE) if response else 0)
        aad = header_bytes(PROTOCOL_VERSION, flags, seq, command, len(payload)) + counter
        sealed = AESGCM(self.send_key).encrypt(self.send_dir + counter, payload, aad)
        ciphertext, tag = sealed[:-16], sealed[-16:]
        return encode_frame(command, ciphertext, seq=seq, response=response, auth=counter + tag)

    def open(self, frame: RawFrame) -> RawFrame:
        """Verify and decrypt; the returned frame carries the plaintext payload.

        Raises AuthError for a missing trailer, a bad tag (wrong key, other session,
        any altered bit) or a counter not above the last accepted one (replay).
        """
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if frame.auth is None or len(frame.auth) != AUTH_TRAILER_SIZE:
            raise AuthError("frame is not authenticated", frame.raw)
        counter_bytes, tag = frame.auth[:8], frame.auth[8:]
        (counter,) = _COUNTER.unpack(counter_bytes)
        aad = header_bytes(frame.version, frame.flags, frame.seq, frame.command, len(frame.payload)) + counter_bytes
        try:
            plaintext = AESGCM(self.recv_key).decrypt(self.recv_dir + counter_bytes, frame.payload + tag, aad)
        except InvalidTag:
            raise AuthError("authentication tag does not verify", frame.raw) from None
        if counter <= self.received:
            raise AuthError(f"replayed or stale counter {counter} (last accepted {self.received})", frame.raw)
        self.received = counter
        return frame._replace(payload=plaintext)
