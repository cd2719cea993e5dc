"""The pure core of the sequence checks: the history read from a pump's log and the
limits judged on it (no processes; the end-to-end cases are in test_sequences.py)."""
from __future__ import annotations

import pytest

from ithcli import druglib, limits
from ithcli.errors import SafetyError, UsageError
from ithcli.history import DAY, HOUR, History
from protocol import Alarm, EventType, Priority, bodies

LIB = druglib.load()
MORPHINE = LIB.drugs["MORPHINE"]
BACLOFEN = LIB.drugs["BACLOFEN"]
ZICONOTIDE = LIB.drugs["ZICONOTIDE"]
MG = 1_000_000  # ng
NOW = 100 * DAY


def ev(index, time, kind, arg1=0, arg2=0) -> bodies.Event:
    return bodies.Event(index=index, time=time, type=kind, priority=Priority.NONE, arg1=arg1, arg2=arg2)


def log(*rows, first_index=0):
    return [ev(first_index + i, *row) for i, row in enumerate(rows)]


def test_the_dose_at_a_window_start_comes_from_the_changes_after_it():
    h = History.from_log(log((NOW - 3 * DAY, EventType.PROGRAM_CHANGED, 5 * MG, 7 * MG),
                             (NOW - 2 * HOUR, EventType.PROGRAM_CHANGED, 7 * MG, 9 * MG)),
                         now=NOW, dose_now=9 * MG, complete=True)
    assert h.dose_at(NOW - 4 * DAY) == 5 * MG
    assert h.dose_at(NOW - DAY) == 7 * MG
    assert h.baseline(NOW - DAY) == 7 * MG
    assert h.increases_since(NOW - 7 * DAY) == 2


def test_small_steps_add_up_against_the_24_hour_budget():
    h = History.from_log(log((NOW - 2 * HOUR, EventType.PROGRAM_CHANGED, 5 * MG, 7 * MG),
                             (NOW - HOUR, EventType.PROGRAM_CHANGED, 7 * MG, 9 * MG)),
                         now=NOW, dose_now=9 * MG, complete=True)
    found = limits.check_escalation(MORPHINE, h, new=11 * MG)  # +120 % on 5 mg/day in 24 h: past hard 100 %
    assert [(f.level, f.rule) for f in found] == [("refuse", "rise-24hours"), ("soft", "rise-7days")]
    # the same dose a day after the steps passes the 24-hour budget (the 7-day one is soft)
    later = History.from_log(log((NOW - 50 * HOUR, EventType.PROGRAM_CHANGED, 5 * MG, 7 * MG),
                                 (NOW - 49 * HOUR, EventType.PROGRAM_CHANGED, 7 * MG, 9 * MG)),
                             now=NOW, dose_now=9 * MG, complete=True)
    assert [f.override for f in limits.check_escalation(MORPHINE, later, new=11 * MG)] == ["RISE_7D"]
    assert limits.check_escalation(MORPHINE, later, new=10 * MG) == []


def test_a_log_that_does_not_reach_back_makes_the_history_unknown_not_harmless():
    wrapped = History.from_log(log((NOW - 3 * DAY, EventType.SESSION_OPENED, 2), first_index=9000),
                               now=NOW, dose_now=5 * MG, complete=False)
    assert wrapped.covers(NOW - DAY) and not wrapped.covers(NOW - 7 * DAY)
    found = limits.check_escalation(MORPHINE, wrapped, new=6 * MG)
    assert [f.override for f in found] == ["HISTORY"]
    assert "7 days" in found[0].message
    # a log that never wrapped holds the pump's whole life
    whole = History.from_log(log((NOW - 3 * DAY, EventType.POWER_ON)), now=NOW, dose_now=5 * MG, complete=True)
    assert limits.check_escalation(MORPHINE, whole, new=6 * MG) == []


