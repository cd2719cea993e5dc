"""`ithcli bolus`: a clinician bolus, checked against the drug library and verified."""
from __future__ import annotations

import click

from ..errors import UsageError
from ._writing import safety_options


@click.command()
@click.option("--dose", required=True, metavar="DOSE", help="Bolus dose in the drug's mass unit, e.g. '50 mcg'.")
@click.option("--over", "duration", required=True, metavar="TIME", help="Duration, e.g. '1 min', '30 min', '2 h'.")
@safety_options
@click.pass_obj
def bolus(app, dose, duration, override_reason, confirm_tenfold, confirm_withdrawal_risk, confirm_restart, yes):
    """Deliver a clinician bolus on top of the program (refused while another runs)."""
    import protocol

    from .. import dosing, limits
    from ..status import quantity
    from ..writes import WriteRequest, execute
    from ._writing import confirm, confirmed_flags, read_pump, record_overrides, render_change

    client, raw, before, current_program, entry = read_pump(app)
    dose_ng = dosing.parse_dose(dose, entry)
    seconds = dosing.parse_duration(duration, "--over")
    if not 60 <= seconds <= 86_400:
        raise UsageError(f"--over {duration!r}: a bolus runs from 1 min to 24 h")
    conc = raw["concentration_ng_per_ml"]
    volume_nl = -(-dose_ng * 1_000_000 // conc)  # rounded up: never under-state the volume
    findings = limits.check_concentration(entry, conc)
    findings += limits.check_bolus(entry, dose=dose_ng, daily_total=raw["daily_dose_ng_per_day"],
                                   volume_nl=volume_nl, reservoir_ul=raw["reservoir_ul"])
    if raw["bolus_remaining_ng"]:
        findings.append(limits.Finding("refuse", "bolus-running", "a bolus is already running"))
    confirmed = confirmed_flags(confirm_tenfold, confirm_withdrawal_risk, confirm_restart)
    warnings = limits.settle(findings, override_reason=override_reason, confirmed=confirmed)
    dose_q = quantity(dose_ng, entry.mass_unit)
    details = {"serial_number": raw["serial_number"], "dose": dose_q, "duration_s": seconds,
               "volume_ml": _ml(volume_nl),
               "daily_dose": before["daily_dose"], "warnings": [w.as_dict() for w in warnings],
               "override_soft_limit": override_reason}
    if not app.json:
        from ..output import fmt_quantity as q

        rows = [("Bolus", "-", f"{q(dose_q)} over {duration}"),
                ("Bolus volume", "-", f"{format(_ml(volume_nl), 'f')} mL"),
                ("24-hour total", q(before["daily_dose"]), f"{q(before['daily_dose'])} + bolus")]
        render_change("Bolus", rows, warnings, app.emulated)
    confirm(app, yes, f"Deliver {dose_q['value']} {dose_q['unit']} over {duration} to {raw['serial_number']}?")
    record_overrides(app, override_reason, warnings, confirmed)
    request = WriteRequest(
        kind="BOLUS", command=protocol.Command.PREPARE_BOLUS,
        body={"dose_ng": dose_ng, "duration_s": seconds},
        expect={"kind": protocol.WriteKind.BOLUS, "program": current_program, "bolus_dose_ng": dose_ng,
                "bolus_duration_s": seconds, "bolus_volume_nl": volume_nl},
        describe=details,
    )
    result = execute(app, client, request, log_index=raw["event_count"])
    remaining = result["readback"]["status"]["bolus_remaining_ng"]
    out = {"command": "bolus", **details, "txid": result["txid"], "commit": result["commit"],
           "bolus_remaining": quantity(remaining, entry.mass_unit), "verified": True, "outcome": "verified"}

    def render(r):
        from ..output import console, fmt_quantity

        console().print(f"[bold green]VERIFIED[/]: bolus of {fmt_quantity(r['dose'])} running on "
                        f"{r['serial_number']}, {fmt_quantity(r['bolus_remaining'])} left (txid {r['txid']}).")

    app.emit(out, render)


def _ml(nl: int):
    from decimal import Decimal

    return Decimal(nl) / 1_000_000
