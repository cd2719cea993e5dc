"""The protocol-version-4 plan steps, offline and pure (ithcli/plan_steps.py, plan_doses.py,
batch_writes.py): a malformed step is one clear line with its file:line before anything is sent,
and preflight's bridge rule for refills after other writes."""
from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import Mock

import pytest
from test_plan_validate import LIBRARY, load, one, problems, step, target, write

from ithcli.batch import in_plan_terms
from ithcli.batch_writes import bridge_refusals
from ithcli.errors import SafetyError
from protocol.constants import CatheterAction


def test_every_new_step_kind_loads_with_its_fields_normalised(tmp_path):
    path = write(tmp_path, target("M-1"),
                 step("refill", volume="18 mL", concentration="20 mg/mL", bridge=False),
                 step("catheter", event="implant", model="standard", length="800 mm"),
                 step("catheter", event="revise", length="80 cm", replaced="15 cm"),
                 step("catheter", event="correction", length="75 cm"),
                 step("priming-bolus", confirm='["monitoring"]', over="30 min"),
                 step("clock-set"),
                 '[[step]]\naction = "clock-set"\nto = 2030-03-01T08:00:00+01:00\nconfirm = ["clock-step"]\n\n',
                 step("ptm-set", dose="0.2 mg", lockout="1 h", max_per_day=4, duration="10 min"),
                 step("ptm-set", off=True))
    plan = load(path)
    refill, implant, revise, correct, prime, now, at, ptm_on, ptm_off = plan.steps
    assert refill.args["bridge"] is False
    assert [s.args["event"] for s in (implant, revise, correct)] == ["implant", "revision", "correction"]
    assert prime.args == {"confirm": ["monitoring"], "over": "30 min"}
    assert now.args == {} and at.args == {"to": "2030-03-01T08:00:00+01:00", "confirm": ["clock-step"]}
    assert ptm_on.carries_dose and not ptm_off.carries_dose and not prime.carries_dose


@pytest.mark.parametrize("action, fields, needle", [
    ("refill", {"volume": "18 mL", "concentration": "20 mg/mL", "bridge": "yes"}, "bridge must be true"),
    ("catheter", {"event": "revize", "length": "80 cm", "replaced": "15 cm"}, "(did you mean 'revise'?)"),
    ("catheter", {"event": "implant", "model": "STANDARD", "length": "80"}, "give a length with its unit"),
    ("catheter", {"event": "implant", "model": "STANDARD", "length": "80 in"}, "give a length with its unit"),
    ("catheter", {"event": "implant", "model": "STANDARD", "length": "80.05 cm"}, "whole millimetres"),
    ("catheter", {"event": "implant", "model": "FANCY", "length": "80 cm"}, "not a catheter model"),
    ("catheter", {"event": "implant", "length": "80 cm"}, 'an implant needs model = "STANDARD"'),
    ("catheter", {"event": "revise", "length": "80 cm"}, 'a revision needs replaced = "15 cm"'),
    ("catheter", {"event": "correct", "length": "80 cm", "replaced": "5 cm"}, "replaced goes with a revision"),
    ("catheter", {"event": "revise", "length": "10 cm", "replaced": "15 cm"}, "at most the catheter's '10 cm'"),
    ("catheter", {"length": "80 cm"}, "missing field 'event'"),
    ("priming-bolus", {}, 'a priming bolus needs confirm = ["monitoring"]'),
    ("priming-bolus", {"confirm": '["tenfold"]'}, "'tenfold' does not apply to priming-bolus"),
    ("priming-bolus", {"confirm": '["monitorng"]'}, "did you mean 'monitoring'?"),
    ("priming-bolus", {"confirm": '["monitoring"]', "over": "30 s"}, "a bolus runs from 1 min to 24 h"),
    ("priming-bolus", {"confirm": '["monitoring"]', "dose": "1 mg"}, "unknown field 'dose'"),
    ("clock-set", {"to": "2030-03-01T08:00:00"}, "has no UTC offset"),
    ("clock-set", {"to": "1 March 2030"}, "is not an ISO 8601 date-time"),
    ("clock-set", {"to": "2101-01-01T00:00:00Z"}, "outside the times a pump's clock accepts"),
    ("clock-set", {"confirm": '["monitoring"]'}, 'it goes with action = "priming-bolus"'),
    ("ptm-set", {"dose": "0.2 mg/day", "lockout": "1 h", "max_per_day": 4, "duration": "10 min"},
     "'mg/day' is a dose rate unit"),
    ("ptm-set", {"dose": "0.2 mg", "lockout": "1 hr", "max_per_day": 4, "duration": "10 min"}, "unknown unit 'hr'"),
    ("ptm-set", {"dose": "0.2 mg", "lockout": "1 h", "max_per_day": 40, "duration": "10 min"}, "from 1 to 24"),
    ("ptm-set", {"dose": "0.2 mg", "lockout": "1 h", "max_per_day": "4", "duration": "10 min"},
     "max_per_day must be a whole number"),
    ("ptm-set", {"dose": "0.2 mg", "lockout": "1 h"}, "missing max_per_day, duration"),
    ("ptm-set", {"off": True, "dose": "0.2 mg"}, "give no dose with it"),
    ("ptm-set", {"off": False}, "off = false does nothing"),
    ("ptm-set", {"dose": "0.8 mg", "lockout": "1 h", "max_per_day": 4, "duration": "10 min"},
     "above the 0.5 mg the drug library allows for morphine"),
    ("bolus", {"dose": "1 mg", "over": "10 min", "priming": True}, 'action = "priming-bolus"'),
    ("bolus", {"dose": "1 mg", "over": "10 min", "confirm": '["monitoring"]'}, "does not apply to bolus"),
])
def test_a_malformed_new_step_is_one_clear_line_at_its_key(tmp_path, action, fields, needle):
    path = write(tmp_path, target("M-1"), step(action, **fields))
    (found,) = problems(path)
    assert needle in found
    assert found.startswith(f"{path}:") and f"step 1 ({action}): " in found


