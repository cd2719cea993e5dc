"""Batch plans show what each pump goes from and to, ask once, and take per-target and relative
doses: end to end against emulator processes. The dry run and the run show each write step's
before/after (terminal and --json); a plan with writes is worked out on every pump and asked
about once (answered yes or no, or --yes; --json without --yes is refused before any pump is
read); the one question never stands in for the plan's own overrides and confirmations; a pump
written to while the question waits gets nothing; a relative dose and each target's own dose
are applied, read back and verified; a relative dose a pump cannot take sends nothing."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import cli_harness
import pytest
import test_cli_orders
from cli_harness import Cli
from test_cli_batch import start_pumps, write_plan
from test_cli_program import FROZEN, applied_txids

from ithcli import doublecheck

PROGRAM_AND_BOLUS = '''[[step]]
action = "program"
dose = "2.5 mg/day"

[[step]]
action = "bolus"
dose = "0.1 mg"
over = "30 min"
'''
QUESTION = "as shown? [y/N]"


@pytest.fixture
def cli(tmp_path):
    return Cli(tmp_path / "state")


def dose_of(cli, emu) -> dict:
    return cli("--port", emu.url, "--json", "interrogate").json()["daily_dose"]


def rows_of(step: dict) -> dict[str, tuple[str, str]]:
    return {r["item"]: (r["before"], r["after"]) for r in step["change"]["rows"]}


def line_with(text: str, *fragments: str) -> str:
    """The one line of a rendered table that holds every fragment (a value and its row stay together)."""
    lines = [line for line in text.splitlines() if all(f in line for f in fragments)]
    assert len(lines) == 1, (fragments, text)
    return lines[0]


def exchanges(cli) -> int:
    """What this test's ithcli said to any pump so far (the audit log records every exchange)."""
    path = Path(cli.audit_path)
    if not path.exists():
        return 0
    return sum(json.loads(line).get("event") == "exchange" for line in path.read_text().splitlines())


# --- before and after ------------------------------------------------------------------------

def test_a_dry_run_and_a_run_show_each_pumps_writes_before_and_after(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 2)
    plan = write_plan(tmp_path / "ward.toml", [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)],
                      PROGRAM_AND_BOLUS)
    dry = cli("--json", "batch", "run", str(plan), "--dry-run", "--journal", str(tmp_path / "dry.jsonl"))
    assert dry.code == 0, dry.stdout
    for t in dry.json()["targets"]:
        program, bolus = t["steps"]
        assert rows_of(program)["24-hour total"] == ("2 mg/day", "2.5 mg/day  (+25.0 %)")
        assert rows_of(program)["Flow (24-hour)"] == ("0.2 mL/day", "0.25 mL/day")
        assert rows_of(program)["Concentration"] == ("10 mg/mL", "10 mg/mL")
        assert rows_of(bolus)["Bolus"] == ("-", "0.1 mg over 30 min")
        assert program["change"]["warnings"] == []
    # the results file carries the same change, one line per step
    lines = [json.loads(line) for line in (tmp_path / "ward.results.jsonl").read_text().splitlines()]
    assert [line["change"] for line in lines] == [s["change"] for t in dry.json()["targets"] for s in t["steps"]]
    assert all(applied_txids(e) == [] for e in pumps)

    shown = cli("batch", "run", str(plan), "--dry-run", "--journal", str(tmp_path / "dry.jsonl"))
    assert shown.code == 0, shown.stderr
    assert "Each pump's writes: now and after (as checked; nothing sent)" in shown.stdout
    line_with(shown.stdout, "WARD-000", "1 program", "Mode", "continuous")
    assert line_with(shown.stdout, "WARD-001", "1 program").count("continuous") == 2
    totals = [line for line in shown.stdout.splitlines() if "24-hour total" in line and "2.5 mg/day  (+25.0 %)" in line]
    assert len(totals) == 2 and all("2 mg/day" in line for line in totals)  # a value beside its row, each pump
    assert shown.stdout.count("0.1 mg over 30 min") == 2
    # the bolus comes after the program: worked out on the pump as it is now, and said so
    assert "A pump's steps after its first write are worked out on the pump as it is now" in shown.stdout

    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stdout
    for t in done.json()["targets"]:
        program, bolus = t["steps"]
        assert program["outcome"] == "confirmed"
        assert rows_of(program)["24-hour total"] == ("2 mg/day", "2.5 mg/day  (+25.0 %)")
        # as it ran: after the program, the bolus met 2.5 mg/day
        assert rows_of(bolus)["24-hour total"] == ("2.5 mg/day", "2.5 mg/day + bolus")
    assert all(dose_of(cli, e) == {"value": 2.5, "unit": "mg/day"} and len(applied_txids(e)) == 2 for e in pumps)


