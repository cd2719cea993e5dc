"""`ithcli catheter`, `ithcli bolus --priming` and `ithcli refill --bridge/--no-bridge` end to
end: the real ithcli against real emulator processes (issue 18; docs/clinical.md#catheter)."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from cli_harness import DEFAULT_KEY_STORE, assert_one_line_error
from test_cli_program import applied_txids, status

from protocol.catheter import dose_in_volume_ng, revision_priming_nl
from protocol.constants import CatheterModel

#: morphine 10 mg/mL at 1 mL/day (10 mg/day) on a 40 mL pump with a STANDARD 80 cm catheter,
#: implanted and primed: 0.2 mL of tubing + 0.208 mL of catheter
MORPHINE_1ML = ("--model", "peristaltic-40", "--drug", "morphine", "--concentration", "10 mg/mL",
                "--volume", "30 mL", "--flow", "1 mL/day", "--catheter-mm", "800")
DEAD_NL = 408_000
DAY = 86_400


def dec(q: Any) -> Any:
    """JSON numbers (floats once parsed) as Decimal, through a {"value", "unit"} object too."""
    if isinstance(q, dict):
        return {**q, "value": Decimal(str(q["value"]))}
    return Decimal(str(q))


def pump_state(emu) -> dict[str, Any]:
    return emu.control("state")


def received_ng(emu) -> int:
    return sum(pump_state(emu)["patient_received_ng"].values())


def reservoir_nl(emu) -> int:
    state = pump_state(emu)
    return int(state["reservoir_nl"])


def test_interrogate_shows_the_primed_catheter(pump):
    emu, cli = pump(*MORPHINE_1ML)
    cat = status(cli)["catheter"]
    assert cat["recorded"] and cat["model"] == "STANDARD" and cat["primed"] is True
    assert cat["length_cm"] == 80 and cat["replaced_cm"] is None
    assert cat["dead_space_ml"] == 0.408 and cat["priming_due_ml"] == 0
    table = cli("interrogate")
    assert table.code == 0 and "Catheter" in table.stdout and "0.408 mL" in table.stdout


def test_a_priming_bolus_is_refused_on_a_primed_pump_and_nothing_changes(pump):
    emu, cli = pump(*MORPHINE_1ML)
    before = pump_state(emu)
    result = cli("bolus", "--priming", "--confirm-monitoring", "--yes")
    assert_one_line_error(result, 6, "nothing to prime", "primed")
    assert applied_txids(emu) == []
    after = pump_state(emu)
    assert after["catheter"] == before["catheter"] and after["bolus"] is None


def test_a_revision_arms_priming_of_the_segment_and_the_bolus_moves_exactly_it(pump):
    emu, cli = pump(*MORPHINE_1ML)
    revised = cli("--json", "catheter", "revise", "--length", "80 cm", "--replaced", "15 cm", "--yes")
    assert revised.code == 0, revised.stderr
    segment_nl = revision_priming_nl(CatheterModel.STANDARD, 150)  # 39 000 nL
    assert dec(revised.json()["after"]["catheter"]["priming_due_ml"]) == Decimal(segment_nl) / 1_000_000
    # the monitoring confirmation is needed, and listed: nothing is sent without it
    needs = cli("--json", "bolus", "--priming", "--yes")
    assert needs.code == 6 and "--confirm-monitoring" in needs.json()["needed"]
    assert len(applied_txids(emu)) == 1
    start = reservoir_nl(emu)
    primed = cli("--json", "bolus", "--priming", "--confirm-monitoring", "--yes")
    assert primed.code == 0, primed.stderr
    out = primed.json()
    dose = dose_in_volume_ng(segment_nl, 10_000_000)
    assert dec(out["volume_ml"]) == Decimal(segment_nl) / 1_000_000
    assert dec(out["dose"]) == {"value": Decimal(dose) / 1_000_000, "unit": "mg"}
    assert dec(out["daily_total_with_priming"]) == {"value": Decimal(10_000_000 + dose) / 1_000_000, "unit": "mg/day"}
    assert out["after"]["catheter"]["primed"] is True
    seconds = out["duration_s"]
    emu.control("advance", seconds=seconds)
    # the reservoir dropped by the segment and by what the program delivered meanwhile, exactly
    program_nl = 1_000_000 * seconds // DAY
    assert abs(start - reservoir_nl(emu) - segment_nl - program_nl) <= 1_000  # the uL the status rounds to
    # once primed, again refused
    assert_one_line_error(cli("bolus", "--priming", "--confirm-monitoring", "--yes"), 6, "nothing to prime")
    log = cli("--json", "log").json()
    texts = " | ".join(e["description"] for e in log["events"])
    assert "catheter revision recorded" in texts and "priming bolus" in texts


def test_a_correction_does_not_rearm_priming(pump):
    emu, cli = pump(*MORPHINE_1ML)
    result = cli("--json", "catheter", "correct", "--length", "75 cm", "--yes")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["rearms_priming"] is False
    assert any(w["rule"] == "correction-no-priming" for w in out["warnings"])
    cat = status(cli)["catheter"]
    assert cat["length_cm"] == 75 and cat["primed"] is True
    assert_one_line_error(cli("bolus", "--priming", "--confirm-monitoring", "--yes"), 6, "nothing to prime")


def test_catheter_refusals_change_nothing(pump):
    emu, cli = pump(*MORPHINE_1ML)
    before = pump_state(emu)["catheter"]
    assert_one_line_error(cli("catheter", "revise", "--length", "80 cm", "--replaced", "90 cm", "--yes"), 6,
                          "segment")
    assert_one_line_error(cli("catheter", "implant", "--model", "STANDARD", "--length", "80", "--yes"), 2, "unit")
    assert_one_line_error(cli("catheter", "implant", "--model", "WIDE", "--length", "80 cm", "--yes"), 2, "model")
    dry = cli("--json", "catheter", "implant", "--model", "STANDARD", "--length", "60 cm", "--dry-run")
    assert dry.code == 0 and dry.json()["outcome"] == "dry-run"
    assert pump_state(emu)["catheter"] == before and applied_txids(emu) == []
    fresh, cli2 = pump(*MORPHINE_1ML[:-2], "--catheter-mm", "0")
    assert_one_line_error(cli2("catheter", "correct", "--model", "STANDARD", "--length", "80 cm", "--yes"), 6,
                          "no catheter")
    assert applied_txids(fresh) == []


def test_an_implant_primes_the_tubing_and_the_whole_catheter(pump):
    emu, cli = pump(*MORPHINE_1ML[:-2], "--catheter-mm", "0")
    implanted = cli("--json", "catheter", "implant", "--model", "STANDARD", "--length", "80 cm", "--yes")
    assert implanted.code == 0, implanted.stderr
    assert dec(implanted.json()["after"]["catheter"]["priming_due_ml"]) == Decimal("0.408")
    primed = cli("--json", "bolus", "--priming", "--confirm-monitoring", "--duration", "2 h", "--yes")
    assert primed.code == 0, primed.stderr
    assert primed.json()["duration_s"] == 7200 and dec(primed.json()["volume_ml"]) == Decimal("0.408")


REFILL_20 = ("refill", "--volume", "30 mL", "--concentration", "20 mg/mL", "--yes")


def _days_ng(projection: dict[str, Any]) -> list[int]:
    """The projection's daily totals (all drugs), ng."""
    factor = {"mg/day": 1_000_000, "mcg/day": 1_000}
    return [sum(int(Decimal(str(x["dose"]["value"])) * factor[x["dose"]["unit"]]) for x in d["doses"])
            for d in projection["days"]]


