"""Relative doses and per-target values in batch plans, offline and pure (ithcli/plan_relative.py,
ithcli/plan.py): what a relative dose comes to (exact, on the wire's grid, toward the dose in
force) and when it cannot be one; what it needs whatever the pump delivers; a target's own values
replacing the step's; every problem with its file:line, named for its target."""
from __future__ import annotations

from decimal import Decimal

import pytest
from test_plan_validate import LIBRARY, line_of, load, one, problems, step, target, write

from ithcli import plan_relative
from ithcli.errors import SafetyError, UsageError

MORPHINE = LIBRARY.for_code("MORPHINE")
ZICONOTIDE = LIBRARY.for_code("ZICONOTIDE")
MG = 1_000_000  # ng/day in 1 mg/day


# --- what a relative dose comes to ----------------------------------------------------------

@pytest.mark.parametrize("text, current, new, exact", [
    ("+10%", 2 * MG, 2_200_000, "2200000"),
    ("-25 %", 2 * MG, 1_500_000, "1500000"),
    ("+0.5 mg/day", 2 * MG, 2_500_000, "2500000"),
    ("-0.25 mg/day", 2 * MG, 1_750_000, "1750000"),
    # not a whole ng/day: rounded toward the dose in force, never past what was asked
    ("+33.33333%", 2 * MG, 2_666_666, "2666666.6"),
    ("-33.33333%", 2 * MG, 1_333_334, "1333333.4"),
])
def test_a_relative_dose_is_exact_and_rounded_toward_the_dose_in_force(text, current, new, exact):
    resolved = plan_relative.resolve(plan_relative.parse(text, MORPHINE), current_ng=current, mode="CONTINUOUS",
                                     unit="mg/day")
    assert resolved.new_ng == new and resolved.exact_ng == Decimal(exact)
    assert resolved.rounded == (Decimal(exact) != new)
    assert resolved.dose_text == f"{format(Decimal(new) / MG, 'f')} mg/day"


def test_its_row_and_json_say_how_it_was_worked_out_exactly():
    exact = plan_relative.resolve(plan_relative.parse("+10%"), current_ng=2 * MG, mode="CONTINUOUS", unit="mg/day")
    assert exact.row() == ("Dose asked (+10 %)", "2 mg/day", "2.2 mg/day")
    rounded = plan_relative.resolve(plan_relative.parse("+33.33333%"), current_ng=2 * MG, mode="CONTINUOUS",
                                    unit="mg/day")
    assert rounded.row() == ("Dose asked (+33.33333 %)", "2 mg/day",
                             "2.666666 mg/day (2.6666666 mg/day exactly; the pump takes whole ng/day)")
    assert rounded.as_dict() == {"given": "+33.33333%", "of": {"value": Decimal("2"), "unit": "mg/day"},
                                 "dose": {"value": Decimal("2.666666"), "unit": "mg/day"},
                                 "exact": {"value": Decimal("2.6666666"), "unit": "mg/day"}, "rounded": True}


@pytest.mark.parametrize("text, current, mode, needle", [
    ("+10%", 2 * MG, "FLEX", "runs a flex schedule"),
    ("+10%", 48_000, "MINIMUM", "runs the minimum rate"),
    ("+10%", 0, "STOPPED", "delivers nothing now"),
    ("+10%", 0, "CONTINUOUS", "delivers nothing now"),
    ("-3 mg/day", 2 * MG, "CONTINUOUS", "at or below nothing. To stop delivery write stop = true"),
    ("+0.00001%", 2 * MG, "CONTINUOUS", "rounds to the dose in force"),
])
def test_a_relative_dose_the_pump_cannot_take_is_refused(text, current, mode, needle):
    with pytest.raises(SafetyError) as caught:
        plan_relative.resolve(plan_relative.parse(text, MORPHINE), current_ng=current, mode=mode, unit="mg/day")
    assert needle in caught.value.message and "Nothing was sent" in caught.value.message