# --- asked once -------------------------------------------------------------------------------

def test_a_plan_with_writes_asks_once_showing_every_pump_and_write(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 2)
    plan = write_plan(tmp_path / "ward.toml", [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)],
                      PROGRAM_AND_BOLUS)
    # --json cannot ask: refused as every write is, before any pump is read
    refused = cli("--json", "batch", "run", str(plan))
    assert refused.code == 9 and refused.json()["error"]["message"] == (
        "confirmation needed and --json gives no prompt: pass --yes. Nothing was sent")
    assert exchanges(cli) == 0

    declined = cli("batch", "run", str(plan), input="n\n")
    assert declined.code == 9, declined.stderr
    assert declined.stderr.count(QUESTION) == 1 and "Send 4 writes to 2 pumps as shown? [y/N]" in declined.stderr
    assert declined.stderr.rstrip().endswith("ithcli: error: not confirmed. Nothing was sent")
    # what was shown before the question: every pump, every write step, now and after
    assert "what each pump goes from and to (nothing sent yet)" in declined.stdout
    for serial in ("WARD-000", "WARD-001"):
        assert line_with(declined.stdout, serial, "1 program", "Mode")
    assert declined.stdout.count("2.5 mg/day  (+25.0 %)") == 2 and declined.stdout.count("0.1 mg over 30 min") == 2
    assert all(applied_txids(e) == [] for e in pumps)
    assert not (tmp_path / "ward.journal.jsonl").exists()  # the question is not the run: nothing journalled

    accepted = cli("batch", "run", str(plan), input="y\n")
    assert accepted.code == 0, accepted.stderr
    assert accepted.stderr.count(QUESTION) == 1
    assert all(dose_of(cli, e) == {"value": 2.5, "unit": "mg/day"} and len(applied_txids(e)) == 2 for e in pumps)

    # a plan that writes nothing asks nothing, with --json too
    read_only = write_plan(tmp_path / "read.toml", [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)],
                           '[[step]]\naction = "assert"\ncheck = "daily_dose.value == 2.5"\n')
    for args in ((), ("--json",)):
        checked = cli(*args, "batch", "run", str(read_only))
        assert checked.code == 0 and QUESTION not in checked.stderr, checked.stderr


def test_the_one_question_never_stands_in_for_the_plans_own_overrides(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)  # morphine 2 mg/day: 3.5 mg/day is +75 %, past its 50 % step
    bare = write_plan(tmp_path / "bare.toml", [(emu.url, "WARD-000")],
                      '[[step]]\naction = "program"\ndose = "3.5 mg/day"\n')
    assert cli("batch", "validate", str(bare)).code == 0  # the step in percent is the pump's dose to say
    asked = cli("batch", "run", str(bare), input="y\n")
    assert asked.code == 13, asked.stderr
    assert QUESTION not in asked.stderr  # refused while working it out: never asked about
    assert 'In the plan\'s step: override_soft_limit = { STEP_PERCENT = "reason"' in asked.stdout
    with_yes = cli("--json", "batch", "run", str(bare), "--yes")
    assert with_yes.code == 13 and "STEP_PERCENT" in with_yes.json()["targets"][0]["detail"]
    assert applied_txids(emu) == []

    named = write_plan(tmp_path / "named.toml", [(emu.url, "WARD-000")],
                       '[[step]]\naction = "program"\ndose = "3.5 mg/day"\noverride_soft_limit = { step-percent = '
                       '"pain crisis, Dr Smith", RISE_24H = "same", RISE_7D = "same", HISTORY = "same" }\n')
    done = cli("batch", "run", str(named), input="y\n")
    assert done.code == 0, done.stderr
    # the question showed which of the plan's overrides each step goes with, and its reason
    question, summary = re.split(r"^Batch test plan *$", done.stdout, flags=re.M)  # what the question showed
    assert "what each pump goes from and to (nothing sent yet)" in question and "1:confirmed" in summary
    assert "WARD-000 step 1 (program): SOFT: an increase of 75.0 %" in question
    assert "(override_soft_limit STEP_PERCENT: pain crisis, Dr Smith)" in question
    assert dose_of(cli, emu) == {"value": 3.5, "unit": "mg/day"} and len(applied_txids(emu)) == 1


