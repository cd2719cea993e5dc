"""The session report (report.build()'s data) as a FHIR R4 Bundle, validated with fhir.resources'
R4B models (the optional extra `fhir`: pip install -e '.[fhir]'). Imported only when a FHIR
export is asked for, so `ithcli --help` never loads pydantic. Resource choices: docs/fhir.md.

Nothing is invented: the patient is the one the pump records (none: no Patient, and the
Bundle is tagged so); a unit with no UCUM code here is an error, never a guess.
"""
from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from .errors import UsageError

#: ithcli's units -> UCUM (https://ucum.org): what the report writes, and nothing else
UCUM = {"mcg/day": "ug/d", "mg/day": "mg/d", "mcg/mL": "ug/mL", "mg/mL": "mg/mL", "mL/day": "mL/d",
        "mcg": "ug", "mg": "mg", "mL": "mL", "s": "s", "%": "%"}
UCUM_SYSTEM = "http://unitsofmeasure.org"
#: ithcli's own codes (write commands, outcomes, observations): no standard code fits them
CODES = "urn:ithcli:fhir:code"
#: the pump's patient identifier: its assigning system is the clinic's, which the integrator fills in
PATIENT_ID_SYSTEM = "urn:ithcli:fhir:pump-patient-id"
AUDIT_CHAIN_SYSTEM = "urn:ithcli:fhir:audit-chain-last-hash"
EXT_CONCENTRATION = "urn:ithcli:fhir:extension:concentration"
EXT_FLOW = "urn:ithcli:fhir:extension:flow"
EXT_OUTCOME = "urn:ithcli:fhir:extension:write-outcome"
#: where FHIR requires a subject (MedicationAdministration) and the pump records no patient: said, not invented
NO_PATIENT = {"display": "patient not recorded on the pump: to be filled in by the integrator",
              "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                             "valueCode": "unknown"}]}
#: the writes given to the patient (MedicationAdministration) and put into the pump (MedicationDispense)
ADMINISTERED = ("program", "bolus")
DISPENSED = ("refill",)


def quantity(value: Any, unit: str) -> dict[str, Any]:
    """A FHIR Quantity in UCUM; a unit not in UCUM above is refused, never passed on as text."""
    code = UCUM.get(unit)
    if code is None:
        raise UsageError(f"FHIR export: no UCUM code for the unit {unit!r}")
    return {"value": Decimal(str(value)), "unit": code, "system": UCUM_SYSTEM, "code": code}


def ithcli_quantity(q: dict) -> dict[str, Any]:
    """A report quantity ({"value", "unit"}) in UCUM."""
    return quantity(q["value"], q["unit"])


def last_hash(path: str) -> str | None:
    """The hash of the audit log's last entry (the chain's head), read from its tail; None when
    the log is empty or its last line is not a whole entry (the report says the log is damaged)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 1_048_576))
            tail = fh.read()
    except FileNotFoundError:
        return None
    if not tail.endswith(b"\n"):
        return None
    try:
        digest = json.loads(tail[:-1].rsplit(b"\n", 1)[-1]).get("hash")
    except ValueError:
        return None
    return digest if isinstance(digest, str) else None


def bundle(data: dict, last_hash: str | None = None) -> dict[str, Any]:
    """The report's data -> the Bundle as JSON-able data, validated by the R4B models (a model
    error is a bug here: it propagates, nothing half-valid is written). last_hash: the audit
    chain's head when the bundle was made."""
    from fhir.resources.R4B.bundle import Bundle

    return json.loads(Bundle.model_validate(bundle_data(data, last_hash)).model_dump_json(exclude_none=True))


