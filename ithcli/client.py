"""PumpClient: one request, one matching response, over a Link, in one secure session.

The handshake, sealing and reply matching are protocol.session.ClientSession's
(sans-IO, shared with the campaign, the tests and the fuzzers); this class only
moves its bytes over the link, keeps time and turns its events into results or
ithcli's errors:

- Reads are retried a bounded number of times on timeouts and corrupted frames
  (re-asking changes nothing on the pump). Writes are never retried here: a write
  whose reply is lost is *unconfirmed*, and only a later read can say what happened.
- Inside a session only sealed replies that verify decide anything. A clear answer
  (an ERROR of any reason) is not authenticated: anyone on the line could have sent
  it. It raises SessionLost; a read opens a new session once and asks again, a
  write's caller (writes.py) treats it as "not committed" before COMMIT and as
  unconfirmed after. After a clear answer the client still listens UNAUTH_GRACE s
  for the genuine sealed reply, which wins if it comes.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol import Command, ErrorReason, ProtocolError, Role, bodies
from protocol import session as wire

from . import steps
from .errors import AuthError, DeviceRejected, LinkError, PumpProtocolError, SessionLost
from .keystore import ROLES
from .link import Link
from .steps import drive

READ_ATTEMPTS = 3
#: a port silent since it opened is said on stderr when the retries still to come wait this long or more
WAIT_NOTICE_S = 1.0
#: after a clear answer inside a session, how long to keep listening for the sealed one
UNAUTH_GRACE = 0.3
#: a RATE_LIMITED handshake is waited out and tried once more when the pump's wait is this short
RATE_LIMIT_WAIT_MAX = 30.0
_RETRY_IN = re.compile(r"retry in (\d+) s")

#: warnings (shown without -v), info (-v: retries, dropped frames), debug (-vv: every frame in hex)
log = logging.getLogger(__name__)


R = TypeVar("R", bound=bodies.Body)


@dataclass(frozen=True)
class _Hello:
    """The handshake's first step, as a request to _exchange (ClientSession builds the body)."""

    role: str
    COMMAND = Command.HELLO


@dataclass(frozen=True)
class _Auth:
    """The handshake's second step: the proof of `key` over the transcript (never logged)."""

    key: bytes
    COMMAND = Command.AUTH


_Ask = bodies.Request[Any] | _Hello | _Auth


class NoReply(LinkError):
    """No valid reply before the deadline (the request may or may not have arrived)."""


class ReplyLost(LinkError):
    """A write went out but no valid reply came back: its outcome is unknown."""


