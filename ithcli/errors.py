"""Every failure the CLI reports, and the exit code it maps to: one place, one table.

cli.main() is the only place that turns these into a one-line message and an
exit code; commands just raise. README.md documents the same table and
tests/test_cli_errors.py checks them.
"""
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in ithcli: reported in one line; -v shows the traceback
    USAGE = 2  # bad options or arguments (Click's own code)
    LINK = 3  # no port given, the port cannot be opened, no reply, the link died
    PROTOCOL = 4  # the pump's replies are not valid protocol (after bounded retries)
    REJECTED = 5  # the pump answered with an ERROR frame
    SAFETY = 6  # refused by a safety check (drug library, limits, missing confirmation)
    VERIFY_FAILED = 7  # a write's read-back does not match what was meant
    UNCONFIRMED = 8  # a write was sent but its outcome is unknown: read before writing again
    CANCELLED = 9  # declined at a confirmation prompt, or the change could not be shown (stdout closed):
    # nothing was sent
    AUDIT = 10  # the audit log is damaged or fails verification
    AUTH = 11  # no key for this pump, a wrong or unsafe key file, the pump refused the session, or
    # another pump answers than the one meant (--expect-serial; a monitor's pump replaced)
    CHECK_FAILED = 12  # an MRI checklist has a BLOCK, or a post-MRI verify FAILed
    BATCH_FAILED = 13  # a batch finished with failed steps (none unconfirmed)
    INTERRUPTED = 130  # Ctrl-C
    OUTPUT_CLOSED = 141  # stdout was closed early (`| head`): 128 + SIGPIPE, as a shell reports it; quiet
    # unless the run changed a pump (closed_output.py: then stderr says how, or exit 8)


class IthcliError(Exception):
    """Base of every expected failure; `exit_code` says which row of the table."""

    exit_code = ExitCode.INTERNAL
    kind = "error"
    #: raised from a JSON-lines stream (monitor --json): its --json error object is one line too
    json_line = False

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        #: structured context for --json output (before/after, txid...)
        self.details = details or {}


class AuthError(IthcliError):
    exit_code = ExitCode.AUTH
    kind = "auth"


class WrongPump(AuthError):
    """Another pump answers than the one meant (--expect-serial, or a monitor's pump replaced on
    its port). Found at the session's opening: nothing but the handshake was sent to it.
    details: "expected_serial", "serial_number" (None: no key for it, so its serial is unknown), "port"."""

    kind = "wrong-pump"

    @property
    def expected(self) -> str:
        return str(self.details["expected_serial"])

    @property
    def found(self) -> str | None:
        return self.details.get("serial_number")


class SessionLost(AuthError):
    """Inside a session the pump answered in clear that it has none: it reset (a session
    lives in its RAM) or another programmer's HELLO replaced ours. The answer itself is not
    authenticated, so it proves nothing about what the pump did with the request."""


class CheckFailed(IthcliError):
    exit_code = ExitCode.CHECK_FAILED
    kind = "check-failed"


class UsageError(IthcliError):
    exit_code = ExitCode.USAGE
    kind = "usage"


class LinkError(IthcliError):
    exit_code = ExitCode.LINK
    kind = "link"


class PumpProtocolError(IthcliError):
    exit_code = ExitCode.PROTOCOL
    kind = "protocol"


class DeviceRejected(IthcliError):
    exit_code = ExitCode.REJECTED
    kind = "rejected"

    def __init__(self, message: str, reason: str = "", details: dict | None = None):
        super().__init__(message, details)
        self.reason = reason


class SafetyError(IthcliError):
    exit_code = ExitCode.SAFETY
    kind = "safety"

    @property
    def refused(self) -> list[dict]:
        """The hard limits hit: no flag permits these."""
        return list(self.details.get("refused", []))

    @property
    def needed(self) -> list[str]:
        """Every override and confirmation still needed, each as its flag
        (--override-soft-limit NAME=REASON, --confirm-...)."""
        return list(self.details.get("needed", []))


class VerifyFailed(IthcliError):
    exit_code = ExitCode.VERIFY_FAILED
    kind = "verify-failed"


class Unconfirmed(IthcliError):
    exit_code = ExitCode.UNCONFIRMED
    kind = "unconfirmed"

    @property
    def txid(self) -> int | None:
        """The write whose outcome is unknown (None: an earlier one, see details["reconciled"])."""
        return self.details.get("txid")


class Cancelled(IthcliError):
    exit_code = ExitCode.CANCELLED
    kind = "cancelled"
