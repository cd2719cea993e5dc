"""Orders and the independent double check, end to end through a real emulator: an order
programmed and verified; each mismatch (patient, serial, drug, concentration, dose) refused
before anything is sent; a write the clinic policy names refused without a second verifier
and committed with one, both people in the audit log; the first operator unable to act as
the second; a batch run with an order per target verified whole. The pure logic (every
malformed file, every signature) is in tests/test_orders_unit.py."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from cli_harness import assert_one_line_error
from test_cli_program import BACLOFEN, applied_txids, status

TODAY = dt.date.today()


def write_order(path: Path, *, kind: str = "program", body: str = 'dose = "520 mcg/day"', patient: str = "MRN-1",
                pump: str = "BAC-0001", drug: str = "baclofen", concentration: str = "2000 mcg/mL",
                extra: str = "") -> Path:
    path.write_text(
        f'[order]\nversion = 1\nid = "RX-{path.stem}"\npatient = "{patient}"\npump = "{pump}"\ndrug = "{drug}"\n'
        f'concentration = "{concentration}"\nprescriber = "Dr Ada Prescriber"\n'
        f"written = {TODAY - dt.timedelta(days=1)}\nvalid_until = {TODAY + dt.timedelta(days=7)}\n\n"
        f"[{kind}]\n{body}\n{extra}")
    return path


@pytest.fixture
def clinic(tmp_path, pump):
    """A baclofen pump with patient MRN-1 recorded, two clinicians' credentials made with `ithcli
    credential new`, and a clinic policy (from their printed entries) double-checking baclofen
    program changes and boluses."""
    emu, cli = pump(*BACLOFEN)
    assert cli("patient", "set", "--id", "MRN-1", "--initials", "AB", "--yes").code == 0
    entries = []
    for who, name in (("dr-roe", "Dr Roe"), ("dr-poe", "Dr Poe")):
        made = cli("--json", "credential", "new", "--out", str(tmp_path / f"{who}.pem"), "--id", who, "--name", name,
                   "--no-passphrase")
        assert made.code == 0, made.stderr
        entries.append(made.json()["policy_entry"])
    policy = tmp_path / "clinic.toml"
    policy.write_text('[policy]\nversion = 1\nname = "test clinic"\n\n[double_check]\nprogram = ["baclofen"]\n'
                      'bolus = ["baclofen"]\n\n' + "\n".join(entries))
    os.chmod(policy, 0o644)
    return emu, cli, tmp_path, str(policy)


def new_writes(emu) -> list[int]:
    """The writes the pump applied after the fixture recorded its patient (its first write)."""
    return applied_txids(emu)[1:]


def as_(who: str, tmp_path: Path, policy: str | None) -> tuple[str, ...]:
    return ("--credential", str(tmp_path / f"{who}.pem")) + (("--clinic-policy", policy) if policy else ())


def audit(cli) -> list[dict]:
    return [json.loads(line) for line in open(cli.audit_path)]


def prepares(cli) -> list[dict]:
    return [e for e in audit(cli) if e.get("event") == "exchange" and str(e.get("command")).startswith("PREPARE")]


def test_an_order_is_programmed_exactly_verified_and_audited(clinic):
    emu, cli, tmp, _ = clinic
    order = write_order(tmp / "o1.toml")
    result = cli("--json", "program", "--order", str(order), "--yes")  # no policy: no second verifier needed
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["outcome"] == "verified" and out["after"]["daily_dose"] == {"value": 520, "unit": "mcg/day"}
    assert out["order"]["id"] == "RX-o1"
    assert status(cli)["daily_dose"] == {"value": 520, "unit": "mcg/day"}
    assert new_writes(emu) == [out["txid"]]
    import hashlib
    recorded = [e for e in audit(cli) if e["event"] == "order"]
    assert len(recorded) == 1 and recorded[0]["order_sha256"] == hashlib.sha256(order.read_bytes()).hexdigest()
    assert recorded[0]["order"]["program"] == {"dose": "520 mcg/day"}
    assert recorded[0]["prescriber"] == "Dr Ada Prescriber"
    # the human output names the order it programmed
    # a second rise within 24 h needs the FREQUENCY override: the prescriber's, from the order
    order2 = write_order(tmp / "o2.toml", body='dose = "530 mcg/day"',
                         extra='[overrides]\nFREQUENCY = "second rise agreed at the review"\n')
    mine = cli("program", "--order", str(order2), "--override-soft-limit", "STEP=mine", "--yes")
    assert_one_line_error(mine, 6, "overriding STEP (the order does not authorise it)")
    human = cli("program", "--order", str(order2), "--yes")
    assert human.code == 0, human.stderr
    # the order's check is said while the command works (stderr); the report is the result
    assert "Order RX-o2 by Dr Ada Prescriber" in human.stderr and "VERIFIED" in human.stdout
    overrides = [e for e in audit(cli) if e["event"] == "soft-limit-override"]
    assert [(o["limit"], o["reason"]) for o in overrides] == [
        ("FREQUENCY", "order RX-o2: second rise agreed at the review")]


@pytest.mark.parametrize("mismatch, order_kw, args, named", [
    ("patient", {"patient": "MRN-2"}, (), "patient MRN-1 on the pump (the order's: MRN-2)"),
    ("serial", {"pump": "BAC-0002"}, (), "pump serial BAC-0001 (the order's: BAC-0002)"),
    ("drug", {"drug": "morphine", "concentration": "10 mg/mL", "body": 'dose = "2 mg/day"'}, (),
     "drug baclofen in the pump (the order's: morphine)"),
    ("concentration", {"concentration": "1000 mcg/mL"}, (),
     "concentration 2000 mcg/mL in the pump (the order's: 1000 mcg/mL)"),
    ("dose", {}, ("--dose", "600 mcg/day"), "--dose 600 mcg/day (the order's: 520 mcg/day)"),
])
def test_each_mismatch_with_the_order_is_refused_before_anything_is_sent(clinic, mismatch, order_kw, args, named):
    emu, cli, tmp, _ = clinic
    before = status(cli)
    order = write_order(tmp / f"{mismatch}.toml", **order_kw)
    result = cli("program", "--order", str(order), *args, "--yes")
    assert_one_line_error(result, 6, named, "Nothing was sent")
    assert prepares(cli) == [] or all(p["command"] == "PREPARE_PATIENT" for p in prepares(cli))
    after = status(cli)
    assert (after["daily_dose"], after["last_programming"]) == (before["daily_dose"], before["last_programming"])


def test_a_refill_and_a_bolus_follow_their_orders(clinic):
    emu, cli, tmp, _ = clinic
    refill = write_order(tmp / "fill.toml", kind="refill", body='volume = "20 mL"')
    wrong_syringe = cli("refill", "--order", str(refill), "--concentration", "500 mcg/mL", "--yes")
    assert_one_line_error(wrong_syringe, 6, "--concentration 500 mcg/mL (the order's: 2000 mcg/mL)")
    done = cli("--json", "refill", "--order", str(refill), "--withdrawn", "18 mL", "--yes")
    assert done.code == 0, done.stderr
    assert done.json()["after"]["reservoir_ml"] == 20
    bolus = write_order(tmp / "bolus.toml", kind="bolus", body='dose = "50 mcg"\nover = "30 min"')
    as_program = cli("program", "--order", str(bolus), "--yes")
    assert_one_line_error(as_program, 2, "orders a bolus, not a program")


def test_a_write_the_policy_names_needs_a_second_verifier_and_both_are_audited(clinic):
    emu, cli, tmp, policy = clinic
    order = write_order(tmp / "o.toml")
    refused = cli("--clinic-policy", policy, "program", "--order", str(order), "--yes")
    assert_one_line_error(refused, 6, "has every program of baclofen double-checked",
                          "needs an independent second verifier")
    assert new_writes(emu) == []

    request = tmp / "check.json"
    asked = cli("--json", *as_("dr-roe", tmp, policy), "program", "--order", str(order),
                "--check-request", str(request))
    assert asked.code == 0, asked.stderr
    assert asked.json()["outcome"] == "double-check-requested" and new_writes(emu) == []

    shown = cli(*as_("dr-poe", tmp, policy), "verify", str(request), input="y\n")
    assert shown.code == 0, shown.stderr
    # the verifier saw the same before/after and the order before signing
    assert "500 mcg/day" in shown.stdout and "520 mcg/day" in shown.stdout and "Order RX-o by Dr Ada" in shown.stdout
    verified = tmp / "check.verified.json"
    assert verified.exists()

    done = cli("--json", *as_("dr-roe", tmp, policy), "program", "--order", str(order), "--verified-by",
               str(verified), "--yes")
    assert done.code == 0, done.stderr
    out = done.json()
    assert out["double_check"]["requested_by"] == "dr-roe" and out["double_check"]["verified_by"] == "dr-poe"
    assert new_writes(emu) == [out["txid"]]
    checks = [e for e in audit(cli) if e["event"] == "double-check"]
    assert [(c["requested_by"], c["verified_by"]) for c in checks] == [("dr-roe", "dr-poe")]
    assert [e["verified_by"] for e in audit(cli) if e["event"] == "double-check-verified"] == ["dr-poe"]
    # the session report says who asked, who verified and against which order
    report = cli("--json", "report").json()
    notes = [n for c in report["changes"] for n in c["overrides"]]
    assert {(n["event"], n.get("verified_by") or n.get("order_id")) for n in notes} >= {
        ("double-check", "dr-poe"), ("order", "RX-o")}
    text = cli("report").stdout
    assert "Double-checked by Dr Poe (dr-poe)" in text and "Order RX-o by Dr Ada Prescriber" in text
    # used once: the pump has changed since (its last txid), so the same verification is refused now
    again = cli(*as_("dr-roe", tmp, policy), "program", "--dose", "520 mcg/day", "--verified-by", str(verified),
                "--yes")
    assert_one_line_error(again, 2, "already delivers this: there is nothing to double-check")
    other = cli(*as_("dr-roe", tmp, policy), "program", "--order", str(write_order(
        tmp / "p.toml", body='dose = "530 mcg/day"', extra='[overrides]\nFREQUENCY = "agreed"\n')),
        "--verified-by", str(verified), "--yes")
    assert_one_line_error(other, 6, "not the change that was double-checked")


def test_the_first_operator_cannot_act_as_the_second(clinic):
    emu, cli, tmp, policy = clinic
    request = tmp / "check.json"
    assert cli(*as_("dr-roe", tmp, policy), "program", "--dose", "520 mcg/day", "--check-request",
               str(request)).code == 0
    # the operator's own key is the operator, whatever name is typed
    own = cli("--operator", "dr-poe", *as_("dr-roe", tmp, policy), "verify", str(request), "--yes")
    assert_one_line_error(own, 6, "Dr Roe (dr-roe) asked for this change")
    assert not (tmp / "check.verified.json").exists()
    # a verification edited to name someone else no longer verifies
    assert cli(*as_("dr-poe", tmp, policy), "verify", str(request), "--yes").code == 0
    verified = tmp / "check.verified.json"
    doc = json.loads(verified.read_text())
    forged = dict(doc, verification=dict(doc["verification"], verified_by="dr-roe"))
    (tmp / "forged.json").write_text(json.dumps(forged))
    refused = cli(*as_("dr-roe", tmp, policy), "program", "--dose", "520 mcg/day", "--verified-by",
                  str(tmp / "forged.json"), "--yes")
    assert_one_line_error(refused, 11, "verification does not verify")
    # the verifier cannot send, as the operator, the change they verified
    swapped = cli(*as_("dr-poe", tmp, policy), "program", "--dose", "520 mcg/day", "--verified-by", str(verified),
                  "--yes")
    assert_one_line_error(swapped, 6, "asked for by Dr Roe (dr-roe)")
    # a key the clinic policy does not list cannot verify at all
    stranger = cli("--json", "credential", "new", "--out", str(tmp / "x.pem"), "--id", "x", "--name", "X",
                   "--no-passphrase")
    assert stranger.code == 0
    assert_one_line_error(cli(*as_("x", tmp, policy), "verify", str(request), "--yes"), 11,
                          "belongs to no clinician of the clinic policy")
    assert new_writes(emu) == []


def test_a_pump_changed_after_the_double_check_is_refused(clinic):
    emu, cli, tmp, policy = clinic
    request = tmp / "check.json"
    assert cli(*as_("dr-roe", tmp, policy), "bolus", "--dose", "20 mcg", "--over", "30 min", "--check-request",
               str(request)).code == 0
    assert cli(*as_("dr-poe", tmp, policy), "verify", str(request), "--yes").code == 0
    # meanwhile a refill (not double-checked by this policy) changes the pump
    assert cli("refill", "--volume", "20 mL", "--concentration", "2000 mcg/mL", "--withdrawn", "18 mL",
               "--yes").code == 0
    late = cli(*as_("dr-roe", tmp, policy), "bolus", "--dose", "20 mcg", "--over", "30 min", "--verified-by",
               str(tmp / "check.verified.json"), "--yes")
    assert_one_line_error(late, 6, "the pump was changed since the double check")
    assert status(cli)["bolus_remaining"]["value"] == 0


def test_a_batch_run_takes_each_targets_order_and_one_verifier_for_the_run(clinic):
    emu, cli, tmp, policy = clinic
    order = write_order(tmp / "ward.toml", body='dose = "520 mcg/day"')
    plan = tmp / "plan.toml"
    plan.write_text(f'[plan]\nversion = 1\nname = "ward"\n\n[[target]]\nport = "{emu.url}"\nserial = "BAC-0001"\n'
                    f'drug = "baclofen"\norder = "{order.name}"\n\n[[step]]\naction = "program"\nfrom_order = true\n')
    unverified = cli("--json", "--clinic-policy", policy, "batch", "run", str(plan), "--yes")
    assert unverified.code == 13, unverified.stdout
    assert "needs an independent second verifier" in json.dumps(unverified.json())
    assert new_writes(emu) == []

    request = tmp / "run.json"
    asked = cli(*as_("dr-roe", tmp, policy), "batch", "run", str(plan), "--check-request", str(request),
                "--journal", str(tmp / "dry.jsonl"))
    assert asked.code == 0, asked.stderr + asked.stdout
    assert new_writes(emu) == []
    shown = cli(*as_("dr-poe", tmp, policy), "verify", str(request), "--yes")
    assert shown.code == 0, shown.stderr
    assert "520 mcg/day" in shown.stdout and "Order RX-ward" in shown.stdout
    run = cli("--json", *as_("dr-roe", tmp, policy), "batch", "run", str(plan), "--verified-by",
              str(tmp / "run.verified.json"), "--yes")
    assert run.code == 0, run.stdout + run.stderr
    assert status(cli)["daily_dose"] == {"value": 520, "unit": "mcg/day"}
    checks = [e for e in audit(cli) if e["event"] == "double-check"]
    assert [(c["requested_by"], c["verified_by"]) for c in checks] == [("dr-roe", "dr-poe")]
    assert [e["order_id"] for e in audit(cli) if e["event"] == "order"] == ["RX-ward"]


def test_a_refill_changing_the_concentration_needs_a_second_verifier_when_the_policy_says_so(clinic):
    emu, cli, tmp, _ = clinic
    policy = tmp / "conc.toml"
    policy.write_text((tmp / "clinic.toml").read_text().replace('program = ["baclofen"]\nbolus = ["baclofen"]\n',
                                                                 "concentration_change = true\n"))
    os.chmod(policy, 0o644)
    same = cli("--clinic-policy", str(policy), "refill", "--volume", "20 mL", "--concentration", "2000 mcg/mL",
               "--withdrawn", "18 mL", "--yes")
    assert same.code == 0, same.stderr  # the same syringe: not named by this policy
    changed = cli("--clinic-policy", str(policy), "refill", "--volume", "20 mL", "--concentration", "1000 mcg/mL",
                  "--withdrawn", "20 mL", "--no-bridge", "--yes")
    assert_one_line_error(changed, 6, "every change of drug or concentration double-checked")
    assert status(cli)["concentration"] == {"value": 2000, "unit": "mcg/mL"}
