"""MRI scenarios end to end, pre-scan to field to post-scan, for each kind of pump."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest
from cli_harness import Cli, assert_one_line_error, cli_env
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
    assert cli("mri", "checklist", "--export", str(tmp_path / "x.docx")).code == 2


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


# --- the scanner's field strength: a confirmation, not a warning (issue 16) ---------------------

FIELD_PROMPT = b"Scanner's static field (1.5T or 3T): "


def emptied_valve_pump(pump):
    """A valve-gated pump (MR conditional at 1.5 T only) emptied for the scan: only the field can block it."""
    emu, cli = pump(*VALVE)
    assert cli("empty", "--yes", input="").code == 0
    return emu, cli


def sent_writes(cli) -> list[str]:
    """The PREPARE_*/COMMIT exchanges in this operator's audit log: what ithcli sent to change a pump."""
    if not os.path.exists(cli.audit_path):
        return []
    entries = [json.loads(line) for line in open(cli.audit_path)]
    return [e["command"] for e in entries if e.get("event") == "exchange"
            and (e["command"].startswith("PREPARE_") or e["command"] == "COMMIT")]


def on_a_terminal(cli: Cli, *args: str, answers=(), timeout: float = 60) -> tuple[int, str, str]:
    """Run ithcli with stdin and stderr on a pseudo-terminal (someone at a terminal) and stdout
    on a pipe: each (until, keys) in `answers` types `keys` once `until` is on the terminal again.
    Returns the exit code, what the terminal showed (prompts, echoed keys, errors) and stdout."""
    master, slave = pty.openpty()
    env = cli_env({"ITHCLI_STATE_DIR": cli.state_dir, "ITHCLI_OPERATOR": cli.operator, "ITHCLI_PORT": cli.port})
    proc = subprocess.Popen([sys.executable, "-m", "ithcli", *args], stdin=slave, stderr=slave,
                            stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    os.close(slave)
    screen, seen, todo = b"", 0, list(answers)
    deadline = time.monotonic() + timeout  # a guard against a hang, never a measured time
    try:
        while time.monotonic() < deadline:
            if todo and todo[0][0] in screen[seen:]:
                seen = screen.index(todo[0][0], seen) + len(todo[0][0])
                os.write(master, todo.pop(0)[1])
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer has gone
                    chunk = b""
                if not chunk:
                    break
                screen += chunk
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"ithcli {' '.join(args)} still running; the terminal shows: {screen[-2000:]!r}")
        out = proc.stdout.read().decode(errors="replace")
        return proc.wait(10), screen.decode(errors="replace"), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        os.close(master)


def test_without_a_field_a_1_5_tesla_only_model_is_judged_at_3_tesla_and_blocks(pump):
    emu, cli = emptied_valve_pump(pump)
    check = cli("--json", "mri", "checklist", input="")
    assert check.code == 12, check.stderr
    model = lines_by_item(check)["Model and MR conditions"]
    assert model["result"] == "BLOCK"
    assert "no field strength given, so judged at 3 T" in model["detail"]
    assert "if the scan is at 1.5 T, pass --field 1.5" in model["action"]
    assert check.json()["result"] == "BLOCK" and check.json()["error"]["exit_code"] == 12
    plain = cli("mri", "checklist", input="")
    assert_one_line_error(plain, 12, "BLOCK", "judged at 3 T", "pass --field 1.5")
    at_1_5 = cli("--json", "mri", "checklist", "--field", "1.5T", input="")
    assert at_1_5.code == 0, at_1_5.stderr
    assert lines_by_item(at_1_5)["Model and MR conditions"]["result"] == "PASS"
    assert "valve-gated-20 at 1.5 T" in lines_by_item(at_1_5)["Model and MR conditions"]["detail"]


