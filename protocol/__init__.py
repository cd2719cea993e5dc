"""ithcli's telemetry protocol: frames, messages, units, CRC. Imports nothing of ours.

Public API:
    encode(command, body, seq=..., response=...) -> bytes
    FrameDecoder().feed(bytes) -> [RawFrame | FrameError]
    decode(RawFrame) -> Message
    Quantity.parse("450 mcg/day", "dose_rate").to_base() -> 450000  (ng/day)
Message layouts: protocol/messages.py. Codes: protocol/constants.py.
"""
from .codec import Message, build_payload, decode, decode_bytes, decode_declarative, encode
from .constants import (
    ALARM_PRIORITY,
    HELLO_FRAME_VERSION,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Alarm,
    BatteryState,
    Command,
    CommitOutcome,
    Drug,
    ErrorReason,
    EventType,
    Flag,
    InfusionMode,
    MriMode,
    Priority,
    PumpModel,
    Role,
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
    "Message",
    "build_payload",
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
    "Command",
    "CommitOutcome",
    "Drug",
    "ErrorReason",
    "EventType",
    "Flag",
    "InfusionMode",
    "MriMode",
    "Priority",
    "PumpModel",
    "Role",
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
