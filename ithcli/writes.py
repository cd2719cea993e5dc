"""Two-phase writes with three outcomes: verified, failed (nothing applied), unconfirmed.

    preflight   refuse while an earlier write to this pump is unconfirmed
    PREPARE     the pump validates and echoes what it will deliver; the echo must
                equal what we meant, or nothing is committed
    journal     the pending write is recorded on disk before COMMIT is sent
    COMMIT      sent once, never retried; a lost reply makes the write unconfirmed
    read-back   status and program read again and compared field by field

An unconfirmed write is settled only by reading: the pump's status carries the
last applied txid and its log a TX_APPLIED event for every applied write.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocol import bodies
from protocol.bodies import as_dict

from . import steps
from .errors import DeviceRejected, IthcliError, LinkError, SessionLost, Unconfirmed, VerifyFailed
from .steps import Read, Steps, WriteOnce, drive
from .write_kinds import WriteKind

if TYPE_CHECKING:
    from .app import PumpSession
    from .client import PumpClient


def new_txid() -> int:
    return secrets.randbelow(0xFFFF_FFFF) + 1


def resolve_pending(session: PumpSession, client: PumpClient, serial: str, *, announce: bool = True) -> dict | None:
    """If this pump has an unconfirmed write, learn from the pump whether it landed."""
    pending = session.pending
    record = pending.get(serial)
    if record is None:
        return None
    applied = tx_applied(client, record["txid"], record.get("log_index", 0))
    result = {**record, "applied": applied}
    session.record("reconciled", txid=record["txid"], kind=record.get("kind"), applied=applied)
    pending.clear(serial)
    verdict = "WAS applied" if applied else "was NOT applied"
    if announce:
        logging.getLogger(__name__).warning(
            "the unconfirmed %s txid %s sent at %s %s (learnt from the pump)",
            record.get('kind', 'write'), record['txid'], record.get('sent_at'), verdict)
    return result


def tx_applied(client, txid: int, log_index: int) -> bool:
    """Whether the pump applied txid: its last applied txid, or a TX_APPLIED event since log_index."""
    return drive(client, tx_applied_steps(txid, log_index))


def tx_applied_steps(txid: int, log_index: int) -> Steps[bool]:
    """tx_applied as steps (ithcli/steps.py): for a driver of many pumps."""
    import protocol

    status = yield from steps.interrogate()
    if status.last_txid == txid:
        return True
    _, events = yield from steps.read_whole_log(log_index)
    return any(e.type == protocol.EventType.TX_APPLIED and e.arg1 == txid for e in events)


def preflight(session: PumpSession, client: PumpClient, serial: str) -> None:
    """Writes stop while an earlier write's outcome is unknown; reading settles it."""
    record = session.pending.get(serial)
    if record is None:
        return
    learnt = resolve_pending(session, client, serial, announce=False)  # the refusal says it
    if learnt is None:  # another ithcli settled it between the two reads of the journal
        found = "another ithcli has settled it since"
    else:
        found = "the pump now shows it " + ("was applied" if learnt["applied"] else "was not applied")
    raise Unconfirmed(
        f"an earlier {record.get('kind', 'write')} (txid {record['txid']}, {record.get('sent_at')}) "
        f"was unconfirmed; {found}. Nothing new was sent: "
        "check the pump's state and run the command again if it is still needed",
        details={"reconciled": learnt},
    )


#: (txid, based_on_txid) -> the PREPARE_* body: a functools.partial of its class with every
#: other field given, so the request is whole only once its txid is drawn
Prepare = Callable[..., bodies.Request[bodies.Prepared]]


