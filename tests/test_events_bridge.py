"""A bridge bolus's dose in `ithcli log` (ithcli/events.py): the dose of the drug the pump held
before the refill, never shown in the new drug's unit alone. Pure: a hand-built event list."""
from __future__ import annotations

from ithcli.status import event_view
from protocol import EventType, Priority, WriteKind, bodies

T = 1_780_000_000
MORPHINE_BRIDGE_NG = 4_080_000  # 4.08 mg of morphine, the catheter's old contents


def ev(index: int, type_: EventType, arg1: int = 0, arg2: int = 0) -> bodies.Event:
    return bodies.Event(index, T + index, type_, Priority.NONE, arg1, arg2)


# a morphine pump (mg) refilled with baclofen (mcg), with a bridge bolus, as the pump logs it
# (docs/protocol.md, "REFILL with a bridge")
REFILL_TO_BACLOFEN = [
    ev(0, EventType.REFILL, 20_000, 500_000),  # 20 mL at 500 mcg/mL
    ev(1, EventType.PROGRAM_CHANGED, 6_000_000, 300_000),  # 6 mg/day of morphine -> 300 mcg/day of baclofen
    ev(2, EventType.BRIDGE_STARTED, MORPHINE_BRIDGE_NG, 7_200),
    ev(3, EventType.TX_APPLIED, 41, WriteKind.REFILL),
    ev(4, EventType.BOLUS_FINISHED),
]


def described(events: list[bodies.Event], dose_unit: str) -> list[str]:
    return [event_view(e, dose_unit, 0)["description"] for e in events]


def test_a_bridge_after_a_drug_change_is_the_old_drugs_dose_in_both_units():
    bridge = described(REFILL_TO_BACLOFEN, "mcg/day")[2]  # the pump now holds baclofen: mcg
    assert "4.08 mg (4080 mcg)" in bridge
    assert "the drug the pump held before this refill" in bridge
    assert "over 2 h" in bridge


def test_a_bridges_description_does_not_depend_on_the_drug_held_now():
    # the same log read with a mg drug in the pump (baclofen refilled with morphine, say) or a
    # mcg one: the bridge says the same thing, so it is never the current drug's unit alone
    assert described(REFILL_TO_BACLOFEN, "mg/day")[2] == described(REFILL_TO_BACLOFEN, "mcg/day")[2]


def test_the_refill_itself_is_in_the_drug_it_filled():
    refill, _program, _bridge, tx, _finished = described(REFILL_TO_BACLOFEN, "mcg/day")
    assert refill == "refilled to 20 mL at 500 mcg/mL"
    assert tx == "transaction 41 applied (refill)"


def test_a_small_bridge_dose_is_exact_in_both_units():
    tiny = [ev(0, EventType.REFILL, 10_000, 25_000), ev(1, EventType.BRIDGE_STARTED, 500, 3_600)]
    assert "0.0005 mg (0.5 mcg)" in described(tiny, "mcg/day")[1]
