"""History that cannot be lost or flushed (issue 16; protocol version 3).

The pump's event log is a 4096-event ring, and ithcli reads therapy history from it
over windows of up to 7 days. Routine events, SESSION_OPENED (per role) and
AUTH_FAILURE, are coalesced so that nobody, neither a keyless attacker failing AUTH
nor a monitor opening sessions, as fast as the pump answers, can push therapy
history out of it: at most one event per stream per COALESCE_S (10 minutes) of pump
time, each carrying the count of what it stands for (docs/protocol.md, "Routine
events and the log").

Thousands of sessions and failures over 8 days of pump time go through the real
handler in process (tests/loopback.py, with an injected pump clock), and a day of them
through a real emulator process over TCP (the clock moved over the control socket). Then: the
program change made at the start is still in the log, the counts in the coalesced
events add up to every session and failure, no stream logs twice within 10 minutes,
a lone session is logged at once, and counts not yet logged survive a kill -9 (a session's count
alone is saved with the next change: tests/test_emulator.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from emulator_harness import HandshakeError, RawClient, read_log, refused
from loopback import Loopback, based, new_pump, open_session

from emulator.pump import LOG_CAPACITY, Pump
from emulator.pump.write_kinds import PrepareRequest
from emulator.security_state import (
    COALESCE_S,
    ROUTINE_STREAMS,
    U32_MAX,
    FailureLog,
    SessionLog,
    Stream,
    routine_events_bound,
)
from protocol import Command, Drug, ErrorReason, EventType, InfusionMode, Role, WriteKind, bodies, encode, security
from protocol.constants import BolusPurpose
from protocol.messages import MAX_LOG_PAGE
from protocol.session import ClientSession, HelloReply, Refused, Reply

DAY = 86_400
WINDOW = 8 * DAY  # the 7 days ithcli reads, and a day of margin
ROUTINE = (EventType.AUTH_FAILURE, EventType.SESSION_OPENED)
FROZEN = 1e-9
DOCS = Path(__file__).resolve().parent.parent / "docs"
WRONG_KEY = bytes([0x5A]) * 32


class Clock:
    """The pump clock of an in-process pump: moved only by the test."""

    def __init__(self, now: int):
        self.now = now

    def __call__(self) -> int:
        return self.now


# --- in process: the real handler, an injected clock ----------------------------------------


def clocked_pump() -> tuple[Pump, Clock]:
    pump = new_pump()
    clock = Clock(pump.time)
    pump.clock = clock
    return pump, clock


def ask(link: Loopback, client: ClientSession, request: bodies.Request):
    [event] = client.receive_data(link.send(client.request(request)))
    return event


def ok(event) -> bodies.Body:
    assert isinstance(event, Reply), event
    return event.body


def monitor_reading(pump: Pump, role: Role = Role.READER) -> bodies.Status:
    """A new connection, a session, one INTERROGATE: what a monitor or a read command does."""
    link = Loopback(pump)
    return bodies.expect(ok(ask(link, open_session(link, role), bodies.InterrogateRequest())), bodies.Status)


def failed_auth(pump: Pump) -> None:
    """A keyless attacker: a HELLO and a wrong proof, on a connection of its own."""
    link, client = Loopback(pump), ClientSession()
    assert isinstance(client.receive_data(link.send(client.hello(Role.CLINICIAN)))[0], HelloReply)
    [answer] = client.receive_data(link.send(client.authenticate(WRONG_KEY)))
    assert isinstance(answer, Refused) and answer.reason == ErrorReason.AUTH_FAILED, answer


def clear_request(pump: Pump) -> None:
    """A keyless attacker: an INTERROGATE in clear."""
    client = ClientSession()
    [answer] = client.receive_data(Loopback(pump).send(client.request(bodies.InterrogateRequest())))
    assert isinstance(answer, Refused) and answer.reason == ErrorReason.NOT_AUTHENTICATED, answer


def write(pump: Pump, body: PrepareRequest) -> None:
    """A clinician's PREPARE and COMMIT in a session of its own."""
    link = Loopback(pump)
    client = open_session(link, Role.CLINICIAN)
    echo = bodies.expect(ok(ask(link, client, based(pump, body))), bodies.Prepared)
    assert bodies.expect(ok(ask(link, client, bodies.CommitRequest(echo.txid))), bodies.Committed).txid == body.txid