@dataclass(frozen=True)
class Expect:
    """What the echo (bodies.Prepared) must say besides its txid and kind; None: not compared."""

    program: bodies.Program
    reservoir_ul: int | None = None
    bolus_dose_ng: int | None = None
    bolus_duration_s: int | None = None
    bolus_volume_nl: int | None = None
    mri_auto_exit_s: int | None = None
    bolus_purpose: Any = None  # protocol BolusPurpose (a priming or bridge bolus: ithcli/catheter_ops.py)
    catheter: dict[str, Any] | None = None  # the record once committed, plain data (a field not given: not compared)
    ptm: dict[str, Any] | None = None  # the patient-bolus limits once committed, plain data (ithcli/ptm.py)
    patient: dict[str, Any] | None = None  # the patient record once committed, plain data (ithcli/patient.py)

    def fields(self, kind: Any) -> dict[str, Any]:
        """As plain data, in the echo's field order, the kind first: what _differences compares
        with the echo (as_dict) and what the audit log records."""
        given = {"kind": kind, "program": as_dict(self.program), "reservoir_ul": self.reservoir_ul,
                 "bolus_dose_ng": self.bolus_dose_ng, "bolus_duration_s": self.bolus_duration_s,
                 "bolus_volume_nl": self.bolus_volume_nl, "mri_auto_exit_s": self.mri_auto_exit_s,
                 "bolus_purpose": self.bolus_purpose,
                 "catheter": self.catheter, "ptm": self.ptm, "patient": self.patient}
        return {name: value for name, value in given.items() if value is not None}


@dataclass
class WriteRequest:
    kind: WriteKind  # what differs from kind to kind (ithcli/write_kinds.py)
    prepare: Prepare  # builds the PREPARE body once the txids are known
    expect: Expect
    describe: dict = field(default_factory=dict)  # before/after etc. for --json and errors

    @property
    def command(self) -> Any:
        return self.kind.command


@dataclass(frozen=True)
class Verified:
    """A write the pump applied and the read-back confirmed."""

    txid: int
    commit: str  # "applied" or "already_applied"
    applied_at: int
    echo: bodies.Prepared
    status: bodies.Status  # read back after COMMIT
    program: bodies.ReadProgramResponse


def _differences(expected: dict, actual: dict, prefix: str = "") -> list[str]:
    """Field by field, on plain data (bodies.as_dict): the texts name the fields as the wire does."""
    out = []
    for key, want in expected.items():
        got = actual.get(key)
        if isinstance(want, dict) and isinstance(got, dict):
            out += _differences(want, got, f"{prefix}{key}.")
        elif (isinstance(want, list) and isinstance(got, list) and len(want) == len(got) and want
              and isinstance(want[0], dict)):
            for i, (w, g) in enumerate(zip(want, got, strict=True)):
                out += _differences(w, g, f"{prefix}{key}[{i}].")
        elif want != got:
            out.append(f"{prefix}{key}: expected {_show(want)}, pump has {_show(got)}")
    return out


def _show(value) -> str:
    name = getattr(value, "name", None)
    return name if name else repr(value)


def execute(session: PumpSession, client: PumpClient, request: WriteRequest, *, log_index: int, based_on_txid: int,
            read_program: bodies.Program | None = None, dose_unit: str = "mg/day",
            on_echo: Callable[[bodies.Prepared], None] | None = None,
            on_commit_sent: Callable[[int], None] | None = None) -> Verified:
    """Run one write end to end; return the verified result or raise with the outcome.

    `based_on_txid` is the last_txid of the status the change was checked against: the
    pump refuses the PREPARE (CHANGED_SINCE_READ) if another write was applied since,
    so a change is never checked against one state and applied to another. `read_program`
    (the program read with it) lets that refusal say what changed."""
    flow = WriteFlow(session, client, request, log_index=log_index, based_on_txid=based_on_txid,
                     read_program=read_program, dose_unit=dose_unit)
    return drive(client, flow.steps(on_echo, on_commit_sent))


