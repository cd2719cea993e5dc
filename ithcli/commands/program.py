"""`ithcli program`: change the dose, rate or mode, checked, confirmed, verified."""
from __future__ import annotations

from decimal import Decimal

import click

from ..errors import UsageError
from ._writing import safety_options


@click.command()
@click.option("--dose", metavar="DOSE", help="New continuous daily dose in the drug's unit, e.g. '450 mcg/day'.")
@click.option("--flow", metavar="FLOW", help="New continuous flow, e.g. '0.5 mL/day' (the dose follows).")
@click.option("--mode", type=click.Choice(["continuous", "flex", "minimum"]),
              help="continuous (with --dose or --flow), flex (with --schedule) or minimum (0.048 mL/day).")
@click.option("--schedule", type=click.Path(dir_okay=False), metavar="FILE",
              help="Flex schedule (TOML): [[step]] start = \"HH:MM\", dose = \"N mcg/day\" (a per-DAY rate).")
@click.option("--stop", is_flag=True, help="Stop delivery (withdrawal-risk drugs need --confirm-withdrawal-risk).")
@click.option("--next-visit", metavar="DATE", help="Warn if the low-reservoir alarm would come before this date.")
@safety_options
@click.pass_obj
def program(app, dose, flow, mode, schedule, stop, next_visit, override_reason, confirm_tenfold,
            confirm_withdrawal_risk, confirm_restart, yes):
    """Change what the pump delivers: PREPARE, confirm the echo, COMMIT, read back.

    Reads the pump first, checks the drug library (hard limits refused, soft limits
    need --override-soft-limit), shows the 24-hour total before and after, asks for
    confirmation unless --yes, and exits 0 only when the read-back matches.
    """
    from .. import dosing, limits
    from ..status import program_view
    from ._writing import confirm, confirmed_flags, read_pump, record_overrides
    from ..writes import WriteRequest, execute
    import protocol
    from protocol.models import MODELS

    chosen = [name for name, given in (("--dose", dose), ("--flow", flow), ("--stop", stop),
                                       ("--schedule", schedule), ("--mode minimum", mode == "minimum")) if given]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --dose, --flow, --stop, --mode minimum, --mode flex --schedule FILE"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    if schedule and mode not in (None, "flex"):
        raise UsageError("--schedule goes with --mode flex")
    if mode == "flex" and not schedule:
        raise UsageError("--mode flex needs --schedule FILE")
    if (dose or flow) and mode not in (None, "continuous"):
        raise UsageError(f"--dose and --flow set a continuous program, not --mode {mode}")
    visit = _parse_visit(next_visit)

    client, raw, before, current_program, entry = read_pump(app)
    conc = raw["concentration_ng_per_ml"]
    spec = MODELS[raw["model"]]
    findings: list = []
    if dose:
        plan = dosing.Plan("CONTINUOUS", (0,), (dosing.parse_dose_rate(dose, entry),))
    elif flow:
        rate = dosing.parse_flow(flow)
        plan = _flow_plan(rate, conc)
        reached = dosing.plan_summary(plan, conc)["rates"][0]
        if reached != rate:
            findings.append(limits.Finding(
                "warn", "flow-rounding",
                f"{flow} is not exactly reachable at this concentration: the pump will run "
                f"{format(Decimal(reached) / 1_000_000, 'f')} mL/day"))
    elif stop:
        plan = dosing.Plan("STOPPED")
    elif mode == "minimum":
        plan = dosing.Plan("MINIMUM")
    else:
        plan = dosing.load_schedule(schedule, entry)

    summary = dosing.plan_summary(plan, conc)
    current_total = raw["daily_dose_ng_per_day"]
    new_total = summary["daily_dose_ng_per_day"]
    unit = entry.dose_unit
    if plan == dosing.plan_from_program(current_program):
        result = {"command": "program", "serial_number": raw["serial_number"], "outcome": "unchanged",
                  "verified": True, "before": program_view(current_program, unit),
                  "after": program_view(current_program, unit)}
        app.emit(result, lambda r: _print_unchanged(r))
        return

    history = _dose_history(client) if entry.max_increases_per_window else []
    findings += limits.check_concentration(entry, conc)
    findings += limits.check_flow(spec, summary["rates"], plan.mode)
    if plan.mode != "STOPPED":
        findings += limits.check_daily_total(entry, new_total)
    findings += limits.check_change(entry, current=current_total, new=new_total, mode=plan.mode,
                                    history=history, pump_time=raw["pump_time"])
    if visit and summary["daily_volume_nl_per_day"]:
        findings += _visit_check(raw, summary, visit)
    confirmed = confirmed_flags(confirm_tenfold, confirm_withdrawal_risk, confirm_restart)
    warnings = limits.settle(findings, override_reason=override_reason, confirmed=confirmed)

    expected_program = {
        "mode": protocol.InfusionMode[plan.mode],
        "drug": raw["drug"],
        "concentration_ng_per_ml": conc,
        "daily_dose_ng_per_day": new_total,
        "daily_volume_nl_per_day": summary["daily_volume_nl_per_day"],
        "steps": dosing.expected_steps(plan, summary),
    }
    after_view = program_view(expected_program, unit)
    before_view = program_view(current_program, unit)
    pct = _pct(new_total, current_total)
    describe = {"serial_number": raw["serial_number"], "before": before_view, "requested": after_view,
                "change_percent": pct, "warnings": [w.as_dict() for w in warnings],
                "override_soft_limit": override_reason}
    if not app.json:
        _render_plan(app, before_view, after_view, pct, warnings)
    confirm(app, yes, f"Program {raw['serial_number']} to {after_view['mode']}, "
                      f"{_q(after_view['daily_dose'])} a day?")
    record_overrides(app, override_reason, warnings, confirmed)

    request = WriteRequest(
        kind="PROGRAM", command=protocol.Command.PREPARE_PROGRAM,
        body={"mode": expected_program["mode"], "drug": raw["drug"], "concentration_ng_per_ml": conc,
              "steps": plan.steps()},
        expect={"kind": protocol.WriteKind.PROGRAM, "program": expected_program},
        describe=describe,
    )
    result = execute(app, client, request, on_echo=None if app.json else
                     (lambda echo: _print_echo(echo, unit)), log_index=raw["event_count"])
    after = program_view(result["readback"]["program"]["program"], unit)
    out = {"command": "program", **describe, "after": after, "txid": result["txid"],
           "commit": result["commit"], "verified": True, "outcome": "verified"}
    app.emit(out, _print_verified)