def program_body(txid: int, dose: int) -> bodies.PrepareProgramRequest:
    return bodies.PrepareProgramRequest(txid=txid, based_on_txid=0, mode=InfusionMode.CONTINUOUS, drug=Drug.MORPHINE,
                                        concentration_ng_per_ml=10_000_000, steps=(bodies.ProgramStep(0, dose),))


def wire_log(pump: Pump) -> tuple[int, list[bodies.Event]]:
    """(oldest_index, every event) read over the wire, page by page, in a reader session."""
    link = Loopback(pump)
    client = open_session(link, Role.READER)
    first = 0
    events: list[bodies.Event] = []
    while True:
        page = bodies.expect(ok(ask(link, client, bodies.ReadLogRequest(first, MAX_LOG_PAGE))), bodies.ReadLogResponse)
        if not page.events:
            return page.oldest_index, events
        events += page.events
        first = page.events[-1].index + 1


def stream_of(event: bodies.Event) -> tuple:
    return (event.type,) if event.type == EventType.AUTH_FAILURE else (event.type, event.arg1)


def assert_coalesced(events: list[bodies.Event]) -> None:
    """No routine stream logs twice within COALESCE_S; every event counts at least one."""
    last: dict[tuple, int] = {}
    for e in events:
        if e.type not in ROUTINE:
            continue
        key = stream_of(e)
        assert key not in last or e.time - last[key] >= COALESCE_S, (e, last[key])
        last[key] = e.time
        assert (e.arg1 if e.type == EventType.AUTH_FAILURE else e.arg2) >= 1, e


def counted(events: list[bodies.Event]) -> tuple[int, dict[int, int]]:
    """(failures, {role: sessions}) as the coalesced events count them."""
    failures = sum(e.arg1 for e in events if e.type == EventType.AUTH_FAILURE)
    sessions: dict[int, int] = {}
    for e in events:
        if e.type == EventType.SESSION_OPENED:
            sessions[e.arg1] = sessions.get(e.arg1, 0) + e.arg2
    return failures, sessions