def bundle_data(data: dict, last_hash: str | None = None) -> dict[str, Any]:
    """The Bundle as plain data (validated by bundle())."""
    entries: list[dict] = []

    def add(resource: dict) -> str:
        url = f"urn:uuid:{uuid.uuid4()}"
        entries.append({"fullUrl": url, "resource": resource})
        return url

    status = data.get("status")
    device = add(_device(data["serial_number"], status))
    patient_view = (status or {}).get("patient")
    patient = add(_patient(patient_view)) if patient_view else None
    subject = {"subject": {"reference": patient}} if patient else {}
    if status is not None:
        when = (data.get("status_source") or {}).get("read_at") or status["read_at"]
        for observation in _observations(status, when):
            add(observation | {"device": {"reference": device}} | subject)
    for change in data["changes"]:
        written = _medication(change, status, device, subject)
        what = add(written) if written else None
        add(_audit_event(change, device, what))
    tags = [{"system": CODES, "code": "emulated", "display": "emulated pump: not patient data"}] \
        if status and status.get("emulated") else []
    if not patient:
        tags.append({"system": CODES, "code": "patient-not-recorded",
                     "display": "the pump records no patient: the integrator adds the Patient"})
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "timestamp": data["generated_at"],
                           "entry": entries}
    log = data.get("audit_log") or {}
    if log and not log.get("intact"):
        tags.append({"system": CODES, "code": "audit-log-damaged",
                     "display": "the audit log's hash chain is broken: this bundle may be incomplete"})
    if last_hash:  # the audit log's state this bundle was made from: anyone holding the log can check it
        out["identifier"] = {"system": AUDIT_CHAIN_SYSTEM, "value": last_hash}
    if tags:
        out["meta"] = {"tag": tags}
    return out


def _device(serial: str, status: dict | None) -> dict[str, Any]:
    device: dict[str, Any] = {"resourceType": "Device", "serialNumber": serial, "status": "active",
                              "type": {"text": "implanted intrathecal drug pump"}}
    if status is not None:
        device |= {"modelNumber": status["model"], "deviceName": [{"name": status["model"], "type": "model-name"}],
                   "version": [{"value": status["firmware"], "type": {"text": "firmware"}}]}
        if status.get("emulated"):
            device["note"] = [{"text": "EMULATED pump (ith-emulator): not a real device"}]
    return device


def _patient(view: dict) -> dict[str, Any]:
    """The patient as the pump records it: its identifier (the system is the integrator's to set),
    the birth date and initials, nothing more."""
    patient: dict[str, Any] = {"resourceType": "Patient",
                               "identifier": [{"system": PATIENT_ID_SYSTEM, "value": view["id"]}]}
    if view.get("born") and len(view["born"]) == 10:  # a date the pump sent as one; else left out
        patient["birthDate"] = view["born"]
    if view.get("initials"):  # initials for a check, not a name
        patient["name"] = [{"use": "anonymous", "text": view["initials"]}]
    return patient


def _observations(status: dict, when: str) -> list[dict]:
    def observation(code: str, display: str, **value) -> dict[str, Any]:
        return {"resourceType": "Observation", "status": "final", "effectiveDateTime": when,
                "code": {"coding": [{"system": CODES, "code": code, "display": display}], "text": display},
                **value}

    alarms = status["alarms"]
    return [
        observation("reservoir-volume", "Pump reservoir volume",
                    valueQuantity=quantity(status["reservoir_ml"], "mL")),
        observation("battery-percent", "Pump battery charge",
                    valueQuantity=quantity(status["battery"]["percent"], "%")),
        observation("active-alarms", "Pump alarms active",
                    valueString=", ".join(f"{a['name']} ({a['priority']})" for a in alarms) or "none",
                    component=[{"code": {"coding": [{"system": CODES, "code": a["name"]}]},
                                "valueString": a["priority"]} for a in alarms] or None),
    ]


