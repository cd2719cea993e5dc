"""The emulator as a process: over a pty and over TCP, as ithcli will see it.

Exact arithmetic: delivery and battery drain are integers, so event times and
volumes are asserted exactly (computed here from the same published rules).
Tests that compare whole states freeze the pump clock with a tiny --time-scale
and move it only through the control channel.
"""
from __future__ import annotations

import json
import random
import signal
import stat
import subprocess

import pytest
from cli_harness import console_script
from emulator_harness import RawClient, _read_first_line, read_keys, run_emulator

from protocol import (
    PROTOCOL_VERSION,
    Alarm,
    BatteryState,
    Command,
    Drug,
    ErrorReason,
    EventType,
    InfusionMode,
    Priority,
    PumpModel,
    RawFrame,
    bodies,
    encode,
    encode_frame,
    security,
)
from protocol.constants import SYNC
from protocol.messages import MAX_LOG_PAGE

DAY = 86_400
FROZEN = 1e-9  # --time-scale: the clock moves only by control "advance"
TRANSPORTS = ["pty", "tcp"]
BATTERY_UNIT = 25_000_000  # charge per nominal second; drain/s = UNIT + flow nL/day
MAX_FLOW = 24_000_000


def ceil_div(a, b):
    return -(-a // b)


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param


@pytest.fixture
def frozen(start_emulator, transport):
    """Default pump with a frozen clock, so whole states can be compared."""
    return start_emulator(transport=transport, time_scale=FROZEN)


def interrogate(client):
    return client.request(Command.INTERROGATE).body


def read_all_log(client) -> list[bodies.Event]:
    events: list[bodies.Event] = []
    first = 0
    while True:
        page = client.request(Command.READ_LOG, {"first_index": first, "max_count": MAX_LOG_PAGE}).body
        if not page.events:
            return events
        events += page.events
        first = page.events[-1].index + 1


def power_on_time(client):
    first = client.request(Command.READ_LOG, {"first_index": 0, "max_count": 1}).body.events[0]
    assert first.type == EventType.POWER_ON
    return first.time


# --- identity ---------------------------------------------------------------


def test_url_hello_and_interrogate_defaults(emulator):
    with RawClient(emulator.url) as client:
        hello, _ = client.hello("clinician")
        assert hello.response and hello.command == Command.HELLO
        assert hello.body.protocol_version == PROTOCOL_VERSION == 5
        assert hello.body.key_id == security.key_id(emulator.keys["clinician"])
    with RawClient(emulator.url, keys=emulator.keys) as client:
        status = interrogate(client)
    assert status.serial_number == emulator.serial  # picked by the emulator (no --serial), in its key file
    assert status.model == PumpModel.PERISTALTIC_40
    assert status.drug == Drug.MORPHINE
    assert status.concentration_ng_per_ml == 10_000_000
    assert status.capacity_ul == 40_000
    assert 17_990 <= status.reservoir_ul <= 18_000
    assert status.mode == InfusionMode.CONTINUOUS
    assert status.daily_volume_nl_per_day == status.current_rate_nl_per_day == 200_000
    assert status.daily_dose_ng_per_day == 2_000_000  # 0.2 mL/day * 10 mg/mL
    assert status.low_reservoir_alarm_ul == 2_000
    assert status.alarms == 0 and status.battery_state == BatteryState.OK
    assert status.replace_by == status.eri_at + 90 * DAY
    assert status.last_txid == 0 and status.auth_failures == 0
    assert status.event_count == 2  # POWER_ON, SESSION_OPENED


def test_interrogate_reports_command_line(start_emulator, transport):
    emu = start_emulator(
        "--model", "valve-gated-20", "--serial", "VG-0042", "--drug", "baclofen",
        "--concentration", "500 mcg/mL", "--volume", "19.5 mL", "--flow", "0.5 mL/day",
        "--low-alarm", "4 mL", "--start-time", "2030-01-02T03:04:05Z",
        transport=transport, time_scale=FROZEN,
    )
    with RawClient(emu.url, keys=emu.keys) as client:
        status = interrogate(client)
    assert status.serial_number == "VG-0042"
    assert status.model == PumpModel.VALVE_GATED_20
    assert status.pump_time == 1893553445
    assert status.drug == Drug.BACLOFEN
    assert status.concentration_ng_per_ml == 500_000
    assert status.reservoir_ul == 19_500 and status.capacity_ul == 20_000
    assert status.current_rate_nl_per_day == 500_000
    assert status.daily_dose_ng_per_day == 250_000  # 250 mcg/day
    assert status.low_reservoir_alarm_ul == 4_000


def test_several_tcp_clients_at_once(start_emulator):
    emu = start_emulator(transport="tcp")
    clients = [RawClient(emu.url, keys=emu.keys) for _ in range(3)]  # a session each
    try:
        for round_ in range(3):
            for n, client in enumerate(clients):
                seq = 100 * n + round_
                reply = client.request(Command.INTERROGATE, seq=seq)
                assert reply.seq == seq and reply.auth is not None
    finally:
        for client in clients:
            client.close()


# --- delivery, alarms, battery ------------------------------------------------


def test_reservoir_drains_at_programmed_flow(emulator):
    with RawClient(emulator.url, keys=emulator.keys) as client:
        start = power_on_time(client)
        state = emulator.control("advance", seconds=10 * DAY)
        assert state["ok"]
        elapsed = state["pump_time"] - start
        assert elapsed >= 10 * DAY
        # exact: 0.2 mL/day for `elapsed` seconds, fractions of a nL carried, never lost
        assert state["delivered_nl"] == elapsed * 200_000 // DAY
        assert state["reservoir_nl"] == 18_000_000 - state["delivered_nl"]
        assert state["delivered_nl"] - 2_000_000 < 1_000  # 10 days = 2 mL (+ the test's own seconds)
        status = interrogate(client)
        assert status.reservoir_ul == (18_000_000 - status_delivered(status, start)) // 1000


def status_delivered(status, start):
    return (status.pump_time - start) * 200_000 // DAY


def test_exact_drain_with_frozen_clock(frozen):
    state = frozen.control("advance", seconds=10 * DAY)
    assert state["reservoir_nl"] == 16_000_000 and state["delivery_remainder"] == 0
    with RawClient(frozen.url, keys=frozen.keys) as client:
        assert interrogate(client).reservoir_ul == 16_000


def test_low_reservoir_alarm_at_threshold(emulator):
    with RawClient(emulator.url, keys=emulator.keys) as client:
        start = power_on_time(client)
        emulator.control("advance", seconds=79 * DAY)
        assert not interrogate(client).alarms & Alarm.LOW_RESERVOIR
        emulator.control("advance", seconds=2 * DAY)
        status = interrogate(client)
        assert status.alarms & Alarm.LOW_RESERVOIR
        events = read_all_log(client)
    raised = [e for e in events if e.type == EventType.ALARM_RAISED and e.arg1 == Alarm.LOW_RESERVOIR]
    assert len(raised) == 1
    # 16 mL to deliver at 0.2 mL/day: exactly 80 days after power-on
    assert raised[0].time == start + ceil_div((18_000_000 - 2_000_000) * DAY, 200_000) == start + 80 * DAY
    assert raised[0].priority == Priority.MEDIUM


def test_empty_reservoir_stops_delivery(emulator):
    with RawClient(emulator.url, keys=emulator.keys) as client:
        start = power_on_time(client)
        state = emulator.control("advance", seconds=100 * DAY)
        assert state["reservoir_nl"] == 0 and state["delivered_nl"] == 18_000_000
        assert not state["delivering"] and "EMPTY_RESERVOIR" in state["alarms"]
        status = interrogate(client)
        assert status.reservoir_ul == 0 and status.current_rate_nl_per_day == 0
        assert status.mode == InfusionMode.CONTINUOUS  # the program stays; delivery stopped
        assert status.alarms & Alarm.EMPTY_RESERVOIR
        events = read_all_log(client)
    by_type = {e.type: e for e in events}
    assert by_type[EventType.RESERVOIR_EMPTY].time == start + 90 * DAY
    assert by_type[EventType.DELIVERY_STOPPED].time == start + 90 * DAY
    empty_alarm = [e for e in events if e.type == EventType.ALARM_RAISED and e.arg1 == Alarm.EMPTY_RESERVOIR]
    assert empty_alarm[0].priority == Priority.HIGH
    assert emulator.control("advance", seconds=DAY)["delivered_nl"] == 18_000_000


def test_battery_eri_then_eos(start_emulator, transport):
    # 40 mL at 0.2 mL/day outlasts the battery: one drain rate all the way
    emu = start_emulator("--battery-days", "200", "--volume", "40 mL", transport=transport)
    with RawClient(emu.url, keys=emu.keys) as client:
        start = power_on_time(client)
        drain = BATTERY_UNIT + 200_000
        charge = 200 * DAY * BATTERY_UNIT
        eri_level = 90 * DAY * (BATTERY_UNIT + MAX_FLOW)
        expected_eri = start + ceil_div(charge - eri_level, drain)
        expected_eos = start + ceil_div(charge, drain)
        status = interrogate(client)
        assert status.eri_at == expected_eri  # projected
        assert status.replace_by == expected_eri + 90 * DAY

        emu.control("advance", seconds=expected_eri - status.pump_time + 60)
        status = interrogate(client)
        assert status.battery_state == BatteryState.ERI
        assert status.alarms & Alarm.ERI
        assert status.eri_at == expected_eri  # actual
        assert status.replace_by == expected_eri + 90 * DAY
        assert status.current_rate_nl_per_day == 200_000  # still delivering

        emu.control("advance", seconds=expected_eos - status.pump_time + 60)
        status = interrogate(client)
        assert status.battery_state == BatteryState.EOS
        assert status.alarms & Alarm.EOS
        assert status.battery_percent == 0
        assert status.current_rate_nl_per_day == 0
        assert status.replace_by == expected_eri + 90 * DAY
        events = read_all_log(client)
    times = {e.type: e.time for e in events}
    assert times[EventType.BATTERY_ERI] == expected_eri
    assert times[EventType.BATTERY_EOS] == expected_eos
    assert times[EventType.DELIVERY_STOPPED] == expected_eos
    assert expected_eos >= expected_eri + 90 * DAY


# --- the event log ----------------------------------------------------------------


def test_read_log_paging(frozen):
    for _ in range(40):
        assert frozen.control("reset")["ok"]
    with RawClient(frozen.url, keys=frozen.keys) as client:
        total = interrogate(client).event_count
        assert total == 1 + 40 + 1 + 1  # first POWER_ON, 40 resets, one RESET alarm, SESSION_OPENED
        page = client.request(Command.READ_LOG, {"first_index": 0, "max_count": MAX_LOG_PAGE}).body
        assert page.oldest_index == 0 and page.event_count == total
        assert [e.index for e in page.events] == list(range(MAX_LOG_PAGE))
        page = client.request(Command.READ_LOG, {"first_index": MAX_LOG_PAGE, "max_count": MAX_LOG_PAGE}).body
        assert [e.index for e in page.events] == list(range(MAX_LOG_PAGE, total))
        page = client.request(Command.READ_LOG, {"first_index": 5, "max_count": 3}).body
        assert [e.index for e in page.events] == [5, 6, 7]
        assert client.request(Command.READ_LOG, {"first_index": total, "max_count": 5}).body.events == ()
        far = client.request(Command.READ_LOG, {"first_index": 2**32 - 1, "max_count": MAX_LOG_PAGE}).body
        assert far.events == () and far.event_count == total
        events = read_all_log(client)
    assert events[1].type == EventType.POWER_ON
    assert events[2].type == EventType.ALARM_RAISED and events[2].arg1 == Alarm.RESET
    assert events[2].priority == Priority.LOW


# --- robustness: nothing on the wire can crash it or change it --------------------------


def status_and_state(emu, client):
    return interrogate(client), emu.control("state")


def test_random_bytes_do_not_crash_or_change_state(frozen):
    rng = random.Random(20240611)
    header = SYNC + bytes([1, 0, 0, 7, 2])
    pieces: list[bytes] = []
    while sum(map(len, pieces)) < 20_000:
        pick = rng.random()
        if pick < 0.1:
            pieces.append(SYNC[:1])
        elif pick < 0.2:
            pieces.append(SYNC)
        elif pick < 0.3:
            pieces.append(header + rng.randbytes(rng.randrange(0, 12)))
        else:
            pieces.append(rng.randbytes(rng.randrange(1, 200)))
    noise = b"".join(pieces)
    with RawClient(frozen.url, keys=frozen.keys, timeout=5.0) as client:
        before = status_and_state(frozen, client)
        for i in range(0, len(noise), 1024):
            client.send_raw(noise[i : i + 1024])
        after = status_and_state(frozen, client)
    assert frozen.proc.poll() is None
    assert after == before


def test_oversized_length_is_dropped_and_next_frame_answered(frozen):
    with RawClient(frozen.url, keys=frozen.keys, timeout=5.0) as client:
        before = status_and_state(frozen, client)
        client.send_raw(SYNC + bytes([1, 0, 0, 9, 2, 0xFF, 0xFF]) + bytes(300))
        assert client.request(Command.INTERROGATE, seq=9).seq == 9
        assert status_and_state(frozen, client) == before


def test_truncated_frame_then_good_frame(frozen):
    # a header that promises 200 bytes of payload, then silence: the pump gives up on it after its
    # idle gap (FrameDecoder.flush_stale; tests/test_framing.py has every case of it in process)
    truncated = SYNC + bytes([1, 0, 0, 30, 3, 0, 200]) + bytes(10)
    with RawClient(frozen.url, keys=frozen.keys, timeout=5.0) as client:
        # back to back: the good frame is swallowed by the partial one, then rescued
        client.send_raw(truncated + client.seal(Command.INTERROGATE, seq=32))
        reply = client.wait_reply(32)
        assert (reply.seq, reply.command) == (32, Command.INTERROGATE)
        assert [f for f in client.dropped if isinstance(f, RawFrame)] == []  # nothing else answered
        # a frame cut short inside a real request (its counter is skipped: that is allowed), the
        # next request right behind it: only the next one is answered
        client.send_raw(client.seal(Command.READ_LOG, {"first_index": 0, "max_count": 1}, seq=33)[:-3])
        assert client.request(Command.INTERROGATE, seq=34).seq == 34
        assert [f for f in client.dropped if isinstance(f, RawFrame)] == []
        assert client.frames_before_barrier() == []


def test_bad_crc_gets_no_reply_and_no_change(frozen):
    frame = bytearray(encode(Command.INTERROGATE, bodies.InterrogateRequest(), seq=77))
    frame[-1] ^= 0x01
    with RawClient(frozen.url, keys=frozen.keys) as client:
        before = status_and_state(frozen, client)
        client.send_raw(bytes(frame))
        assert client.frames_before_barrier() == []
        assert status_and_state(frozen, client) == before


def error_reply(client, raw, seq):
    client.send_raw(raw)
    return client.open(client.wait_reply(seq, timeout=5))


def test_unknown_command_gets_error_with_same_seq(emulator):
    with RawClient(emulator.url, keys=emulator.keys) as client:
        reply = error_reply(client, client.seal_payload(0x55, b"\x01\x02", seq=0xBEEF), 0xBEEF)
    assert reply.auth is not None  # answered inside the session
    assert reply.command == Command.ERROR and reply.response
    assert reply.body.request_command == 0x55
    assert reply.body.reason == ErrorReason.UNKNOWN_COMMAND


@pytest.mark.parametrize(
    "command, payload",
    [
        (Command.INTERROGATE, b"\x00"),  # trailing byte
        (Command.READ_LOG, b"\x00\x00\x00\x00\x00"),  # max_count 0 is out of range
        (Command.READ_LOG, b"\x00\x00"),  # too short
        (Command.HELLO, b""),  # missing protocol_version
    ],
)
def test_malformed_payload_gets_error(frozen, command, payload):
    with RawClient(frozen.url, keys=frozen.keys) as client:
        before = status_and_state(frozen, client)
        if command == Command.HELLO:  # the handshake is in clear; a bad HELLO leaves the session
            raw = encode_frame(command, payload, seq=555)
        else:
            raw = client.seal_payload(command, payload, seq=555)
        reply = error_reply(client, raw, 555)
        assert reply.command == Command.ERROR
        assert reply.body.request_command == command
        assert reply.body.reason == ErrorReason.MALFORMED_PAYLOAD
        assert reply.body.detail
        assert status_and_state(frozen, client) == before


def test_response_flag_on_request_is_refused(frozen):
    with RawClient(frozen.url, keys=frozen.keys) as client:
        reply = error_reply(client, encode_frame(Command.INTERROGATE, b"", seq=9, response=True), 9)
        assert reply.body.reason == ErrorReason.NOT_PERMITTED
        # an ERROR frame is never answered (two pumps would argue forever)
        bogus = encode(Command.ERROR, bodies.ErrorResponse(2, ErrorReason(1), "x"), seq=10, response=True)
        client.send_raw(bogus)
        assert client.frames_before_barrier() == []


# --- process life: signals, state file, arguments -----------------------------------


def test_sigterm_and_sigint_exit_zero(start_emulator, transport):
    emu = start_emulator(transport=transport)
    assert emu.stop() == 0
    emu = start_emulator(transport=transport)
    emu.proc.send_signal(signal.SIGINT)
    assert emu.proc.wait(10) == 0
    assert "Traceback" not in emu.stderr()


def test_state_survives_kill_9(start_emulator, transport, tmp_path):
    state_path = tmp_path / "pump.json"
    emu = start_emulator("--serial", "KEEP-1", transport=transport, state_path=state_path)
    with RawClient(emu.url, keys=emu.keys) as client:
        start = power_on_time(client)
        for _ in range(3):
            emu.control("reset")
        client.handshake("clinician", emu.keys["clinician"])  # a reset ends every session
        advanced = emu.control("advance", seconds=30 * DAY)
        log_before = read_all_log(client)
    emu.kill()
    saved = json.loads(state_path.read_text())
    assert saved["pump"]["serial"] == "KEEP-1"

    emu2 = start_emulator(transport=transport, state_path=state_path)  # no --serial: the file wins
    with RawClient(emu2.url, keys=emu2.keys) as client:
        status = interrogate(client)
        log_after = read_all_log(client)
    state = emu2.control("state")
    assert status.serial_number == "KEEP-1"
    assert status.pump_time >= advanced["pump_time"]
    # the pump kept delivering while the emulator was down; exactly, nothing lost or doubled
    assert state["delivered_nl"] == (state["pump_time"] - start) * 200_000 // DAY
    assert state["reservoir_nl"] == 18_000_000 - state["delivered_nl"]
    assert log_after[: len(log_before)] == log_before
    new = log_after[len(log_before) :]
    assert [(e.type, e.arg1) for e in new] == [(EventType.POWER_ON, 1), (EventType.SESSION_OPENED, 2)]
    assert emu2.stop() == 0


def test_sessions_alone_are_saved_at_a_clean_stop_and_a_kill_loses_at_most_their_count(start_emulator, tmp_path):
    """A session opened changes only a count (its SESSION_OPENED event, when one is due, is a change
    saved before the reply): the count is saved with the next change, on a tick once
    server.COUNTS_EVERY_S have passed, or at a clean stop, so a ward's sessions do not each wait
    on a disk write. A kill -9 may lose sessions counted since; never an event it answered with."""
    state_path = tmp_path / "pump.json"
    emu = start_emulator("--time-scale", "1e-9", transport="tcp", state_path=state_path)
    def sessions(e) -> int:
        return e.control("state")["sessions_opened"]["clinician"]

    def session(e) -> None:
        with RawClient(e.url, keys=e.keys) as client:
            client.handshake("clinician", e.keys["clinician"])

    session(emu)  # the first logs SESSION_OPENED: saved before its reply
    logged = sessions(emu)
    for _ in range(3):  # the next ones only counted
        session(emu)
    counted = sessions(emu)
    assert counted == 4 * logged
    emu.kill()
    after_kill = start_emulator(transport="tcp", state_path=state_path)
    kept = sessions(after_kill)
    assert logged <= kept <= counted  # the logged one is there; at most those counted since are not
    session(after_kill)
    assert after_kill.stop() == 0  # a clean stop saves whatever was only counted
    again = start_emulator(transport="tcp", state_path=state_path)
    assert sessions(again) == kept + logged


def test_events_during_downtime_are_logged_at_their_time(start_emulator, tmp_path):
    state_path = tmp_path / "pump.json"
    # 2.5 mL at 24 mL/day: low alarm 1800 s, empty 9000 s after power-on (clock frozen while up)
    emu = start_emulator("--volume", "2.5 mL", "--flow", "24 mL/day", transport="tcp",
                         state_path=state_path, time_scale=FROZEN)
    assert emu.stop() == 0
    # down for 0.6 s of wall time (the save's own clock, moved back instead of waiting): at
    # --time-scale 20000 the restart finds >= 12,000 pump seconds gone by
    saved = json.loads(state_path.read_text())
    saved["saved_at"] -= 0.6
    state_path.write_text(json.dumps(saved))
    emu2 = start_emulator(transport="tcp", state_path=state_path, time_scale=20_000)
    with RawClient(emu2.url, keys=emu2.keys) as client:
        events = read_all_log(client)
    t0 = events[0].time
    assert (events[0].type, events[0].arg1) == (EventType.POWER_ON, 0)
    seen = [(e.type, e.arg1, e.time - t0) for e in events[1:]]
    assert seen[:5] == [
        (EventType.ALARM_RAISED, Alarm.LOW_RESERVOIR, 1800),
        (EventType.RESERVOIR_EMPTY, 0, 9000),
        (EventType.ALARM_RAISED, Alarm.EMPTY_RESERVOIR, 9000),
        (EventType.DELIVERY_STOPPED, Alarm.EMPTY_RESERVOIR, 9000),
        (EventType.POWER_ON, 1, seen[4][2]),
    ]
    assert seen[4][2] >= 12_000




@pytest.mark.parametrize("content", ["{not json", '{"format": "ith-emulator-state", "version": 1}', ""])
def test_corrupt_state_file_is_refused(tmp_path, content):
    state_path = tmp_path / "pump.json"
    state_path.write_text(content)
    key_file = tmp_path / "keys.json"
    result = run_emulator("--state", str(state_path), "--listen", "127.0.0.1:0", "--key-file", str(key_file))
    assert result.returncode not in (0, None)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "state" in lines[0], result.stderr
    assert state_path.read_text() == content  # not overwritten
    assert not key_file.exists()  # nothing provisioned for a pump that did not start


def test_tampered_state_file_is_refused(start_emulator, tmp_path):
    state_path = tmp_path / "pump.json"
    emu = start_emulator(transport="tcp", state_path=state_path)
    assert emu.stop() == 0
    data = json.loads(state_path.read_text())
    data["pump"]["reservoir_nl"] = 99_000_000  # more than the 40 mL capacity
    state_path.write_text(json.dumps(data))
    result = run_emulator("--state", str(state_path), "--listen", "127.0.0.1:0", "--key-file", emu.key_file)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "peristaltic-99"],
        ["--serial", "lower case"],
        ["--serial", "X" * 17],
        ["--drug", "aspirin"],
        ["--concentration", "10"],
        ["--concentration", "10 mg/day"],
        ["--volume", "41 mL"],
        ["--model", "valve-gated-20", "--volume", "21 mL"],
        ["--flow", "0.01 mL/day"],
        ["--flow", "1 mL/h"],
        ["--flow", "25 mL/day"],
        ["--low-alarm", "-1 mL"],
        ["--battery-days", "0"],
        ["--time-scale", "zero"],
        ["--start-time", "yesterday"],
        ["--listen", "nowhere"],
        ["--pty", "--listen", "127.0.0.1:0"],
        ["--no-such-option"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args):
    result = run_emulator(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ith-emulator: error:"), result.stderr


def test_help_lists_models():
    result = run_emulator("--help", spawn=True)  # a fresh interpreter: `python -m emulator`
    assert result.returncode == 0
    for name in ("peristaltic-20", "peristaltic-40", "valve-gated-20"):
        assert name in result.stdout


def test_console_script_starts(tmp_path):
    """`ith-emulator` as installed (beside this interpreter or on PATH; else `python -m emulator`)."""
    key_file = tmp_path / "keys.json"
    proc = subprocess.Popen([*console_script("ith-emulator", "emulator"), "--listen", "127.0.0.1:0",
                             "--key-file", str(key_file)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        url = _read_first_line(proc, 15)
        assert url.startswith("socket://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # created, for the serial it picked
        with RawClient(url, keys=read_keys(key_file)) as client:
            assert client.request(Command.INTERROGATE).body.serial_number == json.loads(key_file.read_text())["serial"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()
        proc.stderr.close()
