"""ithcli/limits/catheter.py and the pure parts of ithcli/catheter_ops.py: no pump, no I/O."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from ithcli import limits
from ithcli.catheter_ops import catheter_text, catheter_view, parse_length, parse_model
from ithcli.errors import SafetyError, UsageError
from protocol import bodies
from protocol.constants import CatheterAction, CatheterModel, PumpModel
from protocol.models import MODELS

MORPHINE = SimpleNamespace(name="morphine", mass_unit="mg", dose_unit="mg/day", soft_max_ng_per_day=15_000_000,
                           hard_max_ng_per_day=20_000_000)
SPEC = MODELS[PumpModel.PERISTALTIC_40]


def rules(findings) -> dict[str, str]:
    return {f.rule: f.level for f in findings}


def test_lengths_need_their_unit_and_whole_millimetres():
    assert parse_length("80 cm", "--length") == 800
    assert parse_length("15cm", "--length") == 150
    assert parse_length("805 mm", "--length") == 805
    assert parse_length("80.5 cm", "--length") == 805
    for bad in ("80", "80 in", "0.8 m", "80.55 cm", "", "-5 cm"):
        with pytest.raises(UsageError):
            parse_length(bad, "--length")
    assert parse_model("standard") is CatheterModel.STANDARD
    with pytest.raises(UsageError):
        parse_model("NONE")


def test_catheter_checks():
    none, implant = CatheterAction.NONE, CatheterAction.IMPLANT
    assert rules(limits.check_catheter(implant, recorded=none, length_mm=800, replaced_mm=0,
                                       priming_due_nl=0)) == {}
    assert rules(limits.check_catheter(CatheterAction.REVISION, recorded=none, length_mm=800, replaced_mm=150,
                                       priming_due_nl=0)) == {"catheter-none": "refuse"}
    assert rules(limits.check_catheter(CatheterAction.REVISION, recorded=implant, length_mm=800, replaced_mm=900,
                                       priming_due_nl=0)) == {"catheter-segment": "refuse"}
    assert rules(limits.check_catheter(CatheterAction.CORRECTION, recorded=implant, length_mm=750, replaced_mm=0,
                                       priming_due_nl=0)) == {"correction-no-priming": "warn"}
    assert rules(limits.check_catheter(implant, recorded=implant, length_mm=2000, replaced_mm=0,
                                       priming_due_nl=5)) == {"catheter-length": "refuse", "priming-still-due": "warn"}


def test_the_shortest_bolus_fits_the_top_flow_in_whole_minutes():
    seconds = limits.shortest_bolus_s(SPEC, volume_nl=408_000, program_max_rate_nl_per_day=1_000_000)
    assert seconds is not None and seconds % 60 == 0 and seconds >= 60
    assert limits.check_bolus_rate(SPEC, volume_nl=408_000, seconds=seconds,
                                   program_max_rate_nl_per_day=1_000_000) == []
    assert limits.check_bolus_rate(SPEC, volume_nl=408_000, seconds=seconds - 60,
                                   program_max_rate_nl_per_day=1_000_000) != [] or seconds == 60
    assert limits.shortest_bolus_s(SPEC, volume_nl=1, program_max_rate_nl_per_day=SPEC.max_flow_nl_per_day) is None


def _priming(**kw):
    args = dict(priming_due_nl=39_000, recorded=CatheterAction.REVISION, dose_ng=390_000, seconds=600,
                daily_total=10_000_000, boluses_24h=0, reservoir_ul=20_000, program_max_rate_nl_per_day=1_000_000)
    return limits.check_priming(MORPHINE, SPEC, **(args | kw))


def test_priming_is_refused_with_nothing_due_and_needs_monitoring_otherwise():
    refused = _priming(priming_due_nl=0, recorded=CatheterAction.IMPLANT)
    assert rules(refused) == {"nothing-to-prime": "refuse"} and "primed" in refused[0].message
    with pytest.raises(SafetyError) as exc:
        limits.settle(_priming())
    assert exc.value.needed == [limits.MONITORING_FLAG]
    assert limits.settle(_priming(), confirmed={limits.MONITORING_FLAG})


def test_the_whole_priming_dose_counts_in_the_24_hour_total():
    # 19 mg/day programmed + 4.08 mg of priming: past the 20 mg/day hard limit
    assert rules(_priming(dose_ng=4_080_000, priming_due_nl=408_000, daily_total=19_000_000))["hard-max"] == "refuse"
    # 10 mg/day + 4.08 mg: within the soft limit; 12 + 4.08: past it (a named override)
    assert "soft-max" not in rules(_priming(dose_ng=4_080_000, priming_due_nl=408_000))
    assert rules(_priming(dose_ng=4_080_000, priming_due_nl=408_000, daily_total=12_000_000))["soft-max"] == "soft"


def test_the_bridge_choice_is_asked_with_the_others_and_an_impossible_bridge_refused():
    asked = limits.check_bridge(None, problem=None, what="the concentration changes", projection="day 1: 5 mg/day")
    assert asked[0].flag == limits.BRIDGE_CHOICE and "day 1" in asked[0].message
    with pytest.raises(SafetyError) as exc:
        limits.settle(asked + [limits.Finding("confirm", "x", "y", "--confirm-fill-gap")])
    assert exc.value.needed == [limits.BRIDGE_CHOICE, "--confirm-fill-gap"]
    assert rules(limits.check_bridge(True, problem="too long", what="w")) == {"bridge-impossible": "refuse"}
    assert rules(limits.check_bridge(False, problem=None, what="w")) == {"no-bridge": "warn"}
    assert limits.check_bridge(True, problem=None, what="w") == []
    assert rules(limits.check_no_bridge_needed(True, reason="r")) == {"bridge-not-needed": "refuse"}
    assert limits.check_no_bridge_needed(None, reason="r") == []


def test_bridge_problems_follow_the_pumps_rules():
    def problem(rate: int, duration: int | None, volume_ul: int = 20_000) -> str | None:
        return limits.bridge_problem(dead_space_nl=408_000, old_rate_nl_per_day=rate, duration_s=duration,
                                     volume_ul=volume_ul, spec=SPEC)

    assert problem(1_000_000, 35_251) is None
    assert "nothing" in str(problem(0, None))
    assert problem(200_000, 176_256) is None  # two days at 0.2 mL/day: a bridge may take up to 14 days
    assert "14 days" in str(problem(20_000, 1_762_560))
    assert "cannot push out" in str(problem(1_000_000, 35_251, volume_ul=100))


def test_the_catheter_view_is_in_cm_and_ml():
    record = bodies.CatheterRecord(action=CatheterAction.REVISION, model=CatheterModel.STANDARD, length_mm=800,
                                   replaced_mm=150, recorded_at=1, dead_space_nl=408_000, priming_due_nl=39_000)
    view = catheter_view(record)
    assert view["length_cm"] == Decimal(80) and view["replaced_cm"] == Decimal(15) and view["primed"] is False
    assert view["dead_space_ml"] == Decimal("0.408") and view["priming_due_ml"] == Decimal("0.039")
    assert "PRIMING DUE: 0.039 mL" in catheter_text(view) and "15 cm replaced" in catheter_text(view)