def _delivered_by_day(emu, days: int) -> list[int]:
    out, last = [], received_ng(emu)
    for _ in range(days):
        emu.control("advance", seconds=DAY)
        now = received_ng(emu)
        out.append(now - last)
        last = now
    return out


def test_without_a_catheter_a_refill_needs_no_bridge_choice(pump):
    emu, cli = pump(*MORPHINE_1ML[:-2], "--catheter-mm", "0")
    result = cli("--json", *REFILL_20)
    assert result.code == 0, result.stderr
    assert "bridge" not in result.json()


def test_a_concentration_change_needs_a_bridge_choice_listed_with_the_others(pump):
    emu, cli = pump(*MORPHINE_1ML)
    result = cli("--json", *REFILL_20[:-1], "--withdrawn", "25 mL", "--yes")
    assert result.code == 6
    needed = result.json()["needed"]
    assert "--bridge or --no-bridge" in needed and "--confirm-fill-gap" in needed
    assert applied_txids(emu) == []
    # no change of contents: nothing to bridge
    same = cli("refill", "--volume", "30 mL", "--concentration", "10 mg/mL", "--bridge", "--yes")
    assert_one_line_error(same, 6, "nothing to bridge")
    assert applied_txids(emu) == []


def _refill_and_follow(pump, choice: str) -> tuple[dict[str, Any], list[int], list[int]]:
    """Refill to 20 mg/mL with `choice`; (ithcli's --json result, ng delivered each day, ng it projected)."""
    emu, cli = pump(*MORPHINE_1ML)
    result = cli("--json", *REFILL_20, choice)
    assert result.code == 0, result.stderr
    out = result.json()
    bridge = out["bridge"]
    assert bridge["with_bridge"] is not None and bridge["without_bridge"] is not None
    shown = bridge["with_bridge" if choice == "--bridge" else "without_bridge"]
    return out, _delivered_by_day(emu, len(shown["days"])), _days_ng(shown)


