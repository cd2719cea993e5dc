"""Coverage-guided fuzzing of the receive path with atheris (optional; not a dependency).

    pip install atheris && python fuzz/atheris_decode.py -runs=200000

The input is split into a command byte, a flags byte and a payload; a frame is built
around them with a correct CRC (random bytes almost never pass a CRC, so this
reaches the message decoder), then fed to FrameDecoder and decode(). Raw input bytes
are fed to the decoder too. Only ProtocolError may come out.
"""
import sys

import atheris

with atheris.instrument_imports():
    import protocol
    from protocol.framing import encode_frame


def one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    command, flags, payload = data[0], data[1], data[2:2 + protocol.MAX_PAYLOAD]
    frames = [encode_frame(command, payload, seq=1, response=bool(flags & 1)), data]
    for raw in frames:
        decoder = protocol.FrameDecoder()
        for item in decoder.feed(raw) + decoder.flush_stale():
            if isinstance(item, protocol.RawFrame):
                try:
                    protocol.decode(item)
                except protocol.ProtocolError:
                    pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
