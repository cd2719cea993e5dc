"""Requests -> replies, with no I/O: the pump's side of the protocol.

`handle(pump, message)` answers one decoded request. `respond(pump, frame)` is the
whole path from a checked RawFrame to the reply's bytes (or None for no reply),
turning every refusal into an ERROR frame that echoes the request's seq. Adding a
command means adding one function to HANDLERS.
"""
from __future__ import annotations

import logging
from typing import Callable

from protocol import (
    PROTOCOL_VERSION,
    Command,
    ErrorReason,
    Flag,
    MalformedPayloadError,
    Message,
    ProtocolError,
    RawFrame,
    UnknownCommandError,
    decode,
    encode,
)
from protocol.constants import MAX_PAYLOAD
from protocol.messages import MAX_LOG_PAGE, Event

from .pump import Pump

log = logging.getLogger("emulator.handler")

DETAIL_MAX = 120  # ErrorResponse.detail is a PascalString; keep it short
EVENT_SIZE = Event.sizeof()  # bytes per Event on the wire
READ_LOG_HEADER = 9  # oldest_index, event_count, array length


class Refused(Exception):
    """A request the pump understood and refuses: becomes an ERROR reply."""

    def __init__(self, reason: ErrorReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _hello(pump: Pump, body: dict) -> dict:
    # the pump answers with its own version; the programmer decides whether it can talk to it
    return {
        "protocol_version": PROTOCOL_VERSION,
        "serial_number": pump.serial,
        "model": pump.spec.code,
        "firmware": dict(pump.firmware),
        "pump_time": pump.time,
    }


def _interrogate(pump: Pump, body: dict) -> dict:
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


HANDLERS: dict[Command, Callable[[Pump, dict], dict]] = {
    Command.HELLO: _hello,
    Command.INTERROGATE: _interrogate,
    Command.READ_LOG: _read_log,
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


def respond(pump: Pump, frame: RawFrame) -> bytes | None:
    """The reply to one checked frame, or None when nothing must be sent."""
    if frame.is_response and frame.command == Command.ERROR:
        return None  # never answer an ERROR: two pumps would argue forever
    try:
        if frame.is_response:
            raise Refused(ErrorReason.NOT_PERMITTED, "a response frame was sent to the pump")
        if frame.flags & Flag.AUTH:
            # fail closed: this pump cannot check a MAC, so it acts on none
            raise Refused(ErrorReason.NOT_PERMITTED, "authenticated frames are not supported")
        try:
            message = decode(frame)
        except UnknownCommandError as exc:
            raise Refused(ErrorReason.UNKNOWN_COMMAND, str(exc)) from None
        except MalformedPayloadError as exc:
            raise Refused(ErrorReason.MALFORMED_PAYLOAD, str(exc)) from None
        command, body, response = handle(pump, message)
        return encode(command, body, seq=frame.seq, response=response)
    except Refused as exc:
        body = error_body(frame.command, exc.reason, exc.detail)
    except ProtocolError as exc:  # our own reply failed to build: a pump bug, said so
        log.error("could not build the reply to 0x%02x: %s", frame.command, exc)
        body = error_body(frame.command, ErrorReason.INTERNAL, f"internal error: {exc}")
    except Exception as exc:  # a bug must cost one reply, never the pump
        log.exception("internal error answering 0x%02x", frame.command)
        body = error_body(frame.command, ErrorReason.INTERNAL, f"internal error: {type(exc).__name__}")
    return encode(Command.ERROR, body, seq=frame.seq, response=True)
