"""The secure telemetry link, attacked from the wire (docs/security.md maps each test to a control).

Real emulator processes; the attacker is a RawClient without keys (or with the
wrong ones) that speaks the raw protocol: it eavesdrops on, records, replays,
alters and injects frames. "Nothing changed" is checked through a fresh
legitimate session (INTERROGATE, READ_PROGRAM, the log's TX_APPLIED events) and
the control channel. Clocks are frozen unless a test needs time to pass.
"""
from __future__ import annotations

import dataclasses
import json
import os
import stat
import time

import emulator_harness
import pytest
from emulator_harness import HandshakeError, RawClient, read_log, refused, write_key_file
from loopback import KEYS, Loopback, VirtualClock, new_pump

from emulator.security_state import Backoff
from protocol import (
    PROTOCOL_VERSION,
    Command,
    ErrorReason,
    EventType,
    InfusionMode,
    Role,
    WriteKind,
    bodies,
    encode,
    security,
)
from protocol.crc import crc32c
from protocol.framing import RawFrame, parse_frame
from protocol.session import ClientSession, HelloReply, SessionOpen

FROZEN = 1e-9
SERIAL = "SECRET-SN-4711"
WRITES = (Command.PREPARE_PROGRAM, Command.PREPARE_REFILL, Command.PREPARE_BOLUS, Command.PREPARE_MRI_ENTER,
          Command.PREPARE_MRI_EXIT, Command.PREPARE_CATHETER, Command.PREPARE_CLOCK, Command.PREPARE_PTM,
          Command.PREPARE_PATIENT, Command.COMMIT)
#: the patient recorded in the confidentiality test: none of it may cross the wire in clear
PATIENT_ID, INITIALS, BORN = "MRN-SECRET-0042117", "QXZ", 19_610_823
PATIENT = {"patient_id": PATIENT_ID, "initials": INITIALS, "birth_date": BORN}


@pytest.fixture
def emu(start_emulator):
    return start_emulator("--serial", SERIAL, transport="tcp", time_scale=FROZEN)


# --- helpers ----------------------------------------------------------------------


def program_body(txid, dose=3_000_000):
    return {"txid": txid, "mode": InfusionMode.CONTINUOUS, "drug": "MORPHINE",
            "concentration_ng_per_ml": 10_000_000, "steps": [{"start_minute": 0, "dose_ng_per_day": dose}]}


WRITE_BODIES = {
    Command.PREPARE_PROGRAM: program_body(50),
    Command.PREPARE_REFILL: {"txid": 51, "drug": "MORPHINE", "concentration_ng_per_ml": 10_000_000,
                             "volume_ul": 20_000, "withdrawn_ul": 0, "mode": InfusionMode.CONTINUOUS,
                             "steps": [{"start_minute": 0, "dose_ng_per_day": 2_000_000}],
                             "bridge_volume_nl": 0, "bridge_duration_s": 0},
    Command.PREPARE_BOLUS: {"txid": 52, "dose_ng": 100_000, "duration_s": 3600, "purpose": "CLINICIAN"},
    Command.PREPARE_MRI_ENTER: {"txid": 53, "auto_exit_s": 14_400},
    Command.PREPARE_MRI_EXIT: {"txid": 54},
    Command.PREPARE_CATHETER: {"txid": 55, "based_on_txid": 0, "action": "REVISION", "model": "STANDARD",
                               "length_mm": 800, "replaced_mm": 100},
    Command.PREPARE_CLOCK: {"txid": 56, "based_on_txid": 0, "new_time": 1_800_000_000},
    Command.PREPARE_PTM: {"txid": 57, "based_on_txid": 0, "limits": {"enabled": 1, "dose_ng": 100_000,
                                                                      "duration_s": 600, "lockout_s": 3600,
                                                                      "max_per_day": 4}},
    Command.PREPARE_PATIENT: {"txid": 58, "based_on_txid": 0, "action": "RECORD", **PATIENT,
                              "spasticity_origin": "SPINAL"},
    Command.COMMIT: {"txid": 50},
}



