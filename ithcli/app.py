"""The application object in ctx.obj: settings, the lazily opened pump, output mode.

Diagnostics go through `logging`, one logger per module under "ithcli" (issue 17). The
command line shows them on stderr (cli.py, from -v); a library user sees nothing unless
they configure logging: the "ithcli" logger has a NullHandler, so Python's last-resort
handler never prints ithcli's warnings on its own.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: each is imported where it is first used (ithcli --help stays light)
    from protocol import Command
    from protocol.bodies import Body, Status

    from .audit import AuditLog
    from .client import PumpClient
    from .druglib import DrugLibrary
    from .keystore import KeyStore
    from .link import Link

log = logging.getLogger(__name__)
logging.getLogger("ithcli").addHandler(logging.NullHandler())

_WRITE_COMMANDS = {"PREPARE_PROGRAM", "PREPARE_REFILL", "PREPARE_BOLUS", "PREPARE_MRI_ENTER",
                   "PREPARE_MRI_EXIT", "COMMIT"}


@dataclass
class App:
    port: str | None
    timeout: float
    json: bool
    verbose: int
    drug_library_path: str | None = None
    operator: str | None = None
    audit_path: str | None = None
    state_dir: str | None = None
    key_store_dir: str | None = None
    serial: str | None = None  # the pump's, from the key that opened the session
    role: str | None = None  # the session's role: "reader" or "clinician"
    last_raw_status: Status | None = None  # the last INTERROGATE reply, as decoded
    #: this computer's clock (s since the epoch, UTC) when that reply arrived
    last_read_at: int | None = None
    #: the pump clock's skew measured from that reply: its pump_time - last_read_at (s; + ahead).
    #: Every date ithcli shows or compares is moved by it (calendar.to_calendar)
    clock_skew_s: int | None = None
    _link: Link | None = field(default=None, repr=False)
    _client: PumpClient | None = field(default=None, repr=False)
    _library: DrugLibrary | None = field(default=None, repr=False)
    _audit: AuditLog | None = field(default=None, repr=False)
    #: a KeyStore shared by many Apps (batch): the store is read once, not per pump
    shared_keystore: KeyStore | None = field(default=None, repr=False)

    # --- the pump ---------------------------------------------------------
    def client(self, *, write: bool = False) -> PumpClient:
        """The pump, over an authenticated session with the least privilege that will do.

        Reads use the reader key when the store has one (else the clinician key);
        writes need the clinician key. The session is opened once and upgraded when
        a write follows a read.
        """
        client = self._client
        if client is None:
            from .client import PumpClient
            from .link import open_link

            log.info("opening %s", self.port)
            link = self._link = open_link(self.port, verbose=self.verbose)
            # a pty keeps replies nobody read: drop them so they cannot be mistaken for ours
            link.discard_input()
            client = self._client = PumpClient(link, timeout=self.timeout)
            client.on_exchange = self._audit_exchange
            # a pump that reset lost our session with its RAM: reads open a new one (same role)
            client.reopen = lambda: self._open_session(
                client, (self.role,),  # type: ignore[arg-type]  # only a read in a session calls it: role is set
            )
        if self.role is None or (write and self.role != "clinician"):
            self._open_session(client, ("clinician",) if write else ("reader", "clinician"))
        return client

    def _open_session(self, client: PumpClient, roles: tuple[str, ...]) -> None:
        from .client import NoKey
        from .errors import AuthError

        store = self.keystore()
        reasons = []
        for role in roles:
            try:
                entry = client.open_session(store, role)
            except NoKey as exc:
                reasons.append(str(exc))
                continue
            self.role, self.serial = role, entry.serial
            log.info("%s session open with %s on %s", role, entry.serial, client.link.url)
            return
        need = "a clinician key (writes need one)" if roles == ("clinician",) else "a reader or clinician key"
        raise AuthError(
            f"no session with the pump on {self.port}: {'; '.join(reasons)}. ithcli needs {need} for it in "
            f"{getattr(store, 'dir', 'the key store')}: pair it with 'ithcli keys pair --from FILE'"
        )

    def keystore(self) -> KeyStore:
        from .keystore import KeyStore, MemoryKeyStore

        if self._link is not None and self._link.emulator_keys is not None:
            serial, keys = self._link.emulator_keys
            return MemoryKeyStore(serial, keys)
        if self.shared_keystore is not None:
            return self.shared_keystore
        return KeyStore(self.key_store_dir)

    @property
    def emulated(self) -> bool:
        return bool(self._link is not None and self._link.emulated)

    @property
    def link_url(self) -> str | None:
        return self._link.url if self._link is not None else None

    # --- local state: audit log and unconfirmed writes ------------------------
    def state_path(self):
        from pathlib import Path

        from .state import default_state_dir

        return Path(self.state_dir) if self.state_dir else default_state_dir()

    def audit(self) -> AuditLog:
        """The audit log (one object per App: every exchange appends to it)."""
        if self._audit is None:
            from .audit import AuditLog

            self._audit = AuditLog(self.audit_path or self.state_path() / "audit.jsonl")
        return self._audit

    def pending(self):
        from .state import PendingWrites

        return PendingWrites(self.state_path())

    def record(self, event: str, *, durable: bool = True, **fields) -> None:
        """Append to the audit log with who, where and which pump."""
        self.audit().append({
            "event": event, "operator": self.operator, "port": self.port,
            "pump_serial": self.serial, **fields,
        }, durable=durable)

    def _audit_exchange(self, command: Command, request: Body | None, reply: Body | None, outcome: str) -> None:
        """One exchange in the audit log: the one place where bodies become plain data."""
        from protocol.bodies import as_dict

        if command.name in ("HELLO", "AUTH"):  # nonces and proofs: no use in an audit trail
            session = self._client.session if self._client is not None else None
            fields: dict[str, Any] = {"role": session.role if session is not None else None}
            response: dict[str, Any] | None = {} if outcome == "ok" else None
        else:
            fields = as_dict(request) if request is not None else {}
            response = as_dict(reply) if reply is not None else None
        if response is not None and command.name == "READ_LOG":
            response = {k: v for k, v in response.items() if k != "events"} | {"events": len(response["events"])}
        # what changes the pump is on disk before anything else happens; reads ride along
        self.record("exchange", command=command.name, request=fields, response=response, outcome=outcome,
                    txid=fields.get("txid"), durable=command.name in _WRITE_COMMANDS)

    def resolve_pending(self) -> dict[str, Any] | None:
        """Any read first settles an unconfirmed write to this pump, by asking the pump."""
        from .writes import resolve_pending

        client = self.client()
        return resolve_pending(self, client, self.serial)  # type: ignore[arg-type]  # client() set serial

    def interrogate(self, *, resolve: bool = True) -> dict:
        """Read the full status and describe it (units, projections, read time)."""
        from .status import describe

        client = self.client()
        if resolve:
            self.resolve_pending()
        raw = self.last_raw_status = client.interrogate()
        # the moment the reply arrived, before anything else takes time: the skew is measured here
        received_at = int(time.time())
        if raw.serial_number != self.serial:
            from .errors import AuthError

            raise AuthError(f"the pump reports serial {raw.serial_number} but the key that opened the "
                            f"session is paired to {self.serial}: check the key store")
        from .calendar import measure_skew

        self.last_read_at = received_at
        self.clock_skew_s = measure_skew(raw.pump_time, received_at)
        return describe(raw, self.library(), read_at=received_at, port=self.port or "", emulated=self.emulated,
                        skew_s=self.clock_skew_s)

    def library(self) -> DrugLibrary:
        if self._library is None:
            from . import druglib

            self._library = druglib.load(self.drug_library_path)
        return self._library

    def close(self) -> None:
        if self._link is not None:
            link, self._link, self._client = self._link, None, None
            link.close()

    # --- output -----------------------------------------------------------
    def diag(self, text: str, level: int = 1) -> None:
        """A diagnostic for `-v` * level (0: shown without -v, a warning), logged on the calling
        module's "ithcli" logger at log_level(level). Logging decides who sees it: the command
        line shows what `self.verbose` asks for (cli.py configures it from the same count)."""
        caller = sys._getframe(1).f_globals.get("__name__", "")
        logger = logging.getLogger(caller) if caller.startswith("ithcli.") else log
        logger.log(log_level(level), "%s", text, stacklevel=2)

    def emit(self, obj: dict, render) -> None:
        """JSON on stdout with --json; otherwise call render(obj) for people.

        A result carrying a pump clock past the skew threshold ("pump_clock": {"warning"})
        also says so on stderr with --json: the person running a script sees it too (people
        see it in render's output)."""
        if self.json:
            from .output import print_json

            clock = obj.get("pump_clock") if isinstance(obj, dict) else None
            if isinstance(clock, dict) and clock.get("warning"):
                log.warning("warning: %s", clock["warning"])
            print_json(obj)
        else:
            render(obj)


def log_level(level: int) -> int:
    """The logging level of a diagnostic shown from `-v` * level: 0 WARNING (shown without -v),
    1 INFO (-v), 2 DEBUG (-vv), each v more one below (never NOTSET). The command line's
    threshold is log_level(its -v count), so a diagnostic shows exactly when count >= level."""
    if level <= 0:
        return logging.WARNING
    if level == 1:
        return logging.INFO
    return max(1, logging.DEBUG - (level - 2))
