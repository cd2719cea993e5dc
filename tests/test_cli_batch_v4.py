"""Batch plans take the protocol-version-4 writes like the others, end to end against emulator
processes: a refill's bridge choice, a catheter revision and its priming bolus, a clock set and
patient-bolus limits, each checked, journalled, read back and resumable; refusals send nothing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cli_harness import Cli
from test_cli_batch import start_pumps, write_plan
from test_cli_program import FROZEN, applied_txids

CONCENTRATION_CHANGE = '''[[step]]
action = "refill"
volume = "18 mL"
concentration = "20 mg/mL"
'''


@pytest.fixture
def cli(tmp_path):
    return Cli(tmp_path / "state")


def status(cli, emu) -> dict:
    return cli("--port", emu.url, "--json", "interrogate").json()


def pump_state(cli, emu) -> dict:
    """What a write would change (a refusal must leave all of it as it was)."""
    s = status(cli, emu)
    return {k: s[k] for k in ("concentration", "daily_dose", "reservoir_ml", "catheter", "ptm", "last_programming",
                              "bolus_remaining")} | {"applied": applied_txids(emu)}


def steps_of(result) -> list[dict]:
    return [s for t in result.json()["targets"] for s in t["steps"]]


def test_a_concentration_change_needs_the_bridge_choice_at_preflight_and_nothing_is_sent(start_emulator, tmp_path,
                                                                                          cli):
    pumps = start_pumps(start_emulator, 2)
    before = [pump_state(cli, e) for e in pumps]
    targets = [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)]
    plan = write_plan(tmp_path / "no-choice.toml", targets, CONCENTRATION_CHANGE + 'withdrawn = "10 mL"\n')
    assert cli("batch", "validate", str(plan)).code == 0  # whether a catheter is recorded is the pump's to say
    for extra in ((), ("--dry-run",)):
        result = cli("--json", "batch", "run", str(plan), "--yes", *extra)
        assert result.code == 13, result.stdout
        for t in result.json()["targets"]:
            assert t["outcome"] == "preflight-failed" and t["steps"] == []
            # the command line's message, every need at once, and what to write in the plan instead
            detail = t["detail"]
            assert detail.startswith("step 1 (refill): needs 3 more: ") and "(pass --bridge or --no-bridge)" in detail
            assert ('In the plan\'s step: override_soft_limit = { RESTART = "reason" }; confirm = ["fill-gap"]; '
                    "bridge = true (a bridge bolus) or bridge = false (none)") in detail
    assert [pump_state(cli, e) for e in pumps] == before


@pytest.mark.parametrize("choice", ["true", "false"])
def test_a_concentration_change_with_or_without_a_bridge_on_two_pumps(start_emulator, tmp_path, cli, choice):
    pumps = start_pumps(start_emulator, 2)
    targets = [(e.url, f"WARD-{i:03d}") for i, e in enumerate(pumps)]
    plan = write_plan(tmp_path / "bridge.toml", targets, CONCENTRATION_CHANGE + f"bridge = {choice}\n")
    dry = cli("--json", "batch", "run", str(plan), "--dry-run", "--journal", str(tmp_path / "dry.jsonl"))
    assert dry.code == 0, dry.stdout
    for step in steps_of(dry):
        assert step["outcome"] == "dry-run"
        assert step["data"]["bridge"]["chosen"] == ("bridge" if choice == "true" else "no-bridge")
    assert all(applied_txids(e) == [] for e in pumps)
    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stdout
    for emu, step in zip(pumps, steps_of(done), strict=True):
        assert step["outcome"] == "confirmed"
        s = status(cli, emu)
        assert s["concentration"] == {"value": 20, "unit": "mg/mL"} and s["daily_dose"]["value"] == 2
        bridged = Decimal(str(s["bolus_remaining"]["value"]))
        if choice == "true":  # the catheter's 0.408 mL of 10 mg/mL morphine, moved at the old rate
            assert step["data"]["bridge"]["chosen"] == "bridge" and bridged == Decimal("4.08")
        else:
            assert step["data"]["bridge"]["chosen"] == "no-bridge" and bridged == 0
            assert any(w["rule"] == "no-bridge" for w in step["data"]["warnings"])
        assert len(applied_txids(emu)) == 1
    again = cli("--json", "batch", "run", str(plan), "--yes")  # resumed: nothing is sent twice
    assert again.code == 0 and [s["outcome"] for s in steps_of(again)] == ["skipped", "skipped"]
    assert all(len(applied_txids(e)) == 1 for e in pumps)


REVISE_AND_PRIME = '''[[step]]
action = "catheter"
event = "revise"
length = "80 cm"
replaced = "15 cm"

[[step]]
action = "priming-bolus"
confirm = ["monitoring"]

[[step]]
action = "assert"
check = "catheter.primed == true"
'''


def test_a_revision_then_its_priming_bolus(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    plan = write_plan(tmp_path / "revise.toml", [(emu.url, "WARD-000")], REVISE_AND_PRIME)
    dry = cli("--json", "batch", "run", str(plan), "--dry-run", "--journal", str(tmp_path / "dry.jsonl"))
    assert dry.code == 0, dry.stdout
    revise, prime, _ = steps_of(dry)
    assert (revise["outcome"], prime["outcome"]) == ("dry-run", "dry-run")
    assert "primes what step 1 (catheter) records" in prime["detail"]
    assert applied_txids(emu) == []
    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stdout
    revise, prime, check = steps_of(done)
    assert revise["outcome"] == "confirmed" and revise["data"]["action"] == "revision"
    assert revise["data"]["after"]["catheter"]["priming_due_ml"] == 0.039  # the 15 cm segment only
    assert prime["outcome"] == "confirmed" and prime["data"]["volume_ml"] == 0.039
    assert prime["data"]["dose"] == {"value": 0.39, "unit": "mg"}  # 0.039 mL of 10 mg/mL, counted in full
    assert check["outcome"] == "confirmed"
    s = status(cli, emu)
    assert s["catheter"]["primed"] and s["catheter"]["replaced_cm"] == 15 and s["catheter"]["model"] == "STANDARD"
    assert len(applied_txids(emu)) == 2
    again = cli("--json", "batch", "run", str(plan), "--yes")
    assert again.code == 0 and [s["outcome"] for s in steps_of(again)][:2] == ["skipped", "skipped"]
    assert len(applied_txids(emu)) == 2


def test_a_priming_bolus_on_a_primed_pump_is_refused_and_sends_nothing(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    before = pump_state(cli, emu)
    plan = write_plan(tmp_path / "prime.toml", [(emu.url, "WARD-000")],
                      '[[step]]\naction = "priming-bolus"\nconfirm = ["monitoring"]\n')
    result = cli("--json", "batch", "run", str(plan), "--yes")
    assert result.code == 13
    (step,) = steps_of(result)
    assert step["outcome"] == "failed" and "nothing to prime" in step["detail"]
    assert pump_state(cli, emu) == before


def test_a_clock_set_by_days_needs_its_confirmation_in_the_plan(start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    before = pump_state(cli, emu)
    now = datetime.fromisoformat(status(cli, emu)["pump_time"].replace("Z", "+00:00"))
    to = (now + timedelta(days=2)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    step = f'[[step]]\naction = "clock-set"\nto = "{to}"\n'
    unconfirmed = write_plan(tmp_path / "clock.toml", [(emu.url, "WARD-000")], step)
    refused = cli("--json", "batch", "run", str(unconfirmed), "--yes")
    assert refused.code == 13
    (failed,) = steps_of(refused)
    assert failed["outcome"] == "failed" and 'In the plan\'s step: confirm = ["clock-step"]' in failed["detail"]
    assert pump_state(cli, emu) == before
    plan = write_plan(tmp_path / "clock-ok.toml", [(emu.url, "WARD-000")], step + 'confirm = ["clock-step"]\n\n'
                      '[[step]]\naction = "clock-set"\nconfirm = ["clock-step"]\n')  # back to this computer's
    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stdout
    forward, back = steps_of(done)
    assert forward["outcome"] == "confirmed" and forward["data"]["step_s"] == pytest.approx(2 * 86_400, abs=5)
    assert back["outcome"] == "confirmed" and back["data"]["step_s"] == pytest.approx(-2 * 86_400, abs=5)
    assert abs(status(cli, emu)["clock_skew_s"]) < 5 and len(applied_txids(emu)) == 2


PTM_ON = '''[[step]]
action = "ptm-set"
dose = "0.5 mg"
lockout = "60 min"
max_per_day = 6
duration = "10 min"
'''


def test_patient_bolus_limits_set_refused_past_the_soft_maximum_and_turned_off(start_emulator, tmp_path, cli):
    low = start_pumps(start_emulator, 1)[0]  # 2 mg/day: 2 + 6 x 0.5 = 5 mg/day at worst
    high = start_emulator(*FROZEN, "--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "1.3 mL/day",
                          "--serial", "HIGH-000")  # 13 mg/day: 16 mg/day at worst, past the soft 15
    before = pump_state(cli, high)
    targets = [(low.url, "WARD-000"), (high.url, "HIGH-000")]
    plan = write_plan(tmp_path / "ptm.toml", targets, PTM_ON + '\n[[step]]\naction = "assert"\n'
                      'check = "ptm.worst_case_daily.value <= 15"\n')
    result = cli("--json", "batch", "run", str(plan), "--yes", "--continue-on-error")
    assert result.code == 13
    on_low, on_high = result.json()["targets"]
    assert on_low["outcome"] == "ok" and status(cli, low)["ptm"]["enabled"]
    assert on_low["steps"][0]["data"]["after"]["max_per_day"] == 6
    assert on_high["outcome"] == "failed"
    assert 'In the plan\'s step: override_soft_limit = { DAILY_MAX = "reason" }' in on_high["detail"]
    assert pump_state(cli, high) == before
    off = write_plan(tmp_path / "ptm-off.toml", targets, '[[step]]\naction = "ptm-set"\noff = true\n', drug=None)
    done = cli("--json", "batch", "run", str(off), "--yes")
    assert done.code == 0, done.stdout
    assert [s["outcome"] for s in steps_of(done)] == ["confirmed", "unchanged"]
    assert not status(cli, low)["ptm"]["enabled"] and applied_txids(high) == before["applied"]


def test_the_one_question_shows_the_new_steps_and_what_it_cannot_work_out_yet(start_emulator, tmp_path, cli):
    two_hours_slow = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    emu = start_emulator(*FROZEN, "--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "0.2 mL/day",
                         "--serial", "WARD-000", "--start-time", two_hours_slow)
    plan = write_plan(tmp_path / "day.toml", [(emu.url, "WARD-000")],
                      '[[step]]\naction = "clock-set"\nconfirm = ["clock-step"]\n\n' + REVISE_AND_PRIME + "\n"
                      + PTM_ON)
    done = cli("batch", "run", str(plan), input="y\n")
    assert done.code == 0, done.stdout + done.stderr
    question = done.stdout.split("Batch test plan ")[0]  # what was shown before the question
    assert "Send 4 writes to 1 pump as shown? [y/N]" in done.stderr
    assert "1 clock-set" in question and "Pump clock" in question
    assert "2 catheter" in question and "Catheter" in question
    assert "3 priming-bolus" in question and "not worked out yet" in question
    assert "primes what step 2 (catheter) records" in question
    assert "5 ptm-set" in question and "Patient boluses" in question
    # the clock set to "this computer's time" moved on while the question waited: still the write shown
    assert len(applied_txids(emu)) == 4 and status(cli, emu)["catheter"]["primed"]


def test_writes_after_the_plans_mri_exit_are_checked_when_they_run_not_against_the_pump_still_in_mri_mode(
        start_emulator, tmp_path, cli):
    (emu,) = start_pumps(start_emulator, 1)
    entered = cli("--port", emu.url, "mri", "enter", "--field", "3T", "--confirm-withdrawal-risk", "--yes")
    assert entered.code == 0, entered.stderr
    plan = write_plan(tmp_path / "after-mri.toml", [(emu.url, "WARD-000")],
                      '[[step]]\naction = "mri-exit"\n\n[[step]]\naction = "program"\ndose = "2.2 mg/day"\n')
    dry = cli("--json", "batch", "run", str(plan), "--dry-run", "--journal", str(tmp_path / "dry.jsonl"))
    assert dry.code == 0, dry.stdout
    _, program = steps_of(dry)
    assert program["outcome"] == "dry-run" and "follows step 1 (mri-exit)" in program["detail"]
    done = cli("--json", "batch", "run", str(plan), "--yes")
    assert done.code == 0, done.stdout
    assert [s["outcome"] for s in steps_of(done)] == ["confirmed", "confirmed"]
    assert status(cli, emu)["daily_dose"] == {"value": 2.2, "unit": "mg/day"}