@dataclass
class WriteFlow:
    """One write's steps, in the order they must run (execute() runs them all):

        flow = WriteFlow(session, client, request, log_index=..., based_on_txid=...)
        echo = flow.prepare()                  # PREPARE; raises when nothing was applied
        committed = flow.commit()              # journal, then COMMIT sent once
        result = flow.read_back(echo, committed)   # read again and compared; the verified result

    Each step is also a sans-IO generator (prepare_steps, commit_steps, read_back_steps, and
    steps() for all three: ithcli/steps.py) that yields the request to send and is resumed
    with the reply or has the error thrown in; the methods above drive them over `client`,
    ithcli.runner.Runner drives many flows from one thread (`client` is then unused).
    """

    session: PumpSession  # the journal, the audit trail, the pump's serial, the port and operator
    client: PumpClient | None  # None when a Runner drives its steps (it sends for them)
    request: WriteRequest
    log_index: int  # the pump's event count before the write: reconcile reads TX_APPLIED from here
    based_on_txid: int
    read_program: bodies.Program | None = None
    dose_unit: str = "mg/day"
    serial: str = field(init=False)  # the pump the journal entry is kept for
    txid: int = field(init=False)
    details: dict = field(init=False)  # what every outcome's error details start with
    expect: dict = field(init=False)  # the Prepared fields the echo must equal, its kind included (plain data)

    def __post_init__(self) -> None:
        self.serial = self.session.serial_number
        self.txid = new_txid()
        self.details = {"txid": self.txid, "kind": self.request.kind.name.lower(), **self.request.describe}
        self.expect = self.request.expect.fields(self.request.kind.wire)

    def steps(self, on_echo: Callable[[bodies.Prepared], None] | None = None,
              on_commit_sent: Callable[[int], None] | None = None) -> Steps[Verified]:
        """The whole write as steps: PREPARE and the echo, on_echo(echo), journal and COMMIT,
        read-back; the verified result, or raise with the outcome (as execute())."""
        echo = yield from self.prepare_steps()
        if on_echo is not None:
            on_echo(echo)
        committed = yield from self.commit_steps(on_commit_sent)
        return (yield from self.read_back_steps(echo, committed))

    def prepare(self) -> bodies.Prepared:
        return drive(self._blocking(), self.prepare_steps())

    def commit(self, on_commit_sent: Callable[[int], None] | None = None) -> bodies.Committed:
        return drive(self._blocking(), self.commit_steps(on_commit_sent))

    def read_back(self, echo: bodies.Prepared, committed: bodies.Committed) -> Verified:
        return drive(self._blocking(), self.read_back_steps(echo, committed))

    def _blocking(self) -> PumpClient:
        if self.client is None:
            raise TypeError("this flow has no client: drive its steps() with a Runner")
        return self.client

    # --- PREPARE -------------------------------------------------------------------

    def prepare_steps(self) -> Steps[bodies.Prepared]:
        """Send PREPARE and compare the echo with what was meant; the echo, or raise (nothing applied)."""
        echo = yield from self._send_prepare()
        differences = _differences(self.expect, as_dict(echo))
        differences += self.request.kind.echo_problems(echo)  # what plain equality cannot say (a clock step)
        if echo.txid != self.txid:
            differences.append(f"txid: expected {self.txid}, pump echoed {echo.txid}")
        if differences:
            raise VerifyFailed(
                "the pump's echo differs from what was meant, so it was NOT committed: "
                + "; ".join(differences) + ". Nothing was applied",
                details={**self.details, "outcome": "not-committed", "differences": differences},
            )
        return echo

    def _send_prepare(self) -> Steps[bodies.Prepared]:
        # PREPARE changes nothing on the pump, so a lost reply means nothing was applied
        body = self.request.prepare(txid=self.txid, based_on_txid=self.based_on_txid)
        try:
            prepared: bodies.Prepared = yield WriteOnce(body)
            return prepared
        except LinkError as exc:
            raise LinkError(f"{exc}; nothing was applied (PREPARE only)") from None
        except SessionLost as exc:
            # an answer in clear decides nothing, but COMMIT was not sent, so nothing was applied
            raise SessionLost(f"{exc.message}. COMMIT was not sent, so nothing was applied: run the command again",
                              {**self.details, "outcome": "not-committed", "unauthenticated": True}) from None
        except DeviceRejected as exc:
            if exc.reason == "CHANGED_SINCE_READ":
                raise (yield from changed_since_read_steps(self.read_program, self.based_on_txid, self.details,
                                                           self.dose_unit)) from None
            raise DeviceRejected(f"{exc.message}; nothing was applied", exc.reason, self.details) from None

    # --- journal and COMMIT ----------------------------------------------------------

    def commit_steps(self, on_commit_sent: Callable[[int], None] | None = None) -> Steps[bodies.Committed]:
        """Journal the pending write, then send COMMIT once; the pump's reply, or raise.

        on_commit_sent(txid) runs after the audit record and before the bytes go out."""
        pending = self.session.pending
        pending.put(self.serial, {
            "txid": self.txid, "kind": self.request.kind.name,
            "sent_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "port": self.session.port, "operator": self.session.operator, "log_index": self.log_index,
        })
        try:
            self.session.record("commit-sent", txid=self.txid, kind=self.request.kind.name, expect=self.expect)
            if on_commit_sent is not None:
                on_commit_sent(self.txid)  # e.g. the batch journal's "sent" record, before the bytes go out
            committed: bodies.Committed = yield WriteOnce(bodies.CommitRequest(self.txid))
        except KeyboardInterrupt:
            raise self._commit_interrupted() from None
        except (LinkError, SessionLost) as exc:
            raise self._commit_unknown(exc) from None
        except DeviceRejected as exc:  # a sealed, authenticated refusal: nothing was applied
            pending.clear(self.serial)
            raise (yield from self._commit_refused(exc)) from None
        pending.clear(self.serial)
        return committed

    def _commit_interrupted(self) -> Unconfirmed:
        # Ctrl-C once COMMIT may be on the wire: the write may be applied, so it is not "interrupted"
        return Unconfirmed(
            f"interrupted after COMMIT of txid {self.txid} was sent: the pump may have applied it. It was NOT "
            "re-sent. Run 'ithcli reconcile' (or any read) to learn from the pump whether it was applied; "
            "further writes to this pump are refused until then",
            details={**self.details, "outcome": "unconfirmed", "verified": False, "interrupted": True},
        )

    def _commit_unknown(self, exc: LinkError | SessionLost) -> Unconfirmed:
        # SessionLost: an answer in clear (any ERROR reason: a pump that reset after PREPARE says
        # NOT_AUTHENTICATED, a forger says whatever it likes) proves nothing: only a read can tell
        return Unconfirmed(
            f"COMMIT of txid {self.txid} was sent but its outcome is unknown ({exc.message}). It was NOT re-sent. "
            "Run 'ithcli reconcile' (or any read) to learn from the pump whether it was applied; "
            "further writes to this pump are refused until then",
            details={**self.details, "outcome": "unconfirmed", "verified": False},
        )

    def _commit_refused(self, exc: DeviceRejected) -> Steps[DeviceRejected]:
        if exc.reason == "INVALID_STATE":
            # the pump holds one prepared write: a PREPARE from another programmer replaced ours
            return (yield from commit_displaced_steps(self.read_program, self.based_on_txid, self.details,
                                                      self.dose_unit, exc))
        return DeviceRejected(f"{exc.message}; nothing was applied", exc.reason,
                              {**self.details, "outcome": "rejected", "verified": False})

    # --- read-back -------------------------------------------------------------------

    def read_back_steps(self, echo: bodies.Prepared, committed: bodies.Committed) -> Steps[Verified]:
        """Read status and program again and compare them field by field; the verified result."""
        outcome = committed.outcome.name.lower()
        after_status, after_program = yield from self._read_pump(outcome)
        mismatches = _differences(self.expect["program"], as_dict(after_program.program), "program.")
        if after_status.last_txid != self.txid:
            mismatches.append(f"last_txid: expected {self.txid}, pump has {after_status.last_txid}")
        mismatches += self.request.kind.readback_problems(echo, committed, after_status)
        result = Verified(self.txid, outcome, committed.applied_at, echo, after_status, after_program)
        if mismatches:
            self.session.record("verify-failed", txid=self.txid, differences=mismatches)
            raise VerifyFailed(
                "read-back does not match what the pump echoed: " + "; ".join(mismatches)
                + ". The pump may be delivering something else: interrogate it and correct the program now",
                details={**self.details, "outcome": "mismatch", "verified": False, "differences": mismatches},
            )
        self.session.record("verified", txid=self.txid, kind=self.request.kind.name)
        return result

    def _read_pump(self, outcome: str) -> Steps[tuple[bodies.Status, bodies.ReadProgramResponse]]:
        """The status and program after COMMIT; a read that fails leaves the write unverified."""
        try:
            status: bodies.Status = yield Read(bodies.InterrogateRequest())
            program: bodies.ReadProgramResponse = yield Read(bodies.ReadProgramRequest())
            return status, program
        except KeyboardInterrupt:
            raise Unconfirmed(
                f"the pump acknowledged txid {self.txid} ({outcome}) but the read-back was interrupted: "
                "interrogate the pump to verify what it delivers",
                details={**self.details, "outcome": "unverified", "verified": False, "interrupted": True},
            ) from None
        except IthcliError as exc:  # a dead link, or a new session the read-back could not open
            raise Unconfirmed(
                f"the pump acknowledged txid {self.txid} ({outcome}) but the read-back failed ({exc}): "
                "interrogate the pump to verify what it delivers",
                details={**self.details, "outcome": "unverified", "verified": False},
            ) from None