def _flow_plan(rate: int, conc: int):
    from protocol.therapy import dose_for_rate

    from ..dosing import Plan

    return Plan("CONTINUOUS", (0,), (dose_for_rate(rate, conc),))


def _dose_history(client) -> list[tuple[int, int, int]]:
    """(time, previous dose, new dose) of every program change the pump has logged."""
    import protocol

    _, events = client.read_whole_log(0)
    return [(e["time"], e["arg1"], e["arg2"]) for e in events
            if e["type"] == protocol.EventType.PROGRAM_CHANGED]


def _parse_visit(text):
    if not text:
        return None
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--next-visit {text!r} is not an ISO date (e.g. 2027-01-15)") from None
    return int((when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp())


def _visit_check(raw, summary, visit: int) -> list:
    from ..limits import Finding
    from ..status import iso

    above_nl = (raw["reservoir_ul"] - raw["low_reservoir_alarm_ul"]) * 1000
    alarm_at = raw["pump_time"] + max(0, above_nl) * 86_400 // summary["daily_volume_nl_per_day"]
    if alarm_at < visit:
        return [Finding("warn", "alarm-before-visit",
                        f"at the new rate the low-reservoir alarm comes {iso(alarm_at)[:10]}, before the next "
                        f"visit {iso(visit)[:10]}: bring the refill forward")]
    return []


def _pct(new: int, old: int):
    from ._writing import change_percent

    return change_percent(new, old)


def _q(q: dict) -> str:
    from ..output import fmt_quantity

    return fmt_quantity(q)


def _steps_text(view: dict) -> str:
    if view["mode"] in ("stopped",):
        return "-"
    return ", ".join(f"{s['start']} {_q(s['dose'])}" for s in view["steps"])


def _render_plan(app, before: dict, after: dict, pct, warnings) -> None:
    from ._writing import render_change

    rows = [
        ("Mode", before["mode"], after["mode"]),
        ("24-hour total", _q(before["daily_dose"]), _q(after["daily_dose"])
         + (f"  ({pct:+} %)" if pct is not None else "")),
        ("Flow (24-hour)", f"{format(before['flow_ml_per_day'], 'f')} mL/day",
         f"{format(after['flow_ml_per_day'], 'f')} mL/day"),
        ("Steps (per-day rates)", _steps_text(before), _steps_text(after)),
        ("Concentration", _q(before["concentration"]), _q(after["concentration"])),
    ]
    render_change("Program change", rows, warnings, app.emulated)


def _print_echo(echo: dict, unit: str) -> None:
    from ..output import console
    from ..status import program_view

    view = program_view(echo["program"], unit)
    console().print(f"Pump echoed txid {echo['txid']}: {view['mode']}, {_q(view['daily_dose'])} "
                    f"(24-hour total), {format(view['flow_ml_per_day'], 'f')} mL/day. Committing.")


def _print_verified(result: dict) -> None:
    from ..output import console

    after = result["after"]
    console().print(f"[bold green]VERIFIED[/]: {result['serial_number']} now delivers {after['mode']}, "
                    f"{_q(after['daily_dose'])} (24-hour total), {format(after['flow_ml_per_day'], 'f')} mL/day "
                    f"(txid {result['txid']}, read back field by field).")


def _print_unchanged(result: dict) -> None:
    from ..output import console

    console().print(f"No change: {result['serial_number']} already delivers this program. Nothing was sent.")