class PumpClient:
    def __init__(self, link: Link, *, timeout: float = 2.0, verbose: int = 0):
        self.link = link
        self.timeout = timeout
        self.verbose = verbose  # unused: logging decides what is shown (kept for callers that pass it)
        self.session = wire.ClientSession()
        self.corrupt_frames = 0  # frames dropped for CRC/framing/tag errors, for link-health output
        self.retries = 0  # reads asked again after a timeout or corrupted frames, for link-health output
        #: called as on_exchange(command, request_body, reply_body_or_None, outcome) for the audit log;
        #: HELLO and AUTH pass None for both bodies (nonces and proofs are never logged)
        self.on_exchange: Callable[[Command, bodies.Body | None, bodies.Body | None, str], None] | None = None
        #: called to open a new session when the pump's answer was not authenticated (set by ithcli.app.PumpSession)
        self.reopen: Callable[[], None] | None = None
        #: say on stderr what it waits for when nothing at all answers on the port (a session that
        #: reconnects, as a monitor does, says it for its first link only)
        self.tell_waiting = True

    @property
    def channel(self):
        """The open secure channel, or None: no session."""
        return self.session.channel

    def end_session(self) -> None:
        self.session.close()

    # --- requests ---------------------------------------------------------
    def read(self, request: bodies.Request[R], *, may_reopen: bool = True) -> R:
        """A read-only request: retried up to READ_ATTEMPTS times on timeouts and bad frames,
        and asked once more in a new session if its answer was not authenticated.

        Returns the reply's body, typed by the request (an InterrogateRequest gets a Status)."""
        return bodies.reply_to(request, self._read(request, may_reopen=may_reopen))

    def _read(self, request: _Ask, *, may_reopen: bool = True) -> Any:
        command = request.COMMAND
        last: Exception | None = None
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return self._exchange(request)
            except SessionLost as exc:
                # the pump reset, another programmer took the connection over, or someone on
                # the line answered for it: asking again changes nothing, so a read opens a new
                # session once and asks again; writes never do
                if self.reopen is None:
                    raise
                if not may_reopen:
                    raise LinkError(
                        f"the answers to {command.name} on {self.link.url} are not authenticated even in a new "
                        f"session ({exc.message}): the pump may be failing, or someone on the link is "
                        "answering for it"
                    ) from None
                reset = exc.details.get("reason") == ErrorReason.NOT_AUTHENTICATED.name
                hint = " (the pump may have reset: a reset loses every session)" if reset else ""
                log.warning("%s%s: opening a new session and asking again", exc.message, hint)
                self.reopen()
                return self._read(request, may_reopen=False)
            except (NoReply, Corrupt) as exc:
                last = exc
                left = (READ_ATTEMPTS - attempt) * self.timeout
                if attempt == 1 and self.link.bytes_in == 0 and self.tell_waiting and left >= WAIT_NOTICE_S:
                    log.warning("waiting for a pump to answer on %s: nothing has come back to %s in %g s; asking "
                                "again, up to %g s more", self.link.url, command.name, self.timeout, left)
                else:
                    log.info("attempt %d/%d of %s failed: %s", attempt, READ_ATTEMPTS, command.name, exc)
                if attempt < READ_ATTEMPTS:
                    self.retries += 1
        if isinstance(last, Corrupt):
            raise PumpProtocolError(
                f"no valid reply to {command.name} after {READ_ATTEMPTS} attempts: {last}"
            )
        silent = "" if self.link.bytes_in else ": nothing at all came back (is a pump on this port, and switched on?)"
        raise LinkError(
            f"no reply from the pump on {self.link.url} to {command.name} "
            f"after {READ_ATTEMPTS} attempts of {self.timeout:g} s{silent}"
        )

    def write_once(self, request: bodies.Request[R]) -> R:
        """A request that may change the pump: sent exactly once, never retried here.

        No reply (or only corrupted ones) raises ReplyLost, an answer in clear SessionLost:
        the caller must treat the outcome as unknown and learn it by reading, not by
        sending again.
        """
        try:
            reply = self._exchange(request)
        except (NoReply, Corrupt) as exc:
            raise ReplyLost(f"no valid reply to {request.COMMAND.name}: {exc}") from None
        return bodies.reply_to(request, reply)

    def open_session(self, keystore, role: str):
        """HELLO + AUTH as `role`, and only as `role`: prove we hold its key, make the pump
        prove it too, then seal. Returns the key-store entry used (its serial is the pump's).

        Raises NoKey when the store has no `role` key with the id the pump announces, and
        AuthError when the announced id is one of our keys for another role (the HELLO was
        altered on its way: we never authenticate with a role we did not ask for).
        """
        self.session.close()
        last: Exception | None = None
        waited = False
        for _ in range(READ_ATTEMPTS):
            try:
                hello = self._read(_Hello(role), may_reopen=False)
            except DeviceRejected as exc:
                raise hello_refused(exc, role) from None
            entry = key_for(keystore, role, hello.key_id)
            try:
                # sent once: a lost reply restarts the handshake with fresh nonces
                self._exchange(_Auth(entry.key))
            except (NoReply, Corrupt) as exc:
                last = exc
                continue
            except AuthError as exc:
                wait = _rate_limit_wait(exc)
                if wait is None or waited or wait > RATE_LIMIT_WAIT_MAX:
                    raise
                log.warning("the pump asks to retry the handshake in %s s (failed attempts on this line); "
                            "waiting and trying once more", format(wait, "g"))
                waited = True
                time.sleep(wait)
                continue
            return entry
        raise LinkError(f"could not open a session with the pump on {self.link.url}: {last}")

    def interrogate(self) -> bodies.Status:
        return self.read(bodies.InterrogateRequest())

    def read_program(self) -> bodies.ReadProgramResponse:
        return self.read(bodies.ReadProgramRequest())

    def read_log(self, first_index: int = 0, max_count: int = 28) -> bodies.ReadLogResponse:
        return self.read(bodies.ReadLogRequest(first_index, max_count))

    def read_whole_log(self, since_index: int = 0) -> tuple[int, list[bodies.Event]]:
        """Every event from since_index (or the oldest still held) to the end, paged."""
        return drive(self, steps.read_whole_log(since_index))

    def _exchange(self, request: _Ask) -> Any:
        try:
            reply = self._exchange_once(request)
        except Exception as exc:
            outcome = "unauthenticated" if isinstance(exc, SessionLost) else getattr(exc, "kind", type(exc).__name__)
            self._record(request, None, outcome)
            raise
        self._record(request, reply if isinstance(reply, bodies.Body) else None, "ok")
        return reply

    def _record(self, request: _Ask, reply: bodies.Body | None, outcome: str) -> None:
        if self.on_exchange is not None:
            if isinstance(request, (_Hello, _Auth)):  # never the key, nonces or proofs
                self.on_exchange(request.COMMAND, None, None, outcome)
            else:
                self.on_exchange(request.COMMAND, request, reply, outcome)

    def _frame_for(self, request: _Ask) -> bytes:
        s = self.session
        try:
            if isinstance(request, _Hello):
                return s.hello(Role[request.role.upper()])
            if isinstance(request, _Auth):
                return s.authenticate(request.key)
            return s.request(request)
        except ProtocolError as exc:
            raise PumpProtocolError(f"cannot build {request.COMMAND.name}: {exc}") from None

    def _exchange_once(self, request: _Ask) -> Any:
        command = request.COMMAND
        frame = self._frame_for(request)
        seq = self.session.seq
        if log.isEnabledFor(logging.DEBUG):  # the hex dump is not built for nobody
            log.debug("-> %s seq=%s %s", command.name, seq, frame.hex())
        self.link.write(frame)
        deadline = time.monotonic() + self.timeout
        corrupt: list[str] = []
        clear: wire.Unauthenticated | None = None
        while True:
            data = self.link.read(deadline)
            if data:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("<- %s", data.hex())
                try:
                    events = self.session.receive_data(data)
                except wire.VersionMismatch as exc:
                    raise PumpProtocolError(str(exc)) from None
                except wire.HandshakeError as exc:
                    raise AuthError(f"{exc}; nothing was sent") from None
                for event in events:
                    if isinstance(event, wire.Dropped):
                        if event.corrupt:
                            self.corrupt_frames += 1
                            corrupt.append(event.why)
                        log.info("<- dropped: %s", event.why)
                    elif isinstance(event, wire.Unauthenticated):
                        log.info("<- not authenticated: %s", event.describe())
                        if clear is None:
                            clear = event
                            deadline = min(deadline, time.monotonic() + UNAUTH_GRACE)
                    else:
                        return self._decided(command, event)
            elif time.monotonic() >= deadline:
                break
        # nothing decided in time: forget any half frame so the next try starts clean
        self.session.forget()
        if clear is not None:
            raise SessionLost(f"the answer to {command.name} came in clear and is not authenticated: "
                              f"{clear.describe()}",
                              details={"unauthenticated": clear.describe(),
                                       "reason": clear.reason.name if clear.reason is not None else None})
        if corrupt:
            raise Corrupt(f"{len(corrupt)} corrupted frame(s): {corrupt[-1]}")
        raise NoReply(f"no reply within {self.timeout:g} s")

    def _decided(self, command: Command, event) -> Any:
        return decided(command, event)


