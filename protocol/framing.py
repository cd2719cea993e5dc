"""Bytes <-> frames. Nothing here touches a transport or knows message layouts.

Frame on the wire (big-endian):

    sync(2) version(1) flags(1) seq(2) command(1) length(2) payload(length)
    [auth trailer(24) when Flag.AUTH] crc32c(4) over version..trailer

`parse_frame(buffer)` looks at the start of a buffer and says how many bytes it
used and what they were: a RawFrame, a FrameError (bytes to drop), or nothing yet
(wait for more). `FrameDecoder.feed(data)` keeps the buffer across reads and
resynchronises after garbage: a frame that fails any check costs only its first
byte, so a real frame starting inside it is still found.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from .constants import (
    AUTH_TRAILER_SIZE,
    CRC_SIZE,
    HEADER_SIZE,
    HELLO_FRAME_VERSION,
    KNOWN_FLAGS,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    SYNC,
    Command,
    Flag,
)
from .crc import crc32c
from .errors import CrcError, EncodeError, FlagsError, FrameError, LengthError, VersionError

_HEADER = struct.Struct(">BBHBH")
_CRC = struct.Struct(">I")
_SYNC_LEN = len(SYNC)
_PREFIX = _SYNC_LEN + HEADER_SIZE
# plain ints on the parse path: an IntFlag operation costs ~0.3 us, an int one ~30 ns
_RESPONSE = int(Flag.RESPONSE)
_AUTH = int(Flag.AUTH)
_UNKNOWN_FLAGS = 0xFF & ~int(KNOWN_FLAGS)
_HELLO = int(Command.HELLO)
_ERROR_REPLY = int(Command.ERROR)


class RawFrame(NamedTuple):
    """A frame whose sync, version, flags, length and CRC have all been checked.

    Immutable; a NamedTuple because it is made once per frame received (half the cost
    of a frozen dataclass)."""

    version: int
    flags: int
    seq: int
    command: int
    payload: bytes
    auth: bytes | None
    raw: bytes

    @property
    def is_response(self) -> bool:
        return bool(self.flags & _RESPONSE)


def _negotiation_frame(version: int, flags: int, command: int) -> bool:
    """A clear HELLO, or a clear ERROR reply, framed at HELLO_FRAME_VERSION (see constants)."""
    if version != HELLO_FRAME_VERSION or flags & _AUTH:
        return False
    return command == _HELLO or (command == _ERROR_REPLY and bool(flags & _RESPONSE))


def frame_version(command: int) -> int:
    """The header version a frame of `command` carries: HELLO frames are always version 1."""
    return HELLO_FRAME_VERSION if command == _HELLO else PROTOCOL_VERSION


def header_bytes(version: int, flags: int, seq: int, command: int, length: int) -> bytes:
    """The 7 header bytes after the sync word (also the secure link's associated data)."""
    return _HEADER.pack(version, flags, seq, command, length)


def encode_frame(
    command: int,
    payload: bytes,
    *,
    seq: int,
    response: bool = False,
    auth: bytes | None = None,
    version: int | None = None,
) -> bytes:
    if not 0 <= seq <= 0xFFFF:
        raise EncodeError(f"sequence number {seq} is outside 0..65535")
    if not 0 <= command <= 0xFF:
        raise EncodeError(f"command code {command} is outside 0..255")
    if len(payload) > MAX_PAYLOAD:
        raise EncodeError(f"payload of {len(payload)} bytes exceeds the maximum {MAX_PAYLOAD}")
    if version is None:  # a sealed frame is never a negotiation frame, whatever its command
        version = frame_version(command) if auth is None else PROTOCOL_VERSION
    flags = _RESPONSE if response else 0
    if auth is not None:
        if len(auth) != AUTH_TRAILER_SIZE:
            raise EncodeError(f"auth trailer must be {AUTH_TRAILER_SIZE} bytes")
        flags |= _AUTH
    body = _HEADER.pack(version, flags, seq, command, len(payload)) + payload + (auth or b"")
    return SYNC + body + _CRC.pack(crc32c(body))


def parse_frame(buffer: bytes | bytearray) -> tuple[int, RawFrame | FrameError | None]:
    """Examine the start of buffer; return (bytes used, frame or error or None).

    (0, None): need more bytes. (n, FrameError): drop n bytes, report the error.
    (n, RawFrame): a good frame of n bytes. Never raises.
    """
    start = buffer.find(SYNC)
    if start < 0:
        # keep a trailing first sync byte: the rest of the sync word may follow
        keep = 1 if buffer[-1:] == SYNC[:1] else 0
        used = len(buffer) - keep
        if used:
            return used, FrameError(f"{used} bytes of garbage discarded", bytes(buffer[:used]))
        return 0, None
    if start > 0:
        return start, FrameError(f"{start} bytes of garbage discarded", bytes(buffer[:start]))
    if len(buffer) < _PREFIX:
        return 0, None
    version, flags, seq, command, length = _HEADER.unpack_from(buffer, _SYNC_LEN)
    # any header check failing costs one byte: resynchronise on the next sync word
    if version != PROTOCOL_VERSION and not _negotiation_frame(version, flags, command):
        return 1, VersionError(f"unsupported protocol version {version}", bytes(buffer[:_PREFIX]))
    if flags & _UNKNOWN_FLAGS:
        return 1, FlagsError(f"unknown flag bits 0x{flags:02x}", bytes(buffer[:_PREFIX]))
    if length > MAX_PAYLOAD:
        return 1, LengthError(
            f"payload length {length} exceeds the maximum {MAX_PAYLOAD}", bytes(buffer[:_PREFIX])
        )
    trailer = AUTH_TRAILER_SIZE if flags & _AUTH else 0
    total = _PREFIX + length + trailer + CRC_SIZE
    if len(buffer) < total:
        return 0, None
    frame = bytes(buffer[:total])
    (crc,) = _CRC.unpack_from(frame, total - CRC_SIZE)
    if crc32c(frame[_SYNC_LEN : total - CRC_SIZE]) != crc:
        return 1, CrcError("CRC mismatch", frame)
    payload_end = _PREFIX + length
    auth = frame[payload_end : payload_end + trailer] if trailer else None
    # positional: version, flags, seq, command, payload, auth, raw
    return total, RawFrame(version, flags, seq, command, frame[_PREFIX:payload_end], auth, frame)


class FrameDecoder:
    """Stream decoder: feed() any chunk, get back every complete frame and error.

    Split and merged reads are ordinary: bytes are buffered until a frame is whole.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.discarded = 0  # bytes dropped as garbage or as parts of bad frames

    def feed(self, data: bytes) -> list[RawFrame | FrameError]:
        self._buffer += data
        out: list[RawFrame | FrameError] = []
        while self._buffer:
            used, item = parse_frame(self._buffer)
            if used == 0 or item is None:  # (0, None): wait for more bytes
                break
            del self._buffer[:used]
            if isinstance(item, FrameError):
                self.discarded += used
                # merge consecutive garbage reports: one report per run of garbage
                if out and type(out[-1]) is FrameError and type(item) is FrameError:
                    out[-1] = FrameError(
                        f"{len(out[-1].raw) + used} bytes of garbage discarded",
                        out[-1].raw + item.raw,
                    )
                    continue
            out.append(item)
        return out

    def flush_stale(self) -> list[RawFrame | FrameError]:
        """Give up on a partial frame after the line went quiet (a truncated frame).

        Transports call this after an idle gap. The first byte of the stale frame
        is dropped and the rest re-scanned, so a good frame inside it still parses.
        """
        if not self._buffer:
            return []
        stale = bytes(self._buffer)
        del self._buffer[:1]
        self.discarded += 1
        return [FrameError(f"truncated frame of {len(stale)} bytes discarded", stale)] + self.feed(b"")

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    def reset(self) -> None:
        self._buffer.clear()
