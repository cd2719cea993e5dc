"""The command line's objects: its settings, the local records, one session per pump, and the App.

    Settings      the global options (port, timeout, --json, operator, paths): plain values
    Records       this computer's records: the audit log, the journal of unconfirmed
                  writes and the per-pump notes, under one state directory
    PumpSession   one pump over one link: the client, the session's role, the pump's
                  serial, the last status read and its clock skew; the audit trail of
                  what is said to it (who, where, which pump)
    App           the CLI's application object in ctx.obj: it holds the Settings and
                  builds the Records and the PumpSession a command asks for

Below the commands nothing reaches for an App: operations, writes, mri and the API take
the PumpSession (or the Records) they use as a parameter.

Diagnostics go through `logging`, one logger per module under "ithcli" (issue 17). The
command line shows them on stderr (cli.py, from -v); a library user sees nothing unless
they configure logging: the "ithcli" logger has a NullHandler, so Python's last-resort
handler never prints ithcli's warnings on its own.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

# imported where first used (this module is on every command's start-up path: --help stays light)
if TYPE_CHECKING:
    from protocol import Command
    from protocol.bodies import Body, Status

    from .audit import AuditLog
    from .client import PumpClient
    from .clinic_policy import Clinician, ClinicPolicy
    from .credentials import Credential
    from .druglib import DrugLibrary
    from .errors import WrongPump
    from .keystore import KeyStore
    from .link import Link
    from .read_folding import ReadFolder
    from .state import PendingWrites, PumpNotes

log = logging.getLogger(__name__)
logging.getLogger("ithcli").addHandler(logging.NullHandler())

_WRITE_COMMANDS = {"PREPARE_PROGRAM", "PREPARE_REFILL", "PREPARE_BOLUS", "PREPARE_MRI_ENTER",
                   "PREPARE_MRI_EXIT", "COMMIT"}


@dataclass(frozen=True)
class Settings:
    """The command line's global options (the API's open_pump arguments): values, no I/O."""

    port: str | None
    timeout: float = 2.0
    json: bool = False
    verbose: int = 0
    drug_library_path: str | None = None
    operator: str | None = None
    audit_path: str | None = None
    state_dir: str | None = None
    key_store_dir: str | None = None
    #: the clinic policy (its clinicians, which writes need a second verifier) and the operator's
    #: own credential (doublecheck.py); None: not configured
    clinic_policy_path: str | None = None
    credential_path: str | None = None
    #: asks for a passphrase-protected credential's passphrase (the CLI asks at the terminal)
    ask_passphrase: Callable[[str], bytes] | None = None
    #: the serial number of the pump meant (--expect-serial): another answering is refused
    expect_serial: str | None = None
    #: the time zone for times shown to people (--tz; None: this computer's local zone)
    tz: str | None = None


class Records:
    """This computer's records: the audit log, the journal of unconfirmed writes and the notes
    kept per pump, all under one state directory (the audit log may live elsewhere)."""

    def __init__(self, state_dir: Path, audit_path: Path | None = None):
        self.state_dir = state_dir
        self.audit_path = audit_path or state_dir / "audit.jsonl"
        self._audit: AuditLog | None = None
        self._pending: PendingWrites | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Records:
        from .state import default_state_dir

        state_dir = Path(settings.state_dir) if settings.state_dir else default_state_dir()
        return cls(state_dir, Path(settings.audit_path) if settings.audit_path else None)

    @property
    def audit(self) -> AuditLog:
        """The audit log (one object: every exchange appends to it)."""
        if self._audit is None:
            from .audit import AuditLog

            self._audit = AuditLog(self.audit_path)
        return self._audit

    @property
    def pending(self) -> PendingWrites:
        """The journal of writes whose outcome is not yet known, one entry per pump (one object:
        it holds only where the files are; each read goes to the disk)."""
        if self._pending is None:
            from .state import PendingWrites

            self._pending = PendingWrites(self.state_dir)
        return self._pending

    @property
    def notes(self) -> PumpNotes:
        from .state import PumpNotes

        return PumpNotes(self.state_dir)


class PumpSession:
    """One pump over one link, opened on first use with the least privilege that will do.

    Reads use the reader key when the store has one (else the clinician key); writes need
    the clinician key. Every exchange is audited in `records`, with the operator, the port
    and the pump's serial. `library` and `keystore` may be shared by many sessions (batch)."""

    def __init__(self, settings: Settings, records: Records, *, library: DrugLibrary | None = None,
                 keystore: KeyStore | None = None):
        self.settings = settings
        self.records = records
        self.serial: str | None = None  # the pump's, from the key that opened the session
        self.role: str | None = None  # the session's role: "reader" or "clinician"
        self.last_status: Status | None = None  # the last INTERROGATE reply, as decoded
        #: this computer's clock (s since the epoch, UTC) when that reply arrived
        self.last_read_at: int | None = None
        #: the pump clock's skew measured from that reply: its pump_time - last_read_at (s; + ahead).
        #: Every date ithcli shows or compares is moved by it (calendar.to_calendar)
        self.clock_skew_s: int | None = None
        self._library = library
        self._keystore = keystore
        self._link: Link | None = None
        self._client: PumpClient | None = None
        self._closed_counts = (0, 0)  # corrupt frames and retries of the clients closed before
        self._links_opened = 0  # a session that reconnects (a monitor) says a silent port's wait once
        self._policy: ClinicPolicy | None = None
        #: the operator's credential, once loaded (the API may hand one in)
        self.credential: Credential | None = None
        #: monitor's: alike readings folded into the next one recorded (read_folding.py); None: every one
        self.read_folding: ReadFolder | None = None

    @property
    def port(self) -> str | None:
        return self.settings.port

    @property
    def operator(self) -> str | None:
        return self.settings.operator

    @property
    def serial_number(self) -> str:
        """The pump's serial number, once a session is open (client() opens one)."""
        if self.serial is None:
            raise RuntimeError("no session with the pump is open yet: client() opens one")
        return self.serial

    @property
    def clinic_policy(self) -> ClinicPolicy | None:
        """The clinic policy (--clinic-policy), read once; None when none is configured."""
        if self._policy is None and self.settings.clinic_policy_path:
            from .clinic_policy import load_policy

            self._policy = load_policy(self.settings.clinic_policy_path)
        return self._policy

    def operator_clinician(self, why: str) -> Clinician:
        """The operator as the clinic policy knows them, proven by their credential (--credential)."""
        from .doublecheck import identify
        from .errors import UsageError

        policy = self.clinic_policy
        if policy is None:
            raise UsageError(f"{why} needs the clinic policy (--clinic-policy FILE, env ITHCLI_CLINIC_POLICY)")
        if self.credential is None:
            path = self.settings.credential_path
            if not path:
                raise UsageError(f"{why} needs the operator's own credential (--credential FILE, env "
                                 "ITHCLI_CREDENTIAL; make one with `ithcli credential new`)")
            from .credentials import read_credential

            self.credential = read_credential(path, self.settings.ask_passphrase)
        return identify(policy, self.credential, "the operator")

    @property
    def library(self) -> DrugLibrary:
        if self._library is None:
            from . import druglib

            self._library = druglib.load(self.settings.drug_library_path)
        return self._library

    @property
    def pending(self) -> PendingWrites:
        return self.records.pending

    @property
    def emulated(self) -> bool:
        return bool(self._link is not None and self._link.emulated)

    # --- the link and the session ----------------------------------------------------
    def client(self, *, write: bool = False) -> PumpClient:
        """The pump, over an authenticated session: opened once, upgraded when a write follows a read."""
        client = self._client
        if client is None:
            client = self._client = self._connect()
        if self.role is None or (write and self.role != "clinician"):
            self._open_session(client, ("clinician",) if write else ("reader", "clinician"))
        return client

    def _connect(self) -> PumpClient:
        from .client import PumpClient
        from .link import open_link

        log.info("opening %s", self.port)
        link = self._link = open_link(self.port, verbose=self.settings.verbose)
        # a pty keeps replies nobody read: drop them so they cannot be mistaken for ours
        link.discard_input()
        client = PumpClient(link, timeout=self.settings.timeout)
        client.tell_waiting = self._links_opened == 0
        self._links_opened += 1
        client.on_exchange = self.audit_exchange
        # a pump that reset lost our session with its RAM: reads open a new one (same role)
        client.reopen = lambda: self._open_session(client, (self.role,) if self.role else ("reader", "clinician"))
        return client

    @property
    def expected_serial(self) -> str | None:
        """The pump this session may talk to: the one it first opened with (a session never goes on
        with another pump: a reconnect, a new session after a reset or for a write is checked), else
        the one --expect-serial names; None: any pump whose key the store holds."""
        return self.serial if self.serial is not None else (self.settings.expect_serial or None)

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
            # the key names the pump, proven by the handshake: another than the one meant is
            # refused before any request goes to it
            self._check_pump(client, entry.serial)
            self.role, self.serial = role, entry.serial
            log.info("%s session open with %s on %s", role, entry.serial, client.link.url)
            return
        expected = self.expected_serial
        if expected is not None and any(e.serial == expected and e.role in roles for e in store.entries()):
            # the store holds a key of the expected pump for a role asked for, and the pump on the
            # port announced another: it is not that pump as the store knows it
            raise self._wrong_pump(expected, None, f"it announces no key of {expected}'s in the key store "
                                                   f"({'; '.join(reasons)}): another pump, or {expected} given "
                                                   "new keys")
        need = "a clinician key (writes need one)" if roles == ("clinician",) else "a reader or clinician key"
        raise AuthError(
            f"no session with the pump on {self.port}: {'; '.join(reasons)}. ithcli needs {need} for it in "
            f"{getattr(store, 'dir', 'the key store')}: pair it with 'ithcli keys pair --from FILE'"
        )

    def _check_pump(self, client: PumpClient, serial: str) -> None:
        expected = self.expected_serial
        if expected is not None and serial != expected:
            client.end_session()
            raise self._wrong_pump(expected, serial)

    def _wrong_pump(self, expected: str, found: str | None, why: str = "") -> WrongPump:
        """The refusal of another pump than `expected` (found: its serial; None when the store holds
        no key for it, so its serial is unknown), in the words of who pinned the pump."""
        from .errors import WrongPump

        port = self._link.url if self._link is not None else self.port or ""  # emulator: its pty
        if self.serial is None:  # --expect-serial, at the first session
            text = (f"pump {found} answers on {port}, not {expected} (--expect-serial)" if found else
                    f"the pump on {port} is not {expected} (--expect-serial): {why}")
        else:
            text = (f"a different pump ({found}) now answers on {port}; it was {expected}" if found else
                    f"a different pump now answers on {port}; it was {expected}: {why}")
        details: dict[str, Any] = {"expected_serial": expected, "serial_number": found, "port": port}
        self.record("wrong-pump", durable=False, **details)  # who met which pump where: the trail says it too
        return WrongPump(f"{text}. Nothing was sent to it", details=details)

    def keystore(self) -> KeyStore:
        from .keystore import KeyStore, MemoryKeyStore

        if self._link is not None and self._link.emulator_keys is not None:
            serial, keys = self._link.emulator_keys
            return MemoryKeyStore(serial, keys)
        if self._keystore is not None:
            return self._keystore
        return KeyStore(self.settings.key_store_dir)

    def link_counts(self) -> tuple[int, int]:
        """Corrupt frames dropped and reads asked again, over every link this session opened."""
        corrupt, retries = self._closed_counts
        if self._client is not None:
            corrupt, retries = corrupt + self._client.corrupt_frames, retries + self._client.retries
        return corrupt, retries

    def drop(self) -> None:
        """After a failure: a new session on the next use, and a new link, except to the private
        emulator (closing it would stop it)."""
        from .link import EMULATOR_PORT

        if self.port != EMULATOR_PORT:
            self.close()
        elif self._client is not None:
            self._client.end_session()
        self.role = None

    def close(self) -> None:
        if self._link is not None:
            self._closed_counts = self.link_counts()
            link, self._link, self._client = self._link, None, None
            link.close()

    # --- reads ---------------------------------------------------------------------
    def resolve_pending(self) -> dict[str, Any] | None:
        """Any read first settles an unconfirmed write to this pump, by asking the pump."""
        from .writes import resolve_pending

        client = self.client()
        return resolve_pending(self, client, self.serial_number)

    def read(self, *, settle: bool = True) -> tuple[Status, dict[str, Any]]:
        """INTERROGATE (after settling an unconfirmed write, unless told not to): the reply as
        decoded and described (units, projections, read time); the clock skew measured from it."""
        from .status import describe

        raw = self.read_raw(settle=settle)
        assert self.last_read_at is not None  # read_raw set it, with the skew, as the reply came
        return raw, describe(raw, self.library, read_at=self.last_read_at, port=self.port or "",
                             emulated=self.emulated, skew_s=self.clock_skew_s)

    def read_raw(self, *, settle: bool = True) -> Status:
        """read() without describing the reply (batch's preflight needs the status only: describing
        it was a fifth of a pump's work there); the same checks, read time and clock skew."""
        from .calendar import measure_skew
        from .errors import AuthError

        client = self.client()
        if settle:
            self.resolve_pending()
        raw = self.last_status = client.interrogate()
        # the moment the reply arrived, before anything else takes time: the skew is measured here
        received_at = int(time.time())
        if raw.serial_number != self.serial:
            raise AuthError(f"the pump reports serial {raw.serial_number} but the key that opened the "
                            f"session is paired to {self.serial}: check the key store")
        self.last_read_at = received_at
        self.clock_skew_s = measure_skew(raw.pump_time, received_at)
        return raw

    def interrogate(self, *, resolve: bool = True) -> dict[str, Any]:
        """The full status, described (what `ithcli interrogate --json` shows)."""
        return self.read(settle=resolve)[1]

    # --- the audit trail -----------------------------------------------------------
    def record(self, event: str, *, durable: bool = True, plain: bool = False, **fields: Any) -> None:
        """Append to the audit log with who, where and which pump (plain: fields are JSON values already)."""
        self.records.audit.append({
            "event": event, "operator": self.operator, "port": self.port,
            "pump_serial": self.serial, **fields,
        }, durable=durable, plain=plain)

    def audit_exchange(self, command: Command, request: Body | None, reply: Body | None, outcome: str) -> None:
        """One exchange in the audit log: the one place where bodies become plain data."""
        from .output import jsonable

        name = command.name  # an enum's name is a Python property: asked once, not at every test below
        if name in ("HELLO", "AUTH"):  # nonces and proofs: no use in an audit trail
            session = self._client.session if self._client is not None else None
            role = session.role if session is not None else None
            fields: dict[str, Any] = {"role": role.name if role is not None else None}  # by name, as jsonable wrote it
            response: dict[str, Any] | None = {} if outcome == "ok" else None
        else:
            fields = jsonable(request) if request is not None else {}
            response = jsonable(reply) if reply is not None else None
        if response is not None and name == "READ_LOG":
            response = {k: v for k, v in response.items() if k != "events"} | {"events": len(response["events"])}
        extra: dict[str, Any] = {}
        if self.read_folding is not None and name == "INTERROGATE" and outcome == "ok" and response:
            folded = self.read_folding.offer(fields, response)  # monitor: changes, and one every so often
            if folded is None:
                return
            extra = folded
        # what changes the pump is on disk before anything else happens; reads ride along
        self.record("exchange", command=name, request=fields, response=response, outcome=outcome,
                    txid=fields.get("txid"), durable=name in _WRITE_COMMANDS, plain=True, **extra)

    def flush_folded_reads(self) -> None:
        """The monitor stops: its newest folded reading is recorded (with the count folded before it)."""
        last = self.read_folding.flush() if self.read_folding is not None else None
        if last is not None:
            request, response, extra = last
            self.record("exchange", command="INTERROGATE", request=request, response=response, outcome="ok",
                        txid=None, durable=True, **extra)


