"""Requests -> replies, with no I/O: the pump's side of the protocol.

`handle(pump, message)` answers one decoded request. `respond(pump, frame, faults,
session)` is the whole path from a checked RawFrame to the reply's bytes (or None
for no reply): the connection's secure session first (session.py: the handshake
in clear, every other frame sealed, roles), then the request, turning every
refusal into an ERROR frame that echoes the request's seq. Adding a command means
adding one function to HANDLERS. The therapy writes (PREPARE_*,
COMMIT) are the pump's own methods; test-only faults act here, around them.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from protocol import (
    Command,
    ErrorReason,
    Flag,
    MalformedPayloadError,
    Message,
    ProtocolError,
    RawFrame,
    UnknownCommandError,
    build_payload,
    decode,
    encode,
)
from protocol.constants import MAX_PAYLOAD
from protocol.messages import MAX_LOG_PAGE, Event
from protocol.security import AuthError

from .faults import Faults, tamper_pending
from .pump import Pump, Refusal
from .security_state import Backoff
from .session import AuthRefusal, NoSession, Session

log = logging.getLogger("emulator.handler")

DETAIL_MAX = 120  # ErrorResponse.detail is a PascalString; keep it short
EVENT_SIZE = Event.sizeof()  # bytes per Event on the wire
READ_LOG_HEADER = 9  # oldest_index, event_count, array length


#: a request the pump understood and refuses: becomes an ERROR reply
Refused = Refusal
PREPARES = (Command.PREPARE_PROGRAM, Command.PREPARE_REFILL, Command.PREPARE_BOLUS,
            Command.PREPARE_MRI_ENTER, Command.PREPARE_MRI_EXIT)
#: the handshake: the only requests served, and answered, in clear
CLEAR_COMMANDS = (Command.HELLO, Command.AUTH)


def _interrogate(pump: Pump, body: dict) -> dict:
    pump.interrogated()  # a stalled pump that was alarming restarts only when interrogated
    return pump.status()


def _read_log(pump: Pump, body: dict) -> dict:
    fits = (MAX_PAYLOAD - READ_LOG_HEADER) // EVENT_SIZE
    count = min(body["max_count"], MAX_LOG_PAGE, fits)
    events = pump.log.read(body["first_index"], count)
    return {
        "oldest_index": pump.log.oldest_index,
        "event_count": pump.log.count,
        "events": [e.body() for e in events],
    }


def _read_program(pump: Pump, body: dict) -> dict:
    return {"last_txid": pump.last_txid, "program": pump.program_body()}


def _prepare_program(pump: Pump, body: dict) -> dict:
    return pump.prepare_program(body)


def _prepare_refill(pump: Pump, body: dict) -> dict:
    return pump.prepare_refill(body)


def _prepare_bolus(pump: Pump, body: dict) -> dict:
    return pump.prepare_bolus(body)


def _prepare_mri_enter(pump: Pump, body: dict) -> dict:
    return pump.prepare_mri_enter(body)


def _prepare_mri_exit(pump: Pump, body: dict) -> dict:
    return pump.prepare_mri_exit(body)


def _commit(pump: Pump, body: dict) -> dict:
    return pump.commit(body["txid"])


HANDLERS: dict[Command, Callable[[Pump, dict], dict]] = {
    Command.INTERROGATE: _interrogate,
    Command.READ_LOG: _read_log,
    Command.READ_PROGRAM: _read_program,
    Command.PREPARE_PROGRAM: _prepare_program,
    Command.PREPARE_REFILL: _prepare_refill,
    Command.PREPARE_BOLUS: _prepare_bolus,
    Command.PREPARE_MRI_ENTER: _prepare_mri_enter,
    Command.PREPARE_MRI_EXIT: _prepare_mri_exit,
    Command.COMMIT: _commit,
}


def handle(pump: Pump, message: Message) -> tuple[Command, dict, bool]:
    """Answer one decoded request: (command, body, response flag)."""
    pump.tick()  # answer with the pump as it is now
    if message.response:
        raise Refused(ErrorReason.NOT_PERMITTED, "a response frame was sent to the pump")
    handler = HANDLERS.get(message.command)
    if handler is None:
        raise Refused(ErrorReason.UNKNOWN_COMMAND, f"command {message.command.name} is not a request")
    return message.command, handler(pump, message.body), True


def error_body(request_command: int, reason: ErrorReason, detail: str) -> dict:
    return {"request_command": request_command & 0xFF, "reason": reason, "detail": detail[:DETAIL_MAX]}


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


def _handshake(session: Session, pump: Pump, message: Message, payload: bytes) -> dict:
    if message.command == Command.HELLO:
        return session.hello(message.body, payload)
    reply = session.auth(message.body, payload)
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
            if pending is not None and pending.txid == message.body["txid"] and tamper_pending(pump):
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