@pytest.mark.parametrize("text, error, needle", [
    ("10%", UsageError, "is not a relative dose"),
    ("+%", UsageError, "is not a relative dose"),
    ("+0 %", UsageError, "changes nothing"),
    ("-100%", SafetyError, "takes the dose to nothing"),
    ("+10 mg", UsageError, "'mg' is a dose unit"),
    ("+10 mcg/day", SafetyError, "morphine is dosed in mg/day; a change in mcg/day is refused"),
    ("+0.0000001 mg/day", UsageError, "finer than the resolution"),
])
def test_what_is_not_a_relative_dose(text, error, needle):
    with pytest.raises(error) as caught:
        plan_relative.parse(text, MORPHINE)
    assert needle in caught.value.message


@pytest.mark.parametrize("text, entry, needs", [
    ("+50%", MORPHINE, []),  # morphine: 50 % a change
    ("+50.1%", MORPHINE, [("soft", "STEP_PERCENT")]),
    ("-49.9%", MORPHINE, []),  # a cut of a withdrawal-risk drug below half: a warning when it runs
    ("-50%", MORPHINE, [("confirm", "--confirm-withdrawal-risk")]),
    ("-90%", MORPHINE, [("confirm", "--confirm-tenfold"), ("confirm", "--confirm-withdrawal-risk")]),
    ("+900%", MORPHINE, [("soft", "STEP_PERCENT"), ("confirm", "--confirm-tenfold")]),
    ("+2.4 mcg/day", ZICONOTIDE, []),
    ("+2.5 mcg/day", ZICONOTIDE, [("refuse", None)]),  # the label's largest step
])
def test_what_a_relative_dose_needs_whatever_the_pump_delivers(text, entry, needs):
    found = plan_relative.offline_findings(plan_relative.parse(text, entry), entry)
    assert sorted((f.level, f.override or f.flag) for f in found) == sorted(needs, key=str), found


# --- relative doses in a plan ---------------------------------------------------------------

def test_relative_doses_load_as_written(tmp_path):
    path = write(tmp_path, target("M-1"), step("program", dose="+10%"), step("program", dose="-0.5 mg/day"),
                 step("program", dose="-60 %", confirm='["withdrawal-risk"]'))
    plan = load(path)
    assert [s.args["dose"] for s in plan.steps] == ["+10%", "-0.5 mg/day", "-60 %"]
    assert all(s.carries_dose for s in plan.steps)  # a change of a dose: the drug is needed to check it


@pytest.mark.parametrize("fields, needles", [
    ({"dose": "10%"}, ['a relative dose has its sign, "+10%" or "-10%"']),
    ({"dose": "-100%"}, ["takes the dose to nothing or below: to stop delivery write stop = true"]),
    ({"dose": "+0%"}, ["changes nothing"]),
    ({"dose": "+100 mcg/day"}, ["morphine is dosed in mg/day; a change in mcg/day is refused"]),
    ({"dose": "+60%"}, ['an increase of 60.0 % is more than the 50 % allowed per change for morphine; it needs '
                        'override_soft_limit = { STEP_PERCENT = "reason" }']),
    ({"dose": "-95%"}, ['-95 % makes the dose 10x or more away from the one in force: check for a slip; it needs '
                        'confirm = ["tenfold"]',
                        '-95 % cuts morphine, which carries a withdrawal risk, by 50 % or more; it needs '
                        'confirm = ["withdrawal-risk"]']),
])
def test_a_relative_dose_that_can_never_run_as_written_is_a_problem_at_its_line(tmp_path, fields, needles):
    path = write(tmp_path, target("M-1"), step("interrogate"), step("program", **fields))
    found = problems(path)
    assert len(found) == len(needles), found
    for needle in needles:
        assert one(found, needle).startswith(f"{path}:{line_of(path, fields['dose'])}: step 2 (program): ")


def test_what_a_relative_dose_needs_the_plan_may_give(tmp_path):
    path = write(tmp_path, target("M-1"), step("program", dose="-95%", confirm='["tenfold", "withdrawal-risk"]'),
                 step("program", dose="+60%", override_soft_limit='{ STEP_PERCENT = "pain crisis, Dr Smith" }'))
    load(path)
    (found,) = problems(write(tmp_path, target("Z-1", drug="ziconotide"), step("program", dose="+3 mcg/day"),
                              name="zic.toml"))
    assert "an increase of 3 mcg/day is larger than the 2.4 mcg/day ziconotide allows per change; it would be " \
           "refused" in found


