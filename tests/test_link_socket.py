"""A socket:// link (a pump reached over TCP) is read a frame at a time, as a device is.

pyserial's socket:// read takes what its in_waiting says, and that is 1 at most: a reply came a
byte a call, 2 to 5 ms an exchange instead of 0.1 (docs/performance.md). The link now waits on
the socket and takes what has arrived.
"""
from __future__ import annotations

import time

import pytest

from ithcli.errors import LinkError
from ithcli.link import open_link
from protocol import FrameDecoder, Role
from protocol.security import new_nonce
from protocol.session import ClientSession


def test_a_reply_over_a_socket_link_comes_in_one_read_and_a_closed_link_is_a_link_error(start_emulator):
    emu = start_emulator(transport="tcp")
    link = open_link(emu.url)
    try:
        link.write(ClientSession(seq=0x8000).hello(Role.READER, nonce=new_nonce()))
        data = link.read(time.monotonic() + 2.0)
        frames = [item for item in FrameDecoder().feed(data)]
        assert len(frames) == 1, data  # the whole HELLO reply, not its first byte
        emu.stop()
        with pytest.raises(LinkError, match="connection was closed"):
            link.read(time.monotonic() + 2.0)
    finally:
        link.close()
