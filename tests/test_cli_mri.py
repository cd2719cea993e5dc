"""MRI scenarios end to end, pre-scan to field to post-scan, for each kind of pump."""
from __future__ import annotations

import json

import pytest

from cli_harness import Cli, assert_one_line_error
from test_cli_program import FROZEN, applied_txids, status

PERISTALTIC = ("--model", "peristaltic-40", "--serial", "MRI-P40", "--drug", "morphine",
               "--concentration", "10 mg/mL", "--volume", "20 mL", "--flow", "0.2 mL/day")
BACLOFEN = ("--model", "peristaltic-20", "--serial", "MRI-BAC", "--drug", "baclofen",
            "--concentration", "2000 mcg/mL", "--volume", "18 mL", "--flow", "0.25 mL/day")
VALVE = ("--model", "valve-gated-20", "--serial", "MRI-V20", "--drug", "bupivacaine",
         "--concentration", "10 mg/mL", "--volume", "12 mL", "--flow", "0.2 mL/day")
HOUR = 3600


@pytest.fixture
def pump(start_emulator, tmp_path):
    def start(*args):
        emu = start_emulator(*FROZEN, *args, "--stall-recovery", str(2 * HOUR))
        return emu, Cli(tmp_path / "state", port=emu.url)

    return start


def scan(emu, tesla=3.0, minutes=30):
    assert emu.control("field", tesla=tesla)["ok"]
    emu.control("advance", seconds=minutes * 60)
    assert emu.control("field", tesla=0)["ok"]


def lines_by_item(result):
    return {line["item"]: line for line in result.json()["lines"]}


def test_peristaltic_happy_path(pump, tmp_path):
    emu, cli = pump(*PERISTALTIC)
    check = cli("--json", "mri", "checklist", "--field", "3T")
    assert check.code == 0, check.stderr
    items = lines_by_item(check)
    assert items["Model and MR conditions"]["result"] == "PASS"
    assert items["Drug and withdrawal risk"]["result"] == "WARN"  # morphine: opioid withdrawal
    assert items["Reservoir"]["result"] == "PASS"
    entered = cli("--json", "mri", "enter", "--auto-exit", "4h", "--field", "3T", "--yes",
                  "--confirm-withdrawal-risk")
    assert entered.code == 0, entered.stderr
    assert entered.json()["mri_mode"] == "safe"
    s = status(cli)
    assert s["mri_mode"] == "safe" and s["current_rate_ml_per_day"] == 0
    scan(emu)
    assert status(cli)["reservoir_ml"] == s["reservoir_ml"]  # nothing delivered, no stall
    left = cli("--json", "mri", "exit", "--yes")
    assert left.code == 0, left.stderr
    assert left.json()["snapshot_compared"] is True and left.json()["differences"] == []
    verified = cli("--json", "mri", "verify")
    assert verified.code == 0, verified.stderr
    assert verified.json()["result"] == "PASS"
    assert lines_by_item(verified)["Motor"]["result"] == "PASS"


def test_a_forgotten_exit_ends_by_itself_and_is_reported(pump):
    emu, cli = pump(*PERISTALTIC)
    assert cli("mri", "checklist").code == 0
    assert cli("mri", "enter", "--auto-exit", "1h", "--yes", "--confirm-withdrawal-risk").code == 0
    emu.control("advance", seconds=2 * HOUR)
    assert status(cli)["mri_mode"] == "off"
    result = cli("--json", "mri", "verify")
    assert result.code == 0, result.stderr
    assert lines_by_item(result)["Exit"]["result"] == "WARN"
    log = cli("--json", "log", "--type", "mri_safe_exited").json()["events"]
    assert log and "automatic timer" in log[-1]["description"]


def test_a_scan_without_mri_safe_mode_is_caught_by_verify(pump):
    emu, cli = pump(*PERISTALTIC)
    assert cli("mri", "checklist").code == 0
    scan(emu, tesla=1.5, minutes=60)
    early = cli("--json", "mri", "verify")
    assert early.code == 12
    assert lines_by_item(early)["Motor"]["result"] == "FAIL"
    assert "no stall recovery" in early.stderr
    emu.control("advance", seconds=3 * HOUR)
    later = cli("--json", "mri", "verify")
    assert later.code == 0, later.stderr
    assert lines_by_item(later)["Motor"]["result"] == "WARN"
    assert "recovered" in lines_by_item(later)["Motor"]["detail"]