@pytest.mark.parametrize("action, fields", [
    ("bolus", {"dose": "+0.1 mg", "over": "1 h"}),
    ("refill", {"volume": "18 mL", "concentration": "10 mg/mL", "dose": "+10%"}),
    ("ptm-set", {"dose": "+0.1 mg", "lockout": "1 h", "max_per_day": 4, "duration": "10 min"}),
])
def test_only_a_program_dose_may_be_relative(tmp_path, action, fields):
    path = write(tmp_path, target("M-1"), step(action, **fields))
    (found,) = problems(path)
    assert f"a relative dose is for a program step; a {action}'s dose is the dose itself" in found


# --- per-target values ----------------------------------------------------------------------

WARD = (target("M-1") + 'dose = "+10%"\n\n'
        + target("M-2") + '[target.step.2]\ndose = "2.5 mg/day"\n\n[target.step.3]\nover = "2 h"\n'
                          'confirm = ["tenfold"]\noverride_soft_limit = { daily-max = "palliative, Dr Smith" }\n\n'
        + target("M-3") + 'step = { 2 = { flow = "0.3 mL/day" } }\n\n')


def test_a_targets_own_values_replace_the_steps_for_it_alone(tmp_path):
    path = write(tmp_path, WARD, step("interrogate"), step("program", dose="2 mg/day", confirm='["restart"]'),
                 step("bolus", dose="0.5 mg", over="1 h", confirm='["withdrawal-risk"]',
                      override_soft_limit='{ RISE_24H = "agreed", DAILY_MAX = "step" }'))
    plan = load(path)
    m1, m2, m3 = plan.targets
    program, bolus = plan.steps[1], plan.steps[2]
    assert program.args["dose"] == "2 mg/day"  # the plan's own step is unchanged
    assert plan.step_for(m1, program).args == {"dose": "+10%", "confirm": ["restart"]}  # dose = ...: its program
    assert plan.step_for(m2, program).args["dose"] == "2.5 mg/day"
    # a program's way of being set is replaced as a whole: the flow, not the plan's dose beside it
    assert plan.step_for(m3, program).args == {"flow": "0.3 mL/day", "confirm": ["restart"]}
    own = plan.step_for(m2, bolus)
    assert own.args["over"] == "2 h" and own.args["dose"] == "0.5 mg"
    assert own.args["confirm"] == ["withdrawal-risk", "tenfold"]  # added to the step's
    assert own.args["override_soft_limit"] == {"RISE_24H": "agreed", "DAILY_MAX": "palliative, Dr Smith"}
    assert plan.step_for(m1, bolus) is bolus and plan.step_for(m3, bolus) is bolus
    assert own.label == "target 2 (M-2), step 3 (bolus)"


def test_a_step_every_target_gives_may_leave_out_what_they_give(tmp_path):
    both = (target("M-1") + 'dose = "2.5 mg/day"\n\n' + target("M-2") + '[target.step.1]\ndose = "-10%"\n\n')
    plan = load(write(tmp_path, both, step("program")))
    assert [plan.step_for(t, plan.steps[0]).args["dose"] for t in plan.targets] == ["2.5 mg/day", "-10%"]
    # a target that gives none runs the step as written: then the step needs its dose
    path = write(tmp_path, both + target("M-3"), step("program"), name="third.toml")
    (found,) = problems(path)
    at = line_of(path, 'action = "program"')
    assert found.startswith(f"{path}:{at}: step 1 (program): give exactly one of dose")


def test_a_targets_own_values_are_checked_in_its_drug_at_its_own_lines(tmp_path):
    text = (target("M-1") + '[target.step.1]\ndose = "25 mg/day"\n\n'
            + target("B-2", drug="baclofen") + '[target.step.1]\ndose = "+10 mg/day"\n\n[target.step.2]\n'
                                               'over = "30 s"\nconfirm = ["tenfold", "monitorng"]\n\n'
            + target("M-3") + 'dose = "+60%"\n\n')
    path = write(tmp_path, text, step("program", dose="+5%"), step("bolus", dose="50 mcg", over="1 h"))
    found = problems(path)
    assert one(found, "target 1 (M-1), step 1 (program): the new 24-hour total 25 mg/day is above the hard limit") \
        .startswith(f"{path}:{line_of(path, '25 mg/day')}:")
    assert one(found, "target 2 (B-2), step 1 (program): dose '+10 mg/day': baclofen is dosed in mcg/day") \
        .startswith(f"{path}:{line_of(path, '+10 mg/day')}:")
    assert one(found, "target 2 (B-2), step 2 (bolus): over '30 s'").startswith(f"{path}:{line_of(path, '30 s')}:")
    assert one(found, "target 2 (B-2), step 2 (bolus): confirm: unknown confirmation 'monitorng'")
    assert one(found, "target 3 (M-3), step 1 (program): an increase of 60.0 %") \
        .startswith(f"{path}:{line_of(path, '+60%')}:")
    # the plan's bolus of 50 mcg is wrong for the morphine targets: said once, for the step, not per target
    assert one(found, "step 2 (bolus): dose '50 mcg': morphine is dosed in mg").startswith(
        f"{path}:{line_of(path, '50 mcg')}: step 2 (bolus):")
    assert len(found) == 6, found


