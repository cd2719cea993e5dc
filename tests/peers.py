"""Misbehaving peers on a real TCP socket, for link-failure tests.

These are not mocks of ithcli: they are the other end of the wire, doing what a
broken cable, a wrong device or a noisy line does. Each serves in a thread and
stops at close().
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
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except socket.timeout:
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
                    {"request_command": item.command, "reason": reason, "detail": detail},
                    seq=item.seq,
                    response=True,
                )
        return out

    return respond


class CorruptingProxy:
    """Relays bytes between a client and a real emulator, corrupting chosen replies.

    corrupt_replies: how many of the first pump->client frames get one bit flipped.
    """

    def __init__(self, upstream_url: str, corrupt_replies: int = 1):
        host, port = upstream_url.removeprefix("socket://").split(":")
        self._upstream = (host, int(port))
        self.corrupt_left = corrupt_replies
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"socket://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        try:
            client, _ = self._sock.accept()
        except OSError:
            return
        upstream = socket.create_connection(self._upstream)

        def pump_to_client():
            decoder = protocol.FrameDecoder()
            while True:
                try:
                    data = upstream.recv(4096)
                except OSError:
                    return
                if not data:
                    client.close()
                    return
                for item in decoder.feed(data):
                    raw = bytearray(item.raw)
                    if isinstance(item, protocol.RawFrame) and self.corrupt_left > 0:
                        self.corrupt_left -= 1
                        raw[len(raw) // 2] ^= 0x10
                    try:
                        client.sendall(bytes(raw))
                    except OSError:
                        return

        threading.Thread(target=pump_to_client, daemon=True).start()
        while True:
            try:
                data = client.recv(4096)
            except OSError:
                break
            if not data:
                break
            upstream.sendall(data)
        upstream.close()

    def close(self):
        self._sock.close()


class CuttingProxy:
    """Relays a TCP link to an emulator; while `armed`, it forwards the first frame
    with command `cut_on` and then closes the connection: the link dies right after
    the pump received that frame (the reply never comes back).
    """

    def __init__(self, upstream_url: str, cut_on: int):
        host, port = upstream_url.removeprefix("socket://").split(":")
        self._upstream = (host, int(port))
        self.cut_on = cut_on
        self.armed = True
        self.cuts = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"socket://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client):
        upstream = socket.create_connection(self._upstream)
        closed = threading.Event()

        def back():
            while not closed.is_set():
                try:
                    data = upstream.recv(4096)
                except OSError:
                    break
                if not data:
                    break
                try:
                    client.sendall(data)
                except OSError:
                    break
            closed.set()

        threading.Thread(target=back, daemon=True).start()
        decoder = protocol.FrameDecoder()
        while not closed.is_set():
            try:
                data = client.recv(4096)
            except OSError:
                break
            if not data:
                break
            upstream.sendall(data)
            if self.armed and any(isinstance(f, protocol.RawFrame) and f.command == self.cut_on
                                  for f in decoder.feed(data)):
                self.armed = False
                self.cuts += 1
                closed.set()
                break
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self._sock.close()