def _program_changes(before: bodies.Program, now: bodies.Program, dose_unit: str) -> list[str]:
    """What differs between two programs, in the clinician's units."""
    from .output import fmt_quantity
    from .status import program_view

    old, new = program_view(before, dose_unit), program_view(now, dose_unit)
    shown = (("mode", "mode", str), ("drug", "drug", str), ("concentration", "concentration", fmt_quantity),
             ("daily_dose", "daily dose", fmt_quantity),
             ("flow_ml_per_day", "flow", lambda ml: f"{format(ml, 'f')} mL/day"))
    out = [f"{label} {show(old[key])} -> {show(new[key])}" for key, label, show in shown if old[key] != new[key]]
    if not out and old["steps"] != new["steps"]:
        out.append("the schedule's steps changed")
    return out


def changed_since_read(client, before: bodies.Program | None, based_on_txid: int, details: dict,
                       dose_unit: str = "mg/day") -> DeviceRejected:
    """Someone else's write landed between our read and our PREPARE: say what changed."""
    return drive(client, changed_since_read_steps(before, based_on_txid, details, dose_unit))


def changed_since_read_steps(before: bodies.Program | None, based_on_txid: int, details: dict,
                             dose_unit: str = "mg/day") -> Steps[DeviceRejected]:
    now = yield from steps.read_program()
    changed = _program_changes(before, now.program, dose_unit) if before else []
    what = ("; ".join(changed) if changed else
            "the program is the same, but another write (a refill, a bolus, MRI mode) was applied")
    return DeviceRejected(
        f"the pump was changed by someone else since ithcli read it (txid {now.last_txid} applied after "
        f"txid {based_on_txid}, which ithcli's checks were based on): {what}. Nothing was committed. "
        "Run the command again to check it against the pump as it is now",
        "CHANGED_SINCE_READ",
        {**details, "outcome": "not-committed", "changed_since_read": True, "pump_last_txid": now.last_txid,
         "changes": changed},
    )


def commit_displaced(client, before: bodies.Program | None, based_on_txid: int, details: dict, dose_unit: str,
                     refusal: DeviceRejected) -> DeviceRejected:
    """COMMIT refused because the pump no longer holds our PREPARE: say why, in the user's terms."""
    return drive(client, commit_displaced_steps(before, based_on_txid, details, dose_unit, refusal))


def commit_displaced_steps(before: bodies.Program | None, based_on_txid: int, details: dict, dose_unit: str,
                           refusal: DeviceRejected) -> Steps[DeviceRejected]:
    try:
        last = (yield from steps.interrogate()).last_txid
    except IthcliError:
        last = based_on_txid
    if last != based_on_txid:
        return (yield from changed_since_read_steps(before, based_on_txid, details, dose_unit))
    return DeviceRejected(
        f"{refusal.message}: another programmer prepared a change after this one (or the pump reset), so "
        "the pump dropped this one. Nothing was committed and the pump is unchanged. Run the command again",
        refusal.reason, {**details, "outcome": "not-committed", "displaced": True},
    )
