"""`ithcli verify`: the second clinician's side of the independent double check."""
from __future__ import annotations

from pathlib import Path

import click

from .. import doublecheck
from ..clinic_policy import load_policy
from ..credentials import read_credential
from ..errors import UsageError
from ..output import console, fmt_date
from ._writing import confirm, render_table


@click.command()
@click.argument("request_file", type=click.Path(dir_okay=False), metavar="FILE")
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the verified request (default: FILE with .verified.json in place of .json).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (you have read the request).")
@click.pass_obj
def verify(app, request_file, out, yes):
    """Verify another clinician's change as its independent second checker.

    Shows each write of the request as the operator will send it (the pump, the patient,
    the before/after table, the warnings, the overrides with their reasons, and the order),
    asks you to confirm, and signs it with your own --credential. Refused when you asked for
    the change yourself, when your key is not an active clinician's in the --clinic-policy,
    when the request was changed after it was signed, or when it has expired. Nothing is
    sent to any pump: the operator sends the change with --verified-by.
    """
    settings = app.settings
    if not settings.clinic_policy_path:
        raise UsageError("verify needs the clinic policy (--clinic-policy FILE, env ITHCLI_CLINIC_POLICY)")
    if not settings.credential_path:
        raise UsageError("verify needs your own credential (--credential FILE, env ITHCLI_CREDENTIAL)")
    policy = load_policy(settings.clinic_policy_path)
    doc = doublecheck.load(request_file)
    credential = read_credential(settings.credential_path, settings.ask_passphrase)
    verifier = doublecheck.identify(policy, credential, "the verifier")
    doublecheck.verify(doc, credential, policy)  # refused here, before the question, when it cannot be signed
    if not app.json:
        _show(doc)
    confirm(app, yes, f"Verify this change as {verifier.label}?")
    signed = doublecheck.verify(doc, credential, policy)
    target = out or _default_out(request_file)
    doublecheck.save(target, signed)
    app.record("double-check-verified", request_file=str(request_file), verified_file=str(target),
               requested_by=doc["request"]["requested_by"], verified_by=verifier.id,
               writes=[{k: w.get(k) for k in ("kind", "serial_number", "patient_id", "based_on_txid")}
                       for w in doc["request"]["writes"]])
    result = {"outcome": "verified", "verified_file": str(target), "verified_by": verifier.id,
              "requested_by": doc["request"]["requested_by"], "expires_at": doc["request"]["expires_at"],
              "writes": len(doc["request"]["writes"])}
    app.emit(result, lambda r: console().print(
        f"[bold green]VERIFIED[/] by {verifier.label}: {r['verified_file']}. The operator sends it with "
        f"--verified-by {r['verified_file']} before {fmt_date(r['expires_at'])}."))


def _default_out(path: str) -> str:
    p = Path(path)
    return str(p.with_name(p.name.removesuffix(".json") + ".verified.json"))


def _show(doc: dict) -> None:
    con = console()
    request = doc["request"]
    con.print(f"Double-check request from {request['requested_by_name']} ({request['requested_by']}), "
              f"made {fmt_date(request['requested_at'])}, valid until {fmt_date(request['expires_at'])}.")
    for item in request["writes"]:
        con.print(f"\n[bold]{item['kind']}[/] on pump {item['serial_number']}, patient "
                  f"{item.get('patient_id') or 'not recorded'}" + (f": {item['reason']}" if item.get("reason") else ""))
        render_table(item["kind"].capitalize(), [tuple(r) for r in item["rows"]])
        for w in item.get("warnings", []):
            con.print(f"[red]WARNING[/]: {w}")
        for name, reason in item.get("overrides", {}).items():
            con.print(f"Override {name}: {reason}")
        order = item.get("order")
        if order:
            head = order.get("order", {})
            con.print(f"Order {head.get('id')} by {head.get('prescriber')} for patient {head.get('patient')}, pump "
                      f"{head.get('pump')}: {head.get('drug')} {head.get('concentration')}, written "
                      f"{head.get('written')}, valid until {head.get('valid_until')}.")
            for kind in ("program", "refill", "bolus"):
                if kind in order:
                    con.print(f"  ordered {kind}: " + ", ".join(f"{k} = {v}" for k, v in order[kind].items()))
            for name, reason in order.get("overrides", {}).items():
                con.print(f"  authorised override {name}: {reason}")
        else:
            con.print("No order was given for this change.")
