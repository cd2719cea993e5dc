"""The secure link: per-pump keys, a handshake bound to its transcript, sealed frames.

Protocol version 2. docs/protocol.md ("Secure session") gives every byte of what
follows, with known-answer vectors that tests/test_protocol_vectors.py checks here.

    programmer -> HELLO {version, client_nonce(16), role}          (in clear)
    pump       -> HELLO {version, pump_nonce(16), key_id(8)}       (in clear; no serial)
    programmer -> AUTH  {role, client_proof}                       (in clear)
    pump       -> AUTH  {pump_proof}                               (in clear)

The proofs and the session keys cover a running transcript hash of every payload
both sides sent before them (versions, role, both nonces, key id, the client's
proof), so a man-in-the-middle who rewrites any of it (a READER HELLO turned into
CLINICIAN, a version changed) makes the proofs disagree and no session opens:

    th1 = SHA-256("ithcli/2 transcript" | HELLO request payload | HELLO response payload)
    client_proof = HMAC-SHA256(K, "ithcli/2 client proof" | th1)
    th2 = SHA-256(th1 | AUTH request payload)          (role | client_proof)
    pump_proof   = HMAC-SHA256(K, "ithcli/2 pump proof" | th2)
    th3 = SHA-256(th2 | AUTH response payload)         (pump_proof)
    keys = HKDF-SHA256(IKM=K, salt=th3, info="ithcli/2 session keys", L=64)
           keys[0:32] seals programmer -> pump, keys[32:64] pump -> programmer

key_id (HMAC-SHA256(K, "ithcli-key-id")[:8]) lets the programmer pick the right key
without the pump revealing its serial number.

Every frame after AUTH carries Flag.AUTH and a 24-byte trailer: a 64-bit counter
(per direction, strictly increasing: replays and stale frames are refused) and the
128-bit GCM tag. The GCM nonce is the 4-byte direction (00000001 towards the pump,
00000002 towards the programmer) then the counter; the associated data is the 7
header bytes then the counter. The payload is encrypted; the CRC stays, over the
ciphertext, for line noise; the tag is for attackers.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from .constants import AUTH_TRAILER_SIZE, PROTOCOL_VERSION, Flag
from .errors import ProtocolError
from .framing import RawFrame, encode_frame, header_bytes
from .messages import KEY_ID_SIZE, NONCE_SIZE
from .messages import PROOF_SIZE as PROOF_SIZE  # re-exported: every handshake size is here too

KEY_SIZE = 32
_COUNTER = struct.Struct(">Q")
TO_PUMP = b"\x00\x00\x00\x01"
TO_PROGRAMMER = b"\x00\x00\x00\x02"

TRANSCRIPT_LABEL = b"ithcli/2 transcript"
CLIENT_PROOF_LABEL = b"ithcli/2 client proof"
PUMP_PROOF_LABEL = b"ithcli/2 pump proof"
SESSION_KEYS_INFO = b"ithcli/2 session keys"
KEY_ID_LABEL = b"ithcli-key-id"


class AuthError(ProtocolError):
    """A frame or handshake failed authentication (bad tag, replay, wrong key)."""

    kind = "auth-failed"


def new_key() -> bytes:
    return os.urandom(KEY_SIZE)


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def key_id(key: bytes) -> bytes:
    return hmac.new(key, KEY_ID_LABEL, hashlib.sha256).digest()[:KEY_ID_SIZE]


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def transcript_hello(hello_request: bytes, hello_response: bytes) -> bytes:
    """th1: both HELLO payloads exactly as sent (versions, client nonce, role, pump nonce, key id)."""
    return _sha256(TRANSCRIPT_LABEL, hello_request, hello_response)


def transcript_add(transcript: bytes, payload: bytes) -> bytes:
    """The next transcript hash: th2 = add(th1, AUTH request), th3 = add(th2, AUTH response)."""
    return _sha256(transcript, payload)


def client_proof(key: bytes, th1: bytes) -> bytes:
    return hmac.new(key, CLIENT_PROOF_LABEL + th1, hashlib.sha256).digest()


def pump_proof(key: bytes, th2: bytes) -> bytes:
    return hmac.new(key, PUMP_PROOF_LABEL + th2, hashlib.sha256).digest()


def proofs_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def hkdf_sha256(key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869), stdlib only."""
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def session_keys(key: bytes, th3: bytes) -> tuple[bytes, bytes]:
    """(programmer -> pump key, pump -> programmer key) for the session the transcript th3 ends."""
    material = hkdf_sha256(key, th3, SESSION_KEYS_INFO, 2 * KEY_SIZE)
    return material[:KEY_SIZE], material[KEY_SIZE:]


_AUTH, _RESPONSE = int(Flag.AUTH), int(Flag.RESPONSE)


def gcm_nonce(direction: bytes, counter: int) -> bytes:
    return direction + _COUNTER.pack(counter)


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
    # each direction's cipher, its key schedule made once a session (~2 us a frame otherwise)
    _seal_with: Any = field(default=None, init=False, repr=False, compare=False)
    _open_with: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def derive(cls, key: bytes, th3: bytes, role: int, *, pump_side: bool) -> SecureChannel:
        to_pump, to_programmer = session_keys(key, th3)
        if pump_side:
            return cls(to_programmer, to_pump, TO_PROGRAMMER, TO_PUMP, role)
        return cls(to_pump, to_programmer, TO_PUMP, TO_PROGRAMMER, role)

    def seal(self, command: int, payload: bytes, *, seq: int, response: bool) -> bytes:
        """A whole frame: header in clear (authenticated), payload encrypted, trailer, CRC."""
        if self._seal_with is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._seal_with = AESGCM(self.send_key)
        self.sent += 1
        counter = _COUNTER.pack(self.sent)
        flags = _AUTH | (_RESPONSE if response else 0)
        aad = header_bytes(PROTOCOL_VERSION, flags, seq, command, len(payload)) + counter
        sealed = self._seal_with.encrypt(self.send_dir + counter, payload, aad)
        ciphertext, tag = sealed[:-16], sealed[-16:]
        return encode_frame(command, ciphertext, seq=seq, response=response, auth=counter + tag,
                            version=PROTOCOL_VERSION)

    def open(self, frame: RawFrame) -> RawFrame:
        """Verify and decrypt; the returned frame carries the plaintext payload.

        Raises AuthError for a missing trailer, a bad tag (wrong key, other session,
        any altered bit) or a counter not above the last accepted one (replay).
        """
        from cryptography.exceptions import InvalidTag

        if self._open_with is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._open_with = AESGCM(self.recv_key)
        if frame.auth is None or len(frame.auth) != AUTH_TRAILER_SIZE:
            raise AuthError("frame is not authenticated", frame.raw)
        counter_bytes, tag = frame.auth[:8], frame.auth[8:]
        (counter,) = _COUNTER.unpack(counter_bytes)
        aad = header_bytes(frame.version, frame.flags, frame.seq, frame.command, len(frame.payload)) + counter_bytes
        try:
            plaintext = self._open_with.decrypt(self.recv_dir + counter_bytes, frame.payload + tag, aad)
        except InvalidTag:
            raise AuthError("authentication tag does not verify", frame.raw) from None
        if counter <= self.received:
            raise AuthError(f"replayed or stale counter {counter} (last accepted {self.received})", frame.raw)
        self.received = counter
        return frame._replace(payload=plaintext)
