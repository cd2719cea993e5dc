"""Orders, clinic policies, credentials and the double check, as pure logic (no pump): every
malformed file refused naming what is wrong, every mismatch named, every signature checked.
The same behaviour end to end through a real emulator is in tests/test_cli_orders.py."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from ithcli import doublecheck, orders
from ithcli.clinic_policy import load_policy
from ithcli.credentials import load_credential, new_credential, read_credential
from ithcli.druglib import load as load_library
from ithcli.errors import AuthError, SafetyError, UsageError
from protocol import Drug

TODAY = dt.date.today()


def order_text(kind_table: str = "[program]\ndose = \"450 mcg/day\"\n", **head: str | None) -> str:
    fields = {"version": "1", "id": '"RX-1"', "patient": '"MRN-1"', "pump": '"BAC-0001"', "drug": '"baclofen"',
              "concentration": '"2000 mcg/mL"', "prescriber": '"Dr Ada"', "written": str(TODAY - dt.timedelta(days=1)),
              "valid_until": str(TODAY + dt.timedelta(days=7))} | head
    return "[order]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None) + kind_table


def write(tmp_path: Path, text: str, name: str = "order.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def pump_state(serial="BAC-0001", patient="MRN-1", drug=Drug.BACLOFEN, conc=2_000_000):
    raw = SimpleNamespace(serial_number=serial, patient=SimpleNamespace(patient_id=patient), drug=drug,
                          concentration_ng_per_ml=conc, last_txid=7)
    return SimpleNamespace(raw=raw)


# --- order files ----------------------------------------------------------------

def test_a_good_order_loads_with_its_hash_and_content(tmp_path):
    path = write(tmp_path, order_text() + '[overrides]\nrise-24h = "agreed at review"\n')
    order = orders.load_order(path)
    assert (order.id, order.kind, order.change, order.drug) == ("RX-1", "program", {"dose": "450 mcg/day"}, "baclofen")
    assert order.overrides == {"RISE_24H": "agreed at review"}
    import hashlib
    assert order.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert order.content["order"]["written"] == str(TODAY - dt.timedelta(days=1))  # JSON-able for the audit log


@pytest.mark.parametrize("text, fragment", [
    (order_text(id=None), "[order] id: required"),
    (order_text(version="2"), "version = 1"),
    (order_text(written='"yesterday"'), "[order] written: required (a TOML date"),
    (order_text(concentration='"2000 mcg"'), "[order] concentration"),
    (order_text(kind_table=""), "exactly one of [program], [refill], [bolus]"),
    (order_text(kind_table='[program]\ndose = "450 mcg/day"\n[bolus]\ndose = "5 mcg"\nover = "1 min"\n'),
     "(got program, bolus)"),
    (order_text(kind_table='[program]\ndoze = "450 mcg/day"\n'), "[program] doze: unknown field"),
    (order_text(kind_table='[program]\ndose = "450 mcg"\n'), "[program] dose"),
    (order_text(kind_table='[bolus]\ndose = "50 mcg"\n'), "[bolus] over: required"),
    (order_text(kind_table='[refill]\nvolume = "20 mL"\nprevious_drug = "morphine"\n'),
     "previous_drug needs previous_concentration"),
    (order_text() + '[overrides]\nSPEED = "fast"\n', "[overrides] SPEED: not a soft limit"),
    (order_text() + '[overrides]\nSTEP = ""\n', "the prescriber's reason is required"),
    (order_text(valid_until=str(TODAY - dt.timedelta(days=30))), "valid_until is before written"),
    ("[order\n", "not valid TOML"),
])
def test_a_malformed_order_is_refused_naming_the_problem(tmp_path, text, fragment):
    with pytest.raises(UsageError) as exc:
        orders.load_order(write(tmp_path, text))
    assert fragment in exc.value.message and "order.toml" in exc.value.message


def test_an_order_out_of_its_dates_is_refused(tmp_path):
    order = orders.load_order(write(tmp_path, order_text()))
    orders.check_dates(order)
    with pytest.raises(SafetyError, match="expired on"):
        orders.check_dates(order, today=TODAY + dt.timedelta(days=8))
    with pytest.raises(SafetyError, match="after today"):
        orders.check_dates(order, today=TODAY - dt.timedelta(days=2))


@pytest.mark.parametrize("state, named", [
    (pump_state(serial="BAC-0002"), "pump serial BAC-0002 (the order's: BAC-0001)"),
    (pump_state(patient="MRN-2"), "patient MRN-2 on the pump (the order's: MRN-1)"),
    (pump_state(patient=""), "no patient is recorded on the pump"),
    (pump_state(drug=Drug.MORPHINE, conc=10_000_000), "drug morphine in the pump (the order's: baclofen)"),
    (pump_state(conc=500_000), "concentration 500 mcg/mL in the pump (the order's: 2000 mcg/mL)"),
])
def test_each_mismatch_with_the_pump_is_named(tmp_path, state, named):
    order = orders.load_order(write(tmp_path, order_text()))
    orders.check_pump(order, pump_state(), load_library())  # the matching pump passes
    with pytest.raises(SafetyError) as exc:
        orders.check_pump(order, state, load_library())
    assert named in exc.value.message and "Nothing was sent" in exc.value.message


def test_every_mismatch_is_named_at_once(tmp_path):
    order = orders.load_order(write(tmp_path, order_text()))
    with pytest.raises(SafetyError) as exc:
        orders.check_pump(order, pump_state(serial="X-1", patient="MRN-9"), load_library())
    assert len(exc.value.details["mismatches"]) == 2


def test_a_refill_order_names_what_the_pump_holds_before_a_change_of_concentration(tmp_path):
    table = '[refill]\nvolume = "20 mL"\nprevious_concentration = "500 mcg/mL"\ndose = "500 mcg/day"\n'
    order = orders.load_order(write(tmp_path, order_text(kind_table=table)))
    orders.check_pump(order, pump_state(conc=500_000), load_library())
    with pytest.raises(SafetyError, match="concentration 2000 mcg/mL in the pump"):
        orders.check_pump(order, pump_state(), load_library())  # the syringe's concentration is already in it?
    args = orders.arguments(order, {"volume": None, "concentration": "2000 mcg/mL", "drug": None, "dose": None,
                                    "bridge": None}, {})
    assert (args["volume"], args["concentration"], args["dose"]) == ("20 mL", "2000 mcg/mL", "500 mcg/day")


def test_the_change_is_the_orders_and_a_differing_option_is_refused(tmp_path):
    order = orders.load_order(write(tmp_path, order_text() + '[overrides]\nSTEP = "agreed"\n'))
    given = {"dose": None, "flow": None, "stop": False, "mode": None, "schedule": None}
    args = orders.arguments(order, given, {})
    assert args["dose"] == "450 mcg/day" and args["overrides"] == {"STEP": "order RX-1: agreed"}
    assert orders.arguments(order, given | {"dose": "0.45 mg/day"}, {})["dose"] == "450 mcg/day"  # the same dose
    with pytest.raises(SafetyError) as exc:
        orders.arguments(order, given | {"dose": "500 mcg/day"}, {})
    assert "--dose 500 mcg/day (the order's: 450 mcg/day)" in exc.value.message
    with pytest.raises(SafetyError, match="--flow 0.3 mL/day \\(not in the order\\)"):
        orders.arguments(order, given | {"flow": "0.3 mL/day"}, {})
    with pytest.raises(SafetyError, match="overriding RISE_24H \\(the order does not authorise it\\)"):
        orders.arguments(order, given, {"RISE_24H": "mine"})
    assert orders.arguments(order, given, {"STEP": "operator's words"})["overrides"] == {"STEP": "order RX-1: agreed"}


def test_an_order_of_another_kind_is_refused(tmp_path):
    order = orders.load_order(write(tmp_path, order_text()))
    with pytest.raises(UsageError, match="orders a program, not a refill"):
        orders.check_kind(order, "refill")


# --- clinic policy and credentials --------------------------------------------------

def make_clinic(tmp_path: Path, *, rules: str = 'program = ["baclofen"]\n', extra: str = "") -> dict:
    roe = new_credential(tmp_path / "roe.pem")
    poe = new_credential(tmp_path / "poe.pem")
    text = (f'[policy]\nversion = 1\nname = "test clinic"\n\n[double_check]\n{rules}\n'
            f'[clinicians.dr-roe]\nname = "Dr Roe"\npublic_key = "{roe.public_key}"\n\n'
            f'[clinicians.dr-poe]\nname = "Dr Poe"\npublic_key = "{poe.public_key}"\n{extra}')
    path = tmp_path / "clinic.toml"
    path.write_text(text)
    os.chmod(path, 0o644)
    return {"policy": load_policy(path), "path": path, "roe": roe, "poe": poe}


def test_a_policy_anyone_may_edit_is_refused_and_a_bad_one_named(tmp_path):
    clinic = make_clinic(tmp_path)
    assert clinic["policy"].needs_second_verifier("program", "baclofen")
    assert clinic["policy"].needs_second_verifier("program", "morphine") is None
    os.chmod(clinic["path"], 0o664)
    with pytest.raises(AuthError, match="may be changed by group or others"):
        load_policy(clinic["path"])
    os.chmod(clinic["path"], 0o644)
    text = clinic["path"].read_text()
    for bad, fragment in [(text.replace("program =", "programme ="), "programme: not a write kind"),
                          (text.replace('name = "Dr Poe"', 'name = "Dr Poe"\nrole = "x"'), "role: unknown field"),
                          (text + '\n[clinicians.dr-too]\nname = "Dr Too"\n'
                           f'public_key = "{clinic["roe"].public_key}"\n',
                           "the same public key as [clinicians.dr-roe]"),
                          (text.replace("version = 1", "version = 2"), "version = 1 is required")]:
        clinic["path"].write_text(bad)
        with pytest.raises(UsageError, match=fragment.replace("[", "\\[").replace("]", "\\]")):
            load_policy(clinic["path"])


def test_a_credential_is_private_and_its_passphrase_is_its_owners(tmp_path):
    cred = new_credential(tmp_path / "me.pem", b"correct horse")
    assert (os.stat(cred.path).st_mode & 0o777) == 0o600
    assert load_credential(cred.path, b"correct horse").public_key == cred.public_key
    with pytest.raises(AuthError, match="wrong passphrase"):
        load_credential(cred.path, b"wrong")
    with pytest.raises(AuthError, match="nobody can be asked"):
        read_credential(cred.path)
    assert read_credential(cred.path, lambda _path: b"correct horse").public_key == cred.public_key
    with pytest.raises(UsageError, match="already exists"):
        new_credential(tmp_path / "me.pem")
    os.chmod(cred.path, 0o640)
    with pytest.raises(AuthError, match="readable by group or others"):
        load_credential(cred.path, b"correct horse")


# --- the double check -----------------------------------------------------------------

ITEM = {"kind": "program", "serial_number": "BAC-0001", "patient_id": "MRN-1", "based_on_txid": 7,
        "prepare": {"mode": 1, "steps": [[0, 450000]]}, "overrides": {}, "order_sha256": None, "order": None,
        "rows": [["24-hour total", "500 mcg/day", "450 mcg/day"]], "warnings": [], "question": "?", "reason": "r"}


def test_the_second_verifier_must_be_another_clinician(tmp_path):
    clinic = make_clinic(tmp_path)
    policy, roe, poe = clinic["policy"], clinic["roe"], clinic["poe"]
    request = doublecheck.make_request([ITEM], roe, policy)
    with pytest.raises(SafetyError, match="Dr Roe \\(dr-roe\\) asked for this change"):
        doublecheck.verify(request, roe, policy)
    with pytest.raises(SafetyError, match="not been verified yet"):
        doublecheck.accept(request, policy, policy.clinicians["dr-roe"], ITEM)
    verified = doublecheck.verify(request, poe, policy)
    accepted = doublecheck.accept(verified, policy, policy.clinicians["dr-roe"], ITEM)
    assert (accepted.requested_by.id, accepted.verified_by.id) == ("dr-roe", "dr-poe")
    # the verifier cannot send what they verified as if they had asked for it
    with pytest.raises(SafetyError, match="asked for by Dr Roe"):
        doublecheck.accept(verified, policy, policy.clinicians["dr-poe"], ITEM)


def test_a_key_outside_the_policy_or_inactive_cannot_verify(tmp_path):
    gone = new_credential(tmp_path / "gone.pem").public_key
    clinic = make_clinic(tmp_path,
                         extra=f'\n[clinicians.dr-gone]\nname = "Dr Gone"\npublic_key = "{gone}"\nactive = false\n')
    stranger = new_credential(tmp_path / "stranger.pem")
    request = doublecheck.make_request([ITEM], clinic["roe"], clinic["policy"])
    with pytest.raises(AuthError, match="belongs to no clinician"):
        doublecheck.verify(request, stranger, clinic["policy"])
    with pytest.raises(AuthError, match="not active"):
        doublecheck.verify(request, load_credential(tmp_path / "gone.pem"), clinic["policy"])


def test_a_changed_request_or_verification_does_not_verify(tmp_path):
    clinic = make_clinic(tmp_path)
    policy = clinic["policy"]
    request = doublecheck.make_request([ITEM], clinic["roe"], policy)
    tampered = json.loads(json.dumps(request))
    tampered["request"]["writes"][0]["prepare"]["steps"] = [[0, 4500000]]  # a tenfold typo slipped in afterwards
    with pytest.raises(AuthError, match="signature does not verify"):
        doublecheck.verify(tampered, clinic["poe"], policy)
    verified = doublecheck.verify(request, clinic["poe"], policy)
    forged = json.loads(json.dumps(verified))
    forged["verification"]["verified_by"] = "dr-roe"
    with pytest.raises(AuthError, match="verification does not verify"):
        doublecheck.accept(forged, policy, policy.clinicians["dr-roe"], ITEM)


def test_only_the_verified_write_on_an_unchanged_pump_is_accepted_in_time(tmp_path):
    clinic = make_clinic(tmp_path)
    policy = clinic["policy"]
    roe = policy.clinicians["dr-roe"]
    verified = doublecheck.verify(doublecheck.make_request([ITEM], clinic["roe"], policy), clinic["poe"], policy)
    with pytest.raises(SafetyError, match="the pump was changed since the double check"):
        doublecheck.accept(verified, policy, roe, ITEM | {"based_on_txid": 8})
    with pytest.raises(SafetyError, match="the write differs from the one verified"):
        doublecheck.accept(verified, policy, roe, ITEM | {"prepare": {"mode": 1, "steps": [[0, 460000]]}})
    with pytest.raises(SafetyError, match="covers no program of pump BAC-0002"):
        doublecheck.accept(verified, policy, roe, ITEM | {"serial_number": "BAC-0002"})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=61)
    with pytest.raises(SafetyError, match="expired"):
        doublecheck.accept(verified, policy, roe, ITEM, now=later)


def test_the_shipped_examples_load(tmp_path):
    examples = Path(__file__).resolve().parent.parent / "docs" / "examples"
    copy = tmp_path / "clinic-policy.toml"  # as an administrator installs it (a clone's mode follows its umask)
    copy.write_bytes((examples / "clinic-policy.toml").read_bytes())
    copy.chmod(0o644)
    policy = load_policy(copy)
    assert policy.needs_second_verifier("program", "baclofen") and policy.concentration_change
    assert policy.needs_second_verifier("program", "clonidine") is None
    order = orders.load_order(examples / "order.toml")
    assert (order.kind, order.change, order.patient) == ("program", {"dose": "550 mcg/day"}, "MRN-0042117")


# --- batch plans with orders (offline) ----------------------------------------------------

def plan_text(targets: str, step: str = '[[step]]\naction = "program"\nfrom_order = true\n') -> str:
    return f'[plan]\nversion = 1\nname = "ward"\n\n{targets}\n{step}'


def test_a_plan_takes_an_order_per_target_and_names_what_does_not_fit(tmp_path):
    from ithcli import plan as plans

    write(tmp_path, order_text(), "bac1.toml")
    write(tmp_path, order_text(pump='"BAC-0002"', kind_table='[bolus]\ndose = "50 mcg"\nover = "30 min"\n'),
          "bac2.toml")
    good = tmp_path / "good.toml"
    good.write_text(plan_text('[[target]]\nport = "/dev/x1"\nserial = "BAC-0001"\norder = "bac1.toml"\n'))
    loaded = plans.load(str(good))
    assert loaded.targets[0].order is not None and loaded.targets[0].order.id == "RX-1"
    assert not loaded.steps[0].carries_dose  # its values are the order's, checked against the pump at run time

    bad = tmp_path / "bad.toml"
    bad.write_text(plan_text(
        '[[target]]\nport = "/dev/x1"\nserial = "BAC-0009"\norder = "bac1.toml"\n\n'
        '[[target]]\nport = "/dev/x2"\nserial = "BAC-0002"\norder = "bac2.toml"\n\n'
        '[[target]]\nport = "/dev/x3"\nserial = "BAC-0003"\norder = "missing.toml"\n\n'
        '[[target]]\nport = "/dev/x4"\nserial = "BAC-0004"\n'))
    with pytest.raises(plans.PlanError) as exc:
        plans.load(str(bad))
    text = "\n".join(exc.value.plan.problems)
    assert "target 1: order RX-1 is for pump BAC-0001, not BAC-0009" in text
    assert "target 2's order RX-1 orders a bolus, not a program" in text
    assert "target 3: order" in text and "cannot read" in text
    assert "from_order = true, but target 4 (BAC-0004) names no order" in text
