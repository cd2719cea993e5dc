"""Rough edges of issue 18 seen in use: a refill (or an emptied reservoir) while a bolus runs
is refused by ithcli before anything is sent, as bolus and catheter are; and a verified
catheter or priming write shows when the pump recorded the catheter."""
from __future__ import annotations

from datetime import datetime

from cli_harness import assert_one_line_error
from test_cli_catheter import MORPHINE_1ML, pump_state
from test_cli_program import applied_txids, status


def _bolus_running(emu, cli) -> None:
    started = cli("bolus", "--dose", "0.5 mg", "--over", "30 min", "--yes")
    assert started.code == 0, started.stderr
    assert pump_state(emu)["bolus_remaining_ng"] > 0


def test_a_refill_while_a_bolus_runs_is_refused_before_sending(pump):
    emu, cli = pump(*MORPHINE_1ML)
    _bolus_running(emu, cli)
    applied, before = applied_txids(emu), pump_state(emu)
    result = cli("refill", "--volume", "35 mL", "--concentration", "10 mg/mL", "--yes")
    assert_one_line_error(result, 6, "a bolus is running", "mg left", "refill after it finishes",
                          "Nothing was sent")
    # a concentration change refused the same way, before the bridge choice is asked for
    changing = cli("--json", "refill", "--volume", "35 mL", "--concentration", "20 mg/mL", "--bridge", "--yes")
    assert changing.code == 6 and [r["rule"] for r in changing.json()["refused"]] == ["bolus-running"]
    assert applied_txids(emu) == applied
    after = pump_state(emu)
    assert after["reservoir_nl"] == before["reservoir_nl"] and after["concentration_ng_per_ml"] == 10_000_000


def test_empty_while_a_bolus_runs_is_refused_before_the_withdrawal_confirmation(pump):
    emu, cli = pump(*MORPHINE_1ML)
    _bolus_running(emu, cli)
    applied = applied_txids(emu)
    for args in ((), ("--confirm-withdrawal-risk",)):
        result = cli("empty", *args, "--yes")
        assert_one_line_error(result, 6, "a bolus is running", "record the reservoir emptied after it finishes")
    assert applied_txids(emu) == applied
    assert pump_state(emu)["mode"] == "CONTINUOUS"


def test_refill_goes_through_once_the_bolus_has_finished(pump):
    emu, cli = pump(*MORPHINE_1ML)
    _bolus_running(emu, cli)
    emu.control("advance", seconds=3600)
    result = cli("refill", "--volume", "35 mL", "--concentration", "10 mg/mL", "--yes")
    assert result.code == 0, result.stderr


def test_catheter_and_priming_results_show_when_the_pump_recorded_the_catheter(pump):
    emu, cli = pump(*MORPHINE_1ML)
    revised = cli("--json", "catheter", "revise", "--length", "80 cm", "--replaced", "15 cm", "--yes")
    assert revised.code == 0, revised.stderr
    recorded = status(cli)["catheter"]["recorded_at"]
    assert recorded is not None
    assert same_second(revised.json()["after"]["catheter"]["recorded_at"], recorded)
    primed = cli("--json", "bolus", "--priming", "--confirm-monitoring", "--yes")
    assert primed.code == 0, primed.stderr
    out = primed.json()
    assert same_second(out["catheter"]["recorded_at"], recorded)  # the record the priming was worked out from
    assert same_second(out["after"]["catheter"]["recorded_at"], recorded) and out["after"]["catheter"]["primed"]
    emu.control("advance", seconds=3600)  # the priming bolus ends
    corrected = cli("--json", "catheter", "correct", "--length", "82 cm", "--yes")
    assert corrected.code == 0, corrected.stderr
    assert same_second(corrected.json()["after"]["catheter"]["recorded_at"], status(cli)["catheter"]["recorded_at"])


def same_second(a: str, b: str) -> bool:
    """Two calendar times of one pump stamp: each session moves it by the skew it measured, in whole
    seconds, so two sessions can differ by one."""
    def ts(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    return abs(ts(a) - ts(b)) <= 1
