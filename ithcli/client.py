"""PumpClient: one request, one matching response, over a Link.

Reads are retried a bounded number of times on timeouts and corrupted frames
(re-asking changes nothing on the pump). Writes are never retried here: a write
whose reply is lost is *unconfirmed*, and only a later read can say what happened.
"""
from __future__ import annotations

import random
import sys
import time
from typing import Any

from .errors import AuthError, DeviceRejected, LinkError, PumpProtocolError, SessionLost
from .link import Link

READ_ATTEMPTS = 3


class NoReply(LinkError):
    """No valid reply before the deadline (the request may or may not have arrived)."""


class ReplyLost(LinkError):
    """A write went out but no valid reply came back: its outcome is unknown."""


class PumpClient:
    def __init__(self, link: Link, *, timeout: float = 2.0, verbose: int = 0):
        import protocol

        self._protocol = protocol
        self.link = link
        self.timeout = timeout
        self.verbose = verbose
        self._decoder = protocol.FrameDecoder()
        self._seq = random.randrange(0x10000)
        self.corrupt_frames = 0  # frames dropped for CRC/framing errors, for link-health output
        self.retries = 0  # reads asked again after a timeout or corrupted frames, for link-health output
        #: called as on_exchange(command, request_body, reply_body_or_None, outcome) for the audit log
        self.on_exchange = None
        #: the authenticated session (protocol.security.SecureChannel) once open_session succeeds
        self.channel = None
        #: called to open a new session when the pump says it lost ours (set by ithcli.app.App)
        self.reopen = None

    # --- requests ---------------------------------------------------------
    def read(self, command, body: dict | None = None, *, may_reopen: bool = True) -> dict[str, Any]:
        """A read-only request: retried up to READ_ATTEMPTS times on timeouts and bad frames,
        and asked once more in a new session if the pump lost ours (SessionLost)."""
        last: Exception | None = None
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return self._exchange(command, body)
            except SessionLost:
                # the pump reset (or another programmer took over): asking again changes
                # nothing, so a read opens a new session once and asks again; writes never do
                if not may_reopen or self.reopen is None:
                    raise
                self._diag(f"the pump lost the session before {command.name} (a reset?): opening a new one",
                           level=0)
                self.reopen()
                return self.read(command, body, may_reopen=False)
            except (NoReply, _Corrupt) as exc:
                last = exc
                self._diag(f"attempt {attempt}/{READ_ATTEMPTS} of {command.name} failed: {exc}")
                if attempt < READ_ATTEMPTS:
                    self.retries += 1
        if isinstance(last, _Corrupt):
            raise PumpProtocolError(
                f"no valid reply to {command.name} after {READ_ATTEMPTS} attempts: {last}"
            )
        raise LinkError(
            f"no reply from the pump on {self.link.url} to {command.name} "
            f"after {READ_ATTEMPTS} attempts of {self.timeout:g} s"
        )

    def write_once(self, command, body: dict) -> dict[str, Any]:
        """A request that may change the pump: sent exactly once, never retried here.

        No reply (or only corrupted ones) raises ReplyLost: the caller must treat the
        outcome as unknown and learn it by reading, not by sending again.
        """
        try:
            return self._exchange(command, body)
        except (NoReply, _Corrupt) as exc:
            raise ReplyLost(f"no valid reply to {command.name}: {exc}") from None

    def open_session(self, keystore, role: str):
        """HELLO + AUTH: prove we hold the key, make the pump prove it too, then seal.

        Returns the key-store entry used (its serial is the pump's). Raises NoKey when
        the store has no key for the id the pump announces for this role.
        """
        from protocol import security

        p = self._protocol
        self.channel = None
        last: Exception | None = None
        for _ in range(READ_ATTEMPTS):
            nonce = security.new_nonce()
            try:
                hello = self.read(p.Command.HELLO, {"protocol_version": p.PROTOCOL_VERSION,
                                                    "client_nonce": nonce, "role": p.Role[role.upper()]})
            except DeviceRejected as exc:
                if exc.reason == "NOT_PERMITTED":
                    raise NoKey(f"the pump has no {role} key") from None
                raise
            if hello["protocol_version"] != p.PROTOCOL_VERSION:
                raise PumpProtocolError(
                    f"the pump speaks protocol version {hello['protocol_version']}, ithcli speaks {p.PROTOCOL_VERSION}"
                )
            entry = keystore.find(role, hello["key_id"])
            if entry is None:
                raise NoKey(f"no {role} key with id {hello['key_id'].hex()} in the key store")
            role_code = p.Role[role.upper()]
            proof = security.client_proof(entry.key, nonce, hello["pump_nonce"], role_code)
            try:
                # sent once: a lost reply restarts the handshake with fresh nonces
                reply = self.write_once(p.Command.AUTH, {"role": role_code, "proof": proof})
            except LinkError as exc:
                last = exc
                continue
            expected = security.pump_proof(entry.key, nonce, hello["pump_nonce"], role_code)
            if not security.proofs_equal(reply["proof"], expected):
                raise AuthError("the pump did not prove it holds the key: it may be an impostor; nothing was sent")
            self.channel = security.SecureChannel.derive(entry.key, nonce, hello["pump_nonce"], role_code,
                                                         pump_side=False)
            return entry
        raise LinkError(f"could not open a session with the pump on {self.link.url}: {last}")

    def interrogate(self) -> dict[str, Any]:
        return self.read(self._protocol.Command.INTERROGATE)

    def read_program(self) -> dict[str, Any]:
        return self.read(self._protocol.Command.READ_PROGRAM)

    def read_log(self, first_index: int = 0, max_count: int = 28) -> dict[str, Any]:
        return self.read(
            self._protocol.Command.READ_LOG, {"first_index": first_index, "max_count": max_count}
        )

    def read_whole_log(self, since_index: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """Every event from since_index (or the oldest still held) to the end, paged."""
        from protocol.messages import MAX_LOG_PAGE

        events: list[dict[str, Any]] = []
        index = since_index
        oldest = None
        while True:
            page = self.read_log(index, MAX_LOG_PAGE)
            if oldest is None:
                oldest = page["oldest_index"]
            batch = page["events"]
            for event in batch:
                if event["index"] < index:
                    raise PumpProtocolError(
                        f"event log page out of order: got event {event['index']} when asking from {index}"
                    )
            events.extend(batch)
            if not batch:
                break
            index = batch[-1]["index"] + 1
            if index >= page["event_count"]:
                break
        return oldest, events

    # --- one exchange -----------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _exchange(self, command, body: dict | None) -> dict[str, Any]:
        try:
            reply = self._exchange_once(command, body)
        except Exception as exc:
            self._record(command, body, None, getattr(exc, "kind", type(exc).__name__))
            raise
        self._record(command, body, reply, "ok")
        return reply

    def _record(self, command, body, reply, outcome) -> None:
        if self.on_exchange is not None:
            self.on_exchange(command, body or {}, reply, outcome)

    def _exchange_once(self, command, body: dict | None) -> dict[str, Any]:
        p = self._protocol
        seq = self._next_seq()
        try:
            if self.channel is not None:
                payload = p.build_payload(command, body or {})
                frame = self.channel.seal(int(command), payload, seq=seq, response=False)
            else:
                frame = p.encode(command, body or {}, seq=seq)
        except p.ProtocolError as exc:
            raise PumpProtocolError(f"cannot build {command.name}: {exc}") from None
        if self.verbose >= 2:  # the hex dump is not built for nobody
            self._diag(f"-> {command.name} seq={seq} {frame.hex()}", level=2)
        self.link.write(frame)
        deadline = time.monotonic() + self.timeout
        corrupt: list[str] = []
        while True:
            data = self.link.read(deadline)
            if not data:
                if time.monotonic() >= deadline:
                    break
                continue
            for item in self._decoder.feed(data):
                if isinstance(item, p.FrameError):
                    self.corrupt_frames += 1
                    corrupt.append(str(item))
                    self._diag(f"<- dropped: {item}")
                    continue
                if self.verbose >= 2:
                    self._diag(f"<- seq={item.seq} cmd=0x{item.command:02x} {item.raw.hex()}", level=2)
                if not item.is_response or item.seq != seq:
                    self._diag(f"<- ignored a frame for seq {item.seq} (waiting for {seq})")
                    continue
                item = self._unseal(item, corrupt)
                if item is None:
                    continue
                try:
                    message = p.decode(item)
                except p.ProtocolError as exc:
                    raise PumpProtocolError(f"invalid reply to {command.name}: {exc}") from None
                return self._check_reply(command, message)
        # nothing matched in time: forget any half frame so the next try starts clean
        self._decoder.reset()
        if corrupt:
            raise _Corrupt(f"{len(corrupt)} corrupted frame(s): {corrupt[-1]}")
        raise NoReply(f"no reply within {self.timeout:g} s")

    def _unseal(self, frame, corrupt: list[str]):
        """Inside a session only sealed replies count (and clear ERRORs: a pump that
        lost the session can only say so in clear). Anything else is dropped."""
        from protocol.security import AuthError as TagError

        if self.channel is None:
            if frame.auth is not None:
                corrupt.append("a sealed frame outside a session")
                return None
            return frame
        if frame.auth is None:
            if frame.command == self._protocol.Command.ERROR:
                return frame
            corrupt.append("an unsealed reply inside a session")
            return None
        try:
            return self.channel.open(frame)
        except TagError as exc:
            self.corrupt_frames += 1
            corrupt.append(f"reply failed authentication: {exc}")
            self._diag(f"<- dropped: {exc}")
            return None

    def _check_reply(self, command, message) -> dict[str, Any]:
        p = self._protocol
        if message.command == p.Command.ERROR:
            reason = message.body["reason"]
            detail = message.body["detail"]
            if reason == p.ErrorReason.NOT_AUTHENTICATED and self.channel is not None:
                raise SessionLost(f"the pump has no session for {command.name} (it may have reset, or another "
                                  f"programmer opened one)" + (f": {detail}" if detail else ""))
            if reason in (p.ErrorReason.NOT_AUTHENTICATED, p.ErrorReason.AUTH_FAILED, p.ErrorReason.RATE_LIMITED):
                raise AuthError(f"the pump refused {command.name}: {reason.name.lower()}"
                                + (f" ({detail})" if detail else ""))
            raise DeviceRejected(
                f"the pump refused {command.name}: {reason.name.lower()}"
                + (f" ({detail})" if detail else ""),
                reason=reason.name,
            )
        if message.command != command:
            raise PumpProtocolError(
                f"the pump answered {command.name} with {message.command.name}"
            )
        return message.body

    def _diag(self, text: str, level: int = 1) -> None:
        if self.verbose >= level:
            print(f"ithcli: {text}", file=sys.stderr)


class NoKey(AuthError):
    """The key store has no key for this pump and role."""


class _Corrupt(Exception):
    """Only corrupted frames arrived before the deadline (worth asking again)."""

    kind = "corrupt"
