"""The catheter's arithmetic (protocol/catheter.py), the emulator's fluid column and
ithcli's bridge projection: pure, no processes. End to end: tests/test_catheter.py."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from emulator.pump.catheter import Column
from ithcli.catheter import Contents, daily_totals, with_bridge, without_bridge
from protocol import Drug, PumpModel
from protocol.catheter import (
    DAY_S,
    bridge_duration_s,
    catheter_nl,
    dead_space_nl,
    implant_priming_nl,
    revision_priming_nl,
)
from protocol.constants import CatheterModel

MORPHINE_1 = 1_000_000  # ng/mL: 1 mg/mL
MORPHINE_2 = 2_000_000


def test_catheter_volume_is_the_domain_figure():
    # 0.0026 mL/cm: 100 cm hold 0.26 mL
    assert catheter_nl(CatheterModel.STANDARD, 1000) == 260_000
    assert catheter_nl(CatheterModel.STANDARD, 1) == 260  # 0.1 cm, never rounded to nothing


def test_priming_after_implant_is_tubing_and_catheter_and_after_revision_the_segment():
    pump = PumpModel.PERISTALTIC_20
    whole = implant_priming_nl(pump, CatheterModel.STANDARD, 800)
    assert whole == dead_space_nl(pump, CatheterModel.STANDARD, 800) > catheter_nl(CatheterModel.STANDARD, 800)
    assert revision_priming_nl(CatheterModel.STANDARD, 150) == 39_000


def test_bridge_duration_is_the_dead_space_at_the_old_rate():
    assert bridge_duration_s(500_000, 1_000_000) == DAY_S // 2  # 0.5 mL at 1 mL/day: 12 hours


def test_column_delivers_first_in_first_out():
    column = Column.empty(300_000)  # just implanted: no drug in it
    column.push(300_000, Drug.MORPHINE, MORPHINE_1)  # priming: spinal fluid leaves, drug fills
    assert column.received_ng() == {}
    column.push(100_000, Drug.MORPHINE, MORPHINE_1)
    assert column.received_ng() == {"MORPHINE": 100_000}  # 0.1 mL of 1 mg/mL


def test_revision_empties_only_the_replaced_segment_at_the_tip():
    column = Column.empty(300_000)
    column.push(300_000, Drug.MORPHINE, MORPHINE_1)
    column.replace_tip(300_000, 50_000)
    column.push(50_000, Drug.MORPHINE, MORPHINE_1)  # the priming volume of the segment
    assert column.received_ng() == {}
    column.push(1_000, Drug.MORPHINE, MORPHINE_1)
    assert column.received_ng() == {"MORPHINE": 1_000}


def test_priming_more_than_the_segment_pushes_drug_into_the_patient():
    """The recall's hazard, in the model: primed with the whole length after a revision."""
    column = Column.empty(300_000)
    column.push(300_000, Drug.MORPHINE, MORPHINE_1)
    column.replace_tip(300_000, 50_000)
    column.push(300_000, Drug.MORPHINE, MORPHINE_1)
    assert column.received_ng() == {"MORPHINE": 250_000}


@given(st.lists(st.integers(1, 50_000), min_size=1, max_size=30))
def test_column_volume_is_kept_and_nothing_is_lost(pushes):
    column = Column.empty(200_000)
    for volume in pushes:
        column.push(volume, Drug.MORPHINE, MORPHINE_1)
    assert column.volume_nl == 200_000
    in_column = sum(s.volume_nl * s.concentration_ng_per_ml for s in column.segments)
    entered = sum(pushes) * MORPHINE_1
    assert in_column + column.received.get(Drug.MORPHINE, 0) == entered


def test_column_survives_a_round_trip():
    column = Column.empty(100_000)
    column.push(30_000, Drug.BACLOFEN, 500_000)
    again = Column.from_dict(column.to_dict())
    assert again == column


def test_projection_without_bridge_gives_the_old_drug_at_the_new_rate():
    # 1 mg/mL at 1 mL/day (1 mg/day) refilled with 2 mg/mL at 0.5 mL/day (the same 1 mg/day)
    old = Contents(Drug.MORPHINE, MORPHINE_1, 1_000_000, 1_000_000)
    new = Contents(Drug.MORPHINE, MORPHINE_2, 500_000, 1_000_000)
    phases = without_bridge(500_000, old, new)
    assert phases[0].seconds == DAY_S  # 0.5 mL of dead space at 0.5 mL/day
    assert phases[0].dose_ng_per_day == 500_000  # half the dose for a day: underdose
    assert daily_totals(phases, 2) == [{Drug.MORPHINE: 500_000}, {Drug.MORPHINE: 1_000_000}]


def test_projection_with_bridge_keeps_the_old_dose():
    old = Contents(Drug.MORPHINE, MORPHINE_1, 1_000_000, 1_000_000)
    new = Contents(Drug.MORPHINE, MORPHINE_2, 500_000, 1_000_000)
    phases = with_bridge(500_000, old, new)
    assert phases[0].seconds == DAY_S // 2
    assert daily_totals(phases, 2) == [{Drug.MORPHINE: 1_000_000}, {Drug.MORPHINE: 1_000_000}]
