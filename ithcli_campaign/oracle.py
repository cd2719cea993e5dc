"""What the pump must show after a session, and whether ithcli's verdict was right.

classify() reads the truth before and after a session (Status + Program from the fault-free
TruthClient) as a Snapshot: the program's therapy, the reservoir, the bolus remaining, the
catheter record, the patient-bolus limits and the pump's time. "old": nothing changed;
"new": exactly the write applied (writes.Write says what that is for each kind); anything
else "other". judge() holds ithcli's exit code and output against it (docs/reliability.md):

    exit 0 (verified)       => new, and its txid applied
    exit 8 (unconfirmed)    => either; reconcile must learn which from the pump's log
    exit 7 under a lying pump (mismatch_on_commit) => not the new therapy
    anything else (failed)  => old, nothing applied
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from protocol import Drug, InfusionMode, bodies
from protocol.therapy import rate_for_dose

from .warm import HUNG
from .writes import Write

#: what classify compares of a program: mode, drug, concentration, daily dose and each
#: step's (start, dose, rate); not the 24-hour volume, which follows from them
_Therapy = tuple[InfusionMode, Drug, int, int, tuple[tuple[int, int, int], ...]]


@dataclass(frozen=True)
class Snapshot:
    """What a write may change on the pump (the clock is frozen: nothing moves by itself)."""
    therapy: _Therapy
    reservoir_ul: int
    bolus_remaining_ng: int
    catheter: bodies.CatheterRecord
    ptm: bodies.PtmLimits
    pump_time: int


def snapshot(status: bodies.Status, program: bodies.Program) -> Snapshot:
    return Snapshot(_therapy(program), status.reservoir_ul, status.bolus_remaining_ng, status.catheter, status.ptm,
                    status.pump_time)


def expected(write: Write, status: bodies.Status, program: bodies.Program) -> Snapshot:
    """The snapshot once `write` is applied to the pump as it was (status, program)."""
    now = snapshot(status, program)
    change: dict[str, Any]
    if write.kind == "program":
        change = {"therapy": _continuous(program, program.concentration_ng_per_ml, write.dose_ng)}
    elif write.kind == "refill":  # the daily dose is kept; the flow follows the concentration
        change = {"therapy": _continuous(program, write.concentration_ng_per_ml, program.daily_dose_ng_per_day),
                  "reservoir_ul": write.reservoir_ul, "bolus_remaining_ng": now.bolus_remaining_ng + write.bridge_ng}
    elif write.kind in ("bolus", "priming"):  # on top of the program (the clock is frozen)
        change = {"bolus_remaining_ng": now.bolus_remaining_ng + write.dose_ng}
        if write.catheter is not None:
            change["catheter"] = write.catheter
    elif write.kind == "catheter":
        change = {"catheter": write.catheter}
    elif write.kind == "clock":
        change = {"pump_time": write.clock_to}
    elif write.kind == "ptm":
        change = {"ptm": write.ptm}
    else:
        raise ValueError(f"unknown write kind {write.kind!r}")
    return dataclasses.replace(now, **change)


def classify(write: Write, before: tuple[bodies.Status, bodies.Program],
             after: tuple[bodies.Status, bodies.Program]) -> str:
    """"old" (nothing changed), "new" (exactly the write applied) or "other", from the
    pump's status and program before and after the session."""
    now = snapshot(*after)
    if now == snapshot(*before):
        return "old"
    return "new" if now == expected(write, *before) else "other"


def _therapy(program: bodies.Program) -> _Therapy:
    return (program.mode, program.drug, program.concentration_ng_per_ml, program.daily_dose_ng_per_day,
            tuple((st.start_minute, st.dose_ng_per_day, st.rate_nl_per_day) for st in program.steps))


