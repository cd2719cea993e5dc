"""CRC-32C: the catalogue check value, RFC 3720 vectors, and continuation."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.crc import CHECK_VALUE, crc32c


def test_check_value():
    assert CHECK_VALUE == 0xE3069283
    assert crc32c(b"123456789") == CHECK_VALUE


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", 0x00000000),
        (bytes(32), 0x8A9136AA),  # RFC 3720 B.4: 32 bytes of zeros
        (b"\xff" * 32, 0x62A8AB43),  # 32 bytes of ones
        (bytes(range(32)), 0x46DD794E),  # 32 incrementing bytes
        (bytes(range(31, -1, -1)), 0x113FDB5C),  # 32 decrementing bytes
    ],
)
def test_known_vectors(data, expected):
    assert crc32c(data) == expected


def test_rfc3720_iscsi_read_command_pdu():
    # RFC 3720 B.4: an iSCSI read (10) command PDU; the RFC lists the CRC bytes as 56 3a 96 d9
    pdu = bytes.fromhex(
        "01c00000 00000000 00000000 00000000 14000000 00000400"
        "00000014 00000018 28000000 00000000 02000000 00000000".replace(" ", "")
    )
    assert len(pdu) == 48
    assert crc32c(pdu) == 0xD9963A56


def test_differs_from_crc32_iso_hdlc():
    import zlib

    assert zlib.crc32(b"123456789") == 0xCBF43926 != crc32c(b"123456789")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_continuation_equals_one_shot(a, b):
    assert crc32c(b, crc32c(a)) == crc32c(a + b)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.data())
def test_single_bit_flip_always_changes_crc(data, draw):
    bit = draw.draw(st.integers(0, len(data) * 8 - 1))
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert crc32c(bytes(flipped)) != crc32c(data)


def test_residue_of_a_message_with_its_crc_appended():
    # reflected CRC appended little-endian leaves the CRC-32C residue constant
    for data in (b"", b"123456789", bytes(100)):
        assert crc32c(data + struct.pack("<I", crc32c(data))) == 0x48674BC7


# --- the optional C accelerator (google-crc32c) and the pure-Python reference -------------------

from protocol import crc as crc_module  # noqa: E402

IMPLEMENTATIONS = [crc_module.crc32c_pure] + (
    [crc_module.crc32c_c] if crc_module.crc32c_c else [])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda f: f.__name__)
def test_each_implementation_gives_the_check_value_and_continues(impl):
    assert impl(b"123456789") == CHECK_VALUE
    assert impl(b"56789", impl(b"1234")) == CHECK_VALUE
    assert impl(b"") == 0
    assert impl(bytearray(b"123456789")) == CHECK_VALUE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700), st.integers(0, 0xFFFFFFFF))
def test_the_crc_in_use_equals_the_pure_python_crc(data, start):
    """protocol.crc.crc32c, whichever it is here (the C accelerator when google-crc32c is
    installed), against the byte-at-a-time reference."""
    assert crc_module.crc32c(data) == crc_module.crc32c_pure(data)
    assert crc_module.crc32c(data, start) == crc_module.crc32c_pure(data, start)


def test_crc32c_is_the_accelerated_one_when_installed():
    assert crc_module.crc32c is (crc_module.crc32c_c or crc_module.crc32c_pure)
