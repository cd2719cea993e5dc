"""Coverage-guided fuzzing of the emulator's request handler with atheris (optional).

    pip install atheris && python fuzz/atheris_handler.py -runs=100000

One live clinician session per input: the input becomes a sequence of (command,
payload) requests sealed in the session (so they pass the tag and reach the decoder
and the pump), each answered by emulator.handler.respond(). respond() must never
raise, and every reply must be a frame the programmer can open and decode.
"""
import sys

import atheris

with atheris.instrument_imports():
    import protocol
    from emulator.faults import Faults
    from emulator.handler import respond
    from emulator.pump import Pump
    from emulator.security_state import Backoff
    from emulator.session import Session
    from protocol import Role, security
    from protocol.framing import parse_frame
    from protocol.session import ClientSession

KEYS = {Role.READER: security.new_key(), Role.CLINICIAN: security.new_key()}


def _frame(data):
    return parse_frame(data)[1]


def one_input(data: bytes) -> None:
    pump = Pump.new(model="peristaltic-40", serial="FUZZ1", drug=protocol.Drug.MORPHINE,
                    concentration_ng_per_ml=10_000_000, reservoir_ul=18_000, flow_nl_per_day=200_000,
                    low_reservoir_alarm_ul=2_000, battery_seconds=5 * 365 * 86_400, start_time=1_900_000_000)
    session = Session(KEYS, Backoff())
    client = ClientSession(seq=0)  # the handshake is protocol.session's, as for every programmer
    hello_reply = respond(pump, _frame(client.hello(Role.CLINICIAN)), Faults(), session)
    assert hello_reply is not None, "the pump did not answer HELLO"
    client.receive_data(hello_reply)
    auth_reply = respond(pump, _frame(client.authenticate(KEYS[Role.CLINICIAN])), Faults(), session)
    assert auth_reply is not None, "the pump did not answer AUTH"
    client.receive_data(auth_reply)
    channel = client.channel
    assert channel is not None, "the handshake did not open a session"
    fdp = atheris.FuzzedDataProvider(data)
    seq = 10
    while fdp.remaining_bytes() > 2:
        seq += 1
        command = fdp.ConsumeIntInRange(0, 255)
        payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
        reply = respond(pump, _frame(channel.seal(command, payload, seq=seq, response=False)), Faults(), session)
        if reply is not None:
            frame = _frame(reply)
            if frame.auth is not None:
                frame = channel.open(frame)
            assert protocol.decode(frame).seq == seq


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