def test_patient_boluses_of_a_drug_the_library_does_not_allow_are_refused_offline(tmp_path):
    allowed = {e.name for e in LIBRARY.drugs.values() if e.patient_bolus is None}
    if not allowed:
        pytest.skip("every drug in the library allows patient boluses")
    drug = sorted(allowed)[0]
    entry = next(e for e in LIBRARY.drugs.values() if e.name == drug)
    dose = "1 mcg" if entry.mass_unit == "mcg" else "0.1 mg"
    path = write(tmp_path, target("B-1", drug=drug),
                 step("ptm-set", dose=dose, lockout="1 h", max_per_day=2, duration="10 min"))
    assert one(problems(path), "does not allow patient-activated boluses")


def test_a_ptm_step_with_a_dose_needs_the_targets_drug_but_off_does_not(tmp_path):
    on = write(tmp_path, target("M-1", drug=None),
               step("ptm-set", dose="0.2 mg", lockout="1 h", max_per_day=4, duration="10 min"))
    assert one(problems(on), "no drug")
    off = write(tmp_path, target("M-1", drug=None), step("ptm-set", off=True), step("clock-set"),
                step("priming-bolus", confirm='["monitoring"]'), name="off.toml")
    assert len(load(off).steps) == 3


def test_a_refusal_that_needs_the_bridge_choice_says_so_in_the_plans_terms():
    exc = SafetyError("needs 2 more: ... Nothing was sent",
                      details={"needed": ["--confirm-fill-gap", "--bridge or --no-bridge"]})
    assert in_plan_terms(exc).endswith('In the plan\'s step: confirm = ["fill-gap"]; bridge = true (a bridge bolus) '
                                       "or bridge = false (none)")


def _raw(drug="MORPHINE", conc=10_000_000, catheter=CatheterAction.IMPLANT):
    return SimpleNamespace(drug=SimpleNamespace(name=drug), concentration_ng_per_ml=conc,
                           catheter=SimpleNamespace(action=catheter))


def _bridge(tmp_path, *steps, raw=None, states=None) -> list[str]:
    """Preflight's rule, offline: the pump has an unsettled write, so no step is checked by the API."""
    plan = load(write(tmp_path, target("M-1"), *steps))
    session = Mock(library=LIBRARY)
    session.pending.get.return_value = {"txid": 1}
    return bridge_refusals(session, plan, plan.targets[0], raw or _raw(), states or {})


CHANGE = {"volume": "18 mL", "concentration": "20 mg/mL"}


def test_preflight_finds_a_refill_after_other_writes_that_needs_the_bridge_choice(tmp_path):
    (found,) = _bridge(tmp_path, step("program", dose="2.2 mg/day"), step("refill", **CHANGE))
    assert found.startswith("step 2 (refill): needs 1 more: the concentration changes and a catheter is recorded")
    assert found.endswith("bridge = true (a bridge bolus) or bridge = false (none)")
    # said in the plan, the same concentration, or no catheter: nothing to ask
    assert _bridge(tmp_path, step("refill", bridge=False, **CHANGE)) == []
    assert _bridge(tmp_path, step("refill", volume="18 mL", concentration="10 mg/mL")) == []
    assert _bridge(tmp_path, step("refill", **CHANGE), raw=_raw(catheter=CatheterAction.NONE)) == []
    # an implant earlier in the plan records one; a refill's new contents are what the next one changes
    (implanted,) = _bridge(tmp_path, step("catheter", event="implant", model="STANDARD", length="80 cm"),
                           step("refill", **CHANGE), raw=_raw(catheter=CatheterAction.NONE))
    assert implanted.startswith("step 2 (refill): ")
    two = _bridge(tmp_path, step("refill", bridge=True, **CHANGE), step("refill", **CHANGE),
                  step("refill", volume="18 mL", concentration="10 mg/mL"))
    assert len(two) == 1 and two[0].startswith("step 3 (refill): ")
    # a step the journal says was applied is skipped: the pump as read already holds it
    assert _bridge(tmp_path, step("refill", **CHANGE), raw=_raw(conc=20_000_000),
                   states={("M-1", 1): {"state": "confirmed"}}) == []


def test_preflight_says_a_drug_change_needs_the_choice(tmp_path):
    (found,) = _bridge(tmp_path, step("refill", volume="18 mL", concentration="2000 mcg/mL", drug="baclofen",
                                      dose="100 mcg/day"))
    assert "the drug changes and a catheter is recorded" in found


def test_the_readme_example_plans_are_valid(tmp_path):
    from pathlib import Path

    readme = Path(__file__).parent.parent / "README.md"
    section = readme.read_text().split("### `ithcli batch`", 1)[1].split("\n### ", 1)[0]
    first, second = [block.split("```", 1)[0] for block in section.split("```toml\n")[1:3]]
    path = tmp_path / "readme.toml"
    path.write_text(first + "\n" + second)
    plan = load(path)
    assert [s.action for s in plan.steps] == ["interrogate", "program", "assert", "catheter", "priming-bolus",
                                              "refill", "clock-set", "ptm-set"]
    # the second target's own values: its relative dose for the program step, its own check
    second = plan.targets[1]
    assert plan.step_for(second, plan.steps[1]).args["dose"] == "+10%"
    assert plan.step_for(second, plan.steps[2]).args == {"check": "daily_dose.value >= 2"}
    assert plan.step_for(plan.targets[0], plan.steps[1]).args["dose"] == "2.5 mg/day"
