"""Batch plans end to end: many emulator processes, journal, resume, failures."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import peers
import pytest
from cli_harness import Cli
from test_cli_program import FROZEN, applied_txids

from ithcli_campaign.proxy import TO_PUMP, Fault
from protocol import Command, bodies

MORPHINE = ("--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "0.2 mL/day")  # 2 mg/day


def start_pumps(start_emulator, count, transport="pty", prefix="WARD"):
    return [start_emulator(*FROZEN, *MORPHINE, "--serial", f"{prefix}-{i:03d}", transport=transport)
            for i in range(count)]


def write_plan(path: Path, targets, steps: str, drug: str | None = "morphine") -> Path:
    """targets: (port, serial) or (port, serial, drug); drug=None leaves the drug out."""
    text = '[plan]\nversion = 1\nname = "test plan"\n\n'
    for port, serial, *own in targets:
        pinned = own[0] if own else drug
        text += f'[[target]]\nport = "{port}"\nserial = "{serial}"\n'
        text += (f'drug = "{pinned}"\n' if pinned else "") + "\n"
    path.write_text(text + steps)
    return path


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def program_of(emu) -> bodies.ReadProgramResponse:
    """The program the pump holds, read with the raw protocol (not through ithcli)."""
    from emulator_harness import RawClient, read_program

    with RawClient(emu.url, keys=emu.keys) as client:
        return read_program(client)


PROGRAM_STEPS = '''[[step]]
action = "interrogate"

[[step]]
action = "program"
dose = "2.5 mg/day"

[[step]]
action = "assert"
check = "daily_dose.value == 2.5"
'''


@pytest.fixture
def cli(tmp_path):
    return Cli(tmp_path / "state")


def dose_of(cli, emu):
    return cli("--port", emu.url, "--json", "interrogate").json()["daily_dose"]


def test_a_plan_runs_across_twenty_pumps(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 20)
    plan = write_plan(tmp_path / "ward.toml", [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)], PROGRAM_STEPS)
    result = cli("--json", "batch", "run", str(plan), "--yes", "--jobs", "8")
    assert result.code == 0, [(t["serial_number"], t["outcome"], t["detail"]) for t in result.json()["targets"]
                              if t["outcome"] != "ok"]
    out = result.json()
    assert out["summary"] == {"ok": 20}
    for emu in pumps:
        assert dose_of(cli, emu) == {"value": 2.5, "unit": "mg/day"}
        assert len(applied_txids(emu)) == 1
    lines = (tmp_path / "ward.results.jsonl").read_text().splitlines()
    assert len(lines) == 60 and all(json.loads(line)["outcome"] == "confirmed" for line in lines)
    # running the same plan with the same journal applies nothing twice
    again = cli("--json", "batch", "run", str(plan), "--yes")
    assert again.code == 0, again.stderr
    programs = [s for t in again.json()["targets"] for s in t["steps"] if s["action"] == "program"]
    assert {s["outcome"] for s in programs} == {"skipped"}
    assert all(len(applied_txids(emu)) == 1 for emu in pumps)


def test_a_link_cut_after_commit_is_unconfirmed_others_finish_and_resume_applies_nothing_twice(
        start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 3, transport="tcp")
    # the link dies right after the pump received the COMMIT: the whole frame through, then closed
    cut = Fault(kind="cut", direction=TO_PUMP, target="commit", offset=10_000)
    proxy = peers.proxy_to(pumps[1], cut)
    try:
        ports = [pumps[0].url, proxy.url, pumps[2].url]
        plan = write_plan(tmp_path / "cut.toml", [(p, f"WARD-{i:03d}") for i, p in enumerate(ports)], PROGRAM_STEPS)
        first = cli("--json", "--timeout", "0.5", "batch", "run", str(plan), "--yes", "--continue-on-error")
        assert first.code == 8, first.stderr
        targets = {t["serial_number"]: t for t in first.json()["targets"]}
        assert targets["WARD-000"]["outcome"] == "ok" and targets["WARD-002"]["outcome"] == "ok"
        assert targets["WARD-001"]["outcome"] == "unconfirmed"
        assert cut.fired and cut.frame_command == Command.COMMIT
        assert len(applied_txids(pumps[1])) == 1  # it did land; only the reply was lost

        second = cli("--json", "batch", "run", str(plan), "--yes", "--continue-on-error")
        assert second.code == 0, second.stderr
        steps = {t["serial_number"]: [s["outcome"] for s in t["steps"]] for t in second.json()["targets"]}
        assert steps["WARD-001"][1] == "resumed"
        assert steps["WARD-000"][1] == "skipped"
        for emu in pumps:
            assert len(applied_txids(emu)) == 1
    finally:
        proxy.close()


def test_an_invalid_plan_lists_every_problem_and_touches_no_pump(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    before = applied_txids(emu)
    plan = tmp_path / "bad.toml"
    plan.write_text(f'''[plan]
version = 1

[[target]]
port = "{emu.url}"
serial = "WARD-000"
drug = "morphine"

[[step]]
action = "progam"

[[step]]
action = "program"
dose = "25 mg/day"

[[step]]
action = "assert"
check = "reservoir_ml about 5"
''')
    result = cli("batch", "run", str(plan))
    assert result.code == 2
    assert "Traceback" not in result.stderr
    assert f"{plan}:10:" in result.stderr and "unknown action 'progam'" in result.stderr
    assert f"{plan}:18:" in result.stderr and "FIELD OP VALUE" in result.stderr
    # the unknown action hides nothing: the dose over the hard limit is in the same report
    assert f"{plan}:14:" in result.stderr and "hard limit" in result.stderr
    validate = cli("batch", "validate", str(plan))
    assert validate.code == 2
    assert applied_txids(emu) == before
    # the schema is fine but a dose breaks the hard limit: validate finds it offline, with its line
    plan.write_text(plan.read_text().replace('action = "progam"', 'action = "interrogate"')
                    .replace("reservoir_ml about 5", "reservoir_ml >= 5"))
    offline = cli("batch", "validate", str(plan))
    assert offline.code == 2
    assert f"{plan}:14:" in offline.stderr and "hard limit" in offline.stderr
    assert applied_txids(emu) == before


def test_a_serial_number_mismatch_stops_that_target_before_any_write(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 2)
    plan = write_plan(tmp_path / "mismatch.toml", [(pumps[0].url, "WARD-000"), (pumps[1].url, "NOT-THIS-ONE")],
                      PROGRAM_STEPS)
    strict = cli("--json", "batch", "run", str(plan), "--yes")
    assert strict.code == 13
    outcomes = {t["serial_number"]: t["outcome"] for t in strict.json()["targets"]}
    assert outcomes == {"WARD-000": "not-run", "NOT-THIS-ONE": "preflight-failed"}
    assert all(applied_txids(emu) == [] for emu in pumps)
    lenient = cli("--json", "batch", "run", str(plan), "--yes", "--continue-on-error", "--journal",
                  str(tmp_path / "j2.jsonl"))
    assert lenient.code == 13
    assert len(applied_txids(pumps[0])) == 1 and applied_txids(pumps[1]) == []


def test_a_dry_run_shows_the_change_and_sends_nothing(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 2)
    plan = write_plan(tmp_path / "dry.toml", [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)],
                      PROGRAM_STEPS.split("[[step]]\naction = \"assert\"")[0])
    result = cli("--json", "batch", "run", str(plan), "--dry-run", "--journal", str(tmp_path / "dry.jsonl"))
    assert result.code == 0, result.stderr
    step = result.json()["targets"][0]["steps"][1]
    assert step["outcome"] == "dry-run"
    assert step["data"]["requested"]["daily_dose"] == {"value": 2.5, "unit": "mg/day"}
    assert all(applied_txids(emu) == [] for emu in pumps)


def test_ctrl_c_stops_new_steps_settles_and_resumes(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 8)
    plan = write_plan(tmp_path / "int.toml", [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)], PROGRAM_STEPS)
    journal = tmp_path / "int.journal.jsonl"
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("ITHCLI_")}
    env.update({"ITHCLI_STATE_DIR": cli.state_dir, "ITHCLI_KEY_STORE": __import__("cli_harness").DEFAULT_KEY_STORE})
    proc = subprocess.Popen([sys.executable, "-m", "ithcli", "--json", "batch", "run", str(plan), "--yes", "--jobs",
                             "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and '"confirmed"' in journal.read_text():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    last = {}
    for r in records:
        last[(r["serial"], r["step"])] = r["state"]
    assert "sent" not in last.values()  # every step that went out was settled
    rerun = cli("--json", "batch", "run", str(plan), "--yes", "--jobs", "4")
    assert rerun.code == 0, rerun.stderr
    for emu in pumps:
        assert len(applied_txids(emu)) == 1


def test_an_mri_day_plan_prepares_and_restores_every_pump(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 2)
    targets = [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)]
    before = write_plan(tmp_path / "mri-before.toml", targets, '''[[step]]
action = "mri-checklist"
field = "1.5T"

[[step]]
action = "mri-enter"
auto_exit = "2h"
confirm = ["withdrawal-risk"]
''')
    entered = cli("--json", "batch", "run", str(before), "--yes")
    assert entered.code == 0, entered.stderr
    for emu in pumps:
        assert cli("--port", emu.url, "--json", "interrogate").json()["mri_mode"] == "safe"
    after = write_plan(tmp_path / "mri-after.toml", targets, '''[[step]]
action = "mri-exit"

[[step]]
action = "mri-verify"
''')
    done = cli("--json", "batch", "run", str(after), "--yes")
    assert done.code == 0, done.stderr
    for emu in pumps:
        assert cli("--port", emu.url, "--json", "interrogate").json()["mri_mode"] == "off"


def test_an_mri_plan_stops_at_preflight_when_the_checklist_blocks(start_emulator, tmp_path, cli):
    emu = start_emulator(*FROZEN, "--model", "valve-gated-20", "--serial", "VALVE-1", "--drug", "morphine",
                         "--concentration", "10 mg/mL", "--flow", "0.2 mL/day")
    plan = write_plan(tmp_path / "blocked.toml", [(emu.url, "VALVE-1")], '''[[step]]
action = "mri-enter"
confirm = ["withdrawal-risk"]
''')
    result = cli("--json", "batch", "run", str(plan), "--yes")
    assert result.code == 13
    target = result.json()["targets"][0]
    assert target["outcome"] == "preflight-failed" and "Reservoir" in target["detail"]
    assert applied_txids(emu) == []


def test_a_plan_that_doses_a_target_without_its_drug_is_refused_at_validate(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    plan = write_plan(tmp_path / "nodrug.toml", [(emu.url, "WARD-000")], PROGRAM_STEPS, drug=None)
    validate = cli("batch", "validate", str(plan))
    assert validate.code == 2, validate.stderr
    assert "Traceback" not in validate.stderr
    assert f"{plan}:{line_of(plan, '[[target]]')}: target 1 (WARD-000): no drug" in validate.stderr
    assert "step 2 (program)" in validate.stderr
    run = cli("batch", "run", str(plan))
    assert run.code == 2 and "no drug" in run.stderr
    assert applied_txids(emu) == []
    # the same plan naming the drug validates and runs
    pinned = write_plan(tmp_path / "pinned.toml", [(emu.url, "WARD-000")], PROGRAM_STEPS)
    assert cli("batch", "validate", str(pinned)).code == 0
    done = cli("--json", "batch", "run", str(pinned), "--yes")
    assert done.code == 0, done.stderr
    assert dose_of(cli, emu) == {"value": 2.5, "unit": "mg/day"}


def test_a_morphine_plan_never_sets_a_hydromorphone_pump(start_emulator, tmp_path, cli):
    morphine = start_emulator(*FROZEN, *MORPHINE, "--serial", "MOR-1")
    hydromorphone = start_emulator(*FROZEN, "--drug", "hydromorphone", "--concentration", "10 mg/mL",
                                   "--flow", "0.2 mL/day", "--serial", "HYD-1")  # 2 mg/day
    before = program_of(hydromorphone)
    targets = [(morphine.url, "MOR-1"), (hydromorphone.url, "HYD-1")]
    plan = write_plan(tmp_path / "morphine.toml", targets, PROGRAM_STEPS)  # both pinned to morphine
    assert cli("batch", "validate", str(plan)).code == 0  # offline nothing tells: the pump does
    strict = cli("--json", "batch", "run", str(plan), "--yes")
    assert strict.code == 13, strict.stderr
    outcome = {t["serial_number"]: t for t in strict.json()["targets"]}
    assert outcome["HYD-1"]["outcome"] == "preflight-failed"
    assert "holds hydromorphone" in outcome["HYD-1"]["detail"] and "morphine" in outcome["HYD-1"]["detail"]
    assert outcome["MOR-1"]["outcome"] == "not-run"
    assert applied_txids(morphine) == [] and applied_txids(hydromorphone) == []
    # with --continue-on-error the morphine pump is set; the hydromorphone one still is not touched
    lenient = cli("--json", "batch", "run", str(plan), "--yes", "--continue-on-error", "--journal",
                  str(tmp_path / "j2.jsonl"))
    assert lenient.code == 13, lenient.stderr
    assert dose_of(cli, morphine) == {"value": 2.5, "unit": "mg/day"}
    assert program_of(hydromorphone) == before and applied_txids(hydromorphone) == []
    assert dose_of(cli, hydromorphone) == {"value": 2, "unit": "mg/day"}
    # a plan pinned to the drug the pump holds sets it
    right = write_plan(tmp_path / "hydromorphone.toml", [(hydromorphone.url, "HYD-1", "hydromorphone")],
                       PROGRAM_STEPS)
    done = cli("--json", "batch", "run", str(right), "--yes")
    assert done.code == 0, done.stderr
    assert dose_of(cli, hydromorphone) == {"value": 2.5, "unit": "mg/day"} and len(applied_txids(hydromorphone)) == 1


def test_a_misspelt_check_a_30_s_bolus_and_an_unknown_action_are_reported_in_one_validate(
        start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    steps = """[[step]]
