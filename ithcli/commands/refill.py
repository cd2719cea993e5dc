"""`ithcli refill`: record a refill (new volume, drug, concentration), checked and verified."""
from __future__ import annotations

from decimal import Decimal

import click

from ..errors import UsageError
from ._writing import safety_options


@click.command()
@click.option("--volume", required=True, metavar="VOLUME", help="Volume in the reservoir after the fill, e.g. '20 mL'.")
@click.option("--concentration", required=True, metavar="CONC", help="Concentration filled, e.g. '2000 mcg/mL'.")
@click.option("--drug", metavar="NAME", help="The drug filled, if it changes (then --dose is required).")
@click.option("--withdrawn", metavar="VOLUME",
              help="Volume withdrawn from the reservoir before filling, compared with what the pump expected.")
@click.option("--dose", metavar="DOSE", help="A new continuous daily dose with the fill (required on a drug change).")
@safety_options
@click.pass_obj
def refill(app, volume, concentration, drug, withdrawn, dose, override_reason, confirm_tenfold,
           confirm_withdrawal_risk, confirm_restart, yes):
    """Refill the reservoir: keeps the daily dose (the flow follows a new concentration).

    Refuses a volume above the pump's capacity or a concentration not allowed for
    the drug; warns when the withdrawn volume differs from what the pump expected
    by more than 1 mL (20 mL pump) or 2 mL (40 mL pump), a sign of a possible
    pocket fill; shows the new low-reservoir alarm date.
    """
    import protocol
    from protocol.models import MODELS

    from .. import dosing, limits
    from ..status import describe, program_view
    from ..writes import WriteRequest, execute
    from ._writing import confirm, confirmed_flags, read_pump, record_overrides, render_change

    client, raw, before, current_program, current_entry = read_pump(app, allow_unknown_drug=bool(drug))
    library = app.library()
    if drug:
        new_entry = next((e for e in library.drugs.values() if e.name == drug.lower()), None)
        if new_entry is None:
            raise UsageError(f"--drug {drug!r} is not in the drug library ({', '.join(e.name for e in library.drugs.values())})")
    else:
        new_entry = current_entry
    changing_drug = new_entry.code != raw["drug"].name
    if changing_drug and not dose:
        raise UsageError(f"changing the drug to {new_entry.name} needs --dose in {new_entry.dose_unit}")
    spec = MODELS[raw["model"]]
    conc = dosing.parse_concentration(concentration, new_entry)
    volume_ul = dosing.parse_volume(volume, "--volume")
    withdrawn_ul = dosing.parse_volume(withdrawn, "--withdrawn") if withdrawn else None

    if dose:
        plan = dosing.Plan("CONTINUOUS", (0,), (dosing.parse_dose_rate(dose, new_entry),))
    else:
        plan = dosing.plan_from_program(current_program)  # the dose stays; the flow follows
    summary = dosing.plan_summary(plan, conc)
    current_total = 0 if changing_drug else raw["daily_dose_ng_per_day"]
    new_total = summary["daily_dose_ng_per_day"]

    findings = limits.check_refill(spec, volume_ul=volume_ul, withdrawn_ul=withdrawn_ul,
                                   expected_ul=raw["reservoir_ul"])
    findings += limits.check_concentration(new_entry, conc)
    findings += limits.check_flow(spec, summary["rates"], plan.mode)
    if plan.mode != "STOPPED":
        findings += limits.check_daily_total(new_entry, new_total)
    if dose:
        findings += limits.check_change(new_entry, current=current_total, new=new_total, mode=plan.mode,
                                        history=[], pump_time=raw["pump_time"])
    confirmed = confirmed_flags(confirm_tenfold, confirm_withdrawal_risk, confirm_restart)
    warnings = limits.settle(findings, override_reason=override_reason, confirmed=confirmed)

    expected_program = {
        "mode": protocol.InfusionMode[plan.mode], "drug": protocol.Drug[new_entry.code],
        "concentration_ng_per_ml": conc, "daily_dose_ng_per_day": new_total,
        "daily_volume_nl_per_day": summary["daily_volume_nl_per_day"], "steps": dosing.expected_steps(plan, summary),
    }
    unit = new_entry.dose_unit
    # a drug outside the library is shown in mcg/day, as interrogate shows it
    before_view = program_view(current_program, current_entry.dose_unit if current_entry else "mcg/day")
    after_view = program_view(expected_program, unit)
    low_after = _low_alarm(volume_ul, raw["low_reservoir_alarm_ul"], summary["daily_volume_nl_per_day"], raw["pump_time"])
    details = {"serial_number": raw["serial_number"], "before": {**before_view, "reservoir_ml": before["reservoir_ml"]},
               "requested": {**after_view, "reservoir_ml": Decimal(volume_ul) / 1000,
                             "projected_low_reservoir_date": low_after},
               "withdrawn_ml": Decimal(withdrawn_ul) / 1000 if withdrawn_ul is not None else None,
               "expected_remaining_ml": before["reservoir_ml"],
               "warnings": [w.as_dict() for w in warnings], "override_soft_limit": override_reason}
    if not app.json:
        from ..output import fmt_date, fmt_quantity as q

        rows = [
            ("Drug", before_view["drug"], after_view["drug"]),
            ("Concentration", q(before_view["concentration"]), q(after_view["concentration"])),
            ("Reservoir", f"{format(before['reservoir_ml'], 'f')} mL", f"{format(Decimal(volume_ul) / 1000, 'f')} mL"),
            ("24-hour total", q(before_view["daily_dose"]), q(after_view["daily_dose"])),
            ("Flow (24-hour)", f"{format(before_view['flow_ml_per_day'], 'f')} mL/day",
             f"{format(after_view['flow_ml_per_day'], 'f')} mL/day"),
            ("Low-reservoir alarm", fmt_date(before["projected_low_reservoir_date"]), fmt_date(low_after)),
        ]
        if withdrawn_ul is not None:
            rows.append(("Withdrawn / expected", f"{format(Decimal(withdrawn_ul) / 1000, 'f')} mL",
                         f"{format(before['reservoir_ml'], 'f')} mL expected"))
        render_change("Refill", rows, warnings, app.emulated)
    confirm(app, yes, f"Record a refill of {raw['serial_number']} with {format(Decimal(volume_ul) / 1000, 'f')} mL "
                      f"of {new_entry.name} {q_text(after_view['concentration'])}?")
    record_overrides(app, override_reason, warnings, confirmed)
    if withdrawn_ul is not None:
        app.record("refill-withdrawn", withdrawn_ul=withdrawn_ul, expected_ul=raw["reservoir_ul"])

    request = WriteRequest(
        kind="REFILL", command=protocol.Command.PREPARE_REFILL,
        body={"drug": protocol.Drug[new_entry.code], "concentration_ng_per_ml": conc, "volume_ul": volume_ul,
              "withdrawn_ul": withdrawn_ul or 0, "mode": expected_program["mode"], "steps": plan.steps()},
        expect={"kind": protocol.WriteKind.REFILL, "program": expected_program, "reservoir_ul": volume_ul},
        describe=details,
    )
    result = execute(app, client, request, log_index=raw["event_count"])
    status_after = describe(result["readback"]["status"], library, read_at=raw["pump_time"],
                            port=app.port or "", emulated=app.emulated)
    out = {"command": "refill", **details,
           "after": {**program_view(result["readback"]["program"]["program"], unit),
                     "reservoir_ml": status_after["reservoir_ml"],
                     "projected_low_reservoir_date": status_after["projected_low_reservoir_date"]},
           "txid": result["txid"], "commit": result["commit"], "verified": True, "outcome": "verified"}
    app.emit(out, _print_verified)


def _low_alarm(volume_ul: int, low_ul: int, per_day_nl: int, pump_time: int):
    from ..status import iso

    if per_day_nl <= 0:
        return None
    return iso(pump_time + max(0, volume_ul - low_ul) * 1000 * 86_400 // per_day_nl)


def q_text(q: dict) -> str:
    from ..output import fmt_quantity

    return fmt_quantity(q)


def _print_verified(r: dict) -> None:
    from ..output import console, fmt_date, fmt_quantity

    a = r["after"]
    console().print(
        f"[bold green]VERIFIED[/]: {r['serial_number']} holds {format(a['reservoir_ml'], 'f')} mL of {a['drug']} "
        f"{fmt_quantity(a['concentration'])}, delivering {fmt_quantity(a['daily_dose'])} "
        f"({format(a['flow_ml_per_day'], 'f')} mL/day). Low-reservoir alarm: "
        f"{fmt_date(a['projected_low_reservoir_date'])} (txid {r['txid']}).")
