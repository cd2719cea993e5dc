"""Print the known-answer vectors of docs/protocol.md ("Known-answer test vectors").

    python tools/protocol_vectors.py > /tmp/vectors.txt

Every value is computed by the real code, by every side that computes it: the
protocol.security functions directly, the programmer's side
(protocol.session.ClientSession driven with the fixed client nonce and seq) and
the pump's side (emulator.handler.respond with an emulator.session.Session,
security.new_nonce patched to return the fixed pump nonce). The script stops if
any two disagree. It prints the fenced blocks of that section (then, as plain
lines, the two refusal texts); tests/test_protocol_vectors.py parses the blocks
back out of the doc and checks them against the code, so paste the output over
the blocks in the doc whenever the protocol changes on purpose (the annotated
frames "dissection of hello_request_frame" and "dissection of req_frame" in the
doc are checked against these vectors too: update their bytes with them).

The version-negotiation vectors are for a peer one version older (OLD_VERSION).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from emulator.faults import Faults
from emulator.handler import respond
from emulator.pump import Pump
from emulator.security_state import Backoff
from emulator.session import Session
from protocol import (
    PROTOCOL_VERSION,
    Command,
    Drug,
    ErrorReason,
    InfusionMode,
    Role,
    bodies,
    build_payload,
    decode_bytes,
    encode,
    security,
)
from protocol.constants import (
    Alarm,
    BatteryState,
    CatheterAction,
    CatheterModel,
    MriMode,
    PumpModel,
    SpasticityOrigin,
)
from protocol.framing import FrameDecoder, RawFrame, encode_frame, header_bytes
from protocol.session import ClientSession, HelloReply, Reply, SessionOpen, VersionMismatch

# --- the fixed inputs ----------------------------------------------------------

SERIAL = "ITH-VEC-0001"
K_READER = bytes(range(0x20, 0x40))
K_CLINICIAN = bytes(range(0x00, 0x20))
ROLE = Role.CLINICIAN
CLIENT_NONCE = bytes(range(0xA0, 0xB0))
PUMP_NONCE = bytes(range(0xB0, 0xC0))
FIRST_SEQ = 0x1234  # HELLO; AUTH 0x1235; INTERROGATE 0x1236
OLD_SEQ = 0x0042
V = PROTOCOL_VERSION
#: the peer of the version-negotiation vectors: the previous protocol version
OLD_VERSION = PROTOCOL_VERSION - 1

#: the pump's status in the sealed INTERROGATE reply (a made-up but valid pump)
STATUS = bodies.Status(
    serial_number=SERIAL,
    model=PumpModel.PERISTALTIC_40,
    firmware=bodies.Firmware(major=2, minor=1, patch=0),
    pump_time=1_767_225_600,  # 2026-01-01T00:00:00Z
    drug=Drug.MORPHINE,
    concentration_ng_per_ml=10_000_000,  # 10 mg/mL
    mode=InfusionMode.CONTINUOUS,
    daily_dose_ng_per_day=1_000_000,  # 1 mg/day
    daily_volume_nl_per_day=100_000,  # 0.1 mL/day
    current_rate_nl_per_day=100_000,
    reservoir_ul=20_000,
    capacity_ul=40_000,
    low_reservoir_alarm_ul=2_000,
    battery_state=BatteryState.OK,
    battery_percent=87,
    eri_at=1_861_920_000,
    replace_by=1_869_696_000,
    alarms=Alarm(0),
    mri_mode=MriMode.OFF,
    mri_auto_exit_at=0,
    last_txid=7,
    last_programmed_at=1_767_139_200,
    bolus_remaining_ng=0,
    event_count=42,
    auth_failures=0,
    # an 80 cm catheter implanted and primed; patient boluses of 0.1 mg, 4 a day, 3 h apart
    catheter=bodies.CatheterRecord(action=CatheterAction.IMPLANT, model=CatheterModel.STANDARD, length_mm=800,
                                   replaced_mm=0, recorded_at=1_764_547_200, dead_space_nl=408_000,
                                   priming_due_nl=0),
    ptm=bodies.PtmLimits(enabled=1, dose_ng=100_000, duration_s=600, lockout_s=10_800, max_per_day=4),
    ptm_use=bodies.PtmUse(granted_24h=2, refused_24h=1, last_granted_at=1_767_218_400),
    # the patient (version 5): an opaque ID the clinic chose, initials and birth date; no origin (not baclofen)
    patient=bodies.PatientRecord(patient_id="MRN-0042117", initials="AB", birth_date=19_700_102,
                                 spasticity_origin=SpasticityOrigin.NOT_RECORDED, recorded_at=1_764_547_200),
)


def check(name: str, *values: bytes) -> bytes:
    if any(v != values[0] for v in values[1:]):
        raise SystemExit(f"{name}: the implementations disagree: {[v.hex() for v in values]}")
    return values[0]


WIDTH = 31  # the hex starts in this column


def fmt(name: str, value: bytes, comment: str = "") -> str:
    """`name = hex`, 32 bytes a line, continuation lines indented under the value;
    a comment goes on its own line above (a `#` line)."""
    text = value.hex()
    chunks = [text[i:i + 64] for i in range(0, len(text), 64)] or [""]
    lines = [f"# {comment}"] if comment else []
    lines.append(f"{name:<{WIDTH - 3}} = {chunks[0]}".rstrip())
    lines += [" " * WIDTH + chunk for chunk in chunks[1:]]
    return "\n".join(lines)


def main() -> None:
    out: list[str] = []
    emit = out.append

    # --- programmer: ClientSession with the fixed nonce and seq -----------------
    client = ClientSession(seq=FIRST_SEQ - 1)
    hello_request_frame = client.hello(ROLE, nonce=CLIENT_NONCE)

    # --- pump: the emulator's whole request path, with the fixed pump nonce ------
    pump_model = Pump.new(model="peristaltic-40", serial=SERIAL, drug=Drug.MORPHINE,
                          concentration_ng_per_ml=10_000_000, reservoir_ul=20_000, flow_nl_per_day=100_000,
                          low_reservoir_alarm_ul=2_000, battery_seconds=5 * 365 * 86_400,
                          start_time=1_767_225_600)
    pump = Session({Role.READER: K_READER, Role.CLINICIAN: K_CLINICIAN}, Backoff())

    def pump_answer(frame: bytes) -> bytes:
        [raw] = FrameDecoder().feed(frame)
        assert isinstance(raw, RawFrame), raw
        reply = respond(pump_model, raw, Faults(), pump)
        assert reply is not None, "the pump left a request unanswered"
        return reply

    real_new_nonce = security.new_nonce
    security.new_nonce = lambda: PUMP_NONCE
    try:
        hello_response_frame = pump_answer(hello_request_frame)
    finally:
        security.new_nonce = real_new_nonce
    hello_body = bodies.HelloRequest(protocol_version=V, client_nonce=CLIENT_NONCE, role=ROLE)
    hello_reply_body = bodies.HelloResponse(protocol_version=V, pump_nonce=PUMP_NONCE,
                                            key_id=security.key_id(K_CLINICIAN))
    hello_request = check("hello_request", build_payload(Command.HELLO, hello_body),
                          bytes([V]) + CLIENT_NONCE + bytes([ROLE]))
    hello_response = check("hello_response", build_payload(Command.HELLO, hello_reply_body, response=True),
                           bytes([V]) + PUMP_NONCE + security.key_id(K_CLINICIAN))
    check("hello_response_frame", hello_response_frame,
          encode_frame(Command.HELLO, hello_response, seq=FIRST_SEQ, response=True, version=1))
    check("hello_request_frame", hello_request_frame,
          encode_frame(Command.HELLO, hello_request, seq=FIRST_SEQ, version=1))
    [event] = client.receive_data(hello_response_frame)
    assert isinstance(event, HelloReply) and event.key_id == security.key_id(K_CLINICIAN), event

    th1 = security.transcript_hello(hello_request, hello_response)
    cproof = security.client_proof(K_CLINICIAN, th1)
    auth_request_frame = client.authenticate(K_CLINICIAN)
    auth_body = bodies.AuthRequest(role=ROLE, proof=cproof)
    auth_request = check("auth_request", build_payload(Command.AUTH, auth_body), bytes([ROLE]) + cproof)
    check("auth_request_frame", auth_request_frame, encode(Command.AUTH, auth_body, seq=FIRST_SEQ + 1))
    th2 = security.transcript_add(th1, auth_request)
    pproof = security.pump_proof(K_CLINICIAN, th2)
    auth_response_frame = pump_answer(auth_request_frame)
    auth_response = check("auth_response", build_payload(Command.AUTH, bodies.AuthResponse(pproof), response=True),
                          pproof)
    check("auth_response_frame", auth_response_frame,
          encode_frame(Command.AUTH, auth_response, seq=FIRST_SEQ + 1, response=True))
    [event] = client.receive_data(auth_response_frame)
    assert isinstance(event, SessionOpen), event
    assert client.channel is not None and pump.channel is not None  # both sides have a session now
    th3 = security.transcript_add(th2, auth_response)
    prk = hmac.new(th3, K_CLINICIAN, hashlib.sha256).digest()
    okm = security.hkdf_sha256(K_CLINICIAN, th3, security.SESSION_KEYS_INFO, 64)
    to_pump, to_programmer = security.session_keys(K_CLINICIAN, th3)
    check("okm", okm, to_pump + to_programmer)
    check("to_pump", to_pump, client.channel.send_key, pump.channel.recv_key)
    check("to_programmer", to_programmer, client.channel.recv_key, pump.channel.send_key)

    # --- the sealed INTERROGATE and its reply ------------------------------------
    req_seq = FIRST_SEQ + 2
    req_frame = client.request(bodies.InterrogateRequest())
    assert client.seq == req_seq
    req_plain = build_payload(Command.INTERROGATE, bodies.InterrogateRequest())
    req_counter = (1).to_bytes(8, "big")
    req_nonce = security.gcm_nonce(security.TO_PUMP, 1)
    req_aad = header_bytes(V, 0x02, req_seq, Command.INTERROGATE, len(req_plain)) + req_counter
    [raw] = FrameDecoder().feed(req_frame)
    assert isinstance(raw, RawFrame), raw
    opened = pump.open(raw)
    assert opened.payload == req_plain
    req_tag = req_frame[-20:-4]
    req_ct = req_frame[9:9 + len(req_plain)]

    resp_plain = build_payload(Command.INTERROGATE, STATUS, response=True)
    resp_frame = pump.seal(Command.INTERROGATE, resp_plain, req_seq)
    resp_counter = (1).to_bytes(8, "big")
    resp_nonce = security.gcm_nonce(security.TO_PROGRAMMER, 1)
    resp_aad = header_bytes(V, 0x03, req_seq, Command.INTERROGATE, len(resp_plain)) + resp_counter
    [event] = client.receive_data(resp_frame)
    assert isinstance(event, Reply) and bodies.expect(event.body, bodies.Status).serial_number == SERIAL, event
    resp_ct = resp_frame[9:9 + len(resp_plain)]
    resp_tag = resp_frame[9 + len(resp_plain) + 8:9 + len(resp_plain) + 24]
    check("req_sealed", AESGCM(to_pump).encrypt(req_nonce, req_plain, req_aad), req_ct + req_tag)
    check("resp_sealed", AESGCM(to_programmer).encrypt(resp_nonce, resp_plain, resp_aad), resp_ct + resp_tag)

    # --- version negotiation with a peer of OLD_VERSION (its HELLOs are framed at 1 too) ---
    old_hello_request = bytes([OLD_VERSION]) + CLIENT_NONCE + bytes([ROLE])
    old_hello_request_frame = encode_frame(Command.HELLO, old_hello_request, seq=OLD_SEQ, version=1)
    [raw] = FrameDecoder().feed(old_hello_request_frame)
    assert isinstance(raw, RawFrame), raw
    refusing = Session({Role.CLINICIAN: K_CLINICIAN}, Backoff())
    old_refusal_frame = respond(pump_model, raw, Faults(), refusing)
    assert old_refusal_frame is not None, "the pump did not refuse the old HELLO"
    refusal = bodies.expect(decode_bytes(old_refusal_frame).body, bodies.ErrorResponse)
    assert refusal.reason == ErrorReason.UNSUPPORTED_VERSION and old_refusal_frame[2] == 1, refusal
    detail = refusal.detail
    assert f"version {V}" in detail and f"is {OLD_VERSION}" in detail, detail
    old_hello_response = bytes([OLD_VERSION]) + PUMP_NONCE + security.key_id(K_CLINICIAN)
    old_hello_response_frame = encode_frame(Command.HELLO, old_hello_response, seq=FIRST_SEQ,
                                                 response=True, version=1)
    probe = ClientSession(seq=FIRST_SEQ - 1)
    probe.hello(ROLE, nonce=CLIENT_NONCE)
    try:
        probe.receive_data(old_hello_response_frame)
        raise SystemExit(f"a version-{V} programmer accepted a version-{OLD_VERSION} pump's HELLO")
    except VersionMismatch as exc:
        mismatch = str(exc)

    # --- print -------------------------------------------------------------------
    emit("```text")
    emit("# inputs")
    emit(fmt("k_reader", K_READER, "the pump's READER key (only its key id is used below)"))
    emit(fmt("k_clinician", K_CLINICIAN, "the pump's CLINICIAN key: K of the handshake below"))
    emit(fmt("role", bytes([ROLE]), "CLINICIAN"))
    emit(fmt("client_nonce", CLIENT_NONCE))
    emit(fmt("pump_nonce", PUMP_NONCE))
    emit(fmt("hello_seq", FIRST_SEQ.to_bytes(2, "big"), "AUTH uses hello_seq + 1, the INTERROGATE hello_seq + 2"))
    emit("")
    emit("# key ids: HMAC-SHA256(K, \"ithcli-key-id\")[0:8]")
    emit(fmt("key_id_reader", security.key_id(K_READER)))
    emit(fmt("key_id_clinician", security.key_id(K_CLINICIAN)))
    emit("")
    emit("# HELLO")
    emit(fmt("hello_request", hello_request, f"u8({V}) || client_nonce || u8(role)"))
    emit(fmt("hello_request_frame", hello_request_frame,
             "header version 1, flags 00, seq hello_seq, command 01, length 18"))
    emit(fmt("hello_response", hello_response, f"u8({V}) || pump_nonce || key_id_clinician"))
    emit(fmt("hello_response_frame", hello_response_frame,
             "header version 1, flags 01, seq hello_seq, command 01, length 25"))
    emit(fmt("th1", th1, 'SHA-256("ithcli/2 transcript" || hello_request || hello_response)'))
    emit("")
    emit("# AUTH")
    emit(fmt("client_proof", cproof, 'HMAC-SHA256(k_clinician, "ithcli/2 client proof" || th1)'))
    emit(fmt("auth_request", auth_request, "u8(role) || client_proof"))
    emit(fmt("auth_request_frame", auth_request_frame,
             f"header version {V}, flags 00, seq hello_seq + 1, command 05, length 33"))
    emit(fmt("th2", th2, "SHA-256(th1 || auth_request)"))
    emit(fmt("pump_proof", pproof, 'HMAC-SHA256(k_clinician, "ithcli/2 pump proof" || th2)'))
    emit(fmt("auth_response", auth_response, "pump_proof"))
    emit(fmt("auth_response_frame", auth_response_frame,
             f"header version {V}, flags 01, seq hello_seq + 1, command 05, length 32"))
    emit(fmt("th3", th3, "SHA-256(th2 || auth_response)"))
    emit("")
    emit("# session keys: HKDF-SHA256(IKM = k_clinician, salt = th3, info = hkdf_info, L = 64)")
    emit(fmt("hkdf_info", security.SESSION_KEYS_INFO, '"ithcli/2 session keys"'))
    emit(fmt("hkdf_prk", prk, "HMAC-SHA256(th3, k_clinician)"))
    emit(fmt("hkdf_okm", okm))
    emit(fmt("key_to_pump", to_pump, "hkdf_okm[0:32]"))
    emit(fmt("key_to_programmer", to_programmer, "hkdf_okm[32:64]"))
    emit("```")
    emit("")
    emit("```text")
    emit("# the sealed INTERROGATE request: the programmer's first sealed frame")
    emit(fmt("req_seq", req_seq.to_bytes(2, "big")))
    emit(fmt("req_plaintext", req_plain, "empty: INTERROGATE requests have no payload"))
    emit(fmt("req_counter", req_counter))
    emit(fmt("req_nonce", req_nonce, "00000001 || req_counter"))
    emit(fmt("req_aad", req_aad, f"version {V:02x}, flags 02, req_seq, command 02, length 0000 || req_counter"))
    emit(fmt("req_ciphertext", req_ct, "empty"))
    emit(fmt("req_tag", req_tag))
    emit(fmt("req_frame", req_frame))
    emit("")
    emit("# the sealed INTERROGATE response: the pump's first sealed frame")
    emit(fmt("resp_plaintext", resp_plain, f"the Status below, {len(resp_plain)} bytes"))
    emit(fmt("resp_counter", resp_counter))
    emit(fmt("resp_nonce", resp_nonce, "00000002 || resp_counter"))
    emit(fmt("resp_aad", resp_aad,
             f"version {V:02x}, flags 03, req_seq, command 02, length {len(resp_plain):04x} || resp_counter"))
    emit(fmt("resp_ciphertext", resp_ct))
    emit(fmt("resp_tag", resp_tag))
    emit(fmt("resp_frame", resp_frame))
    emit("```")
    emit("")
    emit("```json")
    status = bodies.as_dict(STATUS)
    emit(json.dumps({k: (int(v) if not isinstance(v, (dict, str)) else v) for k, v in status.items()}, indent=1))
    emit("```")
    emit("")
    emit("```text")
    emit("# version negotiation")
    emit(fmt("old_seq", OLD_SEQ.to_bytes(2, "big")))
    emit(fmt("old_hello_request_frame", old_hello_request_frame,
             f"a version-{OLD_VERSION} programmer's HELLO: header version 1, protocol_version {OLD_VERSION}"))
    emit(fmt("old_refusal_frame", old_refusal_frame,
             f"the version-{V} pump's answer: ERROR UNSUPPORTED_VERSION, header version 1"))
    emit(fmt("old_hello_response_frame", old_hello_response_frame,
             f"a version-{OLD_VERSION} pump's answer to hello_request_frame (protocol_version {OLD_VERSION})"))
    emit("```")
    print("\n".join(out))
    print()
    print(f"the version-{V} pump's refusal detail:", detail)
    print(f"the version-{V} programmer's refusal:", mismatch)


if __name__ == "__main__":
    main()
