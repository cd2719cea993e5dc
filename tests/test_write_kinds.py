"""The write kinds (ithcli/write_kinds.py): each names the PREPARE command and echo kind
the wire uses for it, and judges its own read-back (pure; end to end in the CLI tests)."""
from __future__ import annotations

import pytest

import protocol
from ithcli import write_kinds as kinds

ALL = [kinds.PROGRAM, kinds.REFILL, kinds.EMPTY, kinds.BOLUS, kinds.MRI_ENTER, kinds.MRI_EXIT]


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_each_kind_is_carried_by_its_own_prepare_command(kind):
    assert kind.command.name == f"PREPARE_{kind.wire.name}"


def test_names_are_distinct_so_the_journal_tells_an_emptied_reservoir_from_a_refill():
    assert len({k.name for k in ALL}) == len(ALL)
    assert kinds.EMPTY.wire is protocol.WriteKind.REFILL and kinds.EMPTY.name == "EMPTY"


def test_a_refill_read_back_allows_what_was_delivered_since_and_nothing_more():
    echo = {"reservoir_ul": 20_000, "program": {"daily_volume_nl_per_day": 1_000_000}}  # 1 mL/day
    committed = {"applied_at": 1000}
    day_later = {"pump_time": 1000 + 86_400}
    assert kinds.REFILL.readback_problems(echo, committed, day_later | {"reservoir_ul": 19_000}) == []
    assert kinds.REFILL.readback_problems(echo, committed, day_later | {"reservoir_ul": 18_000})
    assert kinds.REFILL.readback_problems(echo, committed, day_later | {"reservoir_ul": 20_001})


def test_mri_kinds_judge_the_mode_the_pump_reports():
    echo, committed = {"mri_auto_exit_s": 3600}, {"applied_at": 50}
    safe = {"mri_mode": protocol.MriMode.SAFE, "mri_auto_exit_at": 3650, "current_rate_nl_per_day": 0}
    assert kinds.MRI_ENTER.readback_problems(echo, committed, safe) == []
    assert kinds.MRI_ENTER.readback_problems(echo, committed, safe | {"current_rate_nl_per_day": 5})
    assert kinds.MRI_ENTER.readback_problems(echo, committed, safe | {"mri_auto_exit_at": 3651})
    assert kinds.MRI_EXIT.readback_problems(echo, committed, safe)
    assert kinds.MRI_EXIT.readback_problems(echo, committed, {"mri_mode": protocol.MriMode.OFF}) == []