def _continuous(program: bodies.Program, concentration: int, dose: int) -> _Therapy:
    """The continuous program ithcli asks for: one step from midnight, at the rate that
    delivers the dose at that concentration (protocol/therapy.py's rounding)."""
    return (InfusionMode.CONTINUOUS, program.drug, concentration, dose,
            ((0, dose, rate_for_dose(dose, concentration)),))


# --- the verdict ---------------------------------------------------------------------------

@dataclass
class Outcome:
    """One session as the oracle sees it: ithcli's run and the pump's truth after it."""
    rc: int
    out: dict | None
    stderr: str
    state: str  # classify()
    applied: list  # the txids TX_APPLIED in the session's part of the log
    lying: bool  # mismatch_on_commit fired: the pump applied other than it echoed
    settled: tuple | None = None  # `ithcli reconcile` after exit 8: (rc, out, stderr)

    @property
    def txid(self) -> Any:
        return (self.out or {}).get("txid")


def judge(o: Outcome, v: list[str], journal_left: bool) -> str:
    """Append to `v` what is wrong with ithcli's verdict; return the verdict's name."""
    rc, state, applied = o.rc, o.state, o.applied
    if state == "other" and not (o.lying and rc in (7, 8)):  # never anything but old or new
        v.append(f"the pump delivers neither the old nor the new therapy (exit {rc})")
    if rc != 8 and journal_left:
        v.append(f"exit {rc} left an unconfirmed-write journal entry behind")
    if rc == HUNG:
        v.append(o.stderr)
        return "hung"
    if rc < 0 or rc == 1 or "Traceback" in o.stderr:
        v.append(f"internal error or killed (exit {rc}): {o.stderr.strip()[-300:]}")
        return "crashed"
    if rc == 8:  # judged by check_reconcile
        return "unconfirmed"
    if rc == 0:
        if state != "new":
            v.append(f"exit 0 (verified) but the pump delivers the {state} therapy")
        if o.txid is None or o.txid not in applied:
            v.append(f"exit 0 (verified) but txid {o.txid} is not in the pump's log {applied}")
        return "verified"
    if rc == 7 and o.lying:
        if state == "new":
            v.append("exit 7 but the new program is applied")
        return "verify failed"
    if state != "old" or applied:
        v.append(f"exit {rc} (failed) but the pump delivers the {state} therapy, applied {applied}")
    return "failed"


def check_reconcile(o: Outcome, v: list[str], journal_left: bool) -> dict:
    """After exit 8: `ithcli reconcile` must say applied exactly when the pump's log has the
    txid applied; an acknowledged COMMIT whose read-back was lost must be applied."""
    assert o.settled is not None  # reconcile ran: rc == 8
    rc, out, stderr = o.settled
    info: dict[str, Any] = {"exit": rc}
    if rc != 0 or out is None:
        v.append(f"reconcile after exit 8 failed (exit {rc}): {stderr.strip()[-300:]}")
        return info
    info.update(had_unconfirmed=out["had_unconfirmed"], applied=out["applied"], txid=out["txid"])
    if (o.out or {}).get("outcome") == "unverified":  # COMMIT acknowledged, read-back lost
        if not o.applied or (o.state != "new" and not o.lying):
            v.append(f"exit 8 after an acknowledged COMMIT but the pump shows {o.state}, applied {o.applied}")
    elif out["had_unconfirmed"]:
        truth = out["txid"] in o.applied
        if out["applied"] != truth:
            v.append(f"reconcile says applied={out['applied']} but the pump's log says {truth}")
        if o.txid is not None and out["txid"] != o.txid:
            v.append(f"reconcile settled txid {out['txid']}, the write was {o.txid}")
    elif o.applied:
        v.append(f"exit 8 and nothing to reconcile, yet {o.applied} was applied")
    if journal_left:
        v.append("reconcile left the unconfirmed-write journal entry")
    return info


def reconciled(info: dict) -> str:
    """The name of what reconcile learnt."""
    return ("applied" if info.get("applied") else "not applied" if info.get("had_unconfirmed")
            else "nothing pending")
