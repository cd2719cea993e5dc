"""The independent double check: a second clinician verifies a write before it is sent.

1. The operator runs the write with `--check-request FILE` (their own `--credential`): ithcli
   reads the pump, runs every check, and writes FILE, a request signed with the operator's
   key: each write exactly as it will be sent (its PREPARE fields, the pump's last txid, serial
   and patient), the before/after table, the warnings and overrides, and the order. Nothing is
   sent to the pump.
2. A second clinician runs `ithcli verify FILE` with their own credential, on this computer
   or another: they see the same before/after and the order, and sign. ithcli refuses them
   when they are the operator (by key, whatever name is typed) or not an active clinician of
   the clinic policy.
3. The operator runs the same write with `--verified-by FILE`: ithcli reads the pump again
   and sends the write only when it is exactly the one verified, on a pump nobody changed
   since (the same last txid), within the policy's validity, by the operator who asked.

Signatures are Ed25519 over canonical JSON (sorted keys, no spaces, UTF-8); the verifier
signs the request together with the requester's signature. docs/clinical.md, "Orders and
the double check", and docs/security.md say what this does and does not stop.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.bodies import as_dict
from protocol.constants import BolusPurpose

from .clinic_policy import Clinician, ClinicPolicy
from .credentials import Credential, signature_valid
from .errors import AuthError, SafetyError, UsageError

if TYPE_CHECKING:
    from .app import PumpSession
    from .orders import Order
    from .therapy_change import Change, PumpState

FORMAT = "ithcli-double-check"
#: the fields of a write that must be the same when it is sent as when it was verified
BOUND = ("kind", "serial_number", "patient_id", "based_on_txid", "prepare", "overrides", "order_sha256")


@dataclass(frozen=True)
class DoubleCheck:
    """A verified double check, accepted for a write: what the audit log records of it."""

    requested_by: Clinician
    verified_by: Clinician
    verified_at: str
    sha256: str  # of the verified document

    def audit(self) -> dict[str, Any]:
        return {"requested_by": self.requested_by.id, "verified_by": self.verified_by.id,
                "verified_by_name": self.verified_by.name, "verified_at": self.verified_at,
                "double_check_sha256": self.sha256}


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def write_kind(change: Change) -> str:
    """The policy's name for a change: its command, a priming bolus told from a clinician's."""
    if change.command == "bolus" and change.request is not None:
        if change.request.prepare.keywords.get("purpose") == BolusPurpose.PRIMING:  # type: ignore[attr-defined]
            return "priming-bolus"
    return change.command


def concentration_changes(state: PumpState, change: Change) -> bool:
    """A refill that puts another drug or another concentration into the pump."""
    if change.command != "refill" or change.request is None:
        return False
    fields = change.request.prepare.keywords  # type: ignore[attr-defined]
    return bool(fields.get("drug") != state.raw.drug or
                fields.get("concentration_ng_per_ml") != state.raw.concentration_ng_per_ml)


def reason_needed(policy: ClinicPolicy | None, state: PumpState, change: Change) -> str | None:
    """Why the clinic policy wants this write double-checked (None: it does not, or no policy)."""
    if policy is None or change.request is None:
        return None
    drug = state.entry.name if state.entry is not None else state.raw.drug.name.lower()
    return policy.needs_second_verifier(write_kind(change), drug,
                                        concentration_change=concentration_changes(state, change))


def write_item(state: PumpState, change: Change, order: Order | None, reason: str | None) -> dict[str, Any]:
    """One write as the verifier sees it (rows, warnings, order) and as it is bound (BOUND)."""
    assert change.request is not None
    body = as_dict(change.request.prepare(txid=1, based_on_txid=state.raw.last_txid))
    prepare = {k: v for k, v in body.items() if k not in ("txid", "based_on_txid")}
    patient = getattr(state.raw, "patient", None)
    return {
        "kind": write_kind(change), "serial_number": state.raw.serial_number,
        "patient_id": getattr(patient, "patient_id", "") or None, "based_on_txid": state.raw.last_txid,
        "prepare": json.loads(canonical(prepare)), "overrides": dict(sorted(change.overrides.items())),
        "order_sha256": order.sha256 if order is not None else None,
        "order": order.content if order is not None else None,
        "rows": [[str(c) for c in row] for row in change.rows],
        "warnings": [w.message for w in change.warnings], "question": change.question, "reason": reason,
    }


# --- the request, the verification, the acceptance ---------------------------------

def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _iso(t: dt.datetime) -> str:
    return t.isoformat()  # UTC, "+00:00": as every JSON time


def _parse_time(text: object, what: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"double check: {what} {text!r} is not a time") from None


def identify(policy: ClinicPolicy, credential: Credential, who: str) -> Clinician:
    """The clinician the policy lists for this credential's key (refused when none, or not active)."""
    clinician = policy.clinician_for(credential.public_key)
    if clinician is None:
        raise AuthError(f"{who}'s credential {credential.path} belongs to no clinician of the clinic policy "
                        f"({policy.path}): ask its administrator to add its public key")
    if not clinician.active:
        raise AuthError(f"{who} {clinician.label} is not active in the clinic policy ({policy.path})")
    return clinician


