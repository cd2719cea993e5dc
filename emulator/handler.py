"""Requests -> replies, with no I/O: the pump's side of the protocol.

`handle(pump, message)` answers one decoded request. `respond(pump, frame, faults,
session)` is the whole path from a checked RawFrame to the reply's bytes (or None
for no reply): the connection's secure session first (session.py: the handshake
in clear, every other frame sealed, roles), then the request, turning every
refusal into an ERROR frame that echoes the request's seq. Bodies are the typed
dataclasses of protocol/bodies.py both ways. Adding a command means adding one
function to HANDLERS, keyed by its request class. The therapy writes (PREPARE_*,
COMMIT) are the pump's own (pump/write_kinds.py holds one object per write kind);
test-only faults act here, around them.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from protocol import (
    Command,
    ErrorReason,
    Flag,
    MalformedPayloadError,
    Message,
    ProtocolError,
    RawFrame,
    UnknownCommandError,
    bodies,
    build_payload,
    decode,
    encode,
)
from protocol.constants import MAX_PAYLOAD
from protocol.messages import MAX_LOG_PAGE, Event
from protocol.security import AuthError

from .faults import Faults, tamper_pending
from .pump import Pump, Refusal
from .pump.write_kinds import PREPARES, WRITES, PrepareRequest
from .security_state import Backoff
from .session import AuthRefusal, NoSession, Session

log = logging.getLogger("emulator.handler")

DETAIL_MAX = 120  # ErrorResponse.detail is a PascalString; keep it short
EVENT_SIZE = Event.sizeof()  # bytes per Event on the wire
READ_LOG_HEADER = 9  # oldest_index, event_count, array length


#: a request the pump understood and refuses: becomes an ERROR reply
Refused = Refusal
#: the handshake: the only requests served, and answered, in clear
CLEAR_COMMANDS = (Command.HELLO, Command.AUTH)


def _interrogate(pump: Pump, body: bodies.InterrogateRequest) -> bodies.Status:
    pump.interrogated()  # a stalled pump that was alarming restarts only when interrogated
    return pump.status()


def _read_log(pump: Pump, body: bodies.ReadLogRequest) -> bodies.ReadLogResponse:
    fits = (MAX_PAYLOAD - READ_LOG_HEADER) // EVENT_SIZE
    count = min(body.max_count, MAX_LOG_PAGE, fits)
    events = pump.log.read(body.first_index, count)
    return bodies.ReadLogResponse(pump.log.oldest_index, pump.log.count, tuple(e.body() for e in events))


def _read_program(pump: Pump, body: bodies.ReadProgramRequest) -> bodies.ReadProgramResponse:
    return bodies.ReadProgramResponse(pump.last_txid, pump.program_body())


def _prepare(pump: Pump, body: PrepareRequest) -> bodies.Prepared:
    return pump.prepare(body)  # the write kind's object checks it (pump/write_kinds.py)


def _commit(pump: Pump, body: bodies.CommitRequest) -> bodies.Committed:
    return pump.commit(body.txid)


#: request body class -> its handler (every PREPARE_* goes to the pump's one prepare())
HANDLERS: dict[type[bodies.Body], Callable[[Pump, Any], bodies.Body]] = {
    bodies.InterrogateRequest: _interrogate,
    bodies.ReadLogRequest: _read_log,
    bodies.ReadProgramRequest: _read_program,
    **{write.request: _prepare for write in WRITES},
    bodies.CommitRequest: _commit,
}


def handle(pump: Pump, message: Message) -> tuple[Command, bodies.Body, bool]:
    """Answer one decoded request: (command, body, response flag)."""
    pump.tick()  # answer with the pump as it is now
    if message.response:
        raise Refused(ErrorReason.NOT_PERMITTED, "a response frame was sent to the pump")
    handler = HANDLERS.get(type(message.body))
    if handler is None:
        raise Refused(ErrorReason.UNKNOWN_COMMAND, f"command {message.command.name} is not a request")
    return message.command, handler(pump, message.body), True


def error_body(request_command: int, reason: ErrorReason, detail: str) -> bodies.ErrorResponse:
    return bodies.ErrorResponse(request_command & 0xFF, reason, detail[:DETAIL_MAX])


def respond(pump: Pump, frame: RawFrame, faults: Faults | None = None,
            session: Session | None = None) -> bytes | None:
    """The reply to one checked frame, or None when nothing must be sent.

    `session` is the connection's (session.py): HELLO and AUTH are answered in
    clear; everything else must be sealed in its channel and is answered sealed.
    A sealed frame that does not open (bad tag, another session, a replayed or stale
    counter) is counted and dropped without a reply. Without a session nothing but
    HELLO and AUTH is served.

    `faults` (test-only, armed over the control channel) may reset the pump around a
    COMMIT or after a PREPARE, tamper with what a COMMIT applies, or drop the reply;
    see faults.py. A reset ends every session (the server sees pump.resets move).
    They act only on requests that passed authentication.
    """
    session = session if session is not None else Session({}, Backoff())  # no keys: fail closed
    sealed = bool(frame.flags & Flag.AUTH)
    if sealed:
        try:
            frame = session.open(frame)
        except NoSession:
            pump.record_auth_failure(ErrorReason.NOT_AUTHENTICATED)
            return _clear_error(frame, ErrorReason.NOT_AUTHENTICATED, "no authenticated session: HELLO and AUTH first")
        except AuthError as exc:  # an attacker learns nothing: no reply at all
            pump.record_auth_failure(ErrorReason.AUTH_FAILED)
            log.info("dropped a sealed frame: %s", exc)
            return None
    if frame.is_response and frame.command == Command.ERROR:
        return None  # never answer an ERROR: two pumps would argue forever
    if not sealed and not frame.is_response and frame.command not in CLEAR_COMMANDS:
        pump.record_auth_failure(ErrorReason.NOT_AUTHENTICATED)
        return _clear_error(frame, ErrorReason.NOT_AUTHENTICATED, "no authenticated session: HELLO and AUTH first")
    faults = faults if faults is not None else Faults()
    is_request = not frame.is_response
    commit = sealed and is_request and frame.command == Command.COMMIT
    if commit and faults.take("reset_on_commit"):
        pump.reset()  # before anything is applied: the pending transaction is lost
        return None
    reply = _reply(pump, frame, faults if commit else None, session, sealed)
    if commit and faults.take("reset_after_commit"):
        pump.reset()
        return None
    if commit and faults.take("drop_commit_reply"):
        return None
    if sealed and is_request and frame.command in PREPARES and faults.take("drop_prepare_reply"):
        return None
    if sealed and is_request and frame.command in PREPARES and faults.take("reset_after_prepare"):
        pump.reset()  # the echo (sealed before the reset) still goes out; the session does not survive
        return reply
    if sealed and is_request and faults.take("drop_reply"):
        return None
    return reply


def _clear_error(frame: RawFrame, reason: ErrorReason, detail: str) -> bytes:
    # framed in the request's header version: a programmer of another protocol version
    # can read this answer to its HELLO (protocol.constants.HELLO_FRAME_VERSION)
    return encode(Command.ERROR, error_body(frame.command, reason, detail), seq=frame.seq, response=True,
                  version=frame.version)


def _handshake(session: Session, pump: Pump, message: Message, payload: bytes) -> bodies.Body:
    if message.command == Command.HELLO:
        return session.hello(bodies.expect(message.body, bodies.HelloRequest), payload)
    reply = session.auth(bodies.expect(message.body, bodies.AuthRequest), payload)
    role = session.role
    if role is not None:  # auth() returned: the session is open, so it has a role
        pump.session_opened(role)
    return reply


def _reply(pump: Pump, frame: RawFrame, commit_faults: Faults | None, session: Session, sealed: bool) -> bytes:
    """The reply's bytes: sealed when the request was (whatever the answer), else in clear."""
    try:
        if frame.is_response:
            raise Refused(ErrorReason.NOT_PERMITTED, "a response frame was sent to the pump")
        try:
            message = decode(frame)
        except UnknownCommandError as exc:
            raise Refused(ErrorReason.UNKNOWN_COMMAND, str(exc)) from None
        except MalformedPayloadError as exc:
            raise Refused(ErrorReason.MALFORMED_PAYLOAD, str(exc)) from None
        if message.command in CLEAR_COMMANDS:
            if sealed:
                raise Refused(ErrorReason.NOT_PERMITTED, f"{message.command.name} is sent in clear")
            reply = _handshake(session, pump, message, frame.payload)
            return encode(message.command, reply, seq=frame.seq, response=True)
        session.check_permitted(message.command)
        if commit_faults is not None and commit_faults.is_armed("mismatch_on_commit"):
            pump.tick()
            pending = pump.pending
            commit = bodies.expect(message.body, bodies.CommitRequest)
            if pending is not None and pending.txid == commit.txid and tamper_pending(pump):
                commit_faults.take("mismatch_on_commit")
        command, body, response = handle(pump, message)
        return session.seal(command, build_payload(command, body, response=response), frame.seq)
    except AuthRefusal as exc:
        pump.record_auth_failure(exc.reason)
        body = error_body(frame.command, exc.reason, exc.detail)
    except Refused as exc:
        body = error_body(frame.command, exc.reason, exc.detail)
    except ProtocolError as exc:  # our own reply failed to build: a pump bug, said so
        log.error("could not build the reply to 0x%02x: %s", frame.command, exc)
        body = error_body(frame.command, ErrorReason.INTERNAL, f"internal error: {exc}")
    except Exception as exc:  # a bug must cost one reply, never the pump
        log.exception("internal error answering 0x%02x", frame.command)
        body = error_body(frame.command, ErrorReason.INTERNAL, f"internal error: {type(exc).__name__}")
    if sealed and session.channel is not None:
        return session.seal(Command.ERROR, build_payload(Command.ERROR, body, response=True), frame.seq)
    return encode(Command.ERROR, body, seq=frame.seq, response=True, version=frame.version)
