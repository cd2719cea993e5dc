"""`ithcli empty`: record that the reservoir was emptied (before an MRI of a valve-gated pump)."""
from __future__ import annotations

import click


@click.command()
@click.option("--withdrawn", metavar="VOLUME", help="Volume withdrawn, compared with what the pump expected.")
@click.option("--confirm-withdrawal-risk", is_flag=True,
              help="Accept stopping a drug with a withdrawal risk (delivery stops with the reservoir empty).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def empty(app, withdrawn, confirm_withdrawal_risk, yes):
    """Record an emptied reservoir: volume 0 and delivery stopped, checked and read back."""
    import protocol

    from .. import dosing, limits
    from ..operations import read_state
    from ..writes import WriteRequest, execute
    from ._writing import confirm

    state = read_state(app)
    client, raw, before, entry = state.client, state.raw, state.described, state.entry
    withdrawn_ul = dosing.parse_volume(withdrawn, "--withdrawn") if withdrawn else None
    findings = limits.check_change(entry, current=raw["daily_dose_ng_per_day"], new=0, mode="STOPPED",
                                   history=[], pump_time=raw["pump_time"])
    if withdrawn_ul is not None:
        from protocol.models import MODELS

        findings += [f for f in limits.check_refill(MODELS[raw["model"]], volume_ul=1, withdrawn_ul=withdrawn_ul,
                                                    expected_ul=raw["reservoir_ul"]) if f.rule == "withdrawn-gap"]
    confirmed = {"--confirm-withdrawal-risk"} if confirm_withdrawal_risk else set()
    warnings = limits.settle(findings, override_reason=None, confirmed=confirmed)
    if not app.json:
        from ..output import console

        for w in warnings:
            console().print(f"[yellow]{w.level.upper()}[/]: {w.message}")
    confirm(app, yes, f"Record {raw['serial_number']} as emptied ({before['reservoir_ml']} mL expected) and stop "
                      "delivery?")
    stopped = {"mode": protocol.InfusionMode.STOPPED, "drug": raw["drug"],
               "concentration_ng_per_ml": raw["concentration_ng_per_ml"], "daily_dose_ng_per_day": 0,
               "daily_volume_nl_per_day": 0, "steps": []}
    request = WriteRequest(
        kind="REFILL", command=protocol.Command.PREPARE_REFILL,
        body={"drug": raw["drug"], "concentration_ng_per_ml": raw["concentration_ng_per_ml"], "volume_ul": 0,
              "withdrawn_ul": withdrawn_ul or 0, "mode": protocol.InfusionMode.STOPPED, "steps": []},
        expect={"kind": protocol.WriteKind.REFILL, "program": stopped, "reservoir_ul": 0},
        describe={"serial_number": raw["serial_number"], "expected_remaining_ml": before["reservoir_ml"],
                  "warnings": [w.as_dict() for w in warnings]},
    )
    result = execute(app, client, request, log_index=raw["event_count"])
    after = result["readback"]["status"]
    out = {"command": "empty", "serial_number": raw["serial_number"], "txid": result["txid"],
           "before": {"reservoir_ml": before["reservoir_ml"], "mode": before["mode"]},
           "after": {"reservoir_ml": _ml(after["reservoir_ul"]),
                     "mode": after["mode"].name.lower()},
           "expected_remaining_ml": before["reservoir_ml"], "warnings": [w.as_dict() for w in warnings],
           "verified": True, "outcome": "verified"}

    def render(r):
        from ..output import console

        console().print(f"[bold green]VERIFIED[/]: {r['serial_number']} recorded empty, delivery stopped "
                        f"(txid {r['txid']}). Refill and reprogram after the scan.")

    app.emit(out, render)


def _ml(ul: int):
    from decimal import Decimal

    return Decimal(ul) / 1000