def therapy(emu):
    """What matters clinically, read through a fresh legitimate session (and the control channel)."""
    with RawClient(emu.url, keys=emu.keys) as c:
        status = c.request(Command.INTERROGATE).body
        program = c.request(Command.READ_PROGRAM).body
        applied = [(e.arg1, e.arg2) for e in read_log(c) if e.type == EventType.TX_APPLIED]
    # sessions and refusals are logged and counted: not compared
    status = dataclasses.replace(status, event_count=0, auth_failures=0)
    return status, program, applied, emu.control("state")["pending"]


def auth_failures(emu) -> int:
    return emu.control("state")["auth_failures"]



def assert_no_reply(client):
    """Nothing sent so far on this connection is answered any more (RawClient.frames_before_barrier:
    a harmless request behind it is answered first; no fixed wait)."""
    frames = client.frames_before_barrier()
    assert frames == [], [(f.seq, f.command) for f in frames]


def auth_events(emu, c=None):
    if c is None:
        with RawClient(emu.url, keys=emu.keys) as c:
            return auth_events(emu, c)
    return [(e.arg1, e.arg2) for e in read_log(c) if e.type == EventType.AUTH_FAILURE]


def run_emulator(*args, timeout=20):
    return emulator_harness.run_emulator("--listen", "127.0.0.1:0", *args, timeout=timeout)