def test_mri_enter_without_a_field_on_a_1_5_tesla_only_model_sends_nothing(pump):
    emu, cli = emptied_valve_pump(pump)
    applied, sent = applied_txids(emu), sent_writes(cli)
    for args in (("mri", "enter", "--yes"), ("--json", "mri", "enter", "--yes")):
        refused = cli(*args, input="")
        assert_one_line_error(refused, 12, "MRI-safe mode refused", "judged at 3 T", "pass --field 1.5",
                              "Nothing was sent")
    assert refused.json()["error"]["exit_code"] == 12
    assert sent_writes(cli) == sent and applied_txids(emu) == applied  # nothing went to the pump
    assert status(cli)["mri_mode"] == "off"
    entered = cli("--json", "mri", "enter", "--field", "1.5T", "--yes", input="")
    assert entered.code == 0, entered.stderr
    assert entered.json()["mri_mode"] == "safe" and status(cli)["mri_mode"] == "safe"


def test_a_model_conditional_at_every_field_needs_no_field(pump):
    emu, cli = pump(*PERISTALTIC)
    check = cli("--json", "mri", "checklist", input="")
    assert check.code == 0, check.stderr
    model = lines_by_item(check)["Model and MR conditions"]
    assert model["result"] == "PASS" and "peristaltic-40 at any field (1.5 T or 3 T)" in model["detail"]
    entered = cli("--json", "mri", "enter", "--yes", "--confirm-withdrawal-risk", input="")
    assert entered.code == 0, entered.stderr
    assert status(cli)["mri_mode"] == "safe"


def test_a_bad_field_value_is_a_usage_error_before_the_pump_is_read(pump):
    emu, cli = emptied_valve_pump(pump)
    audited = len(open(cli.audit_path).read().splitlines())
    for args in (("mri", "checklist", "--field", "7T"), ("mri", "enter", "--field", "7T", "--yes")):
        assert_one_line_error(cli(*args, input=""), 2, "'7T'", "1.5T or 3T")
    assert len(open(cli.audit_path).read().splitlines()) == audited  # not even a read was made


def test_on_a_terminal_the_checklist_asks_for_the_field_and_asks_again_on_a_bad_answer(pump, tmp_path):
    emu, cli = emptied_valve_pump(pump)
    code, screen, out = on_a_terminal(cli, "mri", "checklist",
                                      answers=[(FIELD_PROMPT, b"2T\n"), (FIELD_PROMPT, b"1.5T\n")])
    assert code == 0, screen + out
    assert "valve-gated-20 is MR conditional at 1.5 T only" in screen
    assert "field '2T': give the scanner's static field, 1.5T or 3T" in screen
    assert screen.count(FIELD_PROMPT.decode()) == 2 and "Traceback" not in screen
    assert "Pre-MRI checklist" in out and "Overall: BLOCK" not in out
    snapshot = json.loads((tmp_path / "state" / "mri" / "MRI-V20.json").read_text())
    model = next(line for line in snapshot["checklist"] if line["item"] == "Model and MR conditions")
    assert model["result"] == "PASS" and "valve-gated-20 at 1.5 T" in model["detail"]
    answered = [json.loads(line) for line in open(cli.audit_path) if '"mri-field"' in line]
    assert [(e["field_tesla"], e["source"]) for e in answered] == [("1.5", "prompt")]


def test_on_a_terminal_mri_enter_asks_for_the_field_and_no_answer_sends_nothing(pump):
    emu, cli = emptied_valve_pump(pump)
    applied, sent = applied_txids(emu), sent_writes(cli)
    code, screen, out = on_a_terminal(cli, "mri", "enter", "--yes", answers=[(FIELD_PROMPT, b"\x04")])  # Ctrl-D
    assert code == 9, screen + out
    assert "ithcli: error: no field strength given: cancelled. Nothing was changed on the pump" in screen
    assert sent_writes(cli) == sent and applied_txids(emu) == applied and status(cli)["mri_mode"] == "off"
    code, screen, out = on_a_terminal(cli, "mri", "enter", answers=[(FIELD_PROMPT, b"1.5\n"), (b"[y/N]: ", b"y\n")])
    assert code == 0, screen + out
    assert "VERIFIED" in out and status(cli)["mri_mode"] == "safe"


