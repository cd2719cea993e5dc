"""`ithcli program` end to end: limits, units, confirmations, two-phase writes, read-back."""
from __future__ import annotations

import json
import os

import pytest
from cli_harness import assert_one_line_error

BACLOFEN = ("--model", "peristaltic-20", "--serial", "BAC-0001", "--drug", "baclofen",
            "--concentration", "2000 mcg/mL", "--volume", "18 mL", "--flow", "0.25 mL/day")  # 500 mcg/day
MORPHINE = ("--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "0.2 mL/day")  # 2 mg/day
BUPIVACAINE = ("--drug", "bupivacaine", "--concentration", "10 mg/mL", "--flow", "1 mL/day")  # 10 mg/day
ZICONOTIDE = ("--drug", "ziconotide", "--concentration", "25 mcg/mL", "--flow", "0.1 mL/day")  # 2.5 mcg/day
FROZEN = ("--time-scale", "1e-9")  # the pump clock moves only when a test advances it




def status(cli):
    result = cli("--json", "interrogate")
    assert result.code == 0, result.stderr
    return result.json()


def applied_txids(emu):
    """TX_APPLIED events in the pump's own log: what was really applied."""
    from emulator_harness import RawClient, read_log
    from emulator_harness import status as pump_status

    from protocol import EventType

    with RawClient(emu.url, keys=emu.keys) as client:
        total = pump_status(client).event_count
        return [e.arg1 for e in read_log(client) if e.type == EventType.TX_APPLIED and e.index < total]


def unchanged(emu, cli, before):
    after = status(cli)
    assert after["daily_dose"] == before["daily_dose"]
    assert after["mode"] == before["mode"]
    assert after["last_programming"] == before["last_programming"]
    assert applied_txids(emu) == []


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_dose_change_is_prepared_committed_and_read_back(pump, transport):
    emu, cli = pump(*BACLOFEN, transport=transport)
    result = cli("--json", "program", "--dose", "550 mcg/day", "--yes")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["outcome"] == "verified" and out["verified"] is True
    assert out["before"]["daily_dose"] == {"value": 500, "unit": "mcg/day"}
    assert out["after"]["daily_dose"] == {"value": 550, "unit": "mcg/day"}
    assert out["after"]["flow_ml_per_day"] == 0.275
    assert out["change_percent"] == 10
    s = status(cli)
    assert s["daily_dose"] == {"value": 550, "unit": "mcg/day"}
    assert s["last_programming"]["txid"] == out["txid"]
    assert applied_txids(emu) == [out["txid"]]


def test_dose_accepts_the_documented_spellings(pump):
    emu, cli = pump(*MORPHINE)
    assert cli("program", "--dose", "2.5 mg/day", "--yes").code == 0
    assert cli("program", "--dose", "2.6mg/day", "--yes").code == 0
    assert status(cli)["daily_dose"] == {"value": 2.6, "unit": "mg/day"}


def test_flow_sets_the_dose_from_the_concentration(pump):
    emu, cli = pump(*BACLOFEN)
    result = cli("--json", "program", "--flow", "0.3 mL/day", "--yes", "--spasticity-origin", "spinal")
    assert result.code == 0, result.stderr
    assert result.json()["after"]["daily_dose"] == {"value": 600, "unit": "mcg/day"}


@pytest.mark.parametrize("drug_args, dose", [
    (BACLOFEN, "2001 mcg/day"),
    (MORPHINE, "20.001 mg/day"),
    (ZICONOTIDE, "19.3 mcg/day"),
])
def test_a_hard_limit_is_refused_and_nothing_changes(pump, drug_args, dose):
    emu, cli = pump(*drug_args)
    before = status(cli)
    result = cli("program", "--dose", dose, "--yes", "--override-soft-limit", "DAILY_MAX=testing",
                 "--confirm-tenfold", "--confirm-restart")
    assert_one_line_error(result, 6, "hard limit", "Nothing was sent")
    unchanged(emu, cli, before)


def test_a_soft_limit_needs_an_override_naming_it_which_is_audited(pump):
    emu, cli = pump("--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "1.4 mL/day")  # 14 mg/day
    before = status(cli)
    assert before["daily_dose"] == {"value": 14, "unit": "mg/day"}
    refused = cli("program", "--dose", "16 mg/day", "--yes")
    assert_one_line_error(refused, 6, "soft limit", "--override-soft-limit DAILY_MAX=REASON")
    assert status(cli)["daily_dose"] == before["daily_dose"]
    # a reason overrides only the limit it names; a bare one overrides nothing
    assert_one_line_error(cli("program", "--dose", "16 mg/day", "--yes", "--override-soft-limit", "palliative"),
                          2, "NAME=REASON")
    assert_one_line_error(cli("program", "--dose", "16 mg/day", "--yes", "--override-soft-limit", "STEP=palliative"),
                          6, "DAILY_MAX=REASON")
    assert status(cli)["daily_dose"] == before["daily_dose"]
    accepted = cli("program", "--dose", "16 mg/day", "--yes",
                   "--override-soft-limit", "daily-max=palliative, per Dr Roe")
    assert accepted.code == 0, accepted.stderr
    assert status(cli)["daily_dose"] == {"value": 16, "unit": "mg/day"}
    entries = [json.loads(line) for line in open(cli.audit_path)]
    overrides = [e for e in entries if e["event"] == "soft-limit-override"]
    assert [(e["limit"], e["reason"]) for e in overrides] == [("DAILY_MAX", "palliative, per Dr Roe")]
    assert overrides[-1]["operator"] == "test-operator"


@pytest.mark.parametrize("drug_args, dose, code, fragment", [
    (BACLOFEN, "0.45 mg/day", 6, "dosed in mcg/day"),  # right amount, foreign unit: refused, not converted
    (MORPHINE, "450 mcg/day", 6, "dosed in mg/day"),
    (BACLOFEN, "60 mcg/h", 2, "per-hour"),
    (BACLOFEN, "450", 2, "no unit"),
    (BACLOFEN, "450 mcg/mL", 2, "concentration unit"),
    (BACLOFEN, "450 ug/day", 2, "mcg"),
    (MORPHINE, ".5 mg/day", 2, "leading zero"),
])
def test_unit_mix_ups_are_refused(pump, drug_args, dose, code, fragment):
    emu, cli = pump(*drug_args)
    before = status(cli)
    assert_one_line_error(cli("program", "--dose", dose, "--yes"), code, fragment)
    unchanged(emu, cli, before)


def test_a_tenfold_change_needs_its_own_flag(pump):
    emu, cli = pump(*BUPIVACAINE)
    before = status(cli)
    assert_one_line_error(cli("program", "--dose", "1 mg/day", "--yes"), 6, "--confirm-tenfold")
    unchanged(emu, cli, before)
    result = cli("program", "--dose", "1 mg/day", "--yes", "--confirm-tenfold")
    assert result.code == 0, result.stderr
    assert status(cli)["daily_dose"] == {"value": 1, "unit": "mg/day"}


def test_stopping_baclofen_needs_confirmation_and_names_the_risk(pump):
    emu, cli = pump(*BACLOFEN)
    before = status(cli)
    refused = cli("program", "--stop", "--yes")
    assert_one_line_error(refused, 6, "withdrawal", "--confirm-withdrawal-risk")
    assert "life-threatening" in refused.stderr
    unchanged(emu, cli, before)
    result = cli("--json", "program", "--stop", "--yes", "--confirm-withdrawal-risk")
    assert result.code == 0, result.stderr
    assert status(cli)["mode"] == "stopped"


def test_restarting_above_the_usual_start_needs_confirmation(pump):
    emu, cli = pump(*BACLOFEN)
    assert cli("program", "--stop", "--yes", "--confirm-withdrawal-risk").code == 0
    emu.control("advance", seconds=3 * 3600)  # a short stop: longer ones need RESTART (test_sequences.py)
    refused = cli("program", "--dose", "500 mcg/day", "--yes")
    assert_one_line_error(refused, 6, "--confirm-restart", "tolerance")
    assert cli("program", "--dose", "100 mcg/day", "--yes").code == 0


def test_ziconotide_titration_is_limited_per_step_and_per_week(pump):
    emu, cli = pump(*ZICONOTIDE)  # 2.5 mcg/day
    # the label's step is hard: no override passes it
    assert_one_line_error(cli("program", "--dose", "5.0 mcg/day", "--yes", "--override-soft-limit", "STEP=t"),
                          6, "2.4 mcg/day")
    assert cli("program", "--dose", "4.5 mcg/day", "--yes").code == 0
    emu.control("advance", seconds=25 * 3600)
    assert cli("program", "--dose", "6.5 mcg/day", "--yes").code == 0
    emu.control("advance", seconds=25 * 3600)
    third = cli("program", "--dose", "8.5 mcg/day", "--yes")  # the third rise in a week: 2 is the soft count
    assert_one_line_error(third, 6, "FREQUENCY=REASON", "RISE_7D=REASON")
    assert cli("program", "--dose", "8.5 mcg/day", "--yes", "--override-soft-limit", "FREQUENCY=per Dr Roe",
               "--override-soft-limit", "RISE_7D=per Dr Roe").code == 0
    emu.control("advance", seconds=25 * 3600)
    fourth = cli("program", "--dose", "10.5 mcg/day", "--yes", "--override-soft-limit", "FREQUENCY=t",
                 "--override-soft-limit", "RISE_7D=t")
    assert_one_line_error(fourth, 6, "increase 4 within 7 days")
    emu.control("advance", seconds=8 * 86400)
    assert cli("program", "--dose", "10.5 mcg/day", "--yes").code == 0


def test_operator_declining_the_prompt_sends_nothing(pump):
    emu, cli = pump(*BACLOFEN)
    before = status(cli)
    declined = cli("program", "--dose", "550 mcg/day", input="n\n")
    assert declined.code == 9
    unchanged(emu, cli, before)
    accepted = cli("program", "--dose", "550 mcg/day", input="y\n")
    assert accepted.code == 0, accepted.stderr
    assert "VERIFIED" in accepted.stdout and "550 mcg/day" in accepted.stdout


def test_the_same_program_again_sends_nothing(pump):
    emu, cli = pump(*BACLOFEN)
    result = cli("--json", "program", "--dose", "500 mcg/day", "--yes")
    assert result.code == 0
    assert result.json()["outcome"] == "unchanged"
    assert applied_txids(emu) == []


def test_exactly_one_therapy_option(pump):
    emu, cli = pump(*BACLOFEN)
    assert cli("program", "--yes").code == 2
    assert cli("program", "--dose", "500 mcg/day", "--stop", "--yes").code == 2


# --- flex schedules ---------------------------------------------------------

def write_schedule(tmp_path, *steps):
    path = tmp_path / "schedule.toml"
    path.write_text("".join(f'[[step]]\nstart = "{s}"\ndose = "{d}"\n\n' for s, d in steps))
    return str(path)


def test_a_flex_schedule_is_applied_with_its_24_hour_total(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    sched = write_schedule(tmp_path, ("00:00", "480 mcg/day"), ("08:00", "600 mcg/day"), ("20:00", "480 mcg/day"))
    result = cli("--json", "program", "--mode", "flex", "--schedule", sched, "--yes")
    assert result.code == 0, result.stderr
    after = result.json()["after"]
    # 8 h at 480 + 12 h at 600 + 4 h at 480 = 540 mcg in 24 h
    assert after["daily_dose"] == {"value": 540, "unit": "mcg/day"}
    assert [s["start"] for s in after["steps"]] == ["00:00", "08:00", "20:00"]
    assert status(cli)["mode"] == "flex"


def test_a_flex_schedule_over_the_limit_is_refused(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    before = status(cli)
    # the per-hour misreading: 60 mcg/h is 1440 mcg/day; a step of 2400 mcg/day for 22 h breaks 2000
    sched = write_schedule(tmp_path, ("00:00", "2400 mcg/day"), ("22:00", "500 mcg/day"))
    result = cli("program", "--mode", "flex", "--schedule", sched, "--yes", "--override-soft-limit", "DAILY_MAX=t",
                 "--confirm-tenfold")
    assert_one_line_error(result, 6, "hard limit")
    unchanged(emu, cli, before)


def test_a_flex_step_in_per_hour_units_is_refused(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    sched = write_schedule(tmp_path, ("00:00", "20 mcg/h"))
    assert_one_line_error(cli("program", "--mode", "flex", "--schedule", sched, "--yes"), 2, "per-hour", "step 1")


def test_a_malformed_schedule_names_the_step_and_field(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[step]]\nstart = "00:00"\ndose = "500 mcg/day"\n[[step]]\nstart = "25:00"\ndose = "1 mcg/day"\n')
    assert_one_line_error(cli("program", "--mode", "flex", "--schedule", str(bad), "--yes"), 2, "step 2", "25:00")


# --- outcomes: mismatch, unconfirmed, reconcile --------------------------------

def test_a_read_back_mismatch_is_detected(pump):
    emu, cli = pump(*BACLOFEN)
    assert emu.control("fault", name="mismatch_on_commit")["ok"]
    result = cli("--json", "program", "--dose", "550 mcg/day", "--yes")
    assert result.code == 7, result.stderr
    out = result.json()
    assert out["outcome"] == "mismatch" and out["verified"] is False
    assert any("dose_ng_per_day" in d for d in out["differences"])


def test_a_lost_commit_reply_is_unconfirmed_then_reconciled_and_never_applied_twice(pump):
    emu, cli = pump(*BACLOFEN)
    assert emu.control("fault", name="drop_commit_reply")["ok"]
    first = cli("--json", "--timeout", "0.5", "program", "--dose", "550 mcg/day", "--yes")
    assert first.code == 8, first.stderr
    assert first.json()["outcome"] == "unconfirmed"
    assert "unconfirmed" in first.stderr.lower() or "unknown" in first.stderr.lower()
    assert len(applied_txids(emu)) == 1  # it did land, but the CLI could not know

    blocked = cli("program", "--dose", "600 mcg/day", "--yes")
    assert_one_line_error(blocked, 8, "was applied")
    assert len(applied_txids(emu)) == 1

    # the refusal above already settled it; reconcile now reports nothing pending
    rec = cli("--json", "reconcile")
    assert rec.code == 0 and rec.json()["had_unconfirmed"] is False

    again = cli("--json", "program", "--dose", "550 mcg/day", "--yes")
    assert again.code == 0 and again.json()["outcome"] == "unchanged"
    assert len(applied_txids(emu)) == 1


def test_reconcile_learns_a_lost_write_was_not_applied(pump):
    emu, cli = pump(*BACLOFEN)
    assert emu.control("fault", name="reset_on_commit")["ok"]
    first = cli("--timeout", "0.5", "program", "--dose", "550 mcg/day", "--yes")
    assert first.code == 8, first.stderr
    rec = cli("--json", "reconcile")
    assert rec.code == 0, rec.stderr
    assert rec.json()["had_unconfirmed"] is True and rec.json()["applied"] is False
    assert applied_txids(emu) == []
    assert status(cli)["daily_dose"] == {"value": 500, "unit": "mcg/day"}
    assert cli("program", "--dose", "550 mcg/day", "--yes").code == 0
    assert len(applied_txids(emu)) == 1


def test_a_pump_reset_between_prepare_and_commit_is_unconfirmed_never_resent_and_reconciled(pump):
    emu, cli = pump(*BACLOFEN)
    assert emu.control("fault", name="reset_after_prepare")["ok"]
    first = cli("--json", "program", "--dose", "550 mcg/day", "--yes")
    assert first.code == 8, first.stderr
    error = first.json()["error"]
    assert error["kind"] == "unconfirmed" and "ERROR NOT_AUTHENTICATED in clear" in error["message"]
    assert "not authenticated" in error["message"]
    assert "It was NOT re-sent" in error["message"]
    assert applied_txids(emu) == []
    # one COMMIT only: nothing was sent after the clear answer
    commits = [e for e in map(json.loads, open(cli.audit_path)) if e.get("command") == "COMMIT"]
    assert len(commits) == 1 and commits[0]["outcome"] == "unauthenticated", commits
    rec = cli("--json", "reconcile")
    assert rec.code == 0, rec.stderr
    assert rec.json()["had_unconfirmed"] is True and rec.json()["applied"] is False
    assert status(cli)["daily_dose"] == {"value": 500, "unit": "mcg/day"}
    assert cli("program", "--dose", "550 mcg/day", "--yes").code == 0
    assert len(applied_txids(emu)) == 1


def test_any_read_settles_an_unconfirmed_write(pump):
    emu, cli = pump(*BACLOFEN)
    emu.control("fault", name="drop_commit_reply")
    assert cli("--timeout", "0.5", "program", "--dose", "550 mcg/day", "--yes").code == 8
    read = cli("interrogate")
    assert read.code == 0
    assert "WAS applied" in read.stderr
    assert cli("program", "--dose", "540 mcg/day", "--yes").code == 0


# --- audit log ----------------------------------------------------------------

def test_the_audit_log_records_every_exchange_and_detects_tampering(pump):
    emu, cli = pump(*BACLOFEN)
    assert cli("program", "--dose", "550 mcg/day", "--yes").code == 0
    ok = cli("--json", "audit", "verify")
    assert ok.code == 0, ok.stderr
    assert ok.json()["ok"] is True
    entries = [json.loads(line) for line in open(cli.audit_path)]
    commands = [e.get("command") for e in entries if e["event"] == "exchange"]
    for command in ("HELLO", "INTERROGATE", "READ_PROGRAM", "PREPARE_PROGRAM", "COMMIT"):
        assert command in commands
    assert all(e["pump_serial"] == "BAC-0001" for e in entries
               if e["event"] == "exchange" and e["command"] not in ("HELLO", "AUTH"))

    lines = open(cli.audit_path).read().splitlines()
    edited = [line.replace("550000", "5500000", 1) if "550000" in line else line for line in lines]
    assert edited != lines
    open(cli.audit_path, "w").write("\n".join(edited) + "\n")
    assert_one_line_error(cli("audit", "verify"), 10, "edited")

    open(cli.audit_path, "w").write("\n".join(lines[:3] + lines[4:]) + "\n")
    assert_one_line_error(cli("audit", "verify"), 10, "removed or reordered")

    swapped = lines[:]
    swapped[2], swapped[3] = swapped[3], swapped[2]
    open(cli.audit_path, "w").write("\n".join(swapped) + "\n")
    assert_one_line_error(cli("audit", "verify"), 10, "line 3")


@pytest.mark.parametrize("damage", [b"{not json", b"\xff\xfe\x00 not UTF-8"])
def test_a_damaged_journal_of_unconfirmed_writes_stops_the_write_with_one_line(pump, damage):
    # the journal is where an unconfirmed write is remembered: unreadable, nothing may be sent
    emu, cli = pump(*BACLOFEN)
    before = status(cli)
    journal = os.path.join(cli.state_dir, "pending", f"{before['serial_number']}.json")
    os.makedirs(os.path.dirname(journal), exist_ok=True)
    with open(journal, "wb") as fh:
        fh.write(damage)
    for args in (("interrogate",), ("program", "--dose", "550 mcg/day", "--yes")):
        assert_one_line_error(cli(*args), 8, "unconfirmed writes", "is unreadable")
    assert applied_txids(emu) == []
    os.remove(journal)
    unchanged(emu, cli, before)