action = "interrgate"

[[step]]
action = "bolus"
dose = "0.1 mg"
over = "30s"

[[step]]
action = "assert"
check = "reservoir_mll >= 5"
"""
    plan = write_plan(tmp_path / "three.toml", [(emu.url, "WARD-000")], steps)
    result = cli("--json", "batch", "validate", str(plan))
    assert result.code == 2
    assert "Traceback" not in result.stderr
    problems = result.json()["problems"]
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{plan}:{line_of(plan, 'interrgate')}: step 1: unknown action 'interrgate'")
    assert problems[1].startswith(f"{plan}:{line_of(plan, '30s')}: step 2 (bolus): ") and "1 min to 24 h" in problems[1]
    assert problems[2].startswith(f"{plan}:{line_of(plan, 'reservoir_mll')}: step 3 (assert): ")
    assert "no field 'reservoir_mll'" in problems[2]
    run = cli("batch", "run", str(plan))
    assert run.code == 2 and run.stderr.count(f"{plan}:") == 3
    assert applied_txids(emu) == []
    fixed = write_plan(tmp_path / "fixed.toml", [(emu.url, "WARD-000")],
                       steps.replace("interrgate", "interrogate").replace("30s", "1 min").replace("_mll", "_ml"))
    assert cli("batch", "validate", str(fixed)).code == 0
    done = cli("--json", "batch", "run", str(fixed), "--yes")
    assert done.code == 0, done.stderr
    assert [s["outcome"] for s in done.json()["targets"][0]["steps"]] == ["confirmed"] * 3
    assert len(applied_txids(emu)) == 1


def test_a_plan_overrides_a_soft_limit_only_by_its_name(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)  # morphine 2 mg/day: +75 % is past its 50 % step
    bare = write_plan(tmp_path / "bare.toml", [(emu.url, "WARD-000")],
                      '[[step]]\naction = "program"\ndose = "3.5 mg/day"\noverride_soft_limit = "Dr Smith"\n')
    refused = cli("batch", "validate", str(bare))
    assert refused.code == 2
    assert 'override_soft_limit = { NAME = "Dr Smith" }' in refused.stderr
    missing = write_plan(tmp_path / "missing.toml", [(emu.url, "WARD-000")],
                         '[[step]]\naction = "program"\ndose = "3.5 mg/day"\n'
                         'override_soft_limit = { DAILY_MAX = "not the limit reached" }\n')
    failed = cli("--json", "batch", "run", str(missing), "--yes")
    assert failed.code == 13, failed.stderr
    detail = failed.json()["targets"][0]["detail"]
    assert "STEP_PERCENT" in detail and 'override_soft_limit = { STEP_PERCENT = "reason"' in detail  # plan terms
    assert applied_txids(emu) == []
    named = write_plan(tmp_path / "named.toml", [(emu.url, "WARD-000")],
                       '[[step]]\naction = "program"\ndose = "3.5 mg/day"\n'
                       'override_soft_limit = { step-percent = "pain crisis, Dr Smith", RISE_24H = "same", '
                       'RISE_7D = "same", HISTORY = "same" }\n')
    done = cli("--json", "batch", "run", str(named), "--yes")
    assert done.code == 0, done.stderr
    assert dose_of(cli, emu) == {"value": 3.5, "unit": "mg/day"} and len(applied_txids(emu)) == 1


def test_a_refill_to_another_drug_then_a_dose_in_its_unit_runs_dry_runs_and_resumes(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    steps = '''[[step]]
action = "refill"
volume = "18 mL"
concentration = "2000 mcg/mL"
drug = "baclofen"
dose = "100 mcg/day"
confirm = ["withdrawal-risk", "restart"]
bridge = false  # the emulator's pump has an 800 mm catheter: the choice is said (no bridge bolus)

[[step]]
action = "program"
dose = "110 mcg/day"
'''
    plan = write_plan(tmp_path / "switch.toml", [(emu.url, "WARD-000")], steps)  # the pump holds morphine
    dry = cli("--json", "batch", "run", str(plan), "--dry-run", "--journal", str(tmp_path / "dry.jsonl"))
    assert dry.code == 0, dry.stderr
    assert [s["outcome"] for s in dry.json()["targets"][0]["steps"]] == ["dry-run", "dry-run"]
    assert applied_txids(emu) == []
    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stderr
    status = cli("--port", emu.url, "--json", "interrogate").json()
    assert status["drug"] == "baclofen" and status["daily_dose"] == {"value": 110, "unit": "mcg/day"}
    assert len(applied_txids(emu)) == 2
    # the journal says the refill went in: preflight now expects baclofen, and nothing runs twice
    again = cli("--json", "batch", "run", str(plan), "--yes")
    assert again.code == 0, again.stderr
    assert [s["outcome"] for s in again.json()["targets"][0]["steps"]] == ["skipped", "skipped"]
    assert len(applied_txids(emu)) == 2
