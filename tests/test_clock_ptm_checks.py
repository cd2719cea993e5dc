"""The clock and patient-bolus checks and write kinds, pure (end to end: test_cli_clock.py,
test_cli_ptm.py): ithcli/limits/clock.py, ithcli/limits/ptm.py, write_kinds.Clock and Ptm."""
from __future__ import annotations

import dataclasses

import pytest
from test_write_kinds import STATUS, committed, echo

import protocol
from ithcli import druglib
from ithcli import write_kinds as kinds
from ithcli.clock import parse_when, set_step, step_text
from ithcli.errors import UsageError
from ithcli.events import describe_event
from ithcli.limits import CLOCK_STEP_CONFIRM_S, CONFIRM_FLAGS, check_clock_set, check_ptm_limits, check_ptm_with_program
from protocol import bodies
from protocol.ptm import PTM_OFF, worst_case_daily_ng

LIB = druglib.load()
MORPHINE, BACLOFEN = LIB.for_code("MORPHINE"), LIB.for_code("BACLOFEN")
T = 1_800_000_000  # 2027-01-15
MG = 1_000_000


def ptm(dose_ng=200_000, duration_s=600, lockout_s=3600, max_per_day=4) -> bodies.PtmLimits:
    return bodies.PtmLimits(1, dose_ng, duration_s, lockout_s, max_per_day)


def rules(findings) -> list[tuple[str, str]]:
    return [(f.level, f.rule) for f in findings]


# --- the clock ---------------------------------------------------------------------------------

def test_a_step_over_a_day_needs_its_confirmation_flag_and_a_day_exactly_does_not():
    assert "--confirm-clock-step" in CONFIRM_FLAGS
    assert rules(check_clock_set(new_time=T, step_s=CLOCK_STEP_CONFIRM_S, target_skew_s=0, flex=False)) == []
    over = check_clock_set(new_time=T, step_s=-CLOCK_STEP_CONFIRM_S - 1, target_skew_s=0, flex=False)
    assert rules(over) == [("confirm", "clock-step")] and over[0].flag == "--confirm-clock-step"
    assert "back by about 1 day (-86401 s)" in over[0].message


def test_times_the_pump_refuses_are_refused_and_a_time_off_this_computers_clock_is_warned():
    assert rules(check_clock_set(new_time=1_577_836_799, step_s=-1, target_skew_s=0, flex=False)) == [
        ("refuse", "clock-range")]
    off = check_clock_set(new_time=T, step_s=3 * 3600, target_skew_s=3 * 3600, flex=True)
    assert rules(off) == [("warn", "clock-off-calendar"), ("warn", "flex-moves-with-clock")]


def test_a_given_time_needs_its_offset():
    assert parse_when("2027-01-15T08:00:00Z") == parse_when("2027-01-15T09:00:00+01:00")
    with pytest.raises(UsageError, match="UTC offset"):
        parse_when("2027-01-15T08:00:00")
    with pytest.raises(UsageError, match="ISO 8601"):
        parse_when("tomorrow")


def test_a_clock_sets_step_is_read_in_32_bit_arithmetic():
    assert set_step(10, 5) == -5 and set_step(0xFFFF_FFF0, 0x10) == 0x20
    assert step_text(-2 * 86_400) == "back 2 days (-172800 s)" and step_text(0) == "none"
    event = bodies.Event(3, T, protocol.EventType.CLOCK_SET, protocol.Priority.NONE, T & 0xFFFF_FFFF,
                         (T + 3600) & 0xFFFF_FFFF)
    assert describe_event(event).startswith("pump clock set: forward 1 h (+3600 s)")


class _Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _target(new_time, read_pump_time=T, read_at=T + 100.0, sent_after=5.0) -> kinds.ClockTarget:
    now = _Clock(read_at + sent_after)
    target = kinds.ClockTarget(new_time, read_pump_time, read_at, now=now)
    target.prepare(txid=1, based_on_txid=0)
    return target


def test_the_clock_echo_is_compared_allowing_for_the_seconds_between_the_read_and_the_prepare():
    target = _target(None)  # this computer's time at PREPARE: T + 105; the pump read T at T + 100
    kind = kinds.CLOCK.bound(target)
    assert target.sent_time == T + 105
    assert kind.echo_problems(echo(clock_step_s=100)) == []  # a pump in real time: 105 - 5
    assert kind.echo_problems(echo(clock_step_s=105)) == []  # a pump whose clock stood still
    assert kind.echo_problems(echo(clock_step_s=-100))  # the pump means another step: not committed
    assert kinds.CLOCK.echo_problems(echo(clock_step_s=12345)) == []  # unbound: nothing to compare