def test_a_pump_written_to_while_the_question_waits_gets_nothing(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 2, transport="tcp")  # a device port is locked while the batch holds it
    plan = write_plan(tmp_path / "ward.toml", [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)],
                      '[[step]]\naction = "program"\ndose = "+10%"\n')
    env = cli_harness.cli_env({"ITHCLI_STATE_DIR": cli.state_dir, "ITHCLI_OPERATOR": cli.operator})
    proc = subprocess.Popen([sys.executable, "-m", "ithcli", "batch", "run", str(plan), "--continue-on-error"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    try:
        said = b""
        while QUESTION.encode() not in said:  # the whole change is worked out and shown; the question waits
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, said.decode()
            said += chunk
        # meanwhile another programmer changes the first pump
        other = cli("--port", pumps[0].url, "program", "--dose", "3 mg/day", "--yes")
        assert other.code == 0, other.stderr
        out, err = proc.communicate(b"y\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode()
    assert proc.returncode == 13, text + err.decode()
    assert "the pump was written to since the change was shown" in text and "nothing was sent to it" in text
    # the first pump keeps the other programmer's dose; the second got the +10 % it was shown
    assert dose_of(cli, pumps[0]) == {"value": 3, "unit": "mg/day"} and len(applied_txids(pumps[0])) == 1
    assert dose_of(cli, pumps[1]) == {"value": 2.2, "unit": "mg/day"} and len(applied_txids(pumps[1])) == 1


# --- relative and per-target doses --------------------------------------------------------------

PER_TARGET = '''[[step]]
action = "program"
dose = "+10%"

[[step]]
action = "assert"
check = "daily_dose.value == 2.2"
'''


def test_a_relative_dose_and_each_targets_own_dose_are_applied_and_verified(start_emulator, tmp_path, cli):
    pumps = start_pumps(start_emulator, 3)  # each at 2 mg/day
    text = '[plan]\nversion = 1\nname = "ward"\n\n'
    text += f'[[target]]\nport = "{pumps[0].url}"\nserial = "WARD-000"\ndrug = "morphine"\n\n'
    text += f'[[target]]\nport = "{pumps[1].url}"\nserial = "WARD-001"\ndrug = "morphine"\ndose = "2.5 mg/day"\n\n'
    text += '[target.step.2]\ncheck = "daily_dose.value == 2.5"\n\n'
    text += f'[[target]]\nport = "{pumps[2].url}"\nserial = "WARD-002"\ndrug = "morphine"\n\n'
    text += '[target.step.1]\ndose = "-0.5 mg/day"\n\n[target.step.2]\ncheck = "daily_dose.value == 1.5"\n\n'
    plan = tmp_path / "ward.toml"
    plan.write_text(text + PER_TARGET)
    assert cli("batch", "validate", str(plan)).code == 0

    # (a dry run's assert would read the doses it did not send: the dry run is of the program alone)
    program = tmp_path / "program.toml"
    program.write_text(text.replace('[target.step.2]\ncheck = "daily_dose.value == 2.5"\n\n', "")
                       .replace('\n\n[target.step.2]\ncheck = "daily_dose.value == 1.5"\n', "\n")
                       + PER_TARGET.split("\n\n[[step]]")[0] + "\n")
    dry = cli("--json", "batch", "run", str(program), "--dry-run")
    assert dry.code == 0, dry.stdout
    first, second, third = (t["steps"][0] for t in dry.json()["targets"])
    assert first["change"]["rows"][0] == {"item": "Dose asked (+10 %)", "before": "2 mg/day", "after": "2.2 mg/day"}
    assert first["data"]["relative_dose"] == {"given": "+10%", "of": {"value": 2, "unit": "mg/day"},
                                              "dose": {"value": 2.2, "unit": "mg/day"},
                                              "exact": {"value": 2.2, "unit": "mg/day"}, "rounded": False}
    assert "Dose asked (+10 %)" not in rows_of(second) and rows_of(second)["24-hour total"][1].startswith("2.5 mg")
    assert rows_of(third)["Dose asked (-0.5 mg/day)"] == ("2 mg/day", "1.5 mg/day")
    assert all(applied_txids(e) == [] for e in pumps)

    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stdout
    # each target's own assert read its own pump back
    assert [[s["outcome"] for s in t["steps"]] for t in done.json()["targets"]] == [["confirmed"] * 2] * 3
    assert [dose_of(cli, e)["value"] for e in pumps] == [2.2, 2.5, 1.5]
    assert all(len(applied_txids(e)) == 1 for e in pumps)
    audited = [json.loads(line) for line in Path(cli.audit_path).read_text().splitlines()]
    relative = [(e["pump_serial"], e["given"], Decimal(str(e["dose"]["value"]))) for e in audited
                if e["event"] == "plan-relative-dose"]
    assert sorted(relative) == [("WARD-000", "+10%", Decimal("2.2")), ("WARD-002", "-0.5 mg/day", Decimal("1.5"))]
    # resumed: the journal knows each step ran; a relative dose is never applied twice
    again = cli("--json", "batch", "run", str(plan), "--yes")
    assert again.code == 0 and [dose_of(cli, e)["value"] for e in pumps] == [2.2, 2.5, 1.5]
    assert all(len(applied_txids(e)) == 1 for e in pumps)


def test_a_relative_dose_off_the_wires_grid_is_rounded_toward_the_dose_in_force(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    plan = write_plan(tmp_path / "third.toml", [(emu.url, "WARD-000")],
                      '[[step]]\naction = "program"\ndose = "+33.33333%"\n')
    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stdout
    (step,) = done.json()["targets"][0]["steps"]
    assert rows_of(step)["Dose asked (+33.33333 %)"] == (
        "2 mg/day", "2.666666 mg/day (2.6666666 mg/day exactly; the pump takes whole ng/day)")
    assert step["data"]["relative_dose"]["rounded"] is True
    assert Decimal(str(dose_of(cli, emu)["value"])) == Decimal("2.666666")


def test_a_relative_dose_follows_the_dose_an_earlier_step_set(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    plan = write_plan(tmp_path / "two.toml", [(emu.url, "WARD-000")],
                      '[[step]]\naction = "program"\ndose = "2.5 mg/day"\n\n'
                      '[[step]]\naction = "program"\ndose = "+10%"\n')
    dry = cli("--json", "batch", "run", str(plan), "--dry-run", "--journal", str(tmp_path / "dry.jsonl"))
    assert dry.code == 0, dry.stdout
    later = dry.json()["targets"][0]["steps"][1]
    assert later["outcome"] == "dry-run" and "change" not in later
    assert "relative to the one step 1 (program) sets, which this dry run did not send" in later["detail"]
    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stdout
    assert rows_of(done.json()["targets"][0]["steps"][1])["Dose asked (+10 %)"] == ("2.5 mg/day", "2.75 mg/day")
    assert dose_of(cli, emu) == {"value": 2.75, "unit": "mg/day"} and len(applied_txids(emu)) == 2


def test_a_relative_dose_a_pump_cannot_take_sends_nothing(start_emulator, tmp_path, cli):
    high = start_emulator(*FROZEN, "--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "1.3 mL/day",
                          "--serial", "HIGH-000")  # 13 mg/day: +55 % is 20.15 mg/day, past the hard 20
    stopped, low = start_pumps(start_emulator, 2)
    assert cli("--port", stopped.url, "program", "--stop", "--confirm-withdrawal-risk", "--yes").code == 0
    before = [applied_txids(e) for e in (high, stopped, low)]
    text = '[plan]\nversion = 1\nname = "ward"\n\n'
    for emu, serial, own in ((high, "HIGH-000", 'dose = "+55%"\n'), (stopped, "WARD-000", ""),
                             (low, "WARD-001", 'dose = "-80%"\n')):  # 0.4 mg/day: 0.04 mL/day, below the pump's
        text += f'[[target]]\nport = "{emu.url}"\nserial = "{serial}"\ndrug = "morphine"\n{own}\n'
    plan = tmp_path / "ward.toml"
    plan.write_text(text + '[[step]]\naction = "program"\ndose = "+10%"\nconfirm = ["withdrawal-risk"]\n'
                           'override_soft_limit = { STEP_PERCENT = "agreed", DAILY_MAX = "agreed" }\n')
    assert cli("batch", "validate", str(plan)).code == 0
    result = cli("--json", "batch", "run", str(plan), "--yes", "--continue-on-error")
    assert result.code == 13, result.stdout
    details = {t["serial_number"]: t["detail"] for t in result.json()["targets"]}
    assert "20.15 mg/day is above the hard limit 20 mg/day" in details["HIGH-000"]
    assert "the pump delivers nothing now, so there is nothing to be relative to" in details["WARD-000"]
    assert "0.04 mL/day" in details["WARD-001"] and "peristaltic-40" in details["WARD-001"]  # its smallest flow
    assert [applied_txids(e) for e in (high, stopped, low)] == before


# --- the double check shows the same rows ----------------------------------------------------

clinic = test_cli_orders.clinic  # a baclofen pump, two clinicians and a policy double-checking programs


def test_a_double_check_request_shows_the_rows_the_run_shows(clinic):
    emu, cli, tmp, policy = clinic  # baclofen 500 mcg/day
    plan = tmp / "plan.toml"
    plan.write_text(f'[plan]\nversion = 1\nname = "ward"\n\n[[target]]\nport = "{emu.url}"\nserial = "BAC-0001"\n'
                    'drug = "baclofen"\n\n[[step]]\naction = "program"\ndose = "+10%"\n')
    request = tmp / "run.json"
    asked = cli("--json", *test_cli_orders.as_("dr-roe", tmp, policy), "batch", "run", str(plan), "--check-request",
                str(request), "--journal", str(tmp / "dry.jsonl"))
    assert asked.code == 0, asked.stdout + asked.stderr
    (step,) = asked.json()["targets"][0]["steps"]
    (write,) = doublecheck.load(request)["request"]["writes"]
    assert write["rows"] == [[f"step 1 program: {r['item']}", r["before"], r["after"]] for r in step["change"]["rows"]]
    assert write["rows"][0] == ["step 1 program: Dose asked (+10 %)", "500 mcg/day", "550 mcg/day"]
    shown = cli(*test_cli_orders.as_("dr-poe", tmp, policy), "verify", str(request), "--yes")
    assert shown.code == 0 and "Dose asked (+10 %)" in shown.stdout and "550 mcg/day" in shown.stdout
    run = cli("--json", *test_cli_orders.as_("dr-roe", tmp, policy), "batch", "run", str(plan), "--verified-by",
              str(tmp / "run.verified.json"), "--yes")
    assert run.code == 0, run.stdout + run.stderr
    assert dose_of(cli, emu) == {"value": 550, "unit": "mcg/day"} and len(test_cli_orders.new_writes(emu)) == 1


# --- what was shown binds the first write (pure) ------------------------------------------------

def test_the_first_write_to_a_pump_must_be_the_one_shown_on_the_pump_as_read(tmp_path):
    from unittest.mock import Mock

    from test_plan_validate import load, step, target, write

    from ithcli.batch import Journal, Runner, StepResult, TargetReport
    from ithcli.errors import SafetyError

    plan = load(write(tmp_path, target("M-1"), step("program", dose="2.5 mg/day"), step("bolus", dose="0.1 mg",
                                                                                          over="1 h")))
    runner = Runner(Mock(side_effect=AssertionError("no pump here")), plan, journal=Journal(str(tmp_path / "j"), "x"),
                    jobs=1, continue_on_error=False, dry_run=False, on_update=lambda r, text: None)
    program, bolus = plan.steps
    shown = {"mode": "CONTINUOUS", "steps": [[0, 2_500_000]]}
    report = TargetReport(plan.targets[0], read_txid=7, shown={1: (shown, 7)},
                          preview=[StepResult(1, "M-1", "/dev/x", 1, "program", "dry-run")])
    runner._as_shown(report, program, dict(shown), 7)  # the write shown, on the pump as read: sent
    with pytest.raises(SafetyError, match="written to since the change was shown"):
        runner._as_shown(report, program, dict(shown), 8)
    with pytest.raises(SafetyError, match="works out as a different write than the one shown"):
        runner._as_shown(report, program, shown | {"steps": [[0, 2_600_000]]}, 7)
    report.shown[1] = (None, 7)  # shown as no write (the pump already was so): now it would be one
    with pytest.raises(SafetyError, match="no write .* was shown"):
        runner._as_shown(report, program, dict(shown), 7)
    runner._as_shown(report, bolus, {"dose_ng": 100_000}, 7)  # not worked out in the preview: checked as it runs
    report.sent = True  # a later step meets the pump its earlier steps changed: checked as it runs, as always
    runner._as_shown(report, program, shown | {"steps": [[0, 2_600_000]]}, 9)
    runner._as_shown(TargetReport(plan.targets[0], read_txid=7), program, {}, 9)  # --yes: nothing was shown
