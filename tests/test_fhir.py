"""`ithcli report` as a FHIR R4 Bundle (ithcli/fhir.py, docs/fhir.md): bundles from real sessions
against the emulator, parsed back with fhir.resources' R4B models, their UCUM units checked.
Needs the extra `fhir` (the README's test command installs it)."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cli_harness import Cli, assert_one_line_error
from fhir.resources.R4B.bundle import Bundle

from ithcli import fhir
from ithcli.errors import UsageError

BACLOFEN = ("--model", "peristaltic-20", "--serial", "BAC-0001", "--drug", "baclofen",
            "--concentration", "2000 mcg/mL", "--volume", "18 mL", "--flow", "0.25 mL/day")  # 500 mcg/day
RECORD = ("patient", "set", "--id", "MRN-0042117", "--initials", "ab", "--born", "1970-01-02",
          "--spasticity-origin", "spinal", "--yes")
UCUM_CODES = {"ug/d", "mg/d", "mL/d", "ug/mL", "mg/mL", "ug", "mg", "mL", "s", "%"}


def ok(result):
    assert result.code == 0, result.stderr
    return result


def fhir_bundle(cli) -> dict:
    """`--json report --format fhir`, parsed back with the R4B models (a model error fails here)."""
    data = ok(cli("--json", "report", "--format", "fhir")).json()
    Bundle.model_validate(data)
    return data


def resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def quantities(node) -> list[dict]:
    """Every Quantity in a resource (a dict with a "system" and a "code" and a "value")."""
    if isinstance(node, dict):
        found = [node] if {"value", "code", "system"} <= node.keys() else []
        return found + [q for v in node.values() for q in quantities(v)]
    if isinstance(node, list):
        return [q for v in node for q in quantities(v)]
    return []


def extension(resource: dict, url: str):
    return next(e for e in resource["extension"] if e["url"] == url)


def by_txid(bundle: dict, kind: str) -> dict[str, dict]:
    return {r["identifier"][0]["value"]: r for r in resources(bundle, kind)}


def test_a_whole_session_as_a_bundle(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    ok(cli(*RECORD))
    verified = ok(cli("--json", "program", "--dose", "550 mcg/day", "--yes")).json()
    assert emu.control("fault", name="reset_on_commit")["ok"]
    lost = cli("--timeout", "0.5", "program", "--dose", "520 mcg/day", "--yes")
    assert lost.code == 8, lost.stderr
    settled = ok(cli("--json", "reconcile")).json()
    assert settled["had_unconfirmed"] is True and settled["applied"] is False
    ok(cli("bolus", "--dose", "50 mcg", "--over", "30 min", "--yes"))
    emu.control("advance", seconds=3600)
    left = ok(cli("--json", "interrogate")).json()["reservoir_ml"]
    ok(cli("refill", "--withdrawn", f"{left} mL", "--volume", "18 mL", "--concentration", "2000 mcg/mL", "--yes"))
    ok(cli("mri", "enter", "--auto-exit", "4h", "--field", "1.5T", "--yes", "--confirm-withdrawal-risk"))
    ok(cli("mri", "exit", "--yes"))

    log = Path(ok(cli("--json", "report")).json()["audit_log"]["path"])
    bundle = fhir_bundle(cli)
    # the audit chain's head as the bundle was made: the hash on the log's last line
    assert bundle["identifier"] == {"system": fhir.AUDIT_CHAIN_SYSTEM,
                                    "value": json.loads(log.read_text().splitlines()[-1])["hash"]}
    assert bundle["type"] == "collection"
    # the pump, its patient as the pump records it, its status
    (device,) = resources(bundle, "Device")
    assert device["serialNumber"] == "BAC-0001" and device["modelNumber"] == "peristaltic-20"
    assert device["version"][0]["value"] == left_firmware(cli)
    (patient,) = resources(bundle, "Patient")
    assert patient["identifier"] == [{"system": fhir.PATIENT_ID_SYSTEM, "value": "MRN-0042117"}]
    assert patient["birthDate"] == "1970-01-02" and patient["name"] == [{"use": "anonymous", "text": "AB"}]
    urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in bundle["entry"]}
    observations = {o["code"]["coding"][0]["code"]: o for o in resources(bundle, "Observation")}
    assert set(observations) == {"reservoir-volume", "battery-percent", "active-alarms"}
    for o in observations.values():
        assert o["device"] == {"reference": urls["Device"]} and o["subject"] == {"reference": urls["Patient"]}
    assert observations["reservoir-volume"]["valueQuantity"]["code"] == "mL"
    assert observations["battery-percent"]["valueQuantity"]["code"] == "%"
    assert "reset" in observations["active-alarms"]["valueString"]  # the reset_on_commit fault's alarm

    # the program changes and the bolus given, the refill put into the pump, with their outcomes
    given = by_txid(bundle, "MedicationAdministration")
    change = given[str(verified["txid"])]
    assert change["status"] == "in-progress" and change["subject"] == {"reference": urls["Patient"]}
    assert extension(change, fhir.EXT_OUTCOME)["valueCode"] == "verified"
    assert change["dosage"]["rateQuantity"] == {"value": 550.0, "unit": "ug/d", "system": fhir.UCUM_SYSTEM,
                                                "code": "ug/d"}
    assert extension(change, fhir.EXT_CONCENTRATION)["valueQuantity"]["code"] == "ug/mL"
    assert extension(change["dosage"], fhir.EXT_FLOW)["valueQuantity"] == {
        "value": 0.275, "unit": "mL/d", "system": fhir.UCUM_SYSTEM, "code": "mL/d"}
    (not_applied,) = [r for r in given.values() if r["status"] == "not-done"]
    assert extension(not_applied, fhir.EXT_OUTCOME)["valueCode"] == "not-applied"
    assert "unconfirmed, then found NOT applied" in not_applied["note"][0]["text"]
    (bolus,) = [r for r in given.values() if "dose" in r["dosage"]]
    assert bolus["status"] == "completed" and bolus["dosage"]["dose"]["code"] == "ug"
    assert bolus["dosage"]["dose"]["value"] == 50
    (refill,) = resources(bundle, "MedicationDispense")
    assert refill["status"] == "completed" and refill["quantity"]["code"] == "mL" and refill["quantity"]["value"] == 18

    # every write an AuditEvent: who, when, what, outcome; MRI enter and exit as AuditEvents only
    events = resources(bundle, "AuditEvent")
    kinds = [e["subtype"][0]["code"] for e in events]
    assert kinds == ["patient", "program", "program", "bolus", "refill", "mri-enter", "mri-exit"]
    assert all(e["agent"][0]["who"]["display"] == "test-operator" and e["recorded"] for e in events)
    assert [e["outcome"] for e in events] == ["0", "0", "4", "0", "0", "0", "0"]
    assert all(q["system"] == fhir.UCUM_SYSTEM and q["code"] in UCUM_CODES and q["unit"] == q["code"]
               for q in quantities(bundle))

    # the same bundle as a file, owner-only, next to the report's data
    path = tmp_path / "session.fhir.json"
    exported = ok(cli("--json", "report", "--export", str(path))).json()
    assert exported["exported_to"] == str(path) and path.stat().st_mode & 0o777 == 0o600
    written = Bundle.model_validate_json(path.read_text())
    assert written.type == "collection" and len(written.entry or []) == len(bundle["entry"])


def left_firmware(cli) -> str:
    return ok(cli("--json", "interrogate")).json()["firmware"]


def test_a_pump_without_a_patient_says_so_and_nothing_is_invented(pump):
    emu, cli = pump(*BACLOFEN)
    ok(cli("program", "--dose", "550 mcg/day", "--yes"))
    bundle = fhir_bundle(cli)
    assert resources(bundle, "Patient") == []
    # MedicationAdministration.subject is required: a reference saying none is recorded, no identity
    (given,) = resources(bundle, "MedicationAdministration")
    assert given["subject"] == fhir.NO_PATIENT and "reference" not in given["subject"]
    assert not any("subject" in r for r in resources(bundle, "Observation"))
    assert {"system": fhir.CODES, "code": "patient-not-recorded",
            "display": "the pump records no patient: the integrator adds the Patient"} in bundle["meta"]["tag"]


def test_an_emulated_pump_is_marked_so(tmp_path):
    bundle = fhir_bundle(Cli(tmp_path / "state", port="emulator"))  # ithcli's own private emulated pump
    (device,) = resources(bundle, "Device")
    assert device["note"] == [{"text": "EMULATED pump (ith-emulator): not a real device"}]
    assert {"system": fhir.CODES, "code": "emulated", "display": "emulated pump: not patient data"} \
        in bundle["meta"]["tag"]


def test_a_write_the_pump_never_answered_is_not_done(pump):
    emu, cli = pump(*BACLOFEN)
    assert emu.control("fault", name="drop_prepare_reply")["ok"]
    refused = cli("--timeout", "0.5", "program", "--dose", "550 mcg/day", "--yes")
    assert refused.code != 0
    (change,) = ok(cli("--json", "report")).json()["changes"]
    assert change["outcome"].startswith("refused")
    bundle = fhir_bundle(cli)
    (given,) = resources(bundle, "MedicationAdministration")
    assert given["status"] == "not-done" and extension(given, fhir.EXT_OUTCOME)["valueCode"] == "refused"
    (event,) = resources(bundle, "AuditEvent")
    assert event["outcome"] == "4" and event["outcomeDesc"] == change["outcome"]


def test_usage_errors_before_the_pump_is_read(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    assert_one_line_error(cli("report", "--format", "fhir"), 2, "--json")
    assert_one_line_error(cli("report", "--export", str(tmp_path / "bundle.json")), 2, ".fhir.json")


def test_help_does_not_load_the_fhir_models():
    probe = ("import runpy, sys\nsys.argv = ['ithcli', 'report', '--help']\n"
             "try:\n    runpy.run_module('ithcli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('pydantic' in sys.modules, 'fhir' in sys.modules, file=sys.stderr)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "--format" in run.stdout and run.stderr.strip().splitlines()[-1] == "False False"


# --- pure ---------------------------------------------------------------------------

def test_the_documented_example_is_a_valid_bundle():
    doc = (Path(__file__).parent.parent / "docs" / "fhir.md").read_text()
    example = Bundle.model_validate_json(doc.split("```json\n", 1)[1].split("\n```", 1)[0])
    kinds = [e.resource.get_resource_type() for e in example.entry or [] if e.resource is not None]
    assert {"Device", "Patient", "Observation", "MedicationAdministration", "MedicationDispense",
            "AuditEvent"} <= set(kinds)


@pytest.mark.parametrize(("outcome", "code", "program", "bolus", "audit"), [
    ("verified", "verified", "in-progress", "completed", "0"),
    ("unconfirmed, then found APPLIED", "applied", "in-progress", "completed", "0"),
    ("unconfirmed, then found NOT applied", "not-applied", "not-done", "not-done", "4"),
    ("unconfirmed", "unconfirmed", "unknown", "unknown", "8"),
    ("applied, not verified", "unconfirmed", "unknown", "unknown", "8"),
    ("refused (busy)", "refused", "not-done", "not-done", "4"),
    ("rejected", "refused", "not-done", "not-done", "4"),
    ("not committed", "refused", "not-done", "not-done", "4"),
    ("verify FAILED", "failed", "unknown", "unknown", "8"),
])
def test_each_outcome_maps_to_one_status(outcome, code, program, bolus, audit):
    assert fhir.outcome_code(outcome) == code
    assert fhir.administration_status(outcome, "program") == program
    assert fhir.administration_status(outcome, "bolus") == bolus
    change = {"command": "program", "txid": 1, "time": "2026-01-01T00:00:00+00:00", "operator": "x", "outcome": outcome}
    assert fhir._audit_event(change, "urn:uuid:d", None)["outcome"] == audit


@pytest.mark.parametrize(("unit", "code"), [("mcg/day", "ug/d"), ("mg/day", "mg/d"), ("mL/day", "mL/d"),
                                            ("mcg/mL", "ug/mL"), ("mg/mL", "mg/mL"), ("mcg", "ug")])
def test_units_are_ucum(unit, code):
    assert fhir.quantity(Decimal("1.5"), unit) == {"value": Decimal("1.5"), "unit": code,
                                                   "system": "http://unitsofmeasure.org", "code": code}


def test_a_unit_without_a_ucum_code_is_refused_not_passed_on():
    with pytest.raises(UsageError, match="no UCUM code for the unit 'units/day'"):
        fhir.quantity(1, "units/day")


def test_a_write_the_pump_refused_is_not_done(start_emulator, tmp_path):
    """A PREPARE the pump refuses (CHANGED_SINCE_READ: another programmer's change landed between this
    one's read and its PREPARE, as tests/test_lost_update.py stages it) is charted as not given."""
    from cli_harness import cli_env, run_cli, trust
    from test_lost_update import FROZEN, slip_a_change_in

    emu = start_emulator(transport="tcp", time_scale=FROZEN)
    trust(emu)
    first_env = cli_env({"ITHCLI_STATE_DIR": str(tmp_path / "first"), "ITHCLI_OPERATOR": "first"})
    returncode, _, err, _ = slip_a_change_in(
        emu, first_env, {"ITHCLI_STATE_DIR": str(tmp_path / "second"), "ITHCLI_OPERATOR": "second"})
    assert returncode == 5, err  # the pump refused it (authenticated): nothing was committed
    report = run_cli("--port", emu.url, "--json", "report", env=first_env)
    assert report.code == 0, report.stderr
    (change,) = report.json()["changes"]
    bundle = run_cli("--port", emu.url, "--json", "report", "--format", "fhir", env=first_env)
    assert bundle.code == 0, bundle.stderr
    data = bundle.json()
    Bundle.model_validate(data)
    (given,) = resources(data, "MedicationAdministration")
    assert given["status"] == "not-done" and extension(given, fhir.EXT_OUTCOME)["valueCode"] == "refused", change
    (event,) = resources(data, "AuditEvent")
    assert event["outcome"] == "4" and event["outcomeDesc"] == change["outcome"]