class App:
    """The command line's application object (ctx.obj): its settings, and the records and the
    pump session it builds on first use for the command that runs."""

    def __init__(self, settings: Settings):
        from .localtime import check

        check(settings.tz)  # a --tz naming no zone is a usage error (exit 2), whatever the command
        self.settings = settings
        self._records: Records | None = None
        self._session: PumpSession | None = None

    @property
    def port(self) -> str | None:
        return self.settings.port

    @property
    def json(self) -> bool:
        return self.settings.json

    @property
    def records(self) -> Records:
        if self._records is None:
            self._records = Records.from_settings(self.settings)
        return self._records

    def session(self) -> PumpSession:
        """The session with the pump on --port (the link opens when it is first used)."""
        if self._session is None:
            self._session = PumpSession(self.settings, self.records)
        return self._session

    def session_for(self, port: str, *, library: DrugLibrary, keystore: KeyStore) -> PumpSession:
        """A session with another pump under the same settings (batch: one per target), sharing
        the drug library and the key store read once for all."""
        return PumpSession(replace(self.settings, port=port), self.records, library=library, keystore=keystore)

    def record(self, event: str, **fields: Any) -> None:
        """An audit entry for a command that needs no pump (keys): who and where."""
        self.session().record(event, **fields)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    # --- output -----------------------------------------------------------
    def diag(self, text: str, level: int = 1) -> None:
        """A diagnostic for `-v` * level (0: shown without -v, a warning), logged on the calling
        module's "ithcli" logger at log_level(level). Logging decides who sees it: the command
        line shows what --verbose asks for (cli.py configures it from the same count)."""
        caller = sys._getframe(1).f_globals.get("__name__", "")
        logger = logging.getLogger(caller) if caller.startswith("ithcli.") else log
        logger.log(log_level(level), "%s", text, stacklevel=2)

    def emit(self, obj: dict[str, Any], render: Callable[[dict[str, Any]], None]) -> None:
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
