"""Misbehaving peers on a real TCP socket, for link-failure tests.

These are not mocks of ithcli: they are the other end of the wire, doing what a
wrong device or a noisy line does. Each serves in a thread and stops at close().
A real emulator behind a damaged line is the campaign's fault proxy
(ithcli_campaign/proxy.py: FaultProxy, with flip, cut, hold, ... faults), the one
proxy every test uses; `proxy_to(emu)` starts one in front of an emulator.
"""
from __future__ import annotations

import random
import socket
import threading

import protocol


class Peer:
    """Accepts connections on 127.0.0.1 and answers each chunk with respond(chunk)."""

    def __init__(self, respond):
        self._respond = respond
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self._sock.settimeout(0.2)
        self.url = f"socket://127.0.0.1:{self._sock.getsockname()[1]}"
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    self.received += data
                    reply = self._respond(bytes(data))
                    if reply:
                        try:
                            conn.sendall(reply)
                        except OSError:
                            break

    def close(self):
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2)


def silent(_chunk: bytes) -> bytes:
    return b""


def garbage(seed: int = 1):
    rng = random.Random(seed)

    def respond(_chunk: bytes) -> bytes:
        return bytes(rng.randrange(256) for _ in range(200))

    return respond


def rejecting(reason=protocol.ErrorReason.NOT_PERMITTED, detail="refused by test peer"):
    """Answers every request with a well-formed ERROR frame echoing its seq."""
    decoder = protocol.FrameDecoder()

    def respond(chunk: bytes) -> bytes:
        out = b""
        for item in decoder.feed(chunk):
            if isinstance(item, protocol.RawFrame):
                out += protocol.encode(
                    protocol.Command.ERROR,
                    protocol.bodies.ErrorResponse(item.command, reason, detail),
                    seq=item.seq,
                    response=True,
                )
        return out

    return respond


def proxy_to(emu, *faults):
    """The fault proxy (ithcli_campaign.proxy.FaultProxy) in front of an emulator on TCP, with
    `faults` armed; close() it when done."""
    from ithcli_campaign.proxy import FaultProxy

    host, _, port = emu.url.removeprefix("socket://").rpartition(":")
    proxy = FaultProxy((host, int(port)))
    proxy.arm(list(faults))
    return proxy
