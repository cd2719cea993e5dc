"""`ithcli ptm` end to end: patient-bolus limits set by a verified write within the drug
library, activations (the emulator's control op "activate") granted and refused by the
lockout and the daily count, shown by interrogate, log, monitor and report; the worst case
(the program plus every allowed activation) refused past the hard limit, for a limit
change and for a program raised with patient boluses on; every refusal changes nothing."""
from __future__ import annotations

import json

from cli_harness import assert_one_line_error
from test_cli_program import BACLOFEN, MORPHINE, applied_txids, status

SET = ("ptm", "set", "--dose", "0.2 mg", "--lockout", "60min", "--max-per-day", "2", "--duration", "10min")
HIGH_MORPHINE = ("--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "1.8 mL/day")  # 18 mg/day


def test_limits_are_set_verified_and_activations_granted_and_refused_by_lockout_and_daily_count(pump):
    emu, cli = pump(*MORPHINE)  # 2 mg/day
    result = cli("--json", *SET, "--yes")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["outcome"] == "verified" and out["command"] == "ptm"
    assert out["after"]["enabled"] is True and out["after"]["dose"] == {"value": 0.2, "unit": "mg"}
    assert out["after"]["worst_case_daily"] == {"value": 2.4, "unit": "mg/day"}  # 2 + 2 x 0.2
    s = status(cli)["ptm"]
    assert (s["lockout_s"], s["duration_s"], s["max_per_day"]) == (3600, 600, 2)

    outcomes = [emu.control("activate")]  # granted
    outcomes.append(emu.control("activate"))  # within the lockout (and while the first runs)
    emu.control("advance", seconds=3660)
    outcomes.append(emu.control("activate"))  # granted: the second of the day
    emu.control("advance", seconds=3660)
    outcomes.append(emu.control("activate"))  # refused: two already in 24 h
    assert [o["outcome"] for o in outcomes] == ["granted", "refused", "granted", "refused"]
    assert outcomes[1]["reason"] in ("LOCKOUT", "BOLUS_RUNNING") and outcomes[3]["reason"] == "DAILY_MAX"

    s = status(cli)
    assert (s["ptm"]["granted_24h"], s["ptm"]["refused_24h"]) == (2, 2)
    assert s["ptm"]["last_granted_at"] is not None
    human = cli("interrogate")
    assert "Patient boluses" in human.stdout and "2 granted, 2 refused in the last 24 h" in human.stdout

    log = cli("--json", "log", "--type", "ptm_granted", "--type", "ptm_refused").json()["events"]
    assert [e["type"] for e in log] == ["ptm_granted", "ptm_refused", "ptm_granted", "ptm_refused"]
    assert log[0]["description"] == "patient bolus granted: 0.2 mg over 10 min"
    assert log[3]["description"] == "patient bolus refused: daily max"

    reading = cli("--json", "monitor", "--count", "1").stdout.splitlines()[0]
    assert json.loads(reading)["ptm"]["granted_24h"] == 2
    assert "patient boluses 2 granted, 2 refused (24 h)" in cli("monitor", "--count", "1").stdout
    report = cli("--json", "report")
    assert report.code == 0, report.stderr
    data = report.json()
    assert [c["command"] for c in data["changes"]] == ["ptm"]
    assert data["changes"][0]["request"]["max_per_day"] == 2
    assert [e["type"] for e in data["pump_clock_and_patient_log"]].count("ptm_granted") == 2
    assert data["status"]["ptm"]["refused_24h"] == 2
    text = cli("report").stdout
    assert "patient bolus refused: daily max" in text and "Patient boluses" in text


def test_granted_patient_boluses_count_in_the_24_hour_total_of_a_later_bolus(pump):
    emu, cli = pump(*MORPHINE)
    assert cli(*SET, "--yes").code == 0
    assert emu.control("activate")["outcome"] == "granted"
    emu.control("advance", seconds=700)
    refused = cli("--json", "bolus", "--dose", "17.9 mg", "--over", "1 h", "--yes",
                  "--override-soft-limit", "DAILY_MAX=test")  # 2 + 0.2 + 17.9 > 20 mg/day
    assert refused.code == 6 and "0.2 mg of boluses" in refused.stderr


def test_a_limit_change_is_refused_when_the_worst_case_breaks_the_hard_limit_and_nothing_changes(pump):
    emu, cli = pump(*HIGH_MORPHINE)  # 18 mg/day; hard 20, soft 15
    before = status(cli)["ptm"]
    worst = cli(*SET[:2], "--dose", "0.5 mg", "--lockout", "60min", "--max-per-day", "6", "--duration", "10min",
                "--yes", "--override-soft-limit", "DAILY_MAX=test")
    assert_one_line_error(worst, 6, "worst case a day", "21 mg", "hard limit")
    assert applied_txids(emu) == [] and status(cli)["ptm"] == before
    soft = cli(*SET, "--yes")  # 18 + 2 x 0.2 = 18.4: past the soft maximum only
    assert_one_line_error(soft, 6, "--override-soft-limit DAILY_MAX=REASON")
    assert applied_txids(emu) == []
    ok = cli("--json", *SET, "--yes", "--override-soft-limit", "DAILY_MAX=breakthrough pain, seen by Dr Roe")
    assert ok.code == 0, ok.stderr
    assert [w["override"] for w in ok.json()["warnings"] if w["level"] == "soft"] == ["DAILY_MAX"]


def test_a_program_raised_with_patient_boluses_on_counts_their_worst_case(pump):
    emu, cli = pump(*HIGH_MORPHINE)
    assert cli(*SET, "--yes", "--override-soft-limit", "DAILY_MAX=t").code == 0
    applied = applied_txids(emu)
    # 19.8 mg/day alone is within the hard 20; with 2 x 0.2 mg on top it is not
    raised = cli("program", "--dose", "19.8 mg/day", "--yes", "--override-soft-limit", "DAILY_MAX=t")
    assert_one_line_error(raised, 6, "worst case a day", "20.2 mg/day", "hard limit")
    assert applied_txids(emu) == applied and status(cli)["daily_dose"] == {"value": 18, "unit": "mg/day"}
    # a cut is never refused for it
    assert cli("program", "--dose", "17 mg/day", "--yes", "--override-soft-limit", "DAILY_MAX=t").code == 0
    # a refill that changes the drug is refused while they are on: the dose was set for morphine
    swap = cli("refill", "--volume", "20 mL", "--concentration", "10 mg/mL", "--drug", "hydromorphone",
               "--dose", "0.5 mg/day", "--yes")
    assert_one_line_error(swap, 6, "ptm set --off")
    off = cli("--json", "ptm", "set", "--off", "--yes")
    assert off.code == 0, off.stderr
    assert off.json()["after"]["enabled"] is False


def test_a_drug_without_patient_boluses_and_values_outside_the_library_are_refused(pump):
    emu, cli = pump(*BACLOFEN)
    assert_one_line_error(cli("ptm", "set", "--dose", "20 mcg", "--lockout", "60min", "--max-per-day", "2",
                              "--duration", "10min", "--yes"), 6, "does not allow patient-activated boluses")
    assert applied_txids(emu) == []
    emu, cli = pump(*MORPHINE)
    wide = cli("ptm", "set", "--dose", "0.6 mg", "--lockout", "30min", "--max-per-day", "7", "--duration", "10min",
               "--yes")
    assert_one_line_error(wide, 6, "0.5 mg the drug library allows", "60 min", "the 6 the drug library allows")
    assert_one_line_error(cli("ptm", "set", "--dose", "200 mcg", "--lockout", "60min", "--max-per-day", "2",
                              "--duration", "10min", "--yes"), 6, "mg")
    assert_one_line_error(cli("ptm", "set", "--dose", "0.2 mg", "--lockout", "60min", "--max-per-day", "2",
                              "--duration", "2h", "--yes"), 6, "shorter than the duration")
    assert cli("ptm", "set", "--dose", "0.2 mg", "--yes").code == 2  # all four, or --off
    assert cli("ptm", "set", "--off", "--dose", "0.2 mg", "--yes").code == 2
    assert cli("ptm", "set", "--off", "--yes").code == 0  # already off: nothing sent
    assert applied_txids(emu) == []
    shown = cli("--json", "ptm", "show").json()
    assert shown["library"]["max_per_day"] == 6 and shown["ptm"]["enabled"] is False