@pytest.mark.slow  # about 5 s: thousands of handshakes
def test_eight_days_of_sessions_and_failures_at_full_rate_leave_the_program_change_in_the_log():
    pump, clock = clocked_pump()
    start = pump.time
    write(pump, program_body(1, 3_000_000))  # the history to keep
    [changed] = [e for e in pump.log.events if e.type == EventType.PROGRAM_CHANGED]
    assert (changed.arg1, changed.arg2) == (2_000_000, 3_000_000)

    # Every 150 s of pump time, for 8 days: a monitor's reading (a READER session), an attacker's
    # wrong proof and clear request; every 300 s a CLINICIAN session. So every 10-minute window
    # of every stream has something to log: the worst case for the log. A bolus on day 3.
    step, sessions, failures = 150, {Role.READER: 0, Role.CLINICIAN: 0}, 0
    for n in range(WINDOW // step):
        clock.now = start + n * step
        if n == 3 * DAY // step:
            write(pump, bodies.PrepareBolusRequest(txid=2, based_on_txid=0, dose_ng=100_000, duration_s=3600,
                                                   purpose=BolusPurpose.CLINICIAN))
        status = monitor_reading(pump)
        sessions[Role.READER] += 1
        assert status.auth_failures == failures
        if n % 2 == 0:
            monitor_reading(pump, Role.CLINICIAN)
            sessions[Role.CLINICIAN] += 1
        failed_auth(pump)
        clear_request(pump)
        failures += 2
    sessions[Role.CLINICIAN] += 2  # the program change's and the bolus's
    # without coalescing (version 2 logged every SESSION_OPENED) the sessions alone flush the ring
    assert sum(sessions.values()) > LOG_CAPACITY and sum(sessions.values()) + failures > 3 * LOG_CAPACITY

    clock.now += COALESCE_S  # every count waiting for its event is logged
    oldest, events = wire_log(pump)
    sessions[Role.READER] += 1  # wire_log's own

    assert oldest == 0  # the ring never wrapped: nothing at all was lost
    assert [e for e in events if e.index == changed.index] == [changed.body()]
    therapy = [(e.type, e.arg1, e.arg2) for e in events if e.type not in ROUTINE]
    assert therapy == [
        (EventType.POWER_ON, 0, 0),
        (EventType.PROGRAM_CHANGED, 2_000_000, 3_000_000), (EventType.TX_APPLIED, 1, WriteKind.PROGRAM),
        (EventType.BOLUS_STARTED, 100_000, 3600), (EventType.TX_APPLIED, 2, WriteKind.BOLUS),
        (EventType.BOLUS_FINISHED, 0, 0),
    ]

    # the test drove the worst case, and the log stayed within the documented bound
    routine = [e for e in events if e.type in ROUTINE]
    span = events[-1].time - start
    assert len(routine) <= routine_events_bound(span)
    assert len(routine) >= routine_events_bound(WINDOW) - ROUTINE_STREAMS
    assert_coalesced(events)

    # every session and every failure is counted, in the events and in INTERROGATE
    logged_failures, logged_sessions = counted(events)
    assert logged_failures == failures == pump.auth.total
    unlogged = {role: pump.sessions.roles[role].unlogged for role in Role}
    assert unlogged[Role.READER] == 1 and unlogged[Role.CLINICIAN] == 0  # wire_log's own, 10 minutes to go
    assert {Role(r): n + unlogged[Role(r)] for r, n in logged_sessions.items()} == sessions
    reasons = [e.arg2 for e in routine if e.type == EventType.AUTH_FAILURE]  # the latest refusal's
    assert reasons[0] == ErrorReason.AUTH_FAILED and set(reasons[1:]) == {ErrorReason.NOT_AUTHENTICATED}
    assert monitor_reading(pump).auth_failures == failures


def test_the_worst_case_is_the_documented_one():
    """3 streams, one event each per 10 minutes: 3459 in 8 days, 637 of 4096 left for the rest."""
    assert ROUTINE_STREAMS == 3 and COALESCE_S == 600 and LOG_CAPACITY == 4096
    assert routine_events_bound(DAY) == 435
    assert routine_events_bound(7 * DAY) == 3027
    assert routine_events_bound(WINDOW) == 3459
    assert LOG_CAPACITY - routine_events_bound(WINDOW) == 637
    # routine events alone fill the ring only after more than 9 days
    days_to_fill = (-(-LOG_CAPACITY // ROUTINE_STREAMS) - 1) * COALESCE_S / DAY
    assert 9.4 < days_to_fill < 9.5
    protocol_md = (DOCS / "protocol.md").read_text(encoding="utf8")
    security_md = (DOCS / "security.md").read_text(encoding="utf8")
    for doc in (protocol_md, security_md):
        for number in ("3459", "637", "3027", "1069", "10 minutes"):
            assert number in doc
    assert re.search(r"\| 20 \| SESSION_OPENED \| Role \| sessions of that role", protocol_md)


def test_a_stream_logs_the_first_at_once_and_the_rest_exactly_ten_minutes_after_its_last_event():
    pump, clock = clocked_pump()
    t0 = pump.time
    monitor_reading(pump)
    assert [(e.type, e.arg1, e.arg2, e.time) for e in pump.log.events][-1] == \
        (EventType.SESSION_OPENED, Role.READER, 1, t0)  # a lone session: at once
    for dt in (1, 1, 300, 599):
        clock.now = t0 + dt
        monitor_reading(pump)
    count = pump.log.count
    clock.now = t0 + 5 * DAY  # one jump: the count is logged at its time, not at the end of the jump
    pump.tick()
    assert [(e.type, e.arg1, e.arg2, e.time) for e in pump.log.events][count:] == \
        [(EventType.SESSION_OPENED, Role.READER, 4, t0 + COALESCE_S)]
    monitor_reading(pump)  # quiet for long enough: at once again
    assert pump.log.events[-1].time == t0 + 5 * DAY and pump.log.events[-1].arg2 == 1
    assert pump.sessions.roles[Role.READER].total == 6 and pump.sessions.roles[Role.CLINICIAN].total == 0


def test_a_stream_saturates_and_never_wraps():
    stream = Stream(total=U32_MAX - 1, unlogged=U32_MAX - 1, last_event_at=0)
    assert stream.add(1) is None and stream.add(2) is None
    assert stream.total == U32_MAX and stream.due(COALESCE_S) == U32_MAX and stream.unlogged == 0


def test_a_state_file_from_before_version_3_loads_and_keeps_its_counts():
    pump = new_pump()
    for _ in range(3):
        monitor_reading(pump)
    clear_request(pump)
    clear_request(pump)
    data = pump.to_dict()
    assert data["sessions"]["READER"] == {"total": 3, "unlogged": 2, "last_event_at": pump.time}
    # a version-2 emulator saved no session counts, and the same auth record
    del data["sessions"]
    assert set(data["auth"]) == {"total", "unlogged", "last_reason", "last_event_at"}
    old = Pump.from_dict(data)
    assert old.auth == pump.auth and old.auth.unlogged == 1
    assert old.sessions == SessionLog()
    old.advance_to(old.time + COALESCE_S)  # the failure it was holding is logged at its time
    assert [(e.type, e.arg1, e.arg2) for e in old.log.events][-1] == \
        (EventType.AUTH_FAILURE, 1, ErrorReason.NOT_AUTHENTICATED)
    monitor_reading(old)  # its first session is logged at once
    assert [(e.type, e.arg1, e.arg2) for e in old.log.events][-1] == (EventType.SESSION_OPENED, Role.READER, 1)
    # a round trip keeps everything; nonsense is refused
    again = Pump.from_dict(pump.to_dict())
    assert again.sessions == pump.sessions and again.auth == pump.auth
    bad: object
    for bad in ({"ADMIN": {"total": 1, "unlogged": 0, "last_event_at": None}},
                {"READER": {"total": -1, "unlogged": 0, "last_event_at": None}},
                {"READER": {"total": 1, "unlogged": 2**32, "last_event_at": None}},
                {"READER": {"total": 1, "unlogged": 0, "last_event_at": "yesterday"}}, []):
        with pytest.raises((ValueError, KeyError, TypeError)):
            Pump.from_dict({**pump.to_dict(), "sessions": bad})
    assert FailureLog.from_dict(None) == FailureLog()


# --- through a real emulator process ----------------------------------------------------------


def log_tail(client: RawClient, since: int) -> list[tuple[int, int, int]]:
    return [(e.type, e.arg1, e.arg2) for e in read_log(client, since)]


def test_a_lone_session_is_logged_at_once_and_a_burst_in_one_event_per_role(start_emulator):
    emu = start_emulator(transport="tcp", time_scale=FROZEN)
    with RawClient(emu.url, keys=emu.keys) as watcher:  # a CLINICIAN session: logged at once
        t0 = emu.control("state")["pump_time"]
        start = watcher.request(Command.INTERROGATE).body.event_count - 1
        assert log_tail(watcher, start) == [(EventType.SESSION_OPENED, Role.CLINICIAN, 1)]
        with RawClient(emu.url, keys=emu.keys, role="reader"):  # a lone READER session: at once too
            pass
        [event] = read_log(watcher, start + 1)
        assert (event.type, event.arg1, event.arg2, event.time) == \
            (EventType.SESSION_OPENED, Role.READER, 1, t0)

        # a burst: 40 reader sessions and 10 clinician ones on one connection, 25 failed AUTHs
        with RawClient(emu.url) as c:
            for _ in range(40):
                c.handshake("reader", emu.keys["reader"])
            for _ in range(10):
                c.handshake("clinician", emu.keys["clinician"])
        for _ in range(5):
            with RawClient(emu.url) as attacker:
                for attempt in range(5):  # the 4th and 5th are RATE_LIMITED: counted all the same
                    with pytest.raises(HandshakeError) as exc:
                        attacker.handshake("clinician", WRONG_KEY)
                    refused(exc.value.reply, ErrorReason.AUTH_FAILED if attempt < 3 else ErrorReason.RATE_LIMITED)
        count = start + 2
        after_first_failure = log_tail(watcher, count)
        assert after_first_failure == [(EventType.AUTH_FAILURE, 1, ErrorReason.AUTH_FAILED)]  # at once
        state = emu.control("state")
        assert state["sessions_opened"] == {"reader": 41, "clinician": 11}
        assert state["sessions_unlogged"] == {"reader": 40, "clinician": 10}
        assert state["auth_failures"] == 25 and state["auth_failures_unlogged"] == 24

        emu.control("advance", seconds=COALESCE_S - 1)
        assert log_tail(watcher, count + 1) == []
        emu.control("advance", seconds=1)
        events = read_log(watcher, count + 1)
        assert [(e.type, e.arg1, e.arg2, e.time) for e in events] == [
            (EventType.AUTH_FAILURE, 24, ErrorReason.RATE_LIMITED, t0 + COALESCE_S),
            (EventType.SESSION_OPENED, Role.READER, 40, t0 + COALESCE_S),
            (EventType.SESSION_OPENED, Role.CLINICIAN, 10, t0 + COALESCE_S),
        ]
        assert watcher.request(Command.INTERROGATE).body.auth_failures == 25
        every = read_log(watcher)
        assert counted(every) == (25, {Role.READER: 41, Role.CLINICIAN: 11})

        # quiet for 10 minutes after those events: the next lone session is logged at once
        emu.control("advance", seconds=COALESCE_S)
        with RawClient(emu.url, keys=emu.keys, role="reader"):
            pass
        assert log_tail(watcher, count + 4) == [(EventType.SESSION_OPENED, Role.READER, 1)]


def test_a_day_through_the_real_emulator_keeps_the_program_change(start_emulator):
    """A day of the worst case through a real emulator process (its control channel moving the clock,
    its state and its wire): the eight days run in process above."""
    emu = start_emulator(transport="tcp", time_scale=FROZEN)
    with RawClient(emu.url, keys=emu.keys) as clinician:
        assert clinician.request(Command.PREPARE_PROGRAM, program_body(7, 3_000_000)).command == \
            Command.PREPARE_PROGRAM
        assert clinician.request(Command.COMMIT, {"txid": 7}).body.kind == WriteKind.PROGRAM
        [changed] = [e for e in read_log(clinician) if e.type == EventType.PROGRAM_CHANGED]
    # A monitor re-opening its READER session every 590 s (under 10 minutes: every window has
    # one), an attacker sending a request in clear as often, for a day of pump time.
    step = COALESCE_S - 10
    steps = DAY // step + 1
    with RawClient(emu.url, keys=emu.keys, role="reader") as monitor, RawClient(emu.url) as attacker:
        for n in range(steps):
            emu.control("advance", seconds=step)
            monitor.handshake("reader", emu.keys["reader"])
            refused(attacker.exchange(encode(Command.INTERROGATE, bodies.InterrogateRequest(), seq=n & 0xFFFF),
                                      n & 0xFFFF),
                    ErrorReason.NOT_AUTHENTICATED)
        emu.control("advance", seconds=COALESCE_S)
        events = read_log(monitor)
        page = monitor.request(Command.READ_LOG, {"first_index": 0, "max_count": 1}).body
    state = emu.control("state")
    assert page.oldest_index == 0 and changed in events
    assert [e.type for e in events if e.type not in ROUTINE] == [
        EventType.POWER_ON, EventType.PROGRAM_CHANGED, EventType.TX_APPLIED]
    assert_coalesced(events)
    routine = [e for e in events if e.type in ROUTINE]
    assert len(routine) <= routine_events_bound(events[-1].time - events[0].time)
    assert counted(events) == (steps, {Role.READER: steps + 1, Role.CLINICIAN: 1})
    assert state["auth_failures"] == steps and state["sessions_opened"] == {"reader": steps + 1, "clinician": 1}


def test_counts_not_yet_logged_survive_a_kill_9(start_emulator, tmp_path):
    state_path = tmp_path / "pump.json"
    emu = start_emulator(transport="tcp", time_scale=FROZEN, state_path=state_path)
    with RawClient(emu.url) as c:
        for _ in range(12):  # counted; saved with the refusals below (a change is saved before its reply)
            c.handshake("reader", emu.keys["reader"])
        refused(c.request_clear(Command.READ_PROGRAM), ErrorReason.NOT_AUTHENTICATED)
        c.send_raw(security.SecureChannel.derive(WRONG_KEY, bytes(32), Role.READER, pump_side=False)
                   .seal(Command.INTERROGATE, b"", seq=9, response=False))
        refused(c.request_clear(Command.READ_PROGRAM), ErrorReason.NOT_AUTHENTICATED)
    before = emu.control("state")
    assert before["sessions_unlogged"] == {"reader": 11, "clinician": 0}
    assert before["auth_failures"] == 3 and before["auth_failures_unlogged"] == 2
    emu.kill()

    emu2 = start_emulator(transport="tcp", time_scale=FROZEN, state_path=state_path, key_file=emu.key_file)
    restored = emu2.control("state")
    for key in ("sessions_opened", "sessions_unlogged", "auth_failures", "auth_failures_unlogged"):
        assert restored[key] == before[key], key
    emu2.control("advance", seconds=COALESCE_S)
    with RawClient(emu2.url, keys=emu2.keys) as c:
        events = read_log(c)
        assert c.request(Command.INTERROGATE).body.auth_failures == 3
    assert counted(events) == (3, {Role.READER: 12, Role.CLINICIAN: 1})
    assert [(e.type, e.arg1) for e in events if e.type not in ROUTINE] == [
        (EventType.POWER_ON, 0), (EventType.POWER_ON, 1)]
