"""What can be known before sending is refused before sending (issue 19): the value each
refusal names works, and the pump never sees the request (no PREPARE in the audit log).

Each case here reached the pump before and came back as its raw INVALID_STATE or
OUT_OF_RANGE (nL/day, epoch seconds); the pure checks' arithmetic is tested at the end.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from cli_harness import assert_one_line_error
from hypothesis import given
from hypothesis import strategies as st
from test_cli_mri import sent_writes
from test_cli_program import BACLOFEN, MORPHINE, status

from ithcli import limits
from ithcli.druglib import load
from protocol.models import MODELS_BY_NAME
from protocol.therapy import rate_for_dose

HOUR = 3600
P20 = MODELS_BY_NAME["peristaltic-20"]


def test_the_readmes_bolus_example_is_refused_before_sending_naming_the_shortest_duration(pump):
    emu, cli = pump(*BACLOFEN)  # the README's pump: baclofen 2000 mcg/mL at 0.25 mL/day on a peristaltic-20
    fast = cli("bolus", "--dose", "50mcg", "--over", "1min", "--yes")
    assert_one_line_error(fast, 6, "50 mcg at 2000 mcg/mL is 0.025 mL", "over 1 min that runs at 36 mL/day",
                          "delivers at most 24 mL/day (23.75 mL/day beside the program's 0.25 mL/day)",
                          "give --over 2 min or longer", "Nothing was sent")
    assert "nL" not in fast.stderr
    assert sent_writes(cli) == []
    # the duration it names works
    done = cli("--json", "bolus", "--dose", "50mcg", "--over", "2 min", "--yes")
    assert done.code == 0, done.stderr
    assert done.json()["dose"] == {"value": 50, "unit": "mcg"}


def test_a_bolus_too_large_for_any_duration_says_the_most_a_day_can_move(pump):
    emu, cli = pump(*BACLOFEN, "--volume", "20 mL")
    big = cli("bolus", "--dose", "49000 mcg", "--over", "24h", "--yes")  # 24.5 mL: past the 24 mL/day mechanism
    assert_one_line_error(big, 6, "even over 24 h it is too fast", "give at most 47500 mcg (23.75 mL) over 24 h")
    assert sent_writes(cli) == []


def test_a_dose_outside_the_models_flow_range_names_the_smallest_dose_that_works(pump):
    emu, cli = pump(*BACLOFEN)
    low = cli("program", "--dose", "50 mcg/day", "--yes")
    assert_one_line_error(low, 6, "50 mcg/day at 2000 mcg/mL is 0.025 mL/day",
                          "below the peristaltic-20's smallest flow of 0.048 mL/day",
                          "give at least 96 mcg/day (its smallest flow at 2000 mcg/mL)")
    assert sent_writes(cli) == []
    smallest = cli("--json", "program", "--dose", "96 mcg/day", "--confirm-withdrawal-risk", "--yes")
    assert smallest.code == 0, smallest.stderr  # a cut of baclofen by more than half: confirmed
    assert smallest.json()["after"]["flow_ml_per_day"] == 0.048


def test_a_dose_above_the_top_flow_names_the_largest_dose_at_the_concentration(pump):
    emu, cli = pump(*MORPHINE)  # morphine 10 mg/mL: 24 mL/day would be 240 mg/day
    high = cli("program", "--dose", "250 mg/day", "--yes")
    assert_one_line_error(high, 6, "250 mg/day at 10 mg/mL is 25 mL/day", "above the peristaltic-40's top flow "
                          "of 24 mL/day", "give at most 240 mg/day (its top flow at 10 mg/mL)")
    assert sent_writes(cli) == []


def test_a_dose_of_zero_points_at_stop(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    zero = cli("program", "--dose", "0 mcg/day", "--yes")
    assert_one_line_error(zero, 6, "a dose of 0 mcg/day", "to stop delivery use --stop")
    assert "flow" not in zero.stderr
    schedule = tmp_path / "night-off.toml"
    schedule.write_text('[[step]]\nstart = "00:00"\ndose = "480 mcg/day"\n\n'
                        '[[step]]\nstart = "22:00"\ndose = "0 mcg/day"\n')
    flex = cli("program", "--mode", "flex", "--schedule", str(schedule), "--yes")
    assert_one_line_error(flex, 6, "step 22:00: a dose of 0 mcg/day", "every step of a flex schedule delivers",
                          "to stop delivery use --stop")
    assert sent_writes(cli) == []
    stop = cli("--json", "program", "--stop", "--confirm-withdrawal-risk", "--yes")
    assert stop.code == 0, stop.stderr
    assert stop.json()["after"]["mode"] == "stopped"


def test_in_mri_safe_mode_only_what_the_pump_takes_there_is_sent(pump):
    emu, cli = pump(*BACLOFEN)
    assert cli("mri", "enter", "--confirm-withdrawal-risk", "--yes").code == 0
    assert status(cli)["mri_auto_exit_at"]
    before = len(sent_writes(cli))
    refused = {
        "change the program": ("program", "--dose", "550 mcg/day"),
        "give the bolus": ("bolus", "--dose", "20 mcg", "--over", "10 min"),
        "refill": ("refill", "--volume", "19 mL", "--concentration", "2000 mcg/mL"),
        "record the catheter": ("catheter", "correct", "--length", "70 cm"),
        "record the reservoir emptied": ("empty", "--confirm-withdrawal-risk"),
    }
    for what, args in refused.items():
        result = cli(*args, "--yes")
        assert_one_line_error(result, 6, "the pump is in MRI-safe mode", f"{what} after ithcli mri exit")
        assert re.search(r"automatic exit at \d{4}-\d\d-\d\d", result.stderr)  # a date, never epoch seconds
        assert not re.search(r"\b\d{10}\b", result.stderr)
    again = cli("mri", "enter", "--confirm-withdrawal-risk", "--yes")
    assert_one_line_error(again, 6, "already in MRI-safe mode (automatic exit at ", "ithcli mri exit and enter again")
    assert not re.search(r"\b\d{10}\b", again.stderr)
    assert len(sent_writes(cli)) == before
    # the pump takes a clock set and the patient record in MRI-safe mode: those are sent
    two_hours_on = (datetime.now(UTC) + timedelta(hours=2)).isoformat(timespec="seconds")
    assert cli("clock", "set", "--to", two_hours_on, "--yes").code == 0
    assert cli("patient", "set", "--id", "MRN-1", "--yes").code == 0
    assert sent_writes(cli)[before:] == ["PREPARE_CLOCK", "COMMIT", "PREPARE_PATIENT", "COMMIT"]
    assert cli("mri", "exit", "--yes").code == 0
    not_in = cli("mri", "exit", "--yes")
    assert_one_line_error(not_in, 6, "not in MRI-safe mode", "nothing to exit")


def test_patient_boluses_in_mri_safe_mode_and_a_dose_of_zero_are_refused_before_sending(pump):
    emu, cli = pump(*MORPHINE)
    zero = cli("ptm", "set", "--dose", "0 mg", "--lockout", "60min", "--max-per-day", "4", "--duration", "10min",
               "--yes")
    assert_one_line_error(zero, 6, "a dose of 0 mg per activation", "to turn patient boluses off use --off")
    assert sent_writes(cli) == []
    assert cli("ptm", "set", "--dose", "0.2 mg", "--lockout", "60min", "--max-per-day", "4", "--duration",
               "10min", "--yes").code == 0
    assert cli("mri", "enter", "--confirm-withdrawal-risk", "--yes").code == 0
    before = len(sent_writes(cli))
    assert_one_line_error(cli("ptm", "set", "--off", "--yes"), 6, "MRI-safe mode",
                          "set patient boluses after ithcli mri exit")
    assert len(sent_writes(cli)) == before


def test_a_correction_shorter_than_the_revised_segment_names_the_shortest_length(pump):
    emu, cli = pump(*BACLOFEN)
    assert cli("catheter", "revise", "--length", "80 cm", "--replaced", "10 cm", "--yes").code == 0
    before = len(sent_writes(cli))
    short = cli("catheter", "correct", "--length", "5 cm", "--yes")
    assert_one_line_error(short, 6, "a correction to 5 cm is shorter than the 10 cm segment",
                          "give --length 10 cm or longer")
    assert len(sent_writes(cli)) == before
    assert cli("catheter", "correct", "--length", "10 cm", "--yes").code == 0


def test_a_pump_at_end_of_service_takes_no_change_and_ithcli_says_so_before_sending(pump):
    emu, cli = pump(*MORPHINE, "--battery-days", "1")
    emu.control("advance", seconds=2 * 24 * HOUR)
    assert status(cli)["battery"]["state"] == "eos"
    result = cli("program", "--dose", "0.5 mg/day", "--yes")
    assert_one_line_error(result, 6, "the battery is at end of service", "replace the pump")
    assert_one_line_error(cli("clock", "set", "--yes"), 6, "end of service")
    assert sent_writes(cli) == []


# --- the checks' arithmetic, pure ----------------------------------------------------------

LIBRARY = load()


@given(conc=st.sampled_from(sorted({c for e in LIBRARY.drugs.values() for c in e.concentrations_ng_per_ml})))
def test_the_dose_named_at_each_edge_of_the_flow_range_is_the_exact_edge_and_works(conc):
    entry = next(e for e in LIBRARY.drugs.values() if conc in e.concentrations_ng_per_ml)
    low, high = P20.min_flow_nl_per_day, P20.max_flow_nl_per_day
    [below] = limits.check_flow(P20, [rate_for_dose(1, conc)], "CONTINUOUS", doses=[1], entry=entry,
                                concentration_ng_per_ml=conc)
    smallest = _named(below.message, "give at least ")
    assert (smallest - 1) * 1_000_000 < low * conc <= smallest * 1_000_000  # the edge, rounded up to the ng
    assert limits.check_flow(P20, [rate_for_dose(smallest, conc)], "CONTINUOUS") == []  # and it works
    huge = 2 * high * conc // 1_000_000  # twice the top flow's dose
    [above] = limits.check_flow(P20, [rate_for_dose(huge, conc)], "CONTINUOUS", doses=[huge], entry=entry,
                                concentration_ng_per_ml=conc)
    largest = _named(above.message, "give at most ")
    assert largest * 1_000_000 <= high * conc < (largest + 1) * 1_000_000  # the edge, rounded down
    assert limits.check_flow(P20, [rate_for_dose(largest, conc)], "CONTINUOUS") == []


def _named(message: str, after: str) -> int:
    from protocol import Quantity

    return Quantity.parse(message.split(after, 1)[1].split(" (", 1)[0], "dose_rate").to_base()


@given(volume_nl=st.integers(1, 30_000_000), program=st.integers(0, 23_999_000), seconds=st.integers(60, 86_400))
def test_the_shortest_bolus_named_passes_and_a_minute_less_does_not(volume_nl, program, seconds):
    found = limits.check_bolus_rate(P20, volume_nl=volume_nl, seconds=seconds, program_max_rate_nl_per_day=program)
    if not found:
        return
    shortest = limits.shortest_bolus_s(P20, volume_nl=volume_nl, program_max_rate_nl_per_day=program)
    if shortest is None:
        assert "even over 24 h" in found[0].message or "no bolus fits" in found[0].message
        return
    assert limits.check_bolus_rate(P20, volume_nl=volume_nl, seconds=shortest,
                                   program_max_rate_nl_per_day=program) == []
    if shortest > 60:  # a minute less is too fast (the whole-minute rounding is never more than needed)
        assert limits.check_bolus_rate(P20, volume_nl=volume_nl, seconds=shortest - 60,
                                       program_max_rate_nl_per_day=program)
    assert f"give --over {limits.findings.span(shortest)} or longer" in found[0].message


@pytest.mark.parametrize(("seconds", "text"), [(90, "90 s"), (600, "10 min"), (3600, "60 min"),
                                               (7200, "120 min"), (4560, "76 min"), (36_000, "10 h")])
def test_durations_are_said_as_the_options_take_them(seconds, text):
    assert limits.findings.span(seconds) == text
