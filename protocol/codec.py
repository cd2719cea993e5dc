"""Messages <-> frames: build a payload from a dict, parse a RawFrame into a Message.

The fast path: framing.py has already checked sync, length and CRC in plain
Python; here the payload is parsed with a compiled copy of the declarative Struct
(compiled lazily, once per message, so importing stays cheap).
`decode_declarative` parses a whole frame with messages.Frame instead; the tests
require both to agree on every message.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import construct as c

from .constants import Command
from .errors import EncodeError, MalformedPayloadError, ProtocolError, UnknownCommandError
from .framing import RawFrame, encode_frame, parse_frame
from .messages import PAYLOADS, RESPONSE_BIT, Frame, key


@dataclass(frozen=True)
class Message:
    command: Command
    response: bool
    seq: int
    body: dict[str, Any] = field(default_factory=dict)
    auth: bytes | None = None


def plain(value: Any) -> Any:
    """Construct containers -> plain dicts and lists (dropping Construct's _io).

    On the decode hot path: leaves are returned without a call of their own
    (measured: about half the time of one recursive call per value)."""
    nested = (dict, list)
    if isinstance(value, dict):
        return {k: plain(v) if isinstance(v, nested) else v for k, v in value.items() if k[:1] != "_"}
    if isinstance(value, list):
        return [plain(v) if isinstance(v, nested) else v for v in value]
    return value


def _payload_struct(command: int, response: bool) -> c.Construct:
    try:
        return PAYLOADS[key(command, response)]
    except KeyError:
        direction = "response" if response else "request"
        raise UnknownCommandError(f"unknown command 0x{command:02x} ({direction})") from None


_COMPILED: dict[int, c.Construct] = {}


def _compiled(command: int, response: bool) -> c.Construct:
    k = key(command, response)
    struct_ = _COMPILED.get(k)
    if struct_ is None:
        struct_ = _COMPILED[k] = _payload_struct(command, response).compile()
    return struct_


def warm_up() -> None:
    """Compile every message and load the cipher now rather than on first use.

    For long-running peers (the emulator): a device answers its first request as
    fast as its hundredth. Short-lived CLI runs compile only what they use.
    """
    for k in PAYLOADS:
        _compiled(k & 0x7F, bool(k & RESPONSE_BIT))
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401  (imported to load it now)


class _StrictStream(io.BytesIO):
    """Compiled Construct reads variable-length data with a bare io.read(n) and accepts a
    short read (a truncated trailing string would parse); this stream refuses one."""

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if size is not None and 0 <= size != len(data):
            raise c.StreamError(f"wanted {size} bytes, found {len(data)}")
        return data


_VARIABLE: dict[int, bool] = {}


def _stream(command: int, response: bool, payload: bytes) -> io.BytesIO:
    """A strict stream only for variable-size payloads and those with raw byte fields:
    the others stay on the fast plain BytesIO (every short read there fails in
    struct.unpack of a later field)."""
    k = key(command, response)
    variable = _VARIABLE.get(k)
    if variable is None:
        try:
            PAYLOADS[k].sizeof()
            # compiled Bytes(n) is a bare io.read(n) too: a short nonce or proof would parse
            variable = _VARIABLE[k] = _has_bytes(PAYLOADS[k])
        except c.SizeofError:
            variable = _VARIABLE[k] = True
    return _StrictStream(payload) if variable else io.BytesIO(payload)


def _has_bytes(con: c.Construct) -> bool:
    con = con.subcon if isinstance(con, c.Renamed) else con
    if isinstance(con, c.Bytes):
        return True
    return isinstance(con, c.Struct) and any(_has_bytes(sc) for sc in con.subcons)


#: (struct, its field names, (kind, name, inner) per field _check_fields looks inside)
_FieldPlan = tuple[c.Construct, frozenset[str], tuple[tuple[str, str, Any], ...]]
_FIELD_PLANS: dict[int, _FieldPlan] = {}


def _field_plan(struct_: c.Construct) -> _FieldPlan:
    """What _check_fields needs to know of a Struct, worked out once per Struct."""
    plan = _FIELD_PLANS.get(id(struct_))
    if plan is None:
        names = frozenset(sc.name for sc in struct_.subcons if sc.name)
        nested: list[tuple[str, str, Any]] = []
        for sc in struct_.subcons:
            inner = sc.subcon if isinstance(sc, c.Renamed) else sc
            if not sc.name:
                continue
            if isinstance(inner, c.Struct):
                nested.append(("group", sc.name, inner))
            elif isinstance(inner, c.Bytes) and isinstance(inner.length, int):
                # compiled Construct writes Bytes without checking their length: check here
                nested.append(("bytes", sc.name, inner.length))
            elif isinstance(inner, c.FocusedSeq):  # PrefixedArray: check each entry
                element = inner.subcons[-1].subcon.subcon  # Renamed("items") -> Array -> element
                if isinstance(element, c.Struct):
                    nested.append(("list", sc.name, element))
        plan = _FIELD_PLANS[id(struct_)] = (struct_, names, tuple(nested))
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


def build_payload(command: int, body: dict[str, Any] | None = None, *, response: bool = False) -> bytes:
    """Build a message payload; any missing, unknown or out-of-range field is refused."""
    struct_ = _payload_struct(command, response)
    body = dict(body or {})
    _check_fields(struct_, body, _name(command))
    try:
        # the compiled copy: ~2.5x faster; the Fixed/Code/Flags adapters run inside it,
        # so ranges are refused exactly as in the declarative Struct (tests/test_codec.py)
        built: bytes = _compiled(command, response).build(body)
        return built
    except Exception as exc:  # Construct, struct and codec errors alike: fail closed
        raise EncodeError(f"{_name(command)}: {_reason(exc)}") from None


def encode(
    command: int,
    body: dict[str, Any] | None = None,
    *,
    seq: int,
    response: bool = False,
    auth: bytes | None = None,
    version: int | None = None,
) -> bytes:
    """Build a whole frame for one message (header version: framing.frame_version unless given)."""
    payload = build_payload(command, body, response=response)
    return encode_frame(int(command), payload, seq=seq, response=response, auth=auth, version=version)


_DECODERS: dict[int, tuple[c.Construct, bool]] = {}


def _decoder(command: int, response: bool) -> tuple[c.Construct, bool]:
    """(compiled payload Struct, needs the strict stream), cached per message key."""
    k = key(command, response)
    found = _DECODERS.get(k)
    if found is None:
        _payload_struct(command, response)  # unknown -> UnknownCommandError
        found = _DECODERS[k] = (_compiled(command, response),
                                type(_stream(command, response, b"")) is _StrictStream)
    return found


_COMMANDS = {int(c): c for c in Command}  # Command(n) costs ~0.3 us a frame; a dict lookup ~10 ns


def decode(frame: RawFrame) -> Message:
    """Parse a checked frame's payload; unknown commands and bad payloads raise."""
    struct_, strict = _decoder(frame.command, frame.is_response)
    stream = _StrictStream(frame.payload) if strict else io.BytesIO(frame.payload)
    try:
        body = struct_.parse_stream(stream)
    except Exception as exc:  # fail closed: whatever Construct raises becomes ours
        raise MalformedPayloadError(f"{_name(frame.command)}: {_reason(exc)}", frame.raw) from None
    if stream.tell() != len(frame.payload):
        raise MalformedPayloadError(
            f"{_name(frame.command)}: {len(frame.payload) - stream.tell()} unexpected trailing bytes",
            frame.raw,
        )
    return Message(_COMMANDS[frame.command], frame.is_response, frame.seq, plain(body), frame.auth)


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
    return Message(Command(checked.command), response, checked.seq, plain(checked.payload), checked.auth)


def _name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"0x{command:02x}"


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