def test_a_refill_with_a_bridge_keeps_the_old_dose_as_ithcli_said(pump):
    out, delivered, projected = _refill_and_follow(pump, "--bridge")
    assert out["bridge"]["chosen"] == "bridge"
    assert dec(out["bridge"]["dose"]) == {"value": Decimal("4.08"), "unit": "mg"}
    assert out["bridge"]["counted_in_24h_total"] is True
    assert all(abs(ng - 10_000_000) <= 2 for ng in projected)  # the old 10 mg/day throughout (floors)
    for got, want in zip(delivered, projected, strict=True):
        assert abs(got - want) <= want // 1000, (delivered, projected)


def test_a_refill_without_a_bridge_gives_what_ithcli_said(pump):
    out, delivered, projected = _refill_and_follow(pump, "--no-bridge")
    assert out["bridge"]["chosen"] == "no-bridge"
    assert any(w["rule"] == "no-bridge" for w in out["warnings"])
    # the old 10 mg/mL pushed at the new 0.5 mL/day (5 mg/day) until the 0.408 mL clears
    assert projected[0] < 6_000_000 and projected[1] == 10_000_000
    for got, want in zip(delivered, projected, strict=True):
        assert abs(got - want) <= want // 1000, (delivered, projected)


def test_a_bridge_that_cannot_run_is_refused_and_nothing_changes(pump):
    emu, cli = pump("--drug", "morphine", "--concentration", "10 mg/mL", "--flow", "0.2 mL/day", "--catheter-mm", "800")
    before = pump_state(emu)
    # 0.3 mL cannot push out the 0.408 mL the catheter holds
    result = cli(*REFILL_20[:-1], "--volume", "0.3 mL", "--bridge", "--yes")
    assert_one_line_error(result, 6, "not possible", "cannot push out")
    assert applied_txids(emu) == [] and pump_state(emu)["reservoir_nl"] == before["reservoir_nl"]


def test_report_shows_catheter_writes_and_priming(pump):
    emu, cli = pump(*MORPHINE_1ML)
    assert cli("catheter", "revise", "--length", "80 cm", "--replaced", "10 cm", "--yes").code == 0
    assert cli("bolus", "--priming", "--confirm-monitoring", "--yes").code == 0
    report = cli("--json", "report")
    assert report.code == 0, report.stderr
    changes = report.json()["changes"]
    assert [c["command"] for c in changes] == ["catheter", "bolus"]
    assert changes[0]["request"]["action"] == "revision" and changes[1]["request"]["purpose"] == "priming"


def test_api_records_a_revision_and_primes(pump, tmp_path):
    from ithcli import api

    emu, _ = pump(*MORPHINE_1ML)
    with api.open_pump(emu.url, operator="dr-roe", state_dir=str(tmp_path / "api"),
                       key_store=DEFAULT_KEY_STORE) as p:
        result = p.record_catheter("revision", model="STANDARD", length="80 cm", replaced="20 cm")
        assert result.verified
        assert p.catheter().priming_due_ml == Decimal("0.052")
        try:
            p.priming_bolus()
        except api.SafetyError as exc:
            assert "--confirm-monitoring" in exc.details["needed"]
        else:
            raise AssertionError("a priming bolus without the monitoring confirmation was given")
        assert p.priming_bolus(confirm={"monitoring"}).verified
        assert p.catheter().primed


def test_a_running_bridge_is_shown_as_a_bridge_not_as_suspended_delivery(pump):
    """While the bridge runs the program's rate is 0: monitor and forecast say why."""
    emu, cli = pump(*MORPHINE_1ML)
    assert cli(*REFILL_20[:-1], "--withdrawn", "28 mL", "--bridge", "--yes").code == 0
    reading = json.loads(cli("--json", "monitor", "--count", "1").stdout.splitlines()[0])
    assert reading["delivery"] == "bridge bolus", reading
    forecast = cli("--json", "forecast")
    assert forecast.code == 0, forecast.stderr
    assumptions = " ".join(forecast.json()["assumptions"])
    assert "bridge bolus runs in place of the program" in assumptions and "suspended" not in assumptions