def test_a_valve_gated_pump_holding_drug_blocks_until_emptied(pump):
    emu, cli = pump(*VALVE)
    check = cli("--json", "mri", "checklist", "--field", "1.5T")
    assert check.code == 12
    assert lines_by_item(check)["Reservoir"]["result"] == "BLOCK"
    before = status(cli)
    refused = cli("mri", "enter", "--yes")
    assert_one_line_error(refused, 12, "empty the reservoir")
    assert status(cli)["mri_mode"] == "off" and applied_txids(emu) == []
    assert status(cli)["reservoir_ml"] == before["reservoir_ml"]
    assert cli("empty", "--withdrawn", "12 mL", "--yes").code == 0
    assert cli("mri", "checklist", "--field", "1.5T").code == 0
    assert cli("mri", "enter", "--field", "1.5T", "--yes").code == 0
    scan(emu, tesla=1.5)
    assert cli("mri", "exit", "--yes").code == 0
    result = cli("--json", "mri", "verify")
    assert result.code == 0, result.stderr
    assert lines_by_item(result)["Valve-gated follow-up"]["result"] == "WARN"


def test_a_valve_gated_pump_at_3_tesla_is_blocked(pump):
    emu, cli = pump(*VALVE)
    assert cli("empty", "--yes").code == 0
    check = cli("--json", "mri", "checklist", "--field", "3T")
    assert check.code == 12
    assert lines_by_item(check)["Model and MR conditions"]["result"] == "BLOCK"


def test_a_valve_gated_pump_scanned_full_reports_the_uncontrolled_bolus(pump):
    emu, cli = pump(*VALVE)
    cli("mri", "checklist")
    scan(emu, tesla=1.5)
    result = cli("--json", "mri", "verify")
    assert result.code == 12
    assert lines_by_item(result)["Uncontrolled bolus"]["result"] == "FAIL"


def test_a_program_changed_around_the_scan_fails_verify(pump):
    emu, cli = pump(*PERISTALTIC)
    assert cli("mri", "checklist").code == 0
    assert cli("mri", "enter", "--yes", "--confirm-withdrawal-risk").code == 0
    assert cli("mri", "exit", "--yes").code == 0
    assert cli("program", "--dose", "2.5 mg/day", "--yes").code == 0
    result = cli("--json", "mri", "verify")
    assert result.code == 12
    assert lines_by_item(result)["Program"]["result"] == "FAIL"


def test_baclofen_needs_the_clinicians_approval_to_enter(pump):
    emu, cli = pump(*BACLOFEN)
    refused = cli("mri", "enter", "--yes")
    assert_one_line_error(refused, 6, "withdrawal risk", "--confirm-withdrawal-risk")
    assert status(cli)["mri_mode"] == "off"


def test_checklist_exports_for_the_chart(pump, tmp_path):
    emu, cli = pump(*PERISTALTIC)
    for suffix, marker in ((".html", "<html"), (".svg", "<svg"), (".txt", "Pre-MRI checklist")):
        path = tmp_path / f"checklist{suffix}"
        assert cli("mri", "checklist", "--export", str(path)).code == 0
        text = path.read_text()
        assert marker in text and "MRI-P40" in text
    assert cli("mri", "checklist", "--export", str(tmp_path / "x.pdf")).code == 2


def test_verify_without_a_snapshot_says_what_to_do(pump):
    emu, cli = pump(*PERISTALTIC)
    assert_one_line_error(cli("mri", "verify"), 2, "mri checklist")


def test_empty_reports_before_and_after_read_back_from_the_pump(pump):
    emu, cli = pump(*VALVE)
    result = cli("--json", "empty", "--withdrawn", "11.5 mL", "--yes")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["command"] == "empty" and out["outcome"] == "verified"
    assert out["before"] == {"reservoir_ml": 12, "mode": "continuous"}
    assert out["after"] == {"reservoir_ml": 0, "mode": "stopped"}
    assert out["withdrawn_ml"] == 11.5 and out["txid"] in applied_txids(emu)
    assert status(cli)["reservoir_ml"] == 0


def test_emptying_a_pump_with_a_withdrawal_risk_drug_needs_the_flag_and_is_audited(pump):
    emu, cli = pump("--time-scale", "1e-9")  # the default pump: morphine, an opioid withdrawal risk
    refused = cli("empty", "--yes")
    assert_one_line_error(refused, 6, "--confirm-withdrawal-risk")
    assert applied_txids(emu) == [] and status(cli)["reservoir_ml"] > 0
    assert cli("empty", "--confirm-withdrawal-risk", "--yes").code == 0
    assert status(cli)["reservoir_ml"] == 0 and status(cli)["mode"] == "stopped"
    flags = [json.loads(line) for line in open(cli.audit_path)]
    assert any(e.get("event") == "confirmation-flags" and "--confirm-withdrawal-risk" in e.get("flags", [])
               for e in flags), flags[-5:]
