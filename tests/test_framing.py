"""Framing: bytes <-> checked frames, resynchronisation, limits. Pure logic, no I/O."""
from __future__ import annotations

import struct

import pytest

from protocol.constants import (
    AUTH_TRAILER_SIZE,
    CRC_SIZE,
    HEADER_SIZE,
    MAX_FRAME,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    SYNC,
    Flag,
)
from protocol.crc import crc32c
from protocol.errors import (
    CrcError,
    EncodeError,
    FlagsError,
    FrameError,
    LengthError,
    ProtocolError,
    VersionError,
)
from protocol.framing import FrameDecoder, RawFrame, encode_frame, parse_frame

PREFIX = len(SYNC) + HEADER_SIZE


def frame(seq=1, command=0x02, payload=b"", response=False, auth=None):
    return encode_frame(command, payload, seq=seq, response=response, auth=auth)


def raw_header(version=PROTOCOL_VERSION, flags=0, seq=0, command=0x02, length=0):
    return SYNC + struct.pack(">BBHBH", version, flags, seq, command, length)


def with_crc(body: bytes) -> bytes:
    """SYNC + body + a correct CRC over body (to forge frames the encoder refuses)."""
    return SYNC + body + struct.pack(">I", crc32c(body))


def frames_of(items):
    return [i for i in items if isinstance(i, RawFrame)]


def errors_of(items):
    return [i for i in items if not isinstance(i, RawFrame)]


def feed_all(chunks):
    decoder = FrameDecoder()
    out = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return decoder, out


# --- encode and parse ---------------------------------------------------------


def test_layout_is_big_endian_and_crc_covers_all_after_sync():
    data = frame(seq=0x1234, command=0x03, payload=b"\x00\x00\x00\x07\x05")
    assert data[:2] == b"\xa5\x5a"
    assert data[2:9] == bytes([PROTOCOL_VERSION, 0, 0x12, 0x34, 0x03, 0x00, 0x05])
    assert data[9:14] == b"\x00\x00\x00\x07\x05"
    assert struct.unpack(">I", data[-4:])[0] == crc32c(data[2:-4])
    assert len(data) == PREFIX + 5 + CRC_SIZE


@pytest.mark.parametrize("payload", [b"", b"\x01", bytes(range(256)) * 4])
@pytest.mark.parametrize("response", [False, True])
def test_round_trip(payload, response):
    data = frame(seq=65535, command=0x7F, payload=payload, response=response)
    used, item = parse_frame(data)
    assert used == len(data)
    assert isinstance(item, RawFrame)
    assert (item.version, item.seq, item.command, item.payload, item.auth, item.raw) == (
        PROTOCOL_VERSION, 65535, 0x7F, payload, None, data,
    )
    assert item.is_response is response
    assert item.flags == (Flag.RESPONSE if response else 0)


def test_max_payload_is_accepted_and_max_frame_holds_it():
    data = frame(payload=bytes(MAX_PAYLOAD), auth=bytes(AUTH_TRAILER_SIZE))
    assert len(data) == MAX_FRAME
    _, out = feed_all([data])
    assert len(out) == 1 and out[0].payload == bytes(MAX_PAYLOAD)


def test_parse_frame_needs_more_bytes():
    data = frame(payload=b"abc")
    for n in range(len(data)):
        assert parse_frame(data[:n]) == (0, None), n


def test_auth_trailer_is_separated_from_payload():
    trailer = bytes(range(AUTH_TRAILER_SIZE))
    data = frame(seq=9, payload=b"\x01", response=True, auth=trailer)
    assert data[3] == Flag.RESPONSE | Flag.AUTH
    assert struct.unpack(">H", data[7:9])[0] == 1  # length excludes the trailer
    assert len(data) == PREFIX + 1 + AUTH_TRAILER_SIZE + CRC_SIZE
    _, out = feed_all([data])
    (item,) = out
    assert item.payload == b"\x01" and item.auth == trailer and item.is_response
    # and the trailer is covered by the CRC
    bad = bytearray(data)
    bad[PREFIX + 1] ^= 0x01
    _, out = feed_all([bytes(bad)])
    assert isinstance(out[0], CrcError)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(seq=-1),
        dict(seq=65536),
        dict(command=-1),
        dict(command=256),
        dict(payload=bytes(MAX_PAYLOAD + 1)),
        dict(auth=b""),
        dict(auth=bytes(AUTH_TRAILER_SIZE - 1)),
        dict(auth=bytes(AUTH_TRAILER_SIZE + 1)),
    ],
)
def test_encode_frame_refuses_out_of_range(kwargs):
    args = dict(seq=0, command=1, payload=b"") | kwargs
    with pytest.raises(EncodeError):
        encode_frame(args.pop("command"), args.pop("payload"), **args)