def test_on_a_terminal_a_model_conditional_at_every_field_is_not_asked(pump):
    emu, cli = pump(*PERISTALTIC)
    code, screen, out = on_a_terminal(cli, "mri", "checklist")
    assert code == 0, screen + out
    assert FIELD_PROMPT.decode() not in screen and "Pre-MRI checklist" in out


def test_a_batch_plan_without_a_field_stops_a_1_5_tesla_only_pump_before_anything_is_sent(pump, tmp_path):
    emu, cli = emptied_valve_pump(pump)
    applied = applied_txids(emu)

    def plan(name: str, field: str) -> str:
        path = tmp_path / name
        path.write_text(f'''[plan]
version = 1
name = "{name}"

[[target]]
port = "{emu.url}"
serial = "MRI-V20"

[[step]]
action = "mri-enter"
{field}
''')
        return str(path)

    stopped = cli("--json", "batch", "run", plan("no-field.toml", ""), "--yes", input="")
    assert stopped.code == 13, stopped.stderr
    target = stopped.json()["targets"][0]
    assert target["outcome"] == "preflight-failed"
    assert "judged at 3 T" in target["detail"] and "pass --field 1.5" in target["detail"]
    assert applied_txids(emu) == applied and status(cli)["mri_mode"] == "off"
    entered = cli("--json", "batch", "run", plan("at-1.5.toml", 'field = "1.5T"'), "--yes", input="")
    assert entered.code == 0, entered.stderr
    assert status(cli)["mri_mode"] == "safe"


def test_after_emptying_a_withdrawal_risk_drug_the_checklist_still_names_its_risk(pump):
    # a valve-gated pump holding morphine, emptied for the scan: delivery stopped, the risk stays the drug's
    emu, cli = pump("--model", "valve-gated-20", "--serial", "MRI-VM", "--drug", "morphine",
                    "--concentration", "10 mg/mL", "--volume", "12 mL", "--flow", "0.2 mL/day")
    assert cli("empty", "--confirm-withdrawal-risk", "--yes").code == 0
    check = cli("--json", "mri", "checklist", "--field", "1.5T")
    assert check.code == 0, check.stderr
    drug = lines_by_item(check)["Drug and withdrawal risk"]
    assert drug["result"] == "WARN" and "no withdrawal risk listed" not in drug["detail"]
    assert "morphine: withdrawal risk; delivery is already stopped" in drug["detail"]
    assert "watch for withdrawal" in drug["action"]
    # a drug without one says so, emptied or not
    emu2, cli2 = pump(*VALVE)
    assert cli2("empty", "--yes").code == 0
    plain = lines_by_item(cli2("--json", "mri", "checklist", "--field", "1.5T"))["Drug and withdrawal risk"]
    assert plain["result"] == "PASS" and plain["detail"] == "bupivacaine: no withdrawal risk listed"


def test_verify_with_a_warn_line_is_warn_overall_as_the_checklist_is(pump):
    emu, cli = pump(*PERISTALTIC)
    assert cli("mri", "checklist").code == 0
    assert cli("mri", "enter", "--auto-exit", "1h", "--yes", "--confirm-withdrawal-risk").code == 0
    emu.control("advance", seconds=2 * HOUR)  # the automatic exit: a WARN line
    result = cli("--json", "mri", "verify")
    assert result.code == 0, result.stderr  # a WARN is no failure
    assert [line["result"] for line in result.json()["lines"]].count("WARN") >= 1
    assert result.json()["result"] == "WARN"
    human = cli("mri", "verify")
    assert human.code == 0 and "Overall: WARN" in human.stdout and "Overall: PASS" not in human.stdout