def decided(command: Command,
            event: wire.HelloReply | wire.SessionOpen | wire.Reply | wire.Refused | wire.Invalid) -> Any:
    """A decisive session event as the reply (a body, HelloReply or SessionOpen), or the error
    it means (ithcli.runner maps events with this too)."""
    if isinstance(event, wire.Reply):
        return event.body
    if isinstance(event, (wire.HelloReply, wire.SessionOpen)):
        return event
    if isinstance(event, wire.Invalid):
        raise PumpProtocolError(event.why)
    reason, detail = event.reason, event.detail
    text = f"the pump refused {command.name}: {reason.name.lower()}" + (f" ({detail})" if detail else "")
    if not event.authenticated:  # HELLO and AUTH are answered in clear by design
        if reason in (ErrorReason.NOT_AUTHENTICATED, ErrorReason.AUTH_FAILED, ErrorReason.RATE_LIMITED):
            raise AuthError(text, details={"reason": reason.name, "detail": detail})
    raise DeviceRejected(text, reason=reason.name)


def _rate_limit_wait(exc: AuthError) -> float | None:
    """The wait a RATE_LIMITED refusal asks for ("retry in N s"), or None."""
    if exc.details.get("reason") != "RATE_LIMITED":
        return None
    found = _RETRY_IN.search(exc.details.get("detail", ""))
    return float(found.group(1)) if found else None


class NoKey(AuthError):
    """The key store has no key for this pump and role."""


def hello_refused(exc: DeviceRejected, role: str) -> Exception:
    """What a refused HELLO means: no key for the role, another protocol version, or the refusal."""
    if exc.reason == "NOT_PERMITTED":
        return NoKey(f"the pump has no {role} key")
    if exc.reason == "UNSUPPORTED_VERSION":
        return PumpProtocolError(f"{exc.message}: no session was opened")
    return exc


def key_for(keystore: Any, role: str, key_id: bytes) -> Any:
    """The key-store entry for `role` whose id the pump announced; NoKey when there is none, and
    AuthError when the id is one of our keys for another role (the HELLO was altered on its
    way: we never authenticate with a role we did not ask for)."""
    entry = keystore.find(role, key_id)
    if entry is not None:
        return entry
    others = [r for r in ROLES if r != role and keystore.find(r, key_id) is not None]
    if others:
        raise AuthError(f"the pump answered a {role} HELLO with the id of our {others[0]} key for it: the "
                        "HELLO was altered on the way. No session was opened, nothing was sent")
    raise NoKey(f"no {role} key with id {key_id.hex()} in the key store")


class Corrupt(Exception):
    """Only corrupted frames arrived before the deadline (worth asking again)."""

    kind = "corrupt"
