"""The history across a pump clock change, and the boluses of protocol version 4 (priming,
patient, bridge) in the 24-hour total: pure, no processes."""
from __future__ import annotations

from ithcli import druglib, limits
from ithcli.history import DAY, HOUR, History, on_current_clock
from protocol import EventType, Priority, bodies

MORPHINE = druglib.load().drugs["MORPHINE"]
MG = 1_000_000
NOW = 1_800_000_000


def ev(index: int, time: int, kind: EventType, arg1: int = 0, arg2: int = 0) -> bodies.Event:
    return bodies.Event(index=index, time=time, type=kind, priority=Priority.NONE, arg1=arg1, arg2=arg2)


def test_events_before_a_clock_set_move_by_its_step():
    # the clock ran a day behind; at NOW - 1 h it was set forward by a day
    behind = DAY
    events = [ev(0, NOW - 2 * HOUR - behind, EventType.PROGRAM_CHANGED, 5 * MG, 9 * MG),
              ev(1, NOW - HOUR, EventType.CLOCK_SET, NOW - HOUR - behind, NOW - HOUR),
              ev(2, NOW - HOUR // 2, EventType.REFILL, 20_000, 10 * MG)]
    moved = on_current_clock(events)
    assert [e.time for e in moved] == [NOW - 2 * HOUR, NOW - HOUR, NOW - HOUR // 2]


def test_a_rise_just_before_the_clock_was_set_forward_is_still_inside_the_24_hours():
    """Without the step the rise would look a day old, outside the 24-hour budget."""
    behind = DAY
    events = [ev(0, NOW - 2 * HOUR - behind, EventType.PROGRAM_CHANGED, 5 * MG, 9 * MG),
              ev(1, NOW - HOUR, EventType.CLOCK_SET, NOW - HOUR - behind, NOW - HOUR)]
    h = History.from_log(events, now=NOW, dose_now=9 * MG, complete=True)
    assert h.dose_at(NOW - DAY) == 5 * MG
    findings = limits.check_escalation(MORPHINE, h, new=10 * MG)
    assert any(f.override == "RISE_24H" for f in findings), findings


def test_a_clock_set_back_does_not_make_an_old_rise_look_recent():
    ahead = DAY
    events = [ev(0, NOW - 2 * DAY + ahead, EventType.PROGRAM_CHANGED, 5 * MG, 9 * MG),
              ev(1, NOW - HOUR, EventType.CLOCK_SET, NOW - HOUR + ahead, NOW - HOUR)]
    h = History.from_log(events, now=NOW, dose_now=9 * MG, complete=True)
    assert h.dose_at(NOW - DAY) == 9 * MG  # the rise was two days ago


def test_the_step_is_read_in_32_bit_arithmetic():
    # arg1/arg2 are the low 32 bits of the times: a step across the 2^32 boundary is still right
    old, new = (1 << 32) - 100, (1 << 32) + 200
    events = [ev(0, old - 10, EventType.REFILL), ev(1, new, EventType.CLOCK_SET, old & 0xFFFF_FFFF,
                                                     new & 0xFFFF_FFFF)]
    assert on_current_clock(events)[0].time == old - 10 + 300


def test_patient_priming_and_bridge_boluses_count_in_the_24_hours():
    events = [ev(0, NOW - 5 * HOUR, EventType.BOLUS_STARTED, 300_000, 600),  # a priming bolus
              ev(1, NOW - 5 * HOUR, EventType.PRIMING_STARTED, 30_000, 600),
              ev(2, NOW - 4 * HOUR, EventType.BOLUS_FINISHED, 0),
              ev(3, NOW - 3 * HOUR, EventType.PTM_GRANTED, 500_000, 600),
              ev(4, NOW - 3 * HOUR, EventType.BOLUS_FINISHED, 0),
              ev(5, NOW - 2 * HOUR, EventType.BRIDGE_STARTED, 800_000, 7200),
              # cut short: what it left is in the new drug's terms, so the bridge counts whole
              ev(6, NOW - HOUR, EventType.BOLUS_FINISHED, 400_000)]
    h = History.from_log(events, now=NOW, dose_now=MG, complete=True)
    assert h.boluses_since(NOW - DAY, 10 * MG) == 300_000 + 500_000 + 800_000


def test_a_change_of_drug_starts_the_history_afresh():
    """Morphine boluses and the morphine bridge do not count against baclofen's 24 hours, and the
    rise budgets start from baclofen's first dose (not from 6 mg of morphine)."""
    t = NOW - 3 * HOUR
    events = [ev(0, NOW - 20 * HOUR, EventType.BOLUS_STARTED, 500_000, 600),
              ev(1, NOW - 20 * HOUR, EventType.BOLUS_FINISHED, 0),
              ev(2, t, EventType.DRUG_CHANGED, 1, 4),  # MORPHINE -> BACLOFEN
              ev(3, t, EventType.REFILL, 20_000, 2_000_000),
              ev(4, t, EventType.PROGRAM_CHANGED, 6 * MG, 300_000),
              ev(5, t, EventType.BRIDGE_STARTED, 4_080_000, 7200),
              ev(6, t + 7200, EventType.BOLUS_FINISHED, 0),
              ev(7, NOW - HOUR, EventType.BOLUS_STARTED, 50_000, 600)]
    h = History.from_log(events, now=NOW, dose_now=300_000, complete=True)
    assert h.boluses_since(NOW - DAY, 2_000_000) == 50_000
    assert h.dose_at(NOW - DAY) == 300_000 and h.baseline(NOW - DAY) == 300_000
    assert h.increases_since(NOW - 7 * DAY) == 0


def test_a_refill_of_the_same_drug_keeps_its_history():
    events = [ev(0, NOW - 20 * HOUR, EventType.BOLUS_STARTED, 500_000, 600),
              ev(1, NOW - 2 * HOUR, EventType.REFILL, 20_000, 20 * MG),
              ev(2, NOW - 2 * HOUR, EventType.PROGRAM_CHANGED, 5 * MG, 6 * MG)]
    h = History.from_log(events, now=NOW, dose_now=6 * MG, complete=True)
    assert h.boluses_since(NOW - DAY, 20 * MG) == 500_000 and h.dose_at(NOW - DAY) == 5 * MG