def test_an_empty_reservoir_is_an_interruption_from_when_to_when_and_why():
    h = History.from_log(log((NOW - 5 * DAY, EventType.RESERVOIR_EMPTY),
                             (NOW - 5 * DAY, EventType.DELIVERY_STOPPED, int(Alarm.EMPTY_RESERVOIR))),
                         now=NOW, dose_now=10 * MG, complete=True)
    gap = h.ongoing()
    assert gap is not None and gap.start == NOW - 5 * DAY and gap.at_least(NOW) == 5 * DAY
    assert gap.causes == ("the reservoir ran empty",)
    found = limits.check_restart(MORPHINE, h, new=10 * MG)
    assert [f.override for f in found] == ["RESTART"]
    assert "0.5 mg/day" in found[0].message and "5.0 days" in found[0].message
    assert [f.level for f in limits.check_restart(MORPHINE, h, new=MG // 2)] == ["warn"]


def test_a_short_interruption_needs_nothing_and_a_resumed_one_sets_the_baseline():
    short = History.from_log(log((NOW - 10 * HOUR, EventType.DELIVERY_STOPPED, int(Alarm.MOTOR_STALL))),
                             now=NOW, dose_now=10 * MG, complete=True)
    assert limits.check_restart(MORPHINE, short, new=10 * MG) == []
    resumed = History.from_log(log((NOW - 5 * DAY, EventType.DELIVERY_STOPPED, int(Alarm.EMPTY_RESERVOIR)),
                                   (NOW - 10 * HOUR, EventType.PROGRAM_CHANGED, 10 * MG, MG // 2),
                                   (NOW - 10 * HOUR, EventType.DELIVERY_RESUMED)),
                               now=NOW, dose_now=MG // 2, complete=True)
    assert resumed.ongoing() is None
    assert resumed.baseline(NOW - DAY) == MG // 2  # the restart dose, not the 10 mg/day before it
    found = limits.check_escalation(MORPHINE, resumed, new=2 * MG)
    assert found and found[0].level == "refuse" and "restart dose" in found[0].message


def test_a_stop_by_programming_is_an_interruption_too():
    h = History.from_log(log((NOW - 3 * DAY, EventType.PROGRAM_CHANGED, 500_000, 0)),
                         now=NOW, dose_now=0, complete=True)
    found = limits.check_change(BACLOFEN, current=0, new=500_000, mode="CONTINUOUS", history=h)
    rules = {f.rule: f for f in found}
    assert "restart-after-interruption" in rules and "restart" not in rules  # one question, not two
    assert "withdrawal" in rules and rules["withdrawal"].level == "warn"  # baclofen's risk shown alongside


def test_boluses_of_the_last_24_hours_count_and_a_stopped_one_counts_what_it_gave():
    h = History.from_log(log((NOW - 30 * HOUR, EventType.BOLUS_STARTED, 4 * MG, 600),
                             (NOW - 2 * HOUR, EventType.BOLUS_STARTED, 4 * MG, 600),
                             (NOW - HOUR, EventType.BOLUS_STARTED, 4 * MG, 600),
                             (NOW - HOUR + 60, EventType.BOLUS_FINISHED, 3 * MG)),
                         now=NOW, dose_now=10 * MG, complete=True)
    assert h.boluses_since(NOW - DAY, 10 * MG) == 5 * MG
    found = limits.check_bolus(MORPHINE, dose=4 * MG, daily_total=10 * MG, volume_nl=400_000,
                               reservoir_ul=18_000, boluses_24h=h.boluses_since(NOW - DAY, 10 * MG))
    assert [f.override for f in found] == ["DAILY_MAX"]  # 19 mg: over soft 15, under hard 20
    assert [f.level for f in limits.check_bolus(MORPHINE, dose=6 * MG, daily_total=10 * MG, volume_nl=600_000,
                                                reservoir_ul=18_000, boluses_24h=5 * MG)] == ["refuse"]


def test_ziconotide_label_limits_are_hard_and_count_rises_in_a_week():
    h = History.from_log(log((NOW - 3 * DAY, EventType.PROGRAM_CHANGED, 2_400, 4_800),
                             (NOW - 2 * DAY, EventType.PROGRAM_CHANGED, 4_800, 7_200),
                             (NOW - DAY - HOUR, EventType.PROGRAM_CHANGED, 7_200, 9_600)),
                         now=NOW, dose_now=9_600, complete=True)
    one_step = limits.check_change(ZICONOTIDE, current=9_600, new=19_200, mode="CONTINUOUS", history=h)
    assert {f.rule for f in one_step if f.level == "refuse"} >= {"step-size", "increase-frequency"}
    fewer = History.from_log([], now=NOW, dose_now=9_600, complete=True)
    assert limits.check_change(ZICONOTIDE, current=9_600, new=12_000, mode="CONTINUOUS", history=fewer) == []


def test_baclofen_budget_follows_the_spasticity_origin_and_is_strict_when_unknown():
    h = History.from_log([], now=NOW, dose_now=500_000, complete=True)
    unknown = limits.check_escalation(BACLOFEN, h, new=600_000)
    assert [f.override for f in unknown] == ["RISE_24H"] and "cerebral" in unknown[0].message
    assert limits.check_escalation(BACLOFEN, h, new=600_000, origin="spinal") == []
    assert [f.level for f in limits.check_escalation(BACLOFEN, h, new=600_000, origin="cerebral")] == ["soft"]


def test_every_missing_override_and_confirmation_is_listed_at_once():
    findings = [limits.Finding("soft", "rise-24hours", "a rise", override="RISE_24H"),
                limits.Finding("confirm", "tenfold", "ten times", "--confirm-tenfold"),
                limits.Finding("soft", "soft-max", "over the soft max", override="DAILY_MAX")]
    with pytest.raises(SafetyError) as refused:
        limits.settle(findings, overrides={"RISE_24H": "per Dr Roe"})
    assert refused.value.details["needed"] == ["--confirm-tenfold", "--override-soft-limit DAILY_MAX=REASON"]
    shown = limits.settle(findings, overrides={"RISE_24H": "a", "DAILY_MAX": "b"}, confirmed={"--confirm-tenfold"})
    assert {(f.override, f.reason) for f in shown if f.level == "soft"} == {("RISE_24H", "a"), ("DAILY_MAX", "b")}


@pytest.mark.parametrize("given, fragment", [
    (["per Dr Roe"], "NAME=REASON"),
    (["STEPS=x"], "not a soft limit"),
    (["STEP="], "NAME=REASON"),
    (["STEP=a", "step=b"], "twice"),
])
def test_overrides_must_name_a_known_limit_once_with_a_reason(given, fragment):
    with pytest.raises(UsageError, match=fragment):
        limits.parse_overrides(given)


def test_override_names_are_read_in_any_case_and_with_dashes():
    assert limits.parse_overrides(["rise-24h=per Dr Roe", "Daily_Max = a b"]) == {
        "RISE_24H": "per Dr Roe", "DAILY_MAX": "a b"}


def test_a_long_interruption_that_ended_at_full_dose_is_flagged_on_the_next_change():
    stalled = History.from_log(log((NOW - 3 * DAY, EventType.DELIVERY_STOPPED, int(Alarm.MOTOR_STALL)),
                                   (NOW - DAY, EventType.DELIVERY_RESUMED)),
                               now=NOW, dose_now=10 * MG, complete=True)
    found = limits.check_restart(MORPHINE, stalled, new=11 * MG)
    assert [(f.level, f.rule) for f in found] == [("warn", "resumed-after-interruption")]
    assert "10 mg/day after 2.0 days" in found[0].message and "motor stall" in found[0].message
    short = History.from_log(log((NOW - 30 * HOUR, EventType.DELIVERY_STOPPED, int(Alarm.MOTOR_STALL)),
                                 (NOW - 20 * HOUR, EventType.DELIVERY_RESUMED)),
                             now=NOW, dose_now=10 * MG, complete=True)
    assert limits.check_restart(MORPHINE, short, new=11 * MG) == []