# --- split and merged reads ---------------------------------------------------


def test_split_at_every_byte_boundary():
    data = frame(seq=7, payload=b"hello, pump", response=True)
    for cut in range(len(data) + 1):
        decoder, out = feed_all([data[:cut], data[cut:]])
        assert [f.raw for f in out] == [data], cut
        assert decoder.pending == 0 and decoder.discarded == 0


def test_split_at_every_pair_of_boundaries_with_auth():
    data = frame(seq=8, payload=b"xyz", auth=bytes(AUTH_TRAILER_SIZE))
    for a in range(len(data) + 1):
        for b in range(a, len(data) + 1, 3):
            _, out = feed_all([data[:a], data[a:b], data[b:]])
            assert [f.raw for f in out] == [data]


def test_one_byte_at_a_time():
    data = frame(payload=bytes(100))
    decoder = FrameDecoder()
    for i, byte in enumerate(data):
        out = decoder.feed(bytes([byte]))
        assert out == [] if i < len(data) - 1 else [f.raw for f in out] == [data]


def test_many_frames_merged_in_one_read():
    frames = [frame(seq=i, payload=bytes([i]) * i) for i in range(50)]
    decoder, out = feed_all([b"".join(frames)])
    assert [f.raw for f in out] == frames
    assert [f.seq for f in out] == list(range(50))
    assert decoder.pending == 0


def test_merged_and_split_reads_together():
    frames = [frame(seq=i, payload=bytes(i % 7)) for i in range(20)]
    stream = b"".join(frames)
    for size in (1, 2, 3, 5, 8, 13, 64):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        _, out = feed_all(chunks)
        assert [f.raw for f in out] == frames, size


# --- garbage and resynchronisation ----------------------------------------------


def test_garbage_before_between_and_after():
    a, b = frame(seq=1), frame(seq=2, payload=b"zz")
    g1, g2, g3 = b"\x00\x01\x02", b"noise", b"\xff\xfe"
    decoder, out = feed_all([g1 + a + g2 + b + g3])
    assert [type(i) for i in out] == [FrameError, RawFrame, FrameError, RawFrame, FrameError]
    assert [i.raw for i in out] == [g1, a, g2, b, g3]
    assert decoder.discarded == len(g1 + g2 + g3)
    assert decoder.pending == 0


def test_garbage_is_reported_once_per_run_even_across_a_lone_sync_byte():
    junk = b"\x11\xa5\x22\xa5\xa5\x33"
    decoder, out = feed_all([junk + frame()])
    assert [type(i) for i in out] == [FrameError, RawFrame]
    assert out[0].raw == junk


def test_trailing_first_sync_byte_is_kept():
    data = frame(seq=3)
    decoder = FrameDecoder()
    out = decoder.feed(b"junk" + data[:1])
    assert [i.raw for i in out] == [b"junk"]
    assert decoder.pending == 1
    assert [f.raw for f in decoder.feed(data[1:])] == [data]


def test_bad_crc_costs_one_byte_and_next_frame_is_decoded():
    good = frame(seq=2, payload=b"ok")
    bad = bytearray(frame(seq=1, payload=b"bad"))
    bad[-1] ^= 0xFF
    decoder, out = feed_all([bytes(bad) + good])
    assert isinstance(out[0], CrcError)
    assert out[0].raw == bytes(bad)
    assert isinstance(out[0], FrameError) and isinstance(out[0], ProtocolError)
    assert frames_of(out) == [parse_frame(good)[1]]
    # the rest of the bad frame was rescanned and discarded as garbage
    assert all(isinstance(e, FrameError) for e in errors_of(out))
    assert decoder.discarded == len(bad)


