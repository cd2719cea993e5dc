"""The protocol's own exceptions: the only ones that leave this package.

Every decoding or encoding failure, whatever bytes caused it, surfaces as one of
these, so callers can map them to outcomes without catching Construct, struct or
index errors.
"""


class ProtocolError(Exception):
    """Base class of every error the protocol package raises or reports."""

    #: a short stable name for logs and JSON output
    kind = "protocol-error"

    def __init__(self, message: str, raw: bytes = b""):
        super().__init__(message)
        #: the bytes involved, kept for logs (never needed to recover)
        self.raw = bytes(raw)


class FrameError(ProtocolError):
    """A frame could not be accepted (sync, version, flags, length or CRC)."""

    kind = "frame-error"


class CrcError(FrameError):
    kind = "bad-crc"


class LengthError(FrameError):
    kind = "bad-length"


class VersionError(FrameError):
    kind = "bad-version"


class FlagsError(FrameError):
    kind = "bad-flags"


class MessageError(ProtocolError):
    """A frame with a good CRC whose contents are not a valid message."""

    kind = "bad-message"


class UnknownCommandError(MessageError):
    kind = "unknown-command"


class MalformedPayloadError(MessageError):
    kind = "malformed-payload"


class EncodeError(ProtocolError):
    """A message could not be built: a value is missing, out of range or inexact."""

    kind = "encode-error"


class UnitError(ProtocolError, ValueError):
    """A quantity's text or unit is not one the protocol accepts."""

    kind = "unit-error"