def make_request(items: list[dict[str, Any]], credential: Credential, policy: ClinicPolicy,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """The request document, signed by the operator."""
    requester = identify(policy, credential, "the operator")
    now = now or _now()
    request = {"writes": items, "requested_by": requester.id, "requested_by_name": requester.name,
               "requester_key": credential.public_key, "requested_at": _iso(now),
               "expires_at": _iso(now + dt.timedelta(minutes=policy.valid_minutes)), "policy": policy.path}
    return {"format": FORMAT, "version": 1, "request": request,
            "requester_signature": credential.sign(canonical(request)), "verification": None}


def _checked_request(doc: Any, policy: ClinicPolicy) -> tuple[dict[str, Any], Clinician]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1 \
            or not isinstance(doc.get("request"), dict):
        raise UsageError(f"not an {FORMAT} version 1 document")
    request = doc["request"]
    requester = policy.clinicians.get(str(request.get("requested_by")))
    if requester is None or requester.public_key != request.get("requester_key"):
        raise AuthError(f"the double check was requested by {request.get('requested_by')!r}, who is not that "
                        f"clinician of the clinic policy ({policy.path})")
    if not signature_valid(requester.public_key, doc.get("requester_signature"), canonical(request)):
        raise AuthError("the double-check request's signature does not verify: it was changed after "
                        f"{requester.label} made it")
    if not isinstance(request.get("writes"), list) or not request["writes"]:
        raise UsageError("the double-check request names no write")
    return request, requester


def _verified_part(doc: dict[str, Any], verification: dict[str, Any]) -> bytes:
    return canonical({"request": doc["request"], "requester_signature": doc["requester_signature"],
                      "verified_by": verification.get("verified_by"), "verified_at": verification.get("verified_at")})


def verify(doc: Any, credential: Credential, policy: ClinicPolicy, now: dt.datetime | None = None) -> dict[str, Any]:
    """The second clinician's signature added to a request (refused for the requester themselves,
    a clinician not in the policy, a changed or expired request)."""
    request, requester = _checked_request(doc, policy)
    verifier = identify(policy, credential, "the verifier")
    if verifier.id == requester.id or credential.public_key == requester.public_key:
        raise SafetyError(f"{verifier.label} asked for this change: the double check must be made by another "
                          "clinician, with their own credential")
    now = now or _now()
    if now > _parse_time(request.get("expires_at"), "expires_at"):
        raise SafetyError(f"the double-check request expired at {request.get('expires_at')}: ask for a new one")
    verification = {"verified_by": verifier.id, "verified_by_name": verifier.name, "verified_at": _iso(now)}
    verification["signature"] = credential.sign(_verified_part(doc, verification))
    return doc | {"verification": verification}


def accept(doc: Any, policy: ClinicPolicy, operator: Clinician, item: dict[str, Any],
           now: dt.datetime | None = None) -> DoubleCheck:
    """Before PREPARE: a verified document that covers exactly this write, asked for by this
    operator, verified by another active clinician, still valid. SafetyError or AuthError saying
    which part fails; nothing is sent."""
    request, requester = _checked_request(doc, policy)
    verification = doc.get("verification")
    if not isinstance(verification, dict):
        raise SafetyError("the double-check request has not been verified yet: a second clinician runs "
                          "`ithcli verify FILE` first")
    verifier = policy.clinicians.get(str(verification.get("verified_by")))
    if verifier is None or not signature_valid(verifier.public_key, verification.get("signature"),
                                               _verified_part(doc, verification)):
        raise AuthError("the double check's verification does not verify against the clinic policy's "
                        f"clinicians ({policy.path})")
    if not verifier.active:
        raise AuthError(f"the verifier {verifier.label} is not active in the clinic policy")
    if verifier.id == requester.id or verifier.public_key == requester.public_key:
        raise SafetyError(f"{verifier.label} both asked for and verified this change: the double check needs "
                          "another clinician")
    if operator.id != requester.id:
        raise SafetyError(f"the double check was asked for by {requester.label}; {operator.label} may not use it")
    if verifier.id == operator.id:
        raise SafetyError(f"{operator.label} cannot be their own second verifier")
    now = now or _now()
    if now > _parse_time(request.get("expires_at"), "expires_at"):
        from .output import fmt_date

        raise SafetyError(f"the double check expired at {fmt_date(request['expires_at'])}: ask for a new one")
    _matches(request["writes"], item)
    return DoubleCheck(requester, verifier, str(verification.get("verified_at")),
                       hashlib.sha256(canonical(doc)).hexdigest())


def _matches(verified: list[Any], item: dict[str, Any]) -> None:
    same_pump = [w for w in verified if isinstance(w, dict) and w.get("serial_number") == item["serial_number"]
                 and w.get("kind") == item["kind"]]
    if not same_pump:
        raise SafetyError(f"the double check covers no {item['kind']} of pump {item['serial_number']}. "
                          "Nothing was sent")
    for w in same_pump:
        if all(w.get(k) == item[k] for k in BOUND):
            return
    first = same_pump[0]
    differ = [k for k in BOUND if first.get(k) != item[k]]
    why = {"based_on_txid": "the pump was changed since the double check (its last txid differs)",
           "prepare": "the write differs from the one verified",
           "overrides": "the overrides differ", "order_sha256": "the order differs",
           "patient_id": "the patient on the pump differs"}
    said = "; ".join(why.get(k, f"{k} differs") for k in differ)
    raise SafetyError(f"this is not the change that was double-checked: {said}. Nothing was sent",
                      {"differs": differ})


# --- files -------------------------------------------------------------------------

def save(path: str | os.PathLike, doc: dict[str, Any]) -> None:
    """Write a double-check document (readable by others: the second clinician reads it; what
    it holds is signed, so a change to it is detected)."""
    from .state import atomic_write

    target = Path(path)
    atomic_write(target, (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
    os.chmod(target, 0o644)


def load(path: str | os.PathLike) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"double check {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"double check {path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"double check {path}: not an {FORMAT} document")
    return data


# --- what a write runs ---------------------------------------------------------------

def guard(session: PumpSession, state: PumpState, change: Change, order: Order | None,
          verified: dict[str, Any] | DoubleCheck | None) -> DoubleCheck | None:
    """Before PREPARE: a write the clinic policy wants double-checked is refused without a
    verification; a verification given is accepted only for exactly this write (accept). A
    DoubleCheck is one a batch run accepted for the whole plan on this pump at its preflight."""
    if isinstance(verified, DoubleCheck):
        return verified
    reason = reason_needed(session.clinic_policy, state, change)
    if verified is None:
        if reason:
            raise missing(reason, write_kind(change))
        return None
    operator = session.operator_clinician("a double-checked write")
    policy = session.clinic_policy
    assert policy is not None  # operator_clinician refuses without one
    return accept(verified, policy, operator, write_item(state, change, order, reason))


def missing(reason: str, kind: str) -> SafetyError:
    """The refusal of a write that needs a second verifier and has none."""
    return SafetyError(
        f"{reason}: this {kind} needs an independent second verifier. Write a request with --check-request FILE, "
        "have another clinician run `ithcli verify FILE` with their own credential, then run this again with "
        "--verified-by FILE. Nothing was sent", {"needs": ["second-verifier"], "reason": reason})


def request_for(session: PumpSession, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A request for these writes (write_item), signed with the operator's credential."""
    session.operator_clinician("a double-check request")
    policy, credential = session.clinic_policy, session.credential
    assert policy is not None and credential is not None
    return make_request(items, credential, policy)