def test_bad_payload_byte_is_a_crc_error():
    data = bytearray(frame(payload=b"abcdef"))
    data[PREFIX + 2] ^= 0x10
    _, out = feed_all([bytes(data)])
    assert isinstance(out[0], CrcError) and not frames_of(out)


def test_sync_word_inside_garbage_with_bad_version():
    good = frame(seq=5)
    junk = b"\x00" + SYNC + b"\x09\x00"  # a sync word, then version 9
    decoder, out = feed_all([junk + good])
    assert any(isinstance(e, VersionError) for e in out)
    assert frames_of(out) == [parse_frame(good)[1]]
    assert decoder.discarded == len(junk)


def test_false_header_that_swallows_a_real_frame_is_recovered():
    """A plausible header in garbage claims bytes of the real frame; the CRC fails, and
    because a failed frame costs only its first byte the real frame is still found."""
    good = frame(seq=6, payload=b"real")
    fake = raw_header(length=5)  # needs 5 + 4 more bytes: taken from `good`
    decoder, out = feed_all([fake + good])
    assert isinstance(out[0], CrcError)
    assert frames_of(out) == [parse_frame(good)[1]]
    assert decoder.pending == 0


def test_oversized_length_reported_as_soon_as_header_is_in():
    decoder = FrameDecoder()
    header = raw_header(length=MAX_PAYLOAD + 1)
    assert decoder.feed(header[:-1]) == []
    out = decoder.feed(header[-1:])  # no payload byte sent, none waited for
    assert isinstance(out[0], LengthError)
    assert out[0].raw == header
    assert decoder.pending == 0


def test_length_ffff_does_not_make_the_decoder_wait():
    good = frame(seq=4)
    _, out = feed_all([raw_header(length=0xFFFF) + good])
    assert isinstance(out[0], LengthError)
    assert frames_of(out) == [parse_frame(good)[1]]


# 1: only a clear HELLO or ERROR may carry it; 2: an INTERROGATE of a version-2 programmer
@pytest.mark.parametrize("version", [0, 1, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 0xFF])
def test_unknown_version_is_refused_even_with_good_crc(version):
    body = struct.pack(">BBHBH", version, 0, 1, 2, 0)
    _, out = feed_all([with_crc(body)])
    assert isinstance(out[0], VersionError)
    assert not frames_of(out)


@pytest.mark.parametrize("flags", [0x04, 0x80, 0xFC, 0xFF])
def test_unknown_flags_are_refused_even_with_good_crc(flags):
    body = struct.pack(">BBHBH", PROTOCOL_VERSION, flags, 1, 2, 0)
    _, out = feed_all([with_crc(body)])
    assert isinstance(out[0], FlagsError)
    assert not frames_of(out)


def test_flush_stale_recovers_a_good_frame_hidden_after_a_truncated_one():
    good = frame(seq=11, payload=b"after")
    # cut inside its length field: the high byte is its own (0), the low byte the good frame's first
    # (0xA5): the header claims 165 bytes of payload, whatever the version byte
    truncated = frame(seq=10, payload=b"lost")[:8]
    decoder = FrameDecoder()
    out = decoder.feed(truncated + good)
    assert not frames_of(out)  # the truncated header claims a long payload: waiting
    assert decoder.pending == len(truncated + good)
    out = decoder.flush_stale()
    assert isinstance(out[0], FrameError) and out[0].raw == truncated + good
    assert frames_of(out) == [parse_frame(good)[1]]
    assert decoder.pending == 0
    assert decoder.flush_stale() == []


def test_flush_stale_drops_a_lone_truncated_frame():
    decoder = FrameDecoder()
    truncated = frame(payload=b"abc")[:-1]
    assert decoder.feed(truncated) == []
    out = decoder.flush_stale()
    assert all(isinstance(e, FrameError) for e in out)
    while decoder.pending:
        out = decoder.flush_stale()
        assert all(isinstance(e, FrameError) for e in out)
    assert decoder.discarded == len(truncated)
    good = frame(seq=12)
    assert [f.raw for f in decoder.feed(good)] == [good]


def test_reset_drops_the_buffer():
    decoder = FrameDecoder()
    decoder.feed(frame()[:6])
    decoder.reset()
    assert decoder.pending == 0
    good = frame(seq=13)
    assert [f.raw for f in decoder.feed(good)] == [good]
