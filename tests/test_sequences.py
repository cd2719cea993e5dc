"""Harm assembled from several allowed steps, from an interruption the pump logged, or
from time: each guard end to end (real ithcli, real ith-emulator, pump time moved
through the control socket), with the legitimate change next to it that still passes."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC

from cli_harness import assert_one_line_error, cli_env

MORPHINE_5 = ("--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "0.5 mL/day")  # 5 mg/day
MORPHINE_10 = ("--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "1 mL/day")  # 10 mg/day
BACLOFEN = ("--drug", "baclofen", "--concentration", "2000 mcg/mL", "--flow", "0.25 mL/day")  # 500 mcg/day
HOUR = 3600
DAY = 86_400


def dose(cli) -> dict:
    result = cli("--json", "interrogate")
    assert result.code == 0, result.stderr
    return result.json()["daily_dose"]


def test_escalation_by_small_steps_is_stopped_by_the_24_hour_budget(pump):
    emu, cli = pump(*MORPHINE_5)
    # each step inside the 50 % per-change limit, the sum past +50 % of the dose a day ago
    assert cli("program", "--dose", "7 mg/day", "--yes").code == 0
    soft = cli("program", "--dose", "9 mg/day", "--yes")
    assert_one_line_error(soft, 6, "rise of 80.0 %", "over 24 hours", "5 mg/day", "RISE_24H=REASON")
    assert dose(cli) == {"value": 7, "unit": "mg/day"}
    assert cli("program", "--dose", "9 mg/day", "--yes",
               "--override-soft-limit", "RISE_24H=pain crisis, Dr Roe").code == 0
    # past +100 %: refused whatever is overridden
    hard = cli("program", "--dose", "11 mg/day", "--yes", "--override-soft-limit", "RISE_24H=x",
               "--override-soft-limit", "RISE_7D=x")
    assert_one_line_error(hard, 6, "refused", "hard budget of 100 %")
    assert dose(cli) == {"value": 9, "unit": "mg/day"}
    # a week later the same step is an ordinary one
    emu.control("advance", seconds=8 * DAY)
    assert cli("program", "--dose", "11 mg/day", "--yes").code == 0
    assert dose(cli) == {"value": 11, "unit": "mg/day"}


def test_boluses_of_the_last_24_hours_count_in_the_hard_limit(pump):
    emu, cli = pump(*MORPHINE_10)  # 10 mg/day: soft 15, hard 20
    assert cli("bolus", "--dose", "4 mg", "--over", "1 h", "--yes").code == 0
    emu.control("advance", seconds=HOUR)
    second = cli("bolus", "--dose", "4 mg", "--over", "1 h", "--yes")
    assert_one_line_error(second, 6, "boluses given in the last 24 hours", "DAILY_MAX=REASON")
    assert cli("bolus", "--dose", "4 mg", "--over", "1 h", "--yes",
               "--override-soft-limit", "DAILY_MAX=breakthrough pain").code == 0
    emu.control("advance", seconds=HOUR)
    third = cli("--json", "bolus", "--dose", "4 mg", "--over", "1 h", "--yes",
                "--override-soft-limit", "DAILY_MAX=x")
    assert third.code == 6
    assert "22 mg" in third.json()["error"]["message"] and "hard limit" in third.json()["error"]["message"]
    # a day after the first two the same bolus is within the limits again
    emu.control("advance", seconds=DAY)
    assert cli("bolus", "--dose", "4 mg", "--over", "1 h", "--yes").code == 0


def test_a_refill_after_days_empty_resumes_at_the_starting_dose_unless_restart_is_named(pump):
    emu, cli = pump("--volume", "1 mL", *MORPHINE_10)  # empty after a day
    emu.control("advance", seconds=DAY + int(4.5 * DAY))
    refill = ("refill", "--volume", "20 mL", "--concentration", "10 mg/mL", "--yes")
    refused = cli("--json", *refill)
    assert refused.code == 6
    message = refused.json()["error"]["message"]
    assert "interrupted for 4.5 days" in message and "the reservoir ran empty" in message
    assert "--dose '0.5 mg/day'" in message and "RESTART=REASON" in message
    status = cli("--json", "interrogate").json()
    assert status["reservoir_ml"] == 0
    # the dose ithcli offers goes through, and the interruption is shown
    ok = cli("--json", *refill, "--dose", "0.5 mg/day")
    assert ok.code == 0, ok.stderr
    gap = ok.json()["history"]["interruptions"][-1]
    assert gap["causes"] == ["the reservoir ran empty"] and gap["at_least_s"] >= 4 * DAY
    assert dose(cli) == {"value": 0.5, "unit": "mg/day"}
    # and the next rise is measured against the restart dose
    assert_one_line_error(cli("program", "--dose", "10 mg/day", "--yes", "--confirm-tenfold"), 6,
                          "against the restart dose 0.5 mg/day")


def test_a_short_empty_spell_resumes_at_the_full_dose(pump):
    emu, cli = pump("--volume", "1 mL", *MORPHINE_10)
    emu.control("advance", seconds=DAY + 6 * HOUR)
    ok = cli("refill", "--volume", "20 mL", "--concentration", "10 mg/mL", "--yes")
    assert ok.code == 0, ok.stderr
    assert dose(cli) == {"value": 10, "unit": "mg/day"}


def test_far_less_withdrawn_than_expected_is_a_dry_run_of_unknown_length(pump):
    emu, cli = pump(*MORPHINE_10)  # the pump believes it holds 18 mL
    refill = ("refill", "--volume", "20 mL", "--concentration", "10 mg/mL", "--withdrawn", "2 mL", "--yes")
    refused = cli(*refill)
    # both things still needed, in one refusal
    assert_one_line_error(refused, 6, "needs 2 more", "--confirm-fill-gap", "RESTART=REASON", "run dry")
    assert cli("--json", "interrogate").json()["reservoir_ml"] == 18
    ok = cli(*refill, "--confirm-fill-gap", "--override-soft-limit", "RESTART=patient seen, no withdrawal signs")
    assert ok.code == 0, ok.stderr


def test_baclofen_rises_follow_the_recorded_spasticity_origin(pump):
    emu, cli = pump(*BACLOFEN)
    strict = cli("program", "--dose", "600 mcg/day", "--yes")  # +20 %: over cerebral's 15 %
    assert_one_line_error(strict, 6, "spasticity origin not recorded", "RISE_24H=REASON")
    assert cli("program", "--dose", "600 mcg/day", "--yes", "--spasticity-origin", "spinal").code == 0
    emu.control("advance", seconds=25 * HOUR)
    # recorded for this pump: the next change uses it without being told again
    assert cli("program", "--dose", "700 mcg/day", "--yes").code == 0
    audit = [json.loads(line) for line in open(cli.audit_path)]
    assert [e["origin"] for e in audit if e["event"] == "spasticity-origin"] == ["spinal"]


def test_the_reservoir_running_empty_before_the_next_visit_needs_a_confirmation(pump):
    emu, cli = pump(*MORPHINE_10)  # 18 mL at 1 mL/day: empty in 18 days
    status = cli("--json", "interrogate").json()
    pump_day = status["pump_time"][:10]
    from datetime import date, timedelta

    far = (date.fromisoformat(pump_day) + timedelta(days=30)).isoformat()
    # at 12 mg/day the low alarm comes 13.3 days from now and the reservoir is empty after 15: a visit
    # on the 15th day is after the alarm and before empty whatever the time of day now (the 14th was not,
    # after 16:00 UTC: the alarm then fell on the visit day itself)
    near = (date.fromisoformat(pump_day) + timedelta(days=15)).isoformat()
    refused = cli("program", "--dose", "11 mg/day", "--yes", "--next-visit", far)
    assert_one_line_error(refused, 6, "runs empty", "--confirm-empty-before-visit")
    assert cli("program", "--dose", "11 mg/day", "--yes", "--next-visit", far,
               "--confirm-empty-before-visit").code == 0
    warned = cli("--json", "program", "--dose", "12 mg/day", "--yes", "--next-visit", near)
    assert warned.code == 0, warned.stderr
    assert [w["rule"] for w in warned.json()["warnings"]] == ["alarm-before-visit"]


def test_ctrl_c_after_commit_went_out_is_unconfirmed_not_interrupted(pump, tmp_path):
    emu, cli = pump(*MORPHINE_10)
    emu.control("fault", name="drop_commit_reply")
    proc = subprocess.Popen([sys.executable, "-m", "ithcli", "--port", emu.url, "--audit-log", cli.audit_path,
                             "--timeout", "30", "program", "--dose", "11 mg/day", "--yes"],
                            env=cli_env({"ITHCLI_STATE_DIR": cli.state_dir, "ITHCLI_OPERATOR": "test-operator"}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30  # a guard against a hang, not a measured time
    while True:  # until the journal says COMMIT is on its way, and the pump has applied it (its
        try:     # drop_commit_reply fault used up): ithcli is waiting for a reply that never comes
            sent = any(json.loads(line)["event"] == "commit-sent" for line in open(cli.audit_path))
        except FileNotFoundError:
            sent = False
        if sent and emu.control("faults")["armed"] == {}:
            break
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 8, (out, err)
    assert "unconfirmed" in err.lower() or "interrupted after COMMIT" in err
    assert "reconcile" in err and "Traceback" not in err
    # the next write is refused until the pump is asked; the pump did apply it
    again = cli("program", "--dose", "12 mg/day", "--yes")
    assert again.code == 8 and "was applied" in again.stderr
    assert dose(cli) == {"value": 11, "unit": "mg/day"}


def test_a_log_that_wrapped_makes_a_rise_need_the_history_override_and_a_cut_does_not(start_emulator, tmp_path):
    from cli_harness import Cli

    state = tmp_path / "pump.json"
    emu = start_emulator("--time-scale", "1e-9", *MORPHINE_5, transport="tcp", state_path=state)
    emu.control("advance", seconds=DAY)
    key_file = emu.key_file
    emu.stop()
    # the pump's flash log has wrapped: its oldest event is now a day old, not its first ever
    data = json.loads(state.read_text())
    log = data["pump"]["log"]
    shift = 20_000
    log["events"] = [[row[0] + shift, *row[1:]] for row in log["events"]]
    log["count"] += shift
    state.write_text(json.dumps(data))
    emu = start_emulator("--time-scale", "1e-9", transport="tcp", state_path=state, key_file=key_file)
    cli = Cli(tmp_path / "state", port=emu.url)
    rise = cli("program", "--dose", "6 mg/day", "--yes")
    assert_one_line_error(rise, 6, "does not reach back over the last 7 days", "HISTORY=REASON")
    assert dose(cli) == {"value": 5, "unit": "mg/day"}
    assert cli("program", "--dose", "6 mg/day", "--yes", "--override-soft-limit",
               "HISTORY=chart shows 5 mg/day for a month").code == 0
    assert cli("program", "--dose", "5.5 mg/day", "--yes").code == 0  # a cut needs no history


def test_next_visit_is_compared_on_the_calendar_when_the_pump_clock_runs_ahead(pump):
    from datetime import datetime, timedelta

    emu, cli = pump(*MORPHINE_10)  # 18 mL at 1 mL/day (11 mg/day: 1.1 mL/day)
    emu.control("advance", seconds=2 * DAY)  # the pump's clock now runs two days ahead of this computer's
    status = cli("--json", "interrogate").json()
    assert status["pump_clock"]["warning"] and "ahead" in status["pump_clock"]["warning"]
    # on the pump's clock the reservoir empties 18 days on, on the calendar 16: a visit in 17 days is too late
    visit = (datetime.now(UTC) + timedelta(days=17)).date().isoformat()
    late = cli("program", "--dose", "10.5 mg/day", "--yes", "--next-visit", visit)
    assert_one_line_error(late, 6, "runs empty", "--confirm-empty-before-visit")
    early = (datetime.now(UTC) + timedelta(days=12)).date().isoformat()
    assert cli("program", "--dose", "10.5 mg/day", "--yes", "--next-visit", early).code == 0


def test_a_bolus_too_fast_for_the_mechanism_is_refused_before_sending_with_the_shortest_duration(pump):
    emu, cli = pump(*MORPHINE_10)  # 1 mL/day; the peristaltic pump's top flow is 24 mL/day
    fast = cli("bolus", "--dose", "4 mg", "--over", "10 min", "--yes")  # 0.4 mL in 10 min: 57.6 mL/day
    assert_one_line_error(fast, 6, "4 mg at 10 mg/mL is 0.4 mL", "delivers at most 24 mL/day",
                          "give --over 26 min or longer")
    assert cli("bolus", "--dose", "4 mg", "--over", "26 min", "--yes").code == 0


def test_a_stall_that_recovered_by_itself_after_a_day_and_more_is_flagged_on_the_next_change(pump):
    emu, cli = pump(*MORPHINE_10, "--stall-recovery", str(24 * HOUR))
    emu.control("field", tesla=3)  # in the scanner for 2 h: the motor stalls
    emu.control("advance", seconds=2 * HOUR)
    emu.control("field", tesla=0)  # out of it: the motor restarts by itself 24 h later
    emu.control("advance", seconds=25 * HOUR)
    result = cli("--json", "program", "--dose", "11 mg/day", "--yes")
    assert result.code == 0, result.stderr
    warned = [w for w in result.json()["warnings"] if w["rule"] == "resumed-after-interruption"]
    assert warned and "motor stall" in warned[0]["message"] and "watch for overdose" in warned[0]["message"]


def test_a_flex_schedule_on_a_pump_whose_clock_is_off_warns_that_its_steps_move(pump, tmp_path):
    emu, cli = pump(*MORPHINE_10)
    schedule = tmp_path / "flex.toml"
    schedule.write_text('[[step]]\nstart = "00:00"\ndose = "10 mg/day"\n\n'
                        '[[step]]\nstart = "08:00"\ndose = "11 mg/day"\n')
    in_step = cli("--json", "program", "--mode", "flex", "--schedule", str(schedule), "--yes")
    assert in_step.code == 0, in_step.stderr
    assert "flex-on-skewed-clock" not in {w["rule"] for w in in_step.json()["warnings"]}
    emu.control("advance", seconds=3 * HOUR)  # the pump's clock now runs 3 h ahead of this computer's
    schedule.write_text('[[step]]\nstart = "00:00"\ndose = "10 mg/day"\n\n'
                        '[[step]]\nstart = "09:00"\ndose = "11 mg/day"\n')
    skewed = cli("--json", "program", "--mode", "flex", "--schedule", str(schedule), "--yes")
    assert skewed.code == 0, skewed.stderr
    warned = [w for w in skewed.json()["warnings"] if w["rule"] == "flex-on-skewed-clock"]
    assert warned and "3 h" in warned[0]["message"] and "earlier" in warned[0]["message"]
