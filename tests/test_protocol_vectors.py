"""The known-answer vectors of docs/protocol.md, read out of the doc, against the code.

The vectors are parsed from the doc's "Known-answer test vectors" section (and the
annotated frames, the labels table and the example key file elsewhere in it), so
the doc and the code cannot drift apart. They are checked three ways:

- against the reference code: protocol.security, the framing and codec, the
  programmer's protocol.session.ClientSession and the pump's emulator session and
  handler, each driven with the fixed nonces and seqs;
- against `Outsider`, an implementation written from the doc alone with hashlib,
  hmac, struct and cryptography's AESGCM (nothing of protocol/ is imported by it):
  what an independent implementer would write on a first try.

Pure and fast: no processes, no sockets. tools/protocol_vectors.py prints the
vectors again when the protocol changes on purpose.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import struct
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

ENTRY = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\s*=\s*(?P<hex>[0-9a-f]*)\s*$")
CONTINUATION = re.compile(r"^\s+(?P<hex>[0-9a-f]+)\s*$")
DISSECTION = re.compile(r"^# dissection of (?P<name>[a-z][a-z0-9_]*)\s*$")
DISSECTION_LINE = re.compile(r"^(?P<hex>[0-9a-f]{2}(?: [0-9a-f]{2})*)(?:\s{2,}.*)?$")
FENCE = re.compile(r"^```(?P<info>\w*)\s*$")

#: every value the doc must give
EXPECTED = {
    "k_reader", "k_clinician", "role", "client_nonce", "pump_nonce", "hello_seq",
    "key_id_reader", "key_id_clinician",
    "hello_request", "hello_request_frame", "hello_response", "hello_response_frame", "th1",
    "client_proof", "auth_request", "auth_request_frame", "th2", "pump_proof", "auth_response",
    "auth_response_frame", "th3",
    "hkdf_info", "hkdf_prk", "hkdf_okm", "key_to_pump", "key_to_programmer",
    "req_seq", "req_plaintext", "req_counter", "req_nonce", "req_aad", "req_ciphertext", "req_tag", "req_frame",
    "resp_plaintext", "resp_counter", "resp_nonce", "resp_aad", "resp_ciphertext", "resp_tag", "resp_frame",
    "old_seq", "old_hello_request_frame", "old_refusal_frame", "old_hello_response_frame",
}
SERIAL = "ITH-VEC-0001"
#: the protocol version these vectors are for, and the older peer of the negotiation vectors
VERSION = 5
OLD = 4


# --- reading the doc ------------------------------------------------------------


def section(text: str, title: str, level: int = 2) -> str:
    """The text under the heading `title` (of `level` #s) up to the next heading of that level or above."""
    lines = text.splitlines()
    start = lines.index("#" * level + " " + title) + 1
    fenced = False
    for end in range(start, len(lines)):
        if lines[end].startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(rf"^#{{1,{level}}} ", lines[end]):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(info string, lines) of every fenced code block."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    info = ""
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence and current is None:
            current, info = [], fence["info"]
        elif line.startswith("```") and current is not None:
            blocks.append((info, current))
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, "an unterminated code block"
    return blocks


def parse_vector_lines(lines: list[str], into: dict[str, str]) -> None:
    """Vector lines (`name = hex`, continuation lines of more hex) into name -> hex digits."""
    name = None
    for line in lines:
        if not line.strip() or line.startswith("#"):
            name = None if not line.strip() else name
            continue
        entry, more = ENTRY.match(line), CONTINUATION.match(line)
        if entry:
            name = entry["name"]
            assert name not in into, f"vector {name} given twice"
            into[name] = entry["hex"]
        elif more and name is not None:
            into[name] += more["hex"]
        else:
            raise AssertionError(f"not a vector line: {line!r}")


def parse_vectors(text: str) -> dict[str, bytes]:
    found: dict[str, str] = {}
    for info, lines in fenced_blocks(section(text, "Known-answer test vectors")):
        if info == "text":
            parse_vector_lines(lines, found)
    out = {}
    for name, digits in found.items():
        assert len(digits) % 2 == 0, f"{name}: an odd number of hex digits"
        out[name] = bytes.fromhex(digits)
    return out


def parse_dissections(text: str) -> dict[str, bytes]:
    out = {}
    for info, lines in fenced_blocks(text):
        title = DISSECTION.match(lines[0]) if info == "text" and lines else None
        if title is None:
            continue
        name = title["name"]
        data = b""
        for line in lines[1:]:
            m = DISSECTION_LINE.match(line)
            assert m, f"dissection of {name}: not a 'hex bytes  meaning' line: {line!r}"
            data += bytes.fromhex(m["hex"].replace(" ", ""))
        out[name] = data
    return out


def first_json(text: str) -> dict:
    for info, lines in fenced_blocks(text):
        if info == "json":
            return json.loads("\n".join(lines))
    raise AssertionError("no json block")


def first_table(text: str) -> list[list[str]]:
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "no table"
    return [[cell.strip() for cell in row] for row in rows[2:]]


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf8")


@pytest.fixture(scope="module")
def v(doc) -> dict[str, bytes]:
    return parse_vectors(doc)


@pytest.fixture(scope="module")
def status(doc) -> dict:
    return first_json(section(doc, "Sealed frame vectors", level=3))


# --- the doc itself -------------------------------------------------------------


def test_the_doc_gives_every_vector_once(v):
    assert set(v) == EXPECTED, f"missing {EXPECTED - set(v)}, unexpected {set(v) - EXPECTED}"
    sizes = {"k_reader": 32, "k_clinician": 32, "role": 1, "client_nonce": 16, "pump_nonce": 16, "hello_seq": 2,
             "key_id_reader": 8, "key_id_clinician": 8, "hello_request": 18, "hello_response": 25, "th1": 32,
             "client_proof": 32, "auth_request": 33, "th2": 32, "pump_proof": 32, "auth_response": 32, "th3": 32,
             "hkdf_prk": 32, "hkdf_okm": 64, "key_to_pump": 32, "key_to_programmer": 32, "req_counter": 8,
             "req_nonce": 12, "req_aad": 15, "req_tag": 16, "req_plaintext": 0, "resp_plaintext": 199,
             "resp_counter": 8, "resp_nonce": 12, "resp_aad": 15, "resp_ciphertext": 199, "resp_tag": 16}
    for name, size in sizes.items():
        assert len(v[name]) == size, f"{name} is {len(v[name])} bytes, not {size}"


def test_the_annotated_frames_add_up_to_the_vectors(doc, v):
    dissections = parse_dissections(doc)
    assert set(dissections) >= {"hello_request_frame", "req_frame"}
    for name, data in dissections.items():
        assert data == v[name], f"the dissection of {name} does not add up to it"


def test_the_labels_table_is_the_code(doc):
    from protocol import security

    rows = first_table(section(doc, "Notation and primitives", level=3))
    labels = {}
    for name, ascii_, length, used in rows:
        text = ascii_.strip("`").encode("ascii")
        assert len(text) == int(length), f"{name}: {text!r} is not {length} bytes"
        assert used, name
        labels[name] = text
    assert labels == {name: getattr(security, name) for name in
                      ("KEY_ID_LABEL", "TRANSCRIPT_LABEL", "CLIENT_PROOF_LABEL", "PUMP_PROOF_LABEL",
                       "SESSION_KEYS_INFO")}


def test_version_constants_are_the_code(doc):
    from protocol import constants

    assert constants.PROTOCOL_VERSION == VERSION and constants.HELLO_FRAME_VERSION == 1
    assert doc.splitlines()[0] == f"# ithcli telemetry protocol (version {constants.PROTOCOL_VERSION})"


# --- the reference code -------------------------------------------------------------


def test_key_ids(v):
    from protocol import security

    assert security.key_id(v["k_reader"]) == v["key_id_reader"]
    assert security.key_id(v["k_clinician"]) == v["key_id_clinician"]


def test_handshake_payloads_and_frames_are_the_codec(v):
    from protocol import Command, Role, bodies, build_payload, decode_bytes, encode, security
    from protocol.framing import encode_frame

    seq = int.from_bytes(v["hello_seq"], "big")
    role = Role(v["role"][0])
    hello = bodies.HelloRequest(protocol_version=VERSION, client_nonce=v["client_nonce"], role=role)
    assert build_payload(Command.HELLO, hello) == v["hello_request"]
    assert encode(Command.HELLO, hello, seq=seq) == v["hello_request_frame"]
    reply = bodies.HelloResponse(protocol_version=VERSION, pump_nonce=v["pump_nonce"], key_id=v["key_id_clinician"])
    assert build_payload(Command.HELLO, reply, response=True) == v["hello_response"]
    assert encode(Command.HELLO, reply, seq=seq, response=True) == v["hello_response_frame"]
    auth = bodies.AuthRequest(role=role, proof=v["client_proof"])
    assert build_payload(Command.AUTH, auth) == v["auth_request"]
    assert encode(Command.AUTH, auth, seq=seq + 1) == v["auth_request_frame"]
    proof = bodies.AuthResponse(proof=v["pump_proof"])
    assert build_payload(Command.AUTH, proof, response=True) == v["auth_response"]
    assert encode(Command.AUTH, proof, seq=seq + 1, response=True) == v["auth_response_frame"]
    # HELLO frames at header version 1 whatever the protocol version; the rest at the protocol's
    assert [v[f][2] for f in ("hello_request_frame", "hello_response_frame", "auth_request_frame",
                              "auth_response_frame", "req_frame", "resp_frame")] == [1, 1] + [VERSION] * 4
    assert encode_frame(Command.AUTH, v["auth_response"], seq=seq + 1, response=True) == v["auth_response_frame"]
    message = decode_bytes(v["hello_response_frame"])
    assert message.body == reply
    assert security.key_id(v["k_clinician"]) == bodies.expect(message.body, bodies.HelloResponse).key_id


def test_transcript_proofs_and_keys_are_protocol_security(v):
    from protocol import security

    k = v["k_clinician"]
    th1 = security.transcript_hello(v["hello_request"], v["hello_response"])
    assert th1 == v["th1"]
    assert security.client_proof(k, th1) == v["client_proof"]
    th2 = security.transcript_add(th1, v["auth_request"])
    assert th2 == v["th2"]
    assert security.pump_proof(k, th2) == v["pump_proof"]
    th3 = security.transcript_add(th2, v["auth_response"])
    assert th3 == v["th3"]
    assert v["hkdf_info"] == security.SESSION_KEYS_INFO
    assert hmac.new(th3, k, hashlib.sha256).digest() == v["hkdf_prk"]
    okm = security.hkdf_sha256(k, th3, security.SESSION_KEYS_INFO, 64)
    assert okm == v["hkdf_okm"]
    # and the library's RFC 5869 HKDF agrees with ours
    assert HKDF(hashes.SHA256(), 64, salt=th3, info=v["hkdf_info"]).derive(k) == okm
    assert security.session_keys(k, th3) == (v["key_to_pump"], v["key_to_programmer"])
    assert okm == v["key_to_pump"] + v["key_to_programmer"]


def test_sealed_frames_are_the_secure_channel(v):
    from protocol import Command, FrameDecoder, security
    from protocol.framing import RawFrame, header_bytes

    k, th3, role = v["k_clinician"], v["th3"], v["role"][0]
    seq = int.from_bytes(v["req_seq"], "big")
    assert seq == int.from_bytes(v["hello_seq"], "big") + 2
    programmer = security.SecureChannel.derive(k, th3, role, pump_side=False)
    pump = security.SecureChannel.derive(k, th3, role, pump_side=True)
    assert (programmer.send_key, pump.send_key) == (v["key_to_pump"], v["key_to_programmer"])

    assert security.gcm_nonce(security.TO_PUMP, 1) == v["req_nonce"]
    assert security.gcm_nonce(security.TO_PROGRAMMER, 1) == v["resp_nonce"]
    assert v["req_counter"] == v["resp_counter"] == struct.pack(">Q", 1)
    for flags, side in ((0x02, "req"), (0x03, "resp")):  # AUTH, and RESPONSE for the pump's
        header = header_bytes(VERSION, flags, seq, Command.INTERROGATE, len(v[f"{side}_plaintext"]))
        assert header + v[f"{side}_counter"] == v[f"{side}_aad"], side

    assert programmer.seal(Command.INTERROGATE, v["req_plaintext"], seq=seq, response=False) == v["req_frame"]
    [raw] = FrameDecoder().feed(v["req_frame"])
    assert isinstance(raw, RawFrame), raw
    assert raw.payload == v["req_ciphertext"] and raw.auth == v["req_counter"] + v["req_tag"]
    assert pump.open(raw).payload == v["req_plaintext"]
    with pytest.raises(security.AuthError):  # the same frame again: a replay
        pump.open(raw)

    assert pump.seal(Command.INTERROGATE, v["resp_plaintext"], seq=seq, response=True) == v["resp_frame"]
    [raw] = FrameDecoder().feed(v["resp_frame"])
    assert isinstance(raw, RawFrame), raw
    assert raw.payload == v["resp_ciphertext"] and raw.auth == v["resp_counter"] + v["resp_tag"]
    # the header's length is the plaintext's and the ciphertext's alike
    assert struct.unpack(">H", v["resp_frame"][7:9])[0] == len(v["resp_plaintext"]) == len(v["resp_ciphertext"])
    assert programmer.open(raw).payload == v["resp_plaintext"]
    # the library agrees with the nonce and AAD of the doc
    sealed = AESGCM(v["key_to_programmer"]).encrypt(v["resp_nonce"], v["resp_plaintext"], v["resp_aad"])
    assert sealed == v["resp_ciphertext"] + v["resp_tag"]


def test_the_status_plaintext_is_the_documented_status(v, status):
    from protocol import Command, bodies, codec
    from protocol.framing import RawFrame

    frame = RawFrame(VERSION, 0x01, 0, int(Command.INTERROGATE), v["resp_plaintext"], None, b"")
    body = codec.decode(frame).body
    assert json.loads(json.dumps(bodies.as_dict(body), default=int)) == status
    assert status["serial_number"] == SERIAL


def test_client_session_reproduces_the_vectors(v, status):
    from protocol import Role, bodies
    from protocol.session import ClientSession, HelloReply, Reply, SessionOpen

    seq = int.from_bytes(v["hello_seq"], "big")
    client = ClientSession(seq=seq - 1)
    assert client.hello(Role(v["role"][0]), nonce=v["client_nonce"]) == v["hello_request_frame"]
    assert client.receive_data(v["hello_response_frame"]) == [HelloReply(v["key_id_clinician"], VERSION)]
    assert client.authenticate(v["k_clinician"]) == v["auth_request_frame"]
    assert client.receive_data(v["auth_response_frame"]) == [SessionOpen(Role.CLINICIAN)]
    assert client.request(bodies.InterrogateRequest()) == v["req_frame"]
    [reply] = client.receive_data(v["resp_frame"])
    assert isinstance(reply, Reply) and json.loads(json.dumps(bodies.as_dict(reply.body), default=int)) == status


def _vector_pump():
    from emulator.pump import Pump
    from protocol import Drug

    return Pump.new(model="peristaltic-40", serial=SERIAL, drug=Drug.MORPHINE, concentration_ng_per_ml=10_000_000,
                    reservoir_ul=20_000, flow_nl_per_day=100_000, low_reservoir_alarm_ul=2_000,
                    battery_seconds=5 * 365 * 86_400, start_time=1_767_225_600)


def _raw(data: bytes):
    from protocol import FrameDecoder

    [raw] = FrameDecoder().feed(data)
    return raw


def test_the_pump_reproduces_the_vectors(v, monkeypatch):
    from emulator.faults import Faults
    from emulator.handler import respond
    from emulator.security_state import Backoff
    from emulator.session import Session
    from protocol import Command, Role, security

    pump = _vector_pump()
    session = Session({Role.READER: v["k_reader"], Role.CLINICIAN: v["k_clinician"]}, Backoff())
    monkeypatch.setattr(security, "new_nonce", lambda: v["pump_nonce"])
    assert respond(pump, _raw(v["hello_request_frame"]), Faults(), session) == v["hello_response_frame"]
    monkeypatch.undo()
    assert respond(pump, _raw(v["auth_request_frame"]), Faults(), session) == v["auth_response_frame"]
    assert session.open(_raw(v["req_frame"])).payload == v["req_plaintext"]
    seq = int.from_bytes(v["req_seq"], "big")
    assert session.seal(Command.INTERROGATE, v["resp_plaintext"], seq) == v["resp_frame"]


def test_version_negotiation_vectors(v):
    from emulator.faults import Faults
    from emulator.handler import respond
    from emulator.security_state import Backoff
    from emulator.session import Session
    from protocol import Command, ErrorReason, Role, bodies, decode_bytes, parse_frame
    from protocol.errors import VersionError
    from protocol.framing import encode_frame
    from protocol.session import ClientSession, VersionMismatch

    seq = int.from_bytes(v["old_seq"], "big")
    old_hello = bytes([OLD]) + v["client_nonce"] + v["role"]
    assert encode_frame(Command.HELLO, old_hello, seq=seq, version=1) == v["old_hello_request_frame"]
    session = Session({Role.CLINICIAN: v["k_clinician"]}, Backoff())
    pump = _vector_pump()
    assert respond(pump, _raw(v["old_hello_request_frame"]), Faults(), session) == v["old_refusal_frame"]
    assert pump.auth.total == 0  # an old programmer is not an authentication failure
    refusal = decode_bytes(v["old_refusal_frame"])
    assert v["old_refusal_frame"][2] == 1 and refusal.response and refusal.command == Command.ERROR
    error = bodies.expect(refusal.body, bodies.ErrorResponse)
    assert error.reason == ErrorReason.UNSUPPORTED_VERSION and error.request_command == 1
    assert error.detail == f"this pump speaks protocol version {VERSION}; the programmer's highest is {OLD}"

    old_reply = bytes([OLD]) + v["pump_nonce"] + v["key_id_clinician"]
    hello_seq = int.from_bytes(v["hello_seq"], "big")
    assert encode_frame(Command.HELLO, old_reply, seq=hello_seq, response=True, version=1) == \
        v["old_hello_response_frame"]
    client = ClientSession(seq=hello_seq - 1)
    client.hello(Role.CLINICIAN, nonce=v["client_nonce"])
    with pytest.raises(VersionMismatch) as caught:
        client.receive_data(v["old_hello_response_frame"])
    assert caught.value.pump_version == OLD
    assert str(caught.value) == (f"the pump speaks protocol version {OLD}; this programmer speaks version "
                                 f"{VERSION}: no session was opened")

    # the receiving rules: header version 1 only for HELLO and ERROR responses in clear
    def accepted(version: int, flags: int, command: int) -> bool:
        frame = encode_frame(command, b"", seq=1, version=version, response=bool(flags & 1),
                             auth=b"\0" * 24 if flags & 2 else None)
        return not isinstance(parse_frame(frame)[1], VersionError)

    assert accepted(1, 0x00, 0x01) and accepted(1, 0x01, 0x01) and accepted(1, 0x01, 0x7F)
    assert not accepted(1, 0x00, 0x7F)  # an ERROR "request"
    assert not accepted(1, 0x02, 0x01) and not accepted(1, 0x03, 0x7F)  # nothing sealed at version 1
    assert not accepted(1, 0x00, 0x02) and not accepted(1, 0x00, 0x05)  # a version-1 INTERROGATE, AUTH
    assert all(accepted(VERSION, flags, cmd) for flags in (0, 1, 2, 3) for cmd in (0x01, 0x02, 0x05, 0x7F))
    # an older or newer peer's frames other than HELLO and ERROR: garbage
    for other in (0, OLD, VERSION + 1):
        assert not any(accepted(other, flags, cmd) for flags in (0, 1, 2, 3) for cmd in (0x01, 0x02, 0x05, 0x7F))


def test_the_example_key_file_is_the_vectors_and_both_readers_take_it(doc, v, tmp_path):
    from emulator import keys as pump_keys
    from ithcli import keystore
    from ithcli.errors import AuthError
    from protocol import Role

    example = first_json(section(doc, "Key file format", level=3))
    assert example == {"format": "ithcli-pump-keys", "version": 1, "serial": SERIAL,
                       "keys": {"reader": v["k_reader"].hex(), "clinician": v["k_clinician"].hex()}}
    path = tmp_path / "pump-keys.json"
    path.write_text(json.dumps(example))
    path.chmod(0o600)
    assert pump_keys.load(str(path), SERIAL) == {Role.READER: v["k_reader"], Role.CLINICIAN: v["k_clinician"]}
    assert keystore.read_key_file(path) == {"serial": SERIAL,
                                            "keys": {"reader": v["k_reader"], "clinician": v["k_clinician"]}}
    for mode in (0o640, 0o604, 0o610):  # any access for group or others: refused by both
        path.chmod(mode)
        with pytest.raises(pump_keys.KeyFileError):
            pump_keys.load(str(path), SERIAL)
        with pytest.raises(AuthError, match="group or others"):
            keystore.read_key_file(path)


# --- an implementation from the doc alone ------------------------------------------


class Outsider:
    """A programmer and a pump written from docs/protocol.md only: hashlib, hmac, struct, AESGCM.

    Nothing from protocol/ is imported here; every constant is typed from the doc."""

    SYNC = b"\xa5\x5a"
    TO_PUMP, TO_PROGRAMMER = b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"

    @staticmethod
    def crc32c(data: bytes) -> int:  # reflected 0x82F63B78, init and xorout 0xFFFFFFFF
        crc = 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        return crc ^ 0xFFFFFFFF

    @classmethod
    def frame(cls, version: int, flags: int, seq: int, command: int, payload: bytes, trailer: bytes = b"") -> bytes:
        body = struct.pack(">BBHBH", version, flags, seq, command, len(payload)) + payload + trailer
        return cls.SYNC + body + struct.pack(">I", cls.crc32c(body))

    @classmethod
    def unframe(cls, data: bytes) -> tuple[bytes, bytes, bytes]:
        """(7 header bytes, payload, trailer) of one whole frame, CRC checked."""
        assert data[:2] == cls.SYNC
        assert struct.unpack(">I", data[-4:])[0] == cls.crc32c(data[2:-4]), "CRC"
        header = data[2:9]
        version, flags, _, command, length = struct.unpack(">BBHBH", header)
        assert version == 5 or (version == 1 and not flags & 2 and (command == 1 or (command == 0x7F and flags & 1)))
        payload = data[9:9 + length]
        trailer = data[9 + length:-4]
        assert len(trailer) == (24 if flags & 2 else 0)
        return header, payload, trailer

    @staticmethod
    def hmac(key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, hashlib.sha256).digest()

    @staticmethod
    def sha256(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    @classmethod
    def key_id(cls, k: bytes) -> bytes:
        return cls.hmac(k, b"ithcli-key-id")[0:8]

    @classmethod
    def hkdf(cls, ikm: bytes, salt: bytes, info: bytes, length: int) -> tuple[bytes, bytes]:
        prk = cls.hmac(salt, ikm)
        okm, t, i = b"", b"", 1
        while len(okm) < length:
            t = cls.hmac(prk, t + info + bytes([i]))
            okm += t
            i += 1
        return prk, okm[:length]

    @classmethod
    def seal(cls, key: bytes, direction: bytes, counter: int, flags: int, seq: int, command: int,
             plaintext: bytes) -> tuple[bytes, bytes, bytes]:
        """(frame, nonce, aad)."""
        ctr = struct.pack(">Q", counter)
        header = struct.pack(">BBHBH", 5, flags, seq, command, len(plaintext))
        nonce, aad = direction + ctr, header + ctr
        sealed = AESGCM(key).encrypt(nonce, plaintext, aad)
        ciphertext, tag = sealed[:-16], sealed[-16:]
        return cls.frame(5, flags, seq, command, ciphertext, ctr + tag), nonce, aad

    @classmethod
    def open(cls, key: bytes, direction: bytes, highest: int, data: bytes) -> tuple[int, bytes]:
        """(counter, plaintext); raises on a bad tag or a counter not above `highest`."""
        header, ciphertext, trailer = cls.unframe(data)
        ctr, tag = trailer[:8], trailer[8:]
        plaintext = AESGCM(key).decrypt(direction + ctr, ciphertext + tag, header + ctr)
        counter = struct.unpack(">Q", ctr)[0]
        if counter <= highest:
            raise ValueError(f"replayed or stale counter {counter}")
        return counter, plaintext


def check_outsider(v: dict[str, bytes]) -> None:
    """Every vector, recomputed by the Outsider (assertions name the first value that differs)."""
    o = Outsider
    assert o.crc32c(b"123456789") == 0xE3069283  # the doc's check value
    k = v["k_clinician"]
    seq = struct.unpack(">H", v["hello_seq"])[0]
    role = v["role"]
    assert o.key_id(v["k_reader"]) == v["key_id_reader"], "key_id_reader"
    assert o.key_id(k) == v["key_id_clinician"], "key_id_clinician"

    # the programmer's HELLO; the pump's answer
    hello_request = bytes([5]) + v["client_nonce"] + role
    assert hello_request == v["hello_request"], "hello_request"
    assert o.frame(1, 0x00, seq, 0x01, hello_request) == v["hello_request_frame"], "hello_request_frame"
    _, received, _ = o.unframe(v["hello_request_frame"])
    hello_response = bytes([5]) + v["pump_nonce"] + o.key_id(k)
    assert hello_response == v["hello_response"], "hello_response"
    assert o.frame(1, 0x01, seq, 0x01, hello_response) == v["hello_response_frame"], "hello_response_frame"
    th1 = o.sha256(b"ithcli/2 transcript" + received + hello_response)
    assert th1 == v["th1"], "th1"

    # the programmer reads the HELLO response and proves the key
    _, payload, _ = o.unframe(v["hello_response_frame"])
    assert payload[0] == 5 and payload[17:25] == o.key_id(k)
    client_proof = o.hmac(k, b"ithcli/2 client proof" + o.sha256(b"ithcli/2 transcript" + hello_request + payload))
    assert client_proof == v["client_proof"], "client_proof"
    auth_request = role + client_proof
    assert auth_request == v["auth_request"], "auth_request"
    assert o.frame(5, 0x00, seq + 1, 0x05, auth_request) == v["auth_request_frame"], "auth_request_frame"

    # the pump checks it and proves the key too
    _, received, _ = o.unframe(v["auth_request_frame"])
    assert hmac.compare_digest(received[1:], o.hmac(k, b"ithcli/2 client proof" + th1))
    th2 = o.sha256(th1 + received)
    assert th2 == v["th2"], "th2"
    pump_proof = o.hmac(k, b"ithcli/2 pump proof" + th2)
    assert pump_proof == v["pump_proof"], "pump_proof"
    assert pump_proof == v["auth_response"], "auth_response"
    assert o.frame(5, 0x01, seq + 1, 0x05, pump_proof) == v["auth_response_frame"], "auth_response_frame"
    th3 = o.sha256(th2 + pump_proof)
    assert th3 == v["th3"], "th3"

    # both derive the session keys
    assert v["hkdf_info"] == b"ithcli/2 session keys", "hkdf_info"
    prk, okm = o.hkdf(k, th3, b"ithcli/2 session keys", 64)
    assert prk == v["hkdf_prk"], "hkdf_prk"
    assert okm == v["hkdf_okm"], "hkdf_okm"
    to_pump, to_programmer = okm[0:32], okm[32:64]
    assert (to_pump, to_programmer) == (v["key_to_pump"], v["key_to_programmer"]), "session keys"

    # the sealed INTERROGATE (command 0x02, empty payload) and the sealed reply
    req_seq = struct.unpack(">H", v["req_seq"])[0]
    assert req_seq == seq + 2
    frame, nonce, aad = o.seal(to_pump, o.TO_PUMP, 1, 0x02, req_seq, 0x02, v["req_plaintext"])
    assert (nonce, aad) == (v["req_nonce"], v["req_aad"]), "req_nonce / req_aad"
    assert frame == v["req_frame"], "req_frame"
    assert frame[9:9] == v["req_ciphertext"], "req_ciphertext"
    assert frame[-20:-4] == v["req_tag"] and frame[9:17] == v["req_counter"], "req trailer"
    assert o.open(to_pump, o.TO_PUMP, 0, frame) == (1, v["req_plaintext"])
    frame, nonce, aad = o.seal(to_programmer, o.TO_PROGRAMMER, 1, 0x03, req_seq, 0x02, v["resp_plaintext"])
    assert (nonce, aad) == (v["resp_nonce"], v["resp_aad"]), "resp_nonce / resp_aad"
    assert frame == v["resp_frame"], "resp_frame"
    n = len(v["resp_plaintext"])
    assert frame[9:9 + n] == v["resp_ciphertext"], "resp_ciphertext"
    assert frame[9 + n:9 + n + 8] == v["resp_counter"], "resp_counter"
    assert frame[9 + n + 8:9 + n + 24] == v["resp_tag"], "resp_tag"
    assert o.open(to_programmer, o.TO_PROGRAMMER, 0, v["resp_frame"]) == (1, v["resp_plaintext"])

    # version negotiation with a version-4 peer: the frames are plain frames at header version 1
    old_seq = struct.unpack(">H", v["old_seq"])[0]
    assert o.frame(1, 0x00, old_seq, 0x01, bytes([4]) + v["client_nonce"] + role) == v["old_hello_request_frame"]
    header, payload, _ = o.unframe(v["old_refusal_frame"])
    assert header == struct.pack(">BBHBH", 1, 0x01, old_seq, 0x7F, len(payload))
    assert payload[0:2] == bytes([0x01, 3])  # request_command HELLO, reason UNSUPPORTED_VERSION
    assert payload[2] == len(payload) - 3  # u8 n + utf8[n]
    assert payload[3:] == b"this pump speaks protocol version 5; the programmer's highest is 4"
    header, payload, _ = o.unframe(v["old_hello_response_frame"])
    assert header[0] == 1 and payload[0] == 4 and payload[17:] == o.key_id(k)


def test_an_implementation_from_the_doc_alone_reproduces_every_vector(v):
    check_outsider(v)


def test_the_outsider_refuses_what_the_doc_says_to_refuse(v):
    o = Outsider
    key = v["key_to_programmer"]
    with pytest.raises(ValueError, match="replayed"):  # the same counter again
        o.open(key, o.TO_PROGRAMMER, 1, v["resp_frame"])
    with pytest.raises(InvalidTag):  # the other direction's key and nonce
        o.open(v["key_to_pump"], o.TO_PUMP, 0, v["resp_frame"])
    # one header bit changed, CRC recomputed (what an attacker does): the tag catches it
    body = bytearray(v["resp_frame"][2:-4])
    body[2] ^= 0x01  # the seq
    forged = o.SYNC + bytes(body) + struct.pack(">I", o.crc32c(bytes(body)))
    with pytest.raises(InvalidTag):
        o.open(key, o.TO_PROGRAMMER, 0, forged)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_outsider_check_bites(v, name):
    """Any vector of the doc changed by one bit (or an empty one given a byte) fails the check."""
    changed = dict(v)
    value = bytearray(changed[name] or b"\0")
    value[-1] ^= 0x01 if changed[name] else 0
    changed[name] = bytes(value)
    with pytest.raises((AssertionError, InvalidTag, ValueError)):
        check_outsider(changed)


def test_the_parser_reads_continuations_and_refuses_stray_lines():
    found: dict[str, str] = {}
    parse_vector_lines(["# a comment", "a_b = 00ff", "     11", "empty =", "", "c = 0a"], found)
    assert found == {"a_b": "00ff11", "empty": "", "c": "0a"}
    with pytest.raises(AssertionError):
        parse_vector_lines(["x = 00", "not hex here"], {})
    with pytest.raises(AssertionError):
        parse_vector_lines(["x = 00", "x = 01"], {})
    assert os.path.exists(DOC)


def test_every_link_inside_the_doc_resolves(doc):
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    fenced, anchors = False, set()
    for line in doc.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6} (.+?)\s*$", line)):
            anchors.add(re.sub(r"[^\w\- ]", "", m[1].lower()).replace(" ", "-"))
    links = set(re.findall(r"\]\(#([^)]+)\)", doc))
    assert links, "no links found"
    assert links <= anchors, f"links to no heading: {sorted(links - anchors)}"
