"""ithcli's telemetry protocol: frames, messages, units, CRC. Imports nothing of ours.

Public API:
    encode(command, body, seq=..., response=...) -> bytes   (body: a bodies.* dataclass)
    FrameDecoder().feed(bytes) -> [RawFrame | FrameError]
    decode(RawFrame) -> Message                               (Message.body: a bodies.* dataclass)
    bodies.expect(message.body, bodies.Status) -> bodies.Status
    Quantity.parse("450 mcg/day", "dose_rate").to_base() -> 450000  (ng/day)
Message layouts: protocol/messages.py (bodies.py is generated from it). Codes: protocol/constants.py.
"""
from . import bodies
from .codec import (
    Message,
    build_fields,
    build_payload,
    decode,
    decode_bytes,
    decode_declarative,
    encode,
    encode_fields,
    from_fields,
)
from .constants import (
    ALARM_PRIORITY,
    HELLO_FRAME_VERSION,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Alarm,
    BatteryState,
    BolusPurpose,
    CatheterAction,
    CatheterModel,
    Command,
    CommitOutcome,
    Drug,
    ErrorReason,
    EventType,
    Flag,
    InfusionMode,
    MriMode,
    PatientAction,
    Priority,
    PtmRefusal,
    PumpModel,
    Role,
    SpasticityOrigin,
    WriteKind,
)
from .errors import (
    CrcError,
    EncodeError,
    FrameError,
    LengthError,
    MalformedPayloadError,
    MessageError,
    ProtocolError,
    UnitError,
    UnknownCommandError,
)
from .framing import FrameDecoder, RawFrame, encode_frame, parse_frame
from .units import Quantity

# the public names, listed (ruff and mypy read an explicit __all__ as the re-exports)
__all__ = [
    "bodies",
    "Message",
    "build_fields",
    "build_payload",
    "encode_fields",
    "from_fields",
    "decode",
    "decode_bytes",
    "decode_declarative",
    "encode",
    "ALARM_PRIORITY",
    "HELLO_FRAME_VERSION",
    "MAX_PAYLOAD",
    "PROTOCOL_VERSION",
    "Alarm",
    "BatteryState",
    "BolusPurpose",
    "CatheterAction",
    "CatheterModel",
    "Command",
    "CommitOutcome",
    "Drug",
    "ErrorReason",
    "EventType",
    "Flag",
    "InfusionMode",
    "MriMode",
    "PatientAction",
    "Priority",
    "PtmRefusal",
    "PumpModel",
    "Role",
    "SpasticityOrigin",
    "WriteKind",
    "CrcError",
    "EncodeError",
    "FrameError",
    "LengthError",
    "MalformedPayloadError",
    "MessageError",
    "ProtocolError",
    "UnitError",
    "UnknownCommandError",
    "FrameDecoder",
    "RawFrame",
    "encode_frame",
    "parse_frame",
    "Quantity",
]