def _medication(change: dict, status: dict | None, device: str, subject: dict) -> dict[str, Any] | None:
    """A program change or bolus as a MedicationAdministration, a refill as a MedicationDispense
    (drug put into the pump, not yet given); other writes (MRI, clock, patient...) are AuditEvents only."""
    command = change["command"]
    if command not in ADMINISTERED + DISPENSED:
        return None
    state = change["after"] or change["before"] or {}
    drug = state.get("drug") or (status or {}).get("drug") or "unknown"
    extensions: list[dict[str, Any]] = [{"url": EXT_OUTCOME, "valueCode": outcome_code(change["outcome"])}]
    common: dict[str, Any] = {"identifier": [{"system": CODES + ":txid", "value": str(change["txid"])}],
              "medicationCodeableConcept": {"text": drug},
              "note": [{"text": f"ithcli outcome: {change['outcome']}"}],
              "extension": extensions}
    concentration = state.get("concentration")
    if concentration:
        extensions.append({"url": EXT_CONCENTRATION, "valueQuantity": ithcli_quantity(concentration)})
    if command in DISPENSED:
        volume = change["request"].get("volume")
        return {"resourceType": "MedicationDispense", **common, **subject,
                "status": "completed" if outcome_code(change["outcome"]) in ("verified", "applied") else "declined",
                "whenHandedOver": change["time"],
                **({"quantity": ithcli_quantity(volume)} if volume else {})}
    dosage: dict[str, Any]
    if command == "bolus":
        dosage = {"text": "clinician bolus", "dose": ithcli_quantity(change["request"]["dose"])}
    else:
        dosage = {"text": f"{state.get('mode', '')} infusion", "rateQuantity": ithcli_quantity(state["daily_dose"])}
        if state.get("flow_ml_per_day") is not None:
            dosage["extension"] = [{"url": EXT_FLOW, "valueQuantity": quantity(state["flow_ml_per_day"], "mL/day")}]
    return {"resourceType": "MedicationAdministration", **common, "subject": subject.get("subject", NO_PATIENT),
            "status": administration_status(change["outcome"], command),
            # when ithcli wrote it, on this computer's clock (the audit log's): the pump's applied
            # time is on the pump's clock, moved by one skew for the whole report (report.py)
            "effectiveDateTime": change["time"],
            "device": [{"reference": device}], "dosage": dosage,
            "performer": [{"actor": {"reference": device}}]}


def outcome_code(outcome: str) -> str:
    """The report's outcome text -> one code: verified, applied (unconfirmed, found applied),
    not-applied (unconfirmed, found not applied), unconfirmed (unsettled), refused, failed."""
    if outcome == "verified":
        return "verified"
    if outcome.startswith("unconfirmed, then found APPLIED"):
        return "applied"
    if outcome.startswith("unconfirmed, then found NOT"):
        return "not-applied"
    if outcome == "unconfirmed" or outcome == "applied, not verified":
        return "unconfirmed"
    if outcome.startswith("refused") or outcome in ("rejected", "not committed"):
        return "refused"
    return "failed"  # verify FAILED: the pump does not hold what was sent


def administration_status(outcome: str, command: str) -> str:
    """MedicationAdministration.status: a verified (or found applied) program is in progress and a
    bolus completed; not applied or refused: not-done; unsettled or failed verification: unknown."""
    code = outcome_code(outcome)
    if code in ("verified", "applied"):
        return "completed" if command == "bolus" else "in-progress"
    if code in ("not-applied", "refused"):
        return "not-done"
    return "unknown"


#: AuditEvent.outcome: 0 success, 4 minor failure (settled, nothing wrong given), 8 serious failure
_AUDIT_OUTCOME = {"verified": "0", "applied": "0", "not-applied": "4", "refused": "4", "unconfirmed": "8",
                  "failed": "8"}


def _audit_event(change: dict, device: str, what: str | None) -> dict[str, Any]:
    entity: list[dict[str, Any]] = [{"what": {"reference": what}}] if what else []
    entity.append({"what": {"reference": device}, "description": f"pump write txid {change['txid']}"})
    return {"resourceType": "AuditEvent",
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                     "display": "RESTful Operation"},
            "subtype": [{"system": CODES, "code": change["command"].replace(" ", "-")}],
            "action": "U", "recorded": change["time"],
            "outcome": _AUDIT_OUTCOME[outcome_code(change["outcome"])], "outcomeDesc": change["outcome"],
            "agent": [{"who": {"display": change["operator"] or "unknown operator"}, "requestor": True}],
            "source": {"observer": {"display": "ithcli"}}, "entity": entity}