def test_the_clock_read_back_finds_the_pumps_time_where_it_was_set_give_or_take_the_exchange():
    target = _target(T + 86_400)
    kind = kinds.CLOCK.bound(target)
    target.now = _Clock(target.sent_at + 3)  # read back 3 s after the PREPARE
    at = committed(T + 86_400)
    assert kind.readback_problems(echo(), at, dataclasses.replace(STATUS, pump_time=T + 86_402)) == []
    assert kind.readback_problems(echo(), at, dataclasses.replace(STATUS, pump_time=T + 86_399)) == []
    assert kind.readback_problems(echo(), at, dataclasses.replace(STATUS, pump_time=T))  # not moved
    assert kind.readback_problems(echo(), at, dataclasses.replace(STATUS, pump_time=T + 86_410))


# --- patient boluses ---------------------------------------------------------------------------

def test_limits_within_the_library_and_a_worst_case_under_the_soft_maximum_pass():
    assert worst_case_daily_ng(2 * MG, ptm()) == 2_800_000
    assert check_ptm_limits(MORPHINE, ptm(), daily_dose_ng_per_day=2 * MG) == []
    assert check_ptm_limits(BACLOFEN, PTM_OFF, daily_dose_ng_per_day=500_000) == []  # off: always allowed


def test_a_drug_without_patient_boluses_and_each_limit_outside_the_library_are_refused():
    assert rules(check_ptm_limits(BACLOFEN, ptm(dose_ng=20_000), daily_dose_ng_per_day=500_000)) == [
        ("refuse", "ptm-not-allowed")]
    wide = check_ptm_limits(MORPHINE, ptm(dose_ng=600_000, lockout_s=1800, max_per_day=7),
                            daily_dose_ng_per_day=2 * MG)
    assert rules(wide) == [("refuse", "ptm-dose"), ("refuse", "ptm-lockout"), ("refuse", "ptm-max-per-day")]
    sparse = check_ptm_limits(MORPHINE, ptm(lockout_s=6 * 3600, max_per_day=6), daily_dose_ng_per_day=2 * MG)
    assert rules(sparse) == [("warn", "ptm-lockout-bounds-count")]  # 4 fit in 24 h; the worst case counts 6
    short = check_ptm_limits(MORPHINE, ptm(duration_s=30, lockout_s=3600), daily_dose_ng_per_day=2 * MG)
    assert rules(short) == [("refuse", "ptm-duration")]
    overlap = check_ptm_limits(MORPHINE, ptm(duration_s=7200, lockout_s=3600), daily_dose_ng_per_day=2 * MG)
    assert ("refuse", "ptm-lockout-duration") in rules(overlap)


def test_the_worst_case_is_refused_past_the_hard_maximum_and_needs_daily_max_past_the_soft_one():
    hard = check_ptm_limits(MORPHINE, ptm(dose_ng=500_000, max_per_day=6), daily_dose_ng_per_day=18 * MG)
    assert rules(hard) == [("refuse", "hard-max")] and "worst case a day" in hard[0].message
    soft = check_ptm_limits(MORPHINE, ptm(max_per_day=2), daily_dose_ng_per_day=15 * MG)
    assert rules(soft) == [("soft", "soft-max")] and soft[0].override == "DAILY_MAX"


def test_a_program_with_patient_boluses_on_counts_their_worst_case_on_a_rise_only():
    on = ptm(max_per_day=2)  # 0.4 mg a day at most
    assert check_ptm_with_program(MORPHINE, PTM_OFF, new=20 * MG, current=2 * MG) == []
    assert rules(check_ptm_with_program(MORPHINE, on, new=19_800_000, current=18 * MG)) == [("refuse", "hard-max")]
    assert rules(check_ptm_with_program(MORPHINE, on, new=19_700_000, current=19_800_000)) == [
        ("warn", "ptm-worst-case")]  # a cut is never refused for it
    assert rules(check_ptm_with_program(MORPHINE, on, new=2 * MG, current=0, changing_drug=True)) == [
        ("refuse", "ptm-drug-change")]
    assert rules(check_ptm_with_program(BACLOFEN, on, new=500_000, current=500_000)) == [
        ("warn", "ptm-not-allowed")]


def test_the_ptm_read_back_must_hold_exactly_the_limits_echoed():
    prepared = echo(kind=protocol.WriteKind.PTM, ptm=ptm())
    assert kinds.PTM.readback_problems(prepared, committed(T), dataclasses.replace(STATUS, ptm=ptm())) == []
    wrong = kinds.PTM.readback_problems(prepared, committed(T), dataclasses.replace(STATUS, ptm=ptm(max_per_day=5)))
    assert wrong == ["ptm.max_per_day: expected 4, pump has 5"]
    assert kinds.PTM.command is protocol.Command.PREPARE_PTM and kinds.CLOCK.wire is protocol.WriteKind.CLOCK