@pytest.mark.parametrize("own, needle", [
    ('[target.step.5]\ndose = "2 mg/day"\n', "target 1 (M-1): [target.step.5]: the plan has no step 5 (it has 2)"),
    ('[target.step.first]\ndose = "2 mg/day"\n', "[target.step.first]: N must be a step number"),
    ('step = "2 mg/day"\n', "its own values go in tables [target.step.N]"),
    ('[target.step.2]\nover = "1 h"\n', "target 1 (M-1), step 2 (program): unknown field 'over'"),
    ('[target.step.2]\ndoes = "2 mg/day"\n', "unknown field 'does' (did you mean 'dose'?)"),
    ('[target.step.2]\naction = "bolus"\n', "action cannot be given per target"),
    ('[target.step.1]\nvolume = "18 mL"\ndrug = "baclofen"\n', "drug cannot be given per target"),
    ('[target.step.2]\ndose = "2 mg/day"\nflow = "0.2 mL/day"\n', "give exactly one of dose, flow"),
    ('dose = "2 mg/day"\n\n[target.step.2]\ndose = "3 mg/day"\n', "the dose of step 2 is given twice"),
])
def test_a_targets_own_values_that_cannot_be_are_problems(tmp_path, own, needle):
    path = write(tmp_path, target("M-1") + own + "\n",
                 step("refill", volume="18 mL", concentration="10 mg/mL"), step("program", dose="2 mg/day"))
    found = problems(path)
    assert one(found, needle), found


def test_dose_on_a_target_is_for_the_plans_one_program_step(tmp_path):
    path = write(tmp_path, target("M-1") + 'dose = "+10%"\n\n', step("program", dose="2 mg/day"),
                 step("program", dose="3 mg/day"))
    (found,) = problems(path)
    assert found.startswith(f"{path}:{line_of(path, '+10%')}: target 1: dose = ... is the dose of the plan's one "
                            "program step, and it has 2: give it for its step, [target.step.N] dose = ...")


def test_an_orders_step_takes_no_values_per_target(tmp_path):
    path = write(tmp_path, target("M-1") + '[target.step.1]\ndose = "2 mg/day"\n\n',
                 '[[step]]\naction = "program"\nfrom_order = true\n')
    assert one(problems(path), "target 1 (M-1), step 1 (program): from_order = true takes this target's values "
                               "from its order: give none here")


def test_a_target_whose_own_values_carry_a_dose_needs_its_drug(tmp_path):
    path = write(tmp_path, target("R-1", drug=None), target("R-2", drug=None) + 'dose = "2 mg/day"\n\n',
                 step("program", stop=True, confirm='["withdrawal-risk"]'))
    (found,) = problems(path)
    assert "target 2 (R-2): no drug: step 1 (program) carries a dose" in found


def test_many_targets_with_their_own_doses_parse_each_value_once(tmp_path, monkeypatch):
    calls = []
    real = plan_relative.parse

    def counted(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(plan_relative, "parse", counted)
    text = "".join(target(f"P-{i:04d}") + f'dose = "{("+10%", "-5%")[i % 2]}"\n\n' for i in range(2000))
    plan = load(write(tmp_path, text, step("program")))
    assert len(plan.targets) == 2000 and all(t.steps for t in plan.targets)
    assert sorted(calls) == ["+10%", "+10%", "-5%", "-5%"]  # its syntax once, then once in the drug's unit
