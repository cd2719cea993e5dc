"""ithcli as a library: one session with one pump, typed results, typed errors.

The command line stands on this module: `ithcli program` parses its options,
calls `Pump.check_program` (the same limits), shows the change, asks, and calls
`Pump.apply`. A script does the same without the prompt:

    from ithcli import api

    with api.open_pump("emulator", operator="dr-roe") as pump:
        print(pump.status().daily_dose)                  # Quantity(Decimal('2'), 'mg/day')
        result = pump.set_program(dose="2.2 mg/day")      # checked, two-phase, read back
        print(result.outcome, result.txid)                # verified 1234567

Every write runs the same drug-library limits, the same two-phase write (PREPARE,
echo compared, journal, COMMIT once, read-back), the same journal of unconfirmed
writes and the same audit log as the command line. Overrides and confirmations are
arguments, never prompts: `overrides={"RISE_24H": "reason"}`, `confirm={"tenfold"}`.
A refusal raises SafetyError listing everything it hit (`.refused`) or still needs
(`.needed`); an unknown outcome raises Unconfirmed carrying its `.txid`. Every
exception is an IthcliError whose `.exit_code` is the command line's exit code.
docs/api.md is the reference, with examples that the test suite runs. The result types
are in api_types.py, the clock and patient-bolus calls in api_clock_ptm.py: every name is
importable from here.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from protocol import Quantity, bodies
from protocol.models import ModelSpec

from . import doublecheck, limits, mri, operations, orders
from .api_clock_ptm import ClockAndPatientBoluses
from .api_types import (
    Catheter,
    Checklist,
    Event,
    LinkStats,
    Patient,
    PreparedChange,
    PreparedMri,
    Program,
    Status,
    WriteResult,
)
from .app import PumpSession, Records, Settings
from .clinic_policy import load_policy
from .clock import ClockReading
from .credentials import Credential, load_credential
from .errors import (
    AuthError,
    CheckFailed,
    DeviceRejected,
    IthcliError,
    LinkError,
    PumpProtocolError,
    SafetyError,
    Unconfirmed,
    UsageError,
    VerifyFailed,
    WrongPump,
)
from .limits import CONFIRM_FLAGS, Finding, normalise_override, parse_overrides
from .ptm import PatientBoluses
from .status import event_view, program_view

__all__ = [
    "open_pump", "Pump", "PreparedChange", "PreparedMri", "FieldFor", "Status", "Program", "Event", "LinkStats",
    "WriteResult", "Catheter", "Patient", "Credential", "load_credential", "verify_double_check",
    "Checklist", "Finding", "ClockReading", "PatientBoluses",
    "Quantity",
    "IthcliError", "AuthError", "CheckFailed", "DeviceRejected", "LinkError", "PumpProtocolError", "SafetyError",
    "Unconfirmed", "UsageError", "VerifyFailed", "WrongPump",
]


def open_pump(port: str, *, operator: str, key_store: str | None = None, state_dir: str | None = None,
              audit_log: str | None = None, drug_library: str | None = None, timeout: float = 2.0,
              clinic_policy: str | None = None, credential: str | Credential | None = None,
              expect_serial: str | None = None) -> Pump:
    """A session with the pump on `port`: a device path, `socket://host:port`, or `emulator`
    (a private emulated pump started for this session and stopped at close). clinic_policy: the
    clinic's clinicians and which writes need a second verifier; credential: the operator's own
    (a path to an unprotected one, or load_credential(path, passphrase)), needed for double checks.
    expect_serial: the pump meant; another answering is refused (WrongPump) before any request."""
    if not operator or not str(operator).strip():
        raise UsageError("an operator is required: who is programming is recorded with every write")
    env = os.environ  # the same defaults as the command line's options
    settings = Settings(port=port, timeout=timeout, json=True, verbose=0,
                        drug_library_path=drug_library or env.get("ITHCLI_DRUG_LIBRARY"), operator=operator,
                        audit_path=audit_log or env.get("ITHCLI_AUDIT_LOG"),
                        state_dir=state_dir or env.get("ITHCLI_STATE_DIR"),
                        key_store_dir=key_store or env.get("ITHCLI_KEY_STORE"),
                        clinic_policy_path=clinic_policy or env.get("ITHCLI_CLINIC_POLICY"),
                        credential_path=credential if isinstance(credential, str) else env.get("ITHCLI_CREDENTIAL"),
                        expect_serial=expect_serial or env.get("ITHCLI_EXPECT_SERIAL"))
    session = PumpSession(settings, Records.from_settings(settings))
    if isinstance(credential, Credential):
        session.credential = credential
    return Pump(session)


def verify_double_check(request: dict[str, Any], *, credential: str | Credential, clinic_policy: str) -> dict[str, Any]:
    """The second clinician's side: `request` (a document from Pump.request_double_check, or
    doublecheck.load(path)) signed with their own credential. Refused (SafetyError) for the clinician
    who asked for it, and for anyone the clinic policy does not list (AuthError)."""
    cred = credential if isinstance(credential, Credential) else load_credential(credential)
    return doublecheck.verify(request, cred, load_policy(clinic_policy))


def confirmation_flags(confirm: Iterable[str]) -> set[str]:
    """{"tenfold", "--confirm-fill-gap"} -> the flags; UsageError naming an unknown one."""
    out = set()
    for name in confirm:
        flag = name if str(name).startswith("--") else f"--confirm-{name}"
        if flag not in CONFIRM_FLAGS:
            known = ", ".join(f.removeprefix("--confirm-") for f in CONFIRM_FLAGS)
            raise UsageError(f"unknown confirmation {name!r} (known: {known})")
        out.add(flag)
    return out


def _overrides(given: dict[str, str] | Iterable[str] | None) -> dict[str, str]:
    if given is None:
        return {}
    if isinstance(given, dict):
        return parse_overrides(f"{normalise_override(k)}={v}" for k, v in given.items())
    return parse_overrides(given)


class Pump(ClockAndPatientBoluses):
    """One session with one pump. Reads open a reader session (or clinician, when that is the
    only key); the first write upgrades to a clinician session. Close it (or use `with`)."""

    def __init__(self, session: PumpSession):
        self._session = session

    def __enter__(self) -> Pump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @property
    def serial_number(self) -> str | None:
        return self._session.serial

    # --- reads --------------------------------------------------------------

    def status(self, *, settle: bool = True) -> Status:
        """Interrogate, settling any unconfirmed write first as every read does; settle=False
        leaves the journal alone (a monitor settles once, with reconcile(), before its first
        reading, then times INTERROGATE alone)."""
        return Status.from_read(*self._session.read(settle=settle))

    def program(self, *, reading: Status | None = None) -> Program:
        """The program in force, in the drug's units: those of `reading` (a status just read),
        else of a status read first (and settling, as status() does)."""
        if reading is None:
            reading = self.status()
        program = self._session.client().read_program().program
        return Program.from_view(program_view(program, reading.daily_dose.unit), program)

    def log(self, since_index: int = 0, *, reading: Status | None = None) -> list[Event]:
        """The pump's log from `since_index` (or the oldest event it still holds), on the calendar
        and in the units of `reading` (a status just read), else of a status read first. With
        since_index=reading.event_count of an earlier reading: the events logged since it."""
        if reading is None:
            reading = self.status()
        _, events = self._session.client().read_whole_log(since_index)
        return [Event.from_view(event_view(e, reading.daily_dose.unit, reading.clock_skew_s)) for e in events]

    def reconcile(self) -> dict[str, Any] | None:
        """Settle an unconfirmed write to this pump by asking it; None when there was none."""
        return self._session.resolve_pending()

    # --- the link -----------------------------------------------------------

    def open(self) -> None:
        """Open the link and a reader session now (reads open them on first use): a missing port or
        key is then known at once."""
        self._session.client()

    def disconnect(self) -> None:
        """End the session and close the port (the private emulator's is kept: closing it would stop
        the pump); the next read opens them again. A monitor does this after a failed reading."""
        self._session.drop()

    def link_stats(self) -> LinkStats:
        return LinkStats(*self._session.link_counts())

    # --- checked changes ----------------------------------------------------

    def check_program(self, *, dose: str | None = None, flow: str | None = None, stop: bool = False,
                      mode: str | None = None, schedule: str | None = None, next_visit: str | None = None,
                      overrides: dict[str, str] | None = None, confirm: Iterable[str] = (),
                      spasticity_origin: str | None = None, expect_drug: str | None = None,
                      order: str | os.PathLike[str] | orders.Order | None = None) -> PreparedChange:
        """Read the pump and check a program change; raises SafetyError or UsageError, sends nothing.
        Exactly one of: dose ('450 mcg/day'), flow ('0.5 mL/day'), stop=True, mode="minimum", or
        mode="flex" with schedule (a TOML file of steps). expect_drug: the drug the dose was
        written for ("morphine"); a pump holding another is refused before any check. order: an
        order file (orders.py); the pump is checked against it first, and the change is the order's
        (a given value that differs from it is refused)."""
        given = {"dose": dose, "flow": flow, "stop": stop, "mode": mode, "schedule": schedule}
        state, the_order, args = self._ordered("program", order, given, overrides, expect_drug=expect_drug)
        mode = args["mode"]
        mode = "flex" if args["schedule"] and mode is None else mode
        change = operations.program_change(self._session, state, dose=args["dose"], flow=args["flow"], mode=mode,
                                           schedule=args["schedule"], stop=bool(args["stop"]),
                                           next_visit=next_visit, overrides=args["overrides"],
                                           confirmed=confirmation_flags(confirm),
                                           spasticity_origin=spasticity_origin)
        return PreparedChange(state, change, the_order)

    def check_refill(self, *, volume: str | None = None, concentration: str | None = None, drug: str | None = None,
                     withdrawn: str | None = None, dose: str | None = None, next_visit: str | None = None,
                     overrides: dict[str, str] | None = None, confirm: Iterable[str] = (),
                     spasticity_origin: str | None = None, expect_drug: str | None = None,
                     bridge: bool | None = None,
                     order: str | os.PathLike[str] | orders.Order | None = None) -> PreparedChange:
        """Read the pump and check a refill (the same expect_drug as check_program: the drug in the
        pump before this refill). A refill that changes the drug or the concentration of a pump with a
        catheter recorded needs bridge=True (a bridge bolus) or bridge=False (none): the projections of
        both are in `.describe["bridge"]`. volume and concentration are required unless an order
        gives them; withdrawn is measured, never ordered."""
        given = {"volume": volume, "concentration": concentration, "drug": drug, "dose": dose, "bridge": bridge}
        state, the_order, args = self._ordered("refill", order, given, overrides, expect_drug=expect_drug,
                                               allow_unknown_drug=bool(drug) or order is not None)
        if not args["volume"] or not args["concentration"]:
            raise UsageError("a refill needs its volume and concentration (or an order that gives them)")
        change = operations.refill_change(self._session, state, volume=args["volume"],
                                          concentration=args["concentration"], drug=args["drug"],
                                          withdrawn=withdrawn, dose=args["dose"], next_visit=next_visit,
                                          overrides=args["overrides"], confirmed=confirmation_flags(confirm),
                                          spasticity_origin=spasticity_origin, bridge=args["bridge"])
        return PreparedChange(state, change, the_order)

    def check_bolus(self, *, dose: str | None = None, over: str | None = None,
                    overrides: dict[str, str] | None = None, confirm: Iterable[str] = (),
                    expect_drug: str | None = None,
                    order: str | os.PathLike[str] | orders.Order | None = None) -> PreparedChange:
        """Read the pump and check a clinician bolus: dose ('50 mcg') over a duration ('30 min'),
        both required unless an order gives them."""
        state, the_order, args = self._ordered("bolus", order, {"dose": dose, "over": over}, overrides,
                                               expect_drug=expect_drug)
        if not args["dose"] or not args["over"]:
            raise UsageError("a bolus needs its dose and --over duration (or an order that gives them)")
        change = operations.bolus_change(state, dose=args["dose"], duration=args["over"],
                                         overrides=args["overrides"], confirmed=confirmation_flags(confirm))
        return PreparedChange(state, change, the_order)

    def _ordered(self, kind: str, order: str | os.PathLike[str] | orders.Order | None, given: dict[str, Any],
                 overrides: dict[str, str] | None, **read: Any
                 ) -> tuple[operations.PumpState, orders.Order | None, dict[str, Any]]:
        """The pump read, and the change's arguments: as given, or (with an order) the order's, after
        the order's dates and the pump's serial, patient, drug and concentration were checked
        against it, before any other check."""
        given_overrides = _overrides(overrides)
        if order is None:
            return self._state(**read), None, given | {"overrides": given_overrides}
        the_order = order if isinstance(order, orders.Order) else orders.load_order(order)
        orders.check_kind(the_order, kind)
        orders.check_dates(the_order)
        state = self._state(**read)
        orders.check_pump(the_order, state, self._session.library)
        args = orders.arguments(the_order, given, given_overrides)
        return state, the_order, {k: None for k in given} | args

    def check_empty(self, *, withdrawn: str | None = None, confirm: Iterable[str] = ()) -> PreparedChange:
        state = self._state()
        return PreparedChange(state, operations.empty_change(state, withdrawn=withdrawn,
                                                        confirmed=confirmation_flags(confirm)))

    def apply(self, prepared: PreparedChange, *,
              on_echo: Callable[[bodies.Prepared], None] | None = None,
              on_commit_sent: Callable[[int], None] | None = None,
              second_verifier: dict[str, Any] | doublecheck.DoubleCheck | None = None) -> WriteResult:
        """Send a checked change: PREPARE, echo compared, journal, COMMIT once, read back.
        on_commit_sent(txid) runs once the journal entry is written, before COMMIT goes out (a
        batch's own journal records "sent" there). second_verifier: the verified double-check
        document (verify_double_check) that a write the clinic policy names needs; it must cover
        exactly this write, asked for by this operator."""
        change = prepared.change
        if change.unchanged:
            data = {"command": change.command, **change.describe, "outcome": "unchanged", "verified": True}
            return WriteResult(change.command, data["serial_number"], "unchanged", None, tuple(change.warnings), data)
        data = operations.apply_change(self._session, prepared.state, change, on_echo=on_echo,
                                       on_commit_sent=on_commit_sent, order=prepared.order,
                                       verified=second_verifier)
        return WriteResult(change.command, data["serial_number"], data["outcome"], data["txid"],
                           tuple(change.warnings), data)

    # --- the double check ---------------------------------------------------

    def double_check_needed(self, prepared: PreparedChange) -> str | None:
        """Why the clinic policy wants this change verified by a second clinician (None: it does not)."""
        return doublecheck.reason_needed(self._session.clinic_policy, prepared.state, prepared.change)

    def accept_double_check(self, prepared: PreparedChange, second_verifier: dict[str, Any]) -> doublecheck.DoubleCheck:
        """Check a verified document against this change now, without sending (apply checks it again,
        through the same doublecheck.guard)."""
        accepted = doublecheck.guard(self._session, prepared.state, prepared.change, prepared.order, second_verifier)
        assert accepted is not None  # a document given is accepted or refused, never passed over
        return accepted

    def request_double_check(self, prepared: PreparedChange) -> dict[str, Any]:
        """A request for a second clinician to verify this change, signed with the operator's
        credential (save it with doublecheck.save). Nothing is sent to the pump."""
        if prepared.change.unchanged:
            raise UsageError("the pump already delivers this: there is nothing to double-check")
        item = doublecheck.write_item(prepared.state, prepared.change, prepared.order,
                                      self.double_check_needed(prepared))
        return doublecheck.request_for(self._session, [item])

    # --- one call per write -------------------------------------------------

    def set_program(self, **kw: Any) -> WriteResult:
        """check_program(**kw), then apply it."""
        return self.apply(self.check_program(**kw))

    def refill(self, **kw: Any) -> WriteResult:
        return self.apply(self.check_refill(**kw))

    def bolus(self, **kw: Any) -> WriteResult:
        return self.apply(self.check_bolus(**kw))

    def empty(self, **kw: Any) -> WriteResult:
        return self.apply(self.check_empty(**kw))

    # --- the catheter and the priming bolus ---------------------------------

    def catheter(self, *, reading: Status | None = None) -> Catheter:
        """The pump's catheter record (of `reading`, else of a status read now)."""
        reading = reading or self.status()
        return Catheter.from_view(reading.data["catheter"])

    def check_catheter(self, action: str, *, model: str, length: str, replaced: str | None = None,
                       confirm: Iterable[str] = ()) -> PreparedChange:
        """Read the pump and check a catheter record: action "implant" (arms priming of the tubing and
        the whole catheter), "revision" (with `replaced`: arms priming of that segment only) or
        "correction" (a mistyped record; priming is NOT re-armed). Lengths with their unit: "80 cm"."""
        from protocol.constants import CatheterAction

        from .catheter_ops import catheter_change

        actions = {"implant": CatheterAction.IMPLANT, "revision": CatheterAction.REVISION,
                   "correction": CatheterAction.CORRECTION}
        if action not in actions:
            raise UsageError(f"catheter action {action!r}: give one of {', '.join(actions)}")
        state = self._state(allow_unknown_drug=True)
        return PreparedChange(state, catheter_change(state, action=actions[action], model=model, length=length,
                                                     replaced=replaced, confirmed=confirmation_flags(confirm)))

    def record_catheter(self, action: str, **kw: Any) -> WriteResult:
        """check_catheter(action, **kw), then apply it."""
        return self.apply(self.check_catheter(action, **kw))

    def check_priming(self, *, duration: str | None = None, overrides: dict[str, str] | None = None,
                      confirm: Iterable[str] = (), expect_drug: str | None = None) -> PreparedChange:
        """Read the pump and check a priming bolus of what its record says is due (refused when
        nothing is: SafetyError). Needs confirm={"monitoring"}; duration: the shortest the mechanism
        allows unless given ("30 min")."""
        from .catheter_ops import priming_change

        state = self._state(expect_drug=expect_drug)
        return PreparedChange(state, priming_change(state, duration=duration, overrides=_overrides(overrides),
                                                    confirmed=confirmation_flags(confirm)))

    def priming_bolus(self, **kw: Any) -> WriteResult:
        """check_priming(**kw), then apply it."""
        return self.apply(self.check_priming(**kw))

    # --- MRI ----------------------------------------------------------------

    def mri_checklist(self, *, field: str | None = None, gradient: float | None = None,
                      auto_exit: str | int = "4h", save: bool = True, field_for: FieldFor | None = None) -> Checklist:
        """The pre-MRI checklist (saved as the snapshot `mri_verify` compares with). Without `field`,
        a model MR conditional at one field only is judged at the strictest field (3 T): pass the
        scanner's field, or `field_for(model spec)` to be asked for it only when it matters."""
        field = mri.parse_field(field)
        st = mri.read_state(self._session, write=False)
        result = mri.run_checklist(self._session, st, auto_exit_s=mri.parse_auto_exit(auto_exit),
                                   field=_field(st, field, field_for), gradient=gradient, save=save)
        return Checklist(result["result"], tuple(result["lines"]), result)

    def check_mri_enter(self, *, field: str | None = None, gradient: float | None = None,
                        auto_exit: str | int = "4h", confirm: Iterable[str] = (),
                        field_for: FieldFor | None = None) -> PreparedMri:
        """The checklist again (CheckFailed on a BLOCK) and the withdrawal-risk approval
        (confirm={"withdrawal-risk"}); nothing is sent."""
        flags = confirmation_flags(confirm)
        field = mri.parse_field(field)
        auto_exit_s = mri.parse_auto_exit(auto_exit)
        st = mri.read_state(self._session, write=True)
        request, checked = mri.enter_request(self._session, st, auto_exit_s=auto_exit_s,
                                             field=_field(st, field, field_for), gradient=gradient,
                                             confirm_withdrawal_risk="--confirm-withdrawal-risk" in flags)
        return PreparedMri("enter", st, request, checked)

    def check_mri_exit(self) -> PreparedMri:
        st = mri.read_state(self._session, write=True)  # refused while a write is unconfirmed
        # only from MRI-safe mode, as the pump takes it (a batch plan's exit may follow its own enter)
        limits.settle(limits.check_mri_exit(st.raw))
        return PreparedMri("exit", st, mri.exit_request(st), None)

    def apply_mri(self, prepared: PreparedMri) -> WriteResult:
        """MRI-safe mode on (read back: delivery suspended, the automatic exit armed), or off (the
        program compared with the pre-MRI snapshot: VerifyFailed if it differs)."""
        if prepared.which == "enter":
            data = mri.apply_enter(self._session, prepared.state, prepared.request)
        else:
            data = mri.apply_exit(self._session, prepared.state)
        return WriteResult(data["command"], data["serial_number"], data["outcome"], data["txid"], (), data)

    def mri_enter(self, **kw: Any) -> WriteResult:
        """check_mri_enter(**kw), then apply it."""
        return self.apply_mri(self.check_mri_enter(**kw))

    def mri_exit(self) -> WriteResult:
        """Leave MRI-safe mode; the program is compared with the pre-MRI snapshot (VerifyFailed if not)."""
        return self.apply_mri(self.check_mri_exit())

    def mri_verify(self) -> Checklist:
        """After the scan: the snapshot compared and the log read since it (FAIL lines say what)."""
        st = mri.read_state(self._session, write=False)
        result = mri.run_verify(self._session, st)
        return Checklist(result["result"], tuple(result["lines"]), result)

    # --- inside ---------------------------------------------------------------

    def _state(self, *, allow_unknown_drug: bool = False, expect_drug: str | None = None) -> operations.PumpState:
        state = operations.read_state(self._session, allow_unknown_drug=allow_unknown_drug)
        holds = state.raw.drug.name
        if expect_drug is not None and holds != expect_drug.upper():
            raise SafetyError(f"the pump holds {holds.lower()}, but this change was written for "
                              f"{expect_drug.lower()}: nothing was sent (a dose means something only with its drug)")
        return state


#: asked for the scanner's field when the model is MR conditional at one field only (the CLI
#: asks at a terminal); returns "1.5" or "3", or None to judge at the strictest field
FieldFor = Callable[[ModelSpec], "str | None"]


def _field(st: mri.MriState, given: str | None, field_for: FieldFor | None) -> str | None:
    if given is not None or field_for is None or not mri.needs_field(st.spec):
        return given
    return mri.parse_field(field_for(st.spec))