def assert_refused_at_start(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ith-emulator: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- confidentiality: what an eavesdropper and an unauthenticated peer learn ---------------


def test_without_a_key_nothing_is_read_or_changed(emu):
    before = therapy(emu)
    with RawClient(emu.url) as attacker:
        # HELLO answers a nonce and a key id: no serial, model, time or therapy
        hello, _ = attacker.hello("clinician")
        assert {f.name for f in dataclasses.fields(hello.body)} == {"protocol_version", "pump_nonce", "key_id"}
        assert hello.body.key_id == security.key_id(emu.keys["clinician"])
        again, _ = attacker.hello("clinician")
        assert again.body.pump_nonce != hello.body.pump_nonce  # fresh for every HELLO
        for command, body in [(Command.INTERROGATE, {}), (Command.READ_PROGRAM, {}),
                              (Command.READ_LOG, {"first_index": 0, "max_count": 5}),
                              *WRITE_BODIES.items()]:
            refused(attacker.request_clear(command, body), ErrorReason.NOT_AUTHENTICATED)
        # AUTH out of turn, and a frame sealed with a key of the attacker's own making
        with RawClient(emu.url) as fresh:  # no HELLO on this connection
            refused(fresh.request_clear(Command.AUTH, {"role": Role.CLINICIAN, "proof": bytes(32)}),
                    ErrorReason.NOT_AUTHENTICATED)
        attacker.channel = security.SecureChannel.derive(security.new_key(), bytes(32), Role.CLINICIAN,
                                                         pump_side=False)
        forged = attacker.seal(Command.COMMIT, {"txid": 50}, seq=99)
        attacker.channel = None
        refused(attacker.exchange(forged, 99), ErrorReason.NOT_AUTHENTICATED)
        assert SERIAL.encode() not in attacker.wire_in
    assert therapy(emu) == before
    assert auth_failures(emu) == len(WRITE_BODIES) + 3 + 2


def test_a_legitimate_session_never_shows_the_serial_or_therapy_in_clear(emu):
    with RawClient(emu.url, keys=emu.keys) as c:
        status = c.request(Command.INTERROGATE)
        program = c.request(Command.READ_PROGRAM)
        log = c.request(Command.READ_LOG, {"first_index": 0, "max_count": 5})
        assert status.body.serial_number == SERIAL
        assert all(m.auth is not None for m in (status, program, log))  # all sealed
        wire_in, wire_out = bytes(c.wire_in), b"".join(c.wire_out)
    assert SERIAL.encode() not in wire_in and SERIAL.encode() not in wire_out
    # every frame after the handshake (HELLO and AUTH replies) is sealed: payloads are ciphertext
    frames: list[RawFrame] = []
    rest = wire_in
    while rest:
        used, item = parse_frame(rest)
        assert used, "a partial frame on the wire"
        assert isinstance(item, RawFrame), item  # nothing but good frames on the wire
        frames.append(item)
        rest = rest[used:]
    assert [f.command for f in frames[:2]] == [Command.HELLO, Command.AUTH]
    assert all(f.auth is not None for f in frames[2:]) and len(frames) == 5
    plain = encode(Command.INTERROGATE, status.body, seq=status.seq, response=True)
    assert plain[9:-4] not in wire_in  # the Status payload itself never travels in clear


def test_a_recorded_patient_never_shows_in_clear_on_the_wire(emu):
    """The patient record (version 5) is written, echoed, read back and logged through a real
    emulator: its ID, initials and birth date never appear in clear, either way, and the log
    never carries them."""
    with RawClient(emu.url, keys=emu.keys) as c:
        last = c.request(Command.INTERROGATE).body.last_txid
        echo = c.request(Command.PREPARE_PATIENT, {**WRITE_BODIES[Command.PREPARE_PATIENT], "based_on_txid": last})
        assert echo.body.patient.patient_id == PATIENT_ID, echo.body
        assert c.request(Command.COMMIT, {"txid": 58}).body.outcome.name == "APPLIED"
        status = c.request(Command.INTERROGATE)
        assert (status.body.patient.patient_id, status.body.patient.initials) == (PATIENT_ID, INITIALS)
        # a correction too (its request carries the record again)
        fixed = {**WRITE_BODIES[Command.PREPARE_PATIENT], "txid": 59, "based_on_txid": 58, "action": "CORRECT",
                 "spasticity_origin": "CEREBRAL"}
        assert c.request(Command.PREPARE_PATIENT, fixed).auth is not None
        assert c.request(Command.COMMIT, {"txid": 59}).auth is not None
        events = read_log(c)
        wire_in, wire_out = bytes(c.wire_in), b"".join(c.wire_out)
    recorded = [e for e in events if e.type == EventType.PATIENT_RECORDED]
    assert [(e.arg1, e.arg2 & 0xFF) for e in recorded] == [(1, 1), (2, 2)]  # RECORD spinal; CORRECT cerebral
    secrets = [PATIENT_ID.encode(), INITIALS.encode(), BORN.to_bytes(4, "big"), b"SECRET"]
    for secret in secrets:
        assert secret not in wire_in and secret not in wire_out, secret
    # no logged event carries any of it either (its arguments are the action, the origin, the fields changed)
    assert all(BORN not in (e.arg1, e.arg2) for e in events)
    # and the frames that carried it were sealed: every frame after HELLO and AUTH, both ways
    for wire in (wire_in, wire_out):
        frames = []
        rest = wire
        while rest:
            used, item = parse_frame(rest)
            assert used and isinstance(item, RawFrame), item
            frames.append(item)
            rest = rest[used:]
        assert [f.command for f in frames[:2]] == [Command.HELLO, Command.AUTH]
        assert all(f.auth is not None for f in frames[2:])
        assert Command.PREPARE_PATIENT in [f.command for f in frames]


# --- authentication and brute force ------------------------------------------------------------


def test_a_wrong_key_cannot_open_a_session(emu):
    with RawClient(emu.url) as attacker, RawClient(emu.url) as clinician:
        for n, (role, key) in enumerate([("clinician", security.new_key()), ("reader", security.new_key()),
                                         ("clinician", emu.keys["reader"])]):  # the reader key as a clinician
            with pytest.raises(HandshakeError) as exc:
                attacker.handshake(role, key)
            refused(exc.value.reply, ErrorReason.AUTH_FAILED)
            assert attacker.channel is None
            refused(attacker.request(Command.INTERROGATE), ErrorReason.NOT_AUTHENTICATED)
            # the right key still works (and resets the back-off count)
            clinician.handshake("clinician", emu.keys["clinician"])
            assert clinician.request(Command.INTERROGATE).body.auth_failures == 2 * (n + 1)


def test_brute_force_is_slowed_down_and_the_clinician_still_gets_in(start_emulator):
    """The back-off is per connection (protocol version 2): the guessing connection is slowed
    down, while a programmer holding the key gets in at once on its own connection. (When the
    wait ends, on the back-off's own clock: test_the_back_off_ends_on_time_and_a_success_resets_it.)"""
    emu = start_emulator("--auth-backoff-cap", "1", transport="tcp", time_scale=FROZEN)
    right = emu.keys["clinician"]
    with RawClient(emu.url) as attacker, RawClient(emu.url) as other:
        for _ in range(3):
            with pytest.raises(HandshakeError) as exc:
                attacker.handshake("clinician", security.new_key())
            refused(exc.value.reply, ErrorReason.AUTH_FAILED)
        # now every AUTH on the attacker's connection is refused unchecked, even with the right key
        for key in (security.new_key(), right):
            with pytest.raises(HandshakeError) as exc:
                attacker.handshake("clinician", key)
            detail = refused(exc.value.reply, ErrorReason.RATE_LIMITED)
            assert detail.endswith("retry in 1 s"), detail  # --auth-backoff-cap 1
        # ... but not on another connection: no keyless lock-out
        other.handshake("clinician", right)
        assert other.request(Command.INTERROGATE).body.auth_failures == 5  # counted pump-wide
    reasons = [r for _, r in auth_events(emu)]
    assert reasons and set(reasons) <= {ErrorReason.AUTH_FAILED, ErrorReason.RATE_LIMITED}


def test_the_back_off_ends_on_time_and_a_success_resets_it():
    """The back-off's wait, on an injected clock (the emulator's own Session and Backoff, in process:
    tests/loopback.py): refused attempts do not extend it; `cap` after the last wrong proof the
    right key opens a session; a success resets the count, so the next wrong proof is checked."""
    clock = VirtualClock()
    link = Loopback(new_pump(), backoff=Backoff(cap_s=1, monotonic=clock.monotonic))

    def auth(key: bytes):
        client = ClientSession()
        assert isinstance(client.receive_data(link.send(client.hello(Role.CLINICIAN)))[0], HelloReply)
        return client.receive_data(link.send(client.authenticate(key)))[0]

    for _ in range(3):
        assert auth(security.new_key()).reason == ErrorReason.AUTH_FAILED
    last_failure = clock.now
    clock.sleep(0.5)
    for key in (security.new_key(), KEYS[Role.CLINICIAN]):  # refused unchecked; the wait not extended
        answer = auth(key)
        assert answer.reason == ErrorReason.RATE_LIMITED and answer.detail.endswith("retry in 1 s"), answer
    clock.sleep(last_failure + 0.99 - clock.now)
    assert auth(KEYS[Role.CLINICIAN]).reason == ErrorReason.RATE_LIMITED  # not yet
    clock.sleep(0.01)
    assert isinstance(auth(KEYS[Role.CLINICIAN]), SessionOpen)  # 1 s after the last wrong proof
    assert auth(security.new_key()).reason == ErrorReason.AUTH_FAILED  # checked again: the count was reset


def test_hello_for_a_role_without_a_key_is_refused(start_emulator, tmp_path):
    key_file = tmp_path / "reader-only.json"
    keys = write_key_file(key_file, "EMU00001", roles=("reader",))
    emu = start_emulator(transport="tcp", time_scale=FROZEN, key_file=key_file)
    assert emu.keys == keys
    with RawClient(emu.url) as c:
        refused(c.hello("clinician")[0], ErrorReason.NOT_PERMITTED)
        c.handshake("reader", keys["reader"])
        assert c.request(Command.INTERROGATE).auth is not None
    assert auth_failures(emu) == 1


def test_hello_from_an_older_programmer_is_refused_and_a_newer_one_is_told_the_pumps_version(emu):
    with RawClient(emu.url) as c:
        old = c.request_clear(Command.HELLO, {"protocol_version": PROTOCOL_VERSION - 1,
                                              "client_nonce": security.new_nonce(), "role": Role.CLINICIAN})
        detail = refused(old, ErrorReason.UNSUPPORTED_VERSION)
        assert detail == f"this pump speaks protocol version {PROTOCOL_VERSION}; the programmer's highest is " \
                         f"{PROTOCOL_VERSION - 1}" and PROTOCOL_VERSION == 5
        newer = c.request_clear(Command.HELLO, {"protocol_version": PROTOCOL_VERSION + 1,
                                                "client_nonce": security.new_nonce(), "role": Role.CLINICIAN})
        assert newer.command == Command.HELLO and newer.body.protocol_version == PROTOCOL_VERSION
    assert auth_failures(emu) == 0  # a version mismatch is not a guess at a key


# --- authorisation: the read-only key ------------------------------------------------------


def test_a_reader_key_cannot_prepare_or_commit(emu):
    with RawClient(emu.url, keys=emu.keys) as clinician:
        assert clinician.request(Command.PREPARE_PROGRAM, program_body(50)).command == Command.PREPARE_PROGRAM
    before = therapy(emu)
    assert before[3]["txid"] == 50  # pending: a reader must not be able to commit it
    with RawClient(emu.url, keys=emu.keys, role="reader") as reader:
        for command in (Command.INTERROGATE, Command.READ_PROGRAM):
            assert reader.request(command).command == command
        assert reader.request(Command.READ_LOG, {"first_index": 0, "max_count": 3}).command == Command.READ_LOG
        for command, body in WRITE_BODIES.items():
            reply = reader.request(command, body)
            assert "CLINICIAN" in refused(reply, ErrorReason.NOT_PERMITTED)
            assert reply.auth is not None  # answered inside the session
        assert reader.request(Command.INTERROGATE).body.auth_failures == len(WRITES)
    assert therapy(emu) == before  # the pending transaction is still 50, nothing applied
    with RawClient(emu.url, keys=emu.keys) as clinician:
        assert clinician.request(Command.COMMIT, {"txid": 50}).body.kind == WriteKind.PROGRAM
        logged = [(e.arg1, e.arg2) for e in read_log(clinician) if e.type == EventType.SESSION_OPENED]
    # every session counted, by role; the first of each role logged at once, the rest
    # counted into one SESSION_OPENED 10 minutes later (the clock is frozen here)
    assert emu.control("state")["sessions_opened"] == {"reader": 1, "clinician": 4}
    assert logged == [(Role.CLINICIAN, 1), (Role.READER, 1)]


# --- replay, old sessions, restarts ---------------------------------------------------------


def test_recorded_frames_are_rejected_when_replayed(start_emulator, tmp_path):
    state_path = tmp_path / "pump.json"
    emu = start_emulator("--serial", SERIAL, transport="tcp", time_scale=FROZEN, state_path=state_path)
    with RawClient(emu.url, keys=emu.keys) as c:
        assert c.request(Command.PREPARE_PROGRAM, program_body(10)).command == Command.PREPARE_PROGRAM
        assert c.request(Command.COMMIT, {"txid": 10}).command == Command.COMMIT
        recorded = c.wire_out[-2:]  # the PREPARE and COMMIT exactly as they crossed the wire
        assert c.request(Command.PREPARE_PROGRAM, program_body(11, 1_000_000)).command == Command.PREPARE_PROGRAM
        pending_11 = therapy(emu)
        assert pending_11[2] == [(10, WriteKind.PROGRAM)] and pending_11[3]["txid"] == 11
        failures = auth_failures(emu)

        def replay_rejected(client, emulator, expected_failures):
            for frame in recorded:
                client.send_raw(frame)
            # the pump answers in order: a fresh request's reply comes first, nothing before it
            assert client.request(Command.INTERROGATE).command == Command.INTERROGATE
            assert [f for f in client.dropped if not isinstance(f, Exception)] == []
            assert auth_failures(emulator) == expected_failures

        replay_rejected(c, emu, failures + 2)  # within the session: stale counters
        c.handshake("clinician", emu.keys["clinician"])  # a new session on the same connection
        replay_rejected(c, emu, failures + 4)  # another session's keys: bad tags
    with RawClient(emu.url) as attacker:  # on a connection of its own: no session at all
        for frame in recorded:
            used, parsed = parse_frame(frame)
            assert used == len(frame) and isinstance(parsed, RawFrame), parsed
            refused(attacker.exchange(frame, parsed.seq), ErrorReason.NOT_AUTHENTICATED)
    assert therapy(emu) == pending_11  # txid 11 still pending, 10 applied once

    assert emu.stop() == 0
    emu2 = start_emulator(transport="tcp", time_scale=FROZEN, state_path=state_path, key_file=emu.key_file)
    assert emu2.keys == emu.keys  # the same pump, the same keys
    persisted = auth_failures(emu2)
    assert persisted == failures + 6  # the count survived the restart
    with RawClient(emu2.url, keys=emu2.keys) as c:
        replay_rejected(c, emu2, persisted + 2)
    after = therapy(emu2)
    assert after[:3] == pending_11[:3] and after[3] is None  # nothing applied; pending lost on restart


def test_every_single_bit_flip_of_a_sealed_frame_is_rejected(emu):
    with RawClient(emu.url, keys=emu.keys, timeout=5.0) as c:
        before = auth_failures(emu)
        events_before = auth_events(emu, c)
        good = c.seal(Command.INTERROGATE, seq=4242)  # not sent yet: its counter is the next one
        covered = good[2:-4]  # version .. trailer: what the CRC covers
        flipped, parsed = [], 0
        for bit in range(len(good) * 8):  # line noise: any bit, CRC as it was
            data = bytearray(good)
            data[bit // 8] ^= 1 << (bit % 8)
            flipped.append(bytes(data))
        for bit in range(len(covered) * 8):  # an attacker: any bit, CRC recomputed to match
            body = bytearray(covered)
            body[bit // 8] ^= 1 << (bit % 8)
            data = good[:2] + bytes(body) + crc32c(bytes(body)).to_bytes(4, "big")
            flipped.append(data)
            used, item = parse_frame(data)
            parsed += used == len(data) and not isinstance(item, Exception)
        assert parsed > 200  # most reach the MAC check: seq, command, payload, counter, tag, flags
        for sent in flipped:
            c.send_raw(sent)
        # none moved the receive counter: the genuine frame, with the same counter, still opens
        # (right behind them: the pump gives up on frames whose length grew after its idle gap,
        # and finds it); and it is the only frame answered
        c.send_raw(good)
        reply = c.open(c.wait_reply(4242))
        assert reply.command == Command.INTERROGATE and reply.body.serial_number == SERIAL
        assert [(f.seq, f.command) for f in c.dropped if not isinstance(f, Exception)] == []
        assert auth_failures(emu) == before + parsed  # each one that reached the tag check is counted
        assert c.request(Command.READ_PROGRAM).command == Command.READ_PROGRAM  # and the session goes on
        # hundreds of failures, one coalesced event (the first, at once); the rest wait 10 minutes
        events = auth_events(emu, c)
        assert events[len(events_before):] == [(1, ErrorReason.AUTH_FAILED)]
        emu.control("advance", seconds=600)
        events = auth_events(emu, c)
        assert events[len(events_before):] == [(1, ErrorReason.AUTH_FAILED), (parsed - 1, ErrorReason.AUTH_FAILED)]


def test_a_new_hello_ends_the_session(emu):
    with RawClient(emu.url, keys=emu.keys) as c:
        old = c.channel
        c.hello("clinician")  # in clear, on the same connection
        c.channel = old
        refused(c.request(Command.INTERROGATE), ErrorReason.NOT_AUTHENTICATED)  # between HELLO and AUTH
        c.handshake("clinician", emu.keys["clinician"])
        c.send_raw(old.seal(Command.INTERROGATE, b"", seq=77, response=False))  # the old session's keys
        assert_no_reply(c)
        assert c.request(Command.INTERROGATE).auth is not None


# --- logging cannot be flooded -------------------------------------------------------------


def test_auth_failures_are_counted_and_logged_coalesced(emu):
    n = 300
    with RawClient(emu.url, keys=emu.keys) as c, RawClient(emu.url) as attacker:
        count_before = c.request(Command.INTERROGATE).body.event_count
        for i in range(n):
            attacker.send_raw(encode(Command.INTERROGATE, bodies.InterrogateRequest(), seq=i))
        replies: list[RawFrame] = []
        deadline = time.monotonic() + 10
        while len(replies) < n and time.monotonic() < deadline:
            replies += attacker.read_frames(0.05)
        assert len(replies) == n
        status = c.request(Command.INTERROGATE).body
        assert status.auth_failures == n
        assert status.event_count == count_before + 1  # one event, not 300
        # protocol version 3: the rest are counted into one event 10 minutes after the first
        emu.control("advance", seconds=599)
        assert auth_events(emu, c) == [(1, ErrorReason.NOT_AUTHENTICATED)]
        emu.control("advance", seconds=1)
        assert auth_events(emu, c) == [(1, ErrorReason.NOT_AUTHENTICATED), (n - 1, ErrorReason.NOT_AUTHENTICATED)]
        # after 10 quiet minutes, the next failure is logged at once
        emu.control("advance", seconds=600)
        refused(attacker.request_clear(Command.READ_PROGRAM), ErrorReason.NOT_AUTHENTICATED)
        assert auth_events(emu, c)[-1] == (1, ErrorReason.NOT_AUTHENTICATED)
        assert c.request(Command.INTERROGATE).body.auth_failures == n + 1


# --- provisioning: the key file --------------------------------------------------------------


def test_a_missing_key_file_is_created_private_with_fresh_keys(start_emulator, tmp_path):
    key_file = tmp_path / "new-keys.json"
    emu = start_emulator("--serial", "PUMP-7", transport="tcp", key_file=key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    data = json.loads(key_file.read_text())
    assert data["format"] == "ithcli-pump-keys" and data["version"] == 1 and data["serial"] == "PUMP-7"
    assert set(emu.keys) == {"reader", "clinician"}
    assert emu.keys["reader"] != emu.keys["clinician"] and all(len(k) == 32 for k in emu.keys.values())
    other = start_emulator("--serial", "PUMP-8", transport="tcp", key_file=tmp_path / "other.json")
    assert set(other.keys.values()).isdisjoint(emu.keys.values())  # no default or shared keys
    with RawClient(emu.url, keys=emu.keys) as c:
        assert c.request(Command.INTERROGATE).body.serial_number == "PUMP-7"
    stderr = emu.stderr() + other.stderr()
    for key in list(emu.keys.values()) + list(other.keys.values()):
        assert key.hex() not in stderr


def test_keys_are_required(tmp_path):
    line = assert_refused_at_start(run_emulator(), "--key-file")
    assert "required" in line and "random keys" in line


@pytest.mark.parametrize("problem", ["mode 0644", "mode 0640", "not json", "other serial", "bad key",
                                     "no keys", "same key twice", "unknown role"])
def test_unusable_key_files_are_refused(tmp_path, problem):
    path = tmp_path / "keys.json"
    keys = write_key_file(path, "EMU00001")
    data = json.loads(path.read_text())
    if problem.startswith("mode"):
        os.chmod(path, int(problem.split()[1], 8))
    elif problem == "not json":
        path.write_text("{not json")
    else:
        if problem == "other serial":
            data["serial"] = "EMU00002"
        elif problem == "bad key":
            data["keys"]["reader"] = "00" * 31
        elif problem == "no keys":
            data["keys"] = {}
        elif problem == "same key twice":
            data["keys"]["reader"] = data["keys"]["clinician"]
        else:
            data["keys"]["admin"] = data["keys"].pop("reader")
        path.write_text(json.dumps(data))
    before = path.read_bytes()
    # without --serial the emulator takes the key file's serial: "other serial" names the pump's
    serial = ("--serial", "EMU00001") if problem == "other serial" else ()
    line = assert_refused_at_start(run_emulator("--key-file", str(path), *serial), str(path))
    if problem.startswith("mode"):
        assert "group or others" in line
    for key in keys.values():
        assert key.hex() not in line
    assert path.read_bytes() == before  # never rewritten
