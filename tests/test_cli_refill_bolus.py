"""`ithcli refill` and `ithcli bolus` end to end."""
from __future__ import annotations

from datetime import datetime

from cli_harness import assert_one_line_error
from test_cli_program import BACLOFEN, applied_txids, status


def test_refill_over_capacity_is_refused_and_nothing_changes(pump):
    emu, cli = pump(*BACLOFEN)  # a 20 mL pump
    before = status(cli)
    result = cli("refill", "--volume", "40 mL", "--concentration", "2000 mcg/mL", "--yes")
    assert_one_line_error(result, 6, "exceeds", "capacity of 20 mL")
    assert status(cli)["reservoir_ml"] == before["reservoir_ml"]
    assert applied_txids(emu) == []


def test_refill_with_a_new_concentration_keeps_the_dose_and_shows_the_alarm_date(pump):
    emu, cli = pump(*BACLOFEN)  # 500 mcg/day at 2000 mcg/mL = 0.25 mL/day
    # the catheter holds 2000 mcg/mL: a bridge keeps 500 mcg/day while it clears (test_cli_catheter.py)
    result = cli("--json", "refill", "--volume", "20 mL", "--concentration", "1000 mcg/mL",
                 "--withdrawn", "17.5 mL", "--bridge", "--yes")
    assert result.code == 0, result.stderr
    out = result.json()
    after = out["after"]
    assert after["daily_dose"] == {"value": 500, "unit": "mcg/day"}
    assert after["concentration"] == {"value": 1000, "unit": "mcg/mL"}
    assert after["flow_ml_per_day"] == 0.5
    assert after["reservoir_ml"] == 20
    s = status(cli)
    # (20 - 2) mL at 0.5 mL/day: 36 days
    days = (datetime.fromisoformat(s["projected_low_reservoir_date"].replace("Z", "+00:00"))
            - datetime.fromisoformat(s["pump_time"].replace("Z", "+00:00"))).days
    assert days == 36
    assert after["projected_low_reservoir_date"] == s["projected_low_reservoir_date"]
    assert out["warnings"] == []


def test_a_withdrawn_volume_far_from_the_expected_one_needs_confirmation_before_anything_is_sent(pump):
    emu, cli = pump(*BACLOFEN)  # expects 18 mL left
    more = ("refill", "--volume", "20 mL", "--concentration", "2000 mcg/mL", "--withdrawn", "19.5 mL", "--yes")
    assert_one_line_error(cli(*more), 6, "pocket fill", "--confirm-fill-gap")
    assert applied_txids(emu) == []
    result = cli("--json", *more, "--confirm-fill-gap")
    assert result.code == 0, result.stderr
    warnings = result.json()["warnings"]
    assert any(w["rule"] == "withdrawn-gap" and "pocket fill" in w["message"] for w in warnings)
    # within the 1 mL a 20 mL pump allows (it now expects the 20 mL just filled): no question asked
    assert cli("refill", "--volume", "20 mL", "--concentration", "2000 mcg/mL", "--withdrawn", "19.5 mL",
               "--yes").code == 0
    # more withdrawn than the reservoir can hold is an entry error, refused here rather than by the pump
    assert_one_line_error(cli("refill", "--volume", "20 mL", "--concentration", "2000 mcg/mL", "--withdrawn",
                              "20.5 mL", "--yes", "--confirm-fill-gap"), 6, "capacity")


def test_a_concentration_not_allowed_for_the_drug_is_refused(pump):
    emu, cli = pump(*BACLOFEN)
    assert_one_line_error(cli("refill", "--volume", "20 mL", "--concentration", "1500 mcg/mL", "--yes"),
                          6, "not an allowed baclofen concentration")
    assert_one_line_error(cli("refill", "--volume", "20 mL", "--concentration", "2 mg/mL", "--yes"),
                          6, "mcg/mL")
    assert applied_txids(emu) == []


def test_a_drug_change_needs_a_dose_in_the_new_drugs_unit(pump):
    emu, cli = pump(*BACLOFEN)
    assert cli("refill", "--volume", "20 mL", "--concentration", "10 mg/mL", "--drug", "morphine",
               "--yes").code == 2
    assert_one_line_error(cli("refill", "--volume", "20 mL", "--concentration", "10 mg/mL", "--drug", "morphine",
                              "--dose", "500 mcg/day", "--yes"), 6, "dosed in mg/day")
    ok = cli("--json", "refill", "--volume", "20 mL", "--concentration", "10 mg/mL", "--drug", "morphine",
             "--dose", "0.5 mg/day", "--bridge", "--yes")
    assert ok.code == 0, ok.stderr
    assert status(cli)["drug"] == "morphine"
    assert status(cli)["daily_dose"] == {"value": 0.5, "unit": "mg/day"}


def test_a_bolus_runs_and_a_second_is_refused_while_it_runs(pump):
    emu, cli = pump(*BACLOFEN)
    result = cli("--json", "bolus", "--dose", "50 mcg", "--over", "30 min", "--yes")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["dose"] == {"value": 50, "unit": "mcg"} and out["volume_ml"] == 0.025
    before = status(cli)
    assert before["bolus_remaining"]["value"] > 0
    second = cli("bolus", "--dose", "50 mcg", "--over", "30 min", "--yes")
    assert_one_line_error(second, 6, "already running")
    assert len(applied_txids(emu)) == 1
    emu.control("advance", seconds=3600)
    assert status(cli)["bolus_remaining"]["value"] == 0


def test_a_bolus_in_the_wrong_unit_or_over_the_limit_is_refused(pump):
    emu, cli = pump(*BACLOFEN)
    assert_one_line_error(cli("bolus", "--dose", "0.05 mg", "--over", "1 min", "--yes"), 6, "mcg")
    assert_one_line_error(cli("bolus", "--dose", "1600 mcg", "--over", "1 min", "--yes",
                              "--override-soft-limit", "DAILY_MAX=t"), 6, "hard limit")
    assert_one_line_error(cli("bolus", "--dose", "50 mcg", "--over", "10 s", "--yes"), 2, "1 min to 24 h")
    assert applied_txids(emu) == []


def test_each_write_command_offers_only_the_confirmations_that_can_apply_to_it():
    from cli_harness import run_cli

    from ithcli.limits import COMMAND_CONFIRMS, CONFIRM_FLAGS

    offered = {}
    for command in ("program", "refill", "bolus", "ptm set", "empty", "mri enter", "clock set"):
        shown = run_cli(*command.split(), "--help")
        assert shown.code == 0, shown.stderr
        offered[command] = {flag for flag in CONFIRM_FLAGS if flag in shown.stdout}
    assert offered["bolus"] == {"--confirm-monitoring"}  # a priming bolus; a bolus never stops a drug
    assert offered["program"] == {"--confirm-tenfold", "--confirm-withdrawal-risk", "--confirm-restart",
                                  "--confirm-empty-before-visit"}
    assert offered["ptm set"] == set()
    for command, flags in offered.items():  # the help says what the checks' table says, and no more
        assert flags == set(COMMAND_CONFIRMS["ptm" if command == "ptm set" else command]), command
    assert "withdrawal" not in run_cli("bolus", "--help").stdout
    # every confirmation is offered somewhere
    assert set(CONFIRM_FLAGS) == set().union(*offered.values())
    # one that cannot apply is no option of the command: a usage error, nothing read or sent
    refused = run_cli("bolus", "--dose", "50mcg", "--over", "10min", "--confirm-withdrawal-risk")
    assert refused.code == 2 and "--confirm-withdrawal-risk" in refused.stderr
