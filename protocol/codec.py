"""Messages <-> frames: build a payload from a typed body, parse a RawFrame into a Message.

Bodies are the dataclasses of bodies.py (generated from messages.py): encode takes
one, decode gives one. The fast path: framing.py has already checked sync, length
and CRC in plain Python; here the payload is parsed by a function struct_body.py
generates from the declarative Struct (once per message, on first use, so importing
stays cheap) and its fields handed to the body class's generated constructor.
`decode_declarative` parses a whole frame with messages.Frame instead; the tests
require both to agree on every message.

`build_fields`/`encode_fields` build from a plain dict of field values, as the
Struct sees them: for tests and fuzzers that build wrong payloads on purpose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import construct as c

from . import messages, struct_body
from .bodies import ALL, BODIES, Body, Fields
from .constants import Command
from .errors import EncodeError, MalformedPayloadError, ProtocolError, UnknownCommandError
from .framing import RawFrame, encode_frame, parse_frame
from .messages import PAYLOADS, RESPONSE_BIT, Frame, key


@dataclass(frozen=True)
class Message:
    command: Command
    response: bool
    seq: int
    body: Body  # the class BODIES names for (command, response): bodies.expect() narrows it
    auth: bytes | None = None


def _payload_struct(command: int, response: bool) -> c.Construct:
    try:
        return PAYLOADS[key(command, response)]
    except KeyError:
        direction = "response" if response else "request"
        raise UnknownCommandError(f"unknown command 0x{command:02x} ({direction})") from None


def warm_up() -> None:
    """Generate every message's parser and builder and load the cipher now rather than on first use.

    For long-running peers (the emulator): a device answers its first request as
    fast as its hundredth. Short-lived CLI runs generate only what they use.
    """
    for k in PAYLOADS:
        _decoder(k & 0x7F, bool(k & RESPONSE_BIT))
        _builder(k & 0x7F, bool(k & RESPONSE_BIT))
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401  (imported to load it now)


#: (its field names in wire order, the same as a set, (kind, name, inner) per field to look inside)
_FieldPlan = tuple[tuple[str, ...], frozenset[str], tuple[tuple[str, str, Any], ...]]
_FIELD_PLANS: dict[int, _FieldPlan] = {}
#: id(Struct) -> its generated body class (bodies.py)
_CLASSES: dict[int, type[Fields]] = {id(getattr(messages, cls.STRUCT)): cls for cls in ALL}


def _field_plan(struct_: c.Construct) -> _FieldPlan:
    """What _check_fields and _fields_of need to know of a Struct, worked out once per Struct."""
    plan = _FIELD_PLANS.get(id(struct_))
    if plan is None:
        names = tuple(sc.name for sc in struct_.subcons if sc.name)
        nested: list[tuple[str, str, Any]] = []
        for sc in struct_.subcons:
            inner = sc.subcon if isinstance(sc, c.Renamed) else sc
            if not sc.name:
                continue
            if isinstance(inner, c.Struct):
                nested.append(("group", sc.name, inner))
            elif isinstance(inner, c.Bytes) and isinstance(inner.length, int):
                # a wrong-sized nonce or proof is named here, before the builder refuses it
                nested.append(("bytes", sc.name, inner.length))
            elif isinstance(inner, c.FocusedSeq):  # PrefixedArray: check each entry
                element = inner.subcons[-1].subcon.subcon  # Renamed("items") -> Array -> element
                if isinstance(element, c.Struct):
                    nested.append(("list", sc.name, element))
        plan = _FIELD_PLANS[id(struct_)] = (names, frozenset(names), tuple(nested))
    return plan


def _check_fields(struct_: c.Construct, body: dict[str, Any], where: str) -> None:
    _, names, nested = _field_plan(struct_)
    if body.keys() != names:
        extra = set(body) - names
        missing = names - set(body)
        if extra:
            raise EncodeError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        raise EncodeError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
    for kind, name, inner in nested:
        value = body[name]
        if kind == "group":
            if not isinstance(value, dict):
                raise EncodeError(f"{where}.{name}: expected a group of fields")
            _check_fields(inner, value, f"{where}.{name}")
        elif kind == "bytes":
            if not isinstance(value, (bytes, bytearray)) or len(value) != inner:
                raise EncodeError(f"{where}.{name}: expected exactly {inner} bytes")
        else:
            if not isinstance(value, (list, tuple)):
                raise EncodeError(f"{where}.{name}: expected a list")
            for i, entry in enumerate(value):
                if not isinstance(entry, dict):
                    raise EncodeError(f"{where}.{name}[{i}]: expected a group of fields")
                _check_fields(inner, entry, f"{where}.{name}[{i}]")


def _fields_of(struct_: c.Construct, body: object, where: str) -> dict[str, Any]:
    """A body as the Struct builds it: a dict of its fields, groups as dicts, arrays as lists.
    Its class (and each group's) must be exactly the one generated for that Struct, and
    raw byte fields exactly their size."""
    cls = _CLASSES[id(struct_)]
    if type(body) is not cls:
        raise EncodeError(f"{where}: expected a {cls.__name__}, got {type(body).__name__}")
    fields = body._fields()  # the names are the class's own: only values need checks
    for kind, name, inner in _field_plan(struct_)[2]:
        value = fields[name]
        if kind == "group":
            fields[name] = _fields_of(inner, value, f"{where}.{name}")
        elif kind == "bytes":
            if not isinstance(value, bytes) or len(value) != inner:
                raise EncodeError(f"{where}.{name}: expected exactly {inner} bytes")
        else:
            if not isinstance(value, tuple):  # a list would make the body unhashable and unequal
                raise EncodeError(f"{where}.{name}: expected a tuple, got {type(value).__name__}")
            fields[name] = _elements(inner, value, f"{where}.{name}")
    return fields


def _elements(struct_: c.Construct, value: tuple[object, ...], where: str) -> list[dict[str, Any]]:
    """An array's entries as _fields_of gives them; the entries' paths are worked out only for
    an error (an event log page has up to 28 of them)."""
    cls = _CLASSES[id(struct_)]
    if _field_plan(struct_)[2] or any(type(v) is not cls for v in value):
        return [_fields_of(struct_, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return [v._fields() for v in value]  # type: ignore[attr-defined]  # each is a cls: checked above


def build_payload(command: int, body: Body, *, response: bool = False) -> bytes:
    """Build a message payload from its body (the class bodies.BODIES names for the message);
    another class, or any out-of-range value, is refused (EncodeError)."""
    struct_ = _payload_struct(command, response)
    return _build(command, response, _fields_of(struct_, body, _name(command)))


def build_fields(command: int, fields: dict[str, Any], *, response: bool = False) -> bytes:
    """Build a payload from a plain dict of field values (groups as dicts, arrays as lists):
    for tests and fuzzers. Any missing, unknown or out-of-range field is refused."""
    fields = dict(fields)
    _check_fields(_payload_struct(command, response), fields, _name(command))
    return _build(command, response, fields)


_BUILDERS: dict[int, struct_body.Build] = {}


def _builder(command: int, response: bool) -> struct_body.Build:
    """The generated builder of a message (struct_body.py), made on its first use."""
    k = key(command, response)
    build = _BUILDERS.get(k)
    if build is None:
        build = _BUILDERS[k] = struct_body.builder(_payload_struct(command, response))
    return build


def _build(command: int, response: bool, fields: dict[str, Any]) -> bytes:
    try:
        # the adapters' checks run inside it, so ranges, codes and sizes are refused exactly
        # as in the declarative Struct (tests/test_codec.py, tests/test_struct_body.py)
        return _builder(command, response)(fields)
    except Exception as exc:  # Construct, struct and codec errors alike: fail closed
        raise EncodeError(f"{_name(command)}: {_reason(exc)}") from None


def encode(
    command: int,
    body: Body,
    *,
    seq: int,
    response: bool = False,
    auth: bytes | None = None,
    version: int | None = None,
) -> bytes:
    """Build a whole frame for one message (header version: framing.frame_version unless given)."""
    payload = build_payload(command, body, response=response)
    return encode_frame(int(command), payload, seq=seq, response=response, auth=auth, version=version)


def encode_fields(command: int, fields: dict[str, Any], *, seq: int, response: bool = False,
                  auth: bytes | None = None, version: int | None = None) -> bytes:
    """encode() from a plain dict of field values (build_fields): for tests and fuzzers."""
    payload = build_fields(command, fields, response=response)
    return encode_frame(int(command), payload, seq=seq, response=response, auth=auth, version=version)


def from_fields(command: int, fields: dict[str, Any], *, response: bool = False) -> Body:
    """The body a plain dict of field values stands for: built (every check) and parsed back,
    so enum names become members and lists tuples. For tests and tools."""
    return _parse_body(int(command), response, build_fields(command, fields, response=response), b"")


_DECODERS: dict[int, tuple[struct_body.Parse, type[Body]]] = {}


def _decoder(command: int, response: bool) -> tuple[struct_body.Parse, type[Body]]:
    """(parse(payload) -> (fields, bytes used), body class) of a message: its generated parser
    (struct_body.py), made on its first use."""
    k = key(command, response)
    found = _DECODERS.get(k)
    if found is None:
        struct_ = _payload_struct(command, response)  # unknown -> UnknownCommandError
        found = _DECODERS[k] = (struct_body.parser(struct_), BODIES[k])
    return found


_COMMANDS = {int(c): c for c in Command}  # Command(n) costs ~0.3 us a frame; a dict lookup ~10 ns


def decode(frame: RawFrame) -> Message:
    """Parse a checked frame's payload; unknown commands and bad payloads raise."""
    body = _parse_body(frame.command, frame.is_response, frame.payload, frame.raw)
    return Message(_COMMANDS[frame.command], frame.is_response, frame.seq, body, frame.auth)


def _parse_body(command: int, response: bool, payload: bytes, raw: bytes) -> Body:
    parse, cls = _decoder(command, response)
    try:
        fields, used = parse(payload)
    except Exception as exc:  # fail closed: whatever the parser raises becomes ours
        raise MalformedPayloadError(f"{_name(command)}: {_reason(exc)}", raw) from None
    if used != len(payload):
        raise MalformedPayloadError(f"{_name(command)}: {len(payload) - used} unexpected trailing bytes", raw)
    # the generated constructor reads each field by name (Construct's _io is left behind)
    return cls._parsed(fields)


def decode_bytes(data: bytes) -> Message:
    """Decode exactly one whole frame (for tests and tools)."""
    used, item = parse_frame(data)
    if isinstance(item, RawFrame) and used == len(data):
        return decode(item)
    if isinstance(item, ProtocolError):
        raise item
    raise MalformedPayloadError("not exactly one frame", data)


def decode_declarative(data: bytes) -> Message:
    """The reference path: parse a whole frame with the declarative messages.Frame."""
    try:
        parsed = Frame.parse(data)
    except Exception as exc:
        raise MalformedPayloadError(f"declarative parse failed: {_reason(exc)}", data) from None
    checked = parsed.checked.value
    response = bool(checked.flags & 0x01)
    body = BODIES[key(checked.command, response)]._parsed(checked.payload)
    return Message(Command(checked.command), response, checked.seq, body, checked.auth)


def _name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"0x{command:02x}"


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
