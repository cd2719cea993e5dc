"""`ithcli reconcile`: settle an unconfirmed write by asking the pump."""
from __future__ import annotations

import click


@click.command()
@click.pass_obj
def reconcile(app):
    """Learn from the pump whether an unconfirmed write was applied (never re-sends it).

    Compares the pump's last applied transaction and its log's TX_APPLIED events
    with the journal of unconfirmed writes, then clears the journal entry so writes
    to this pump are allowed again.
    """
    session = app.session()
    learnt = session.resolve_pending()
    status = session.interrogate(resolve=False)
    result = {
        "serial_number": status["serial_number"],
        "had_unconfirmed": learnt is not None,
        "txid": learnt["txid"] if learnt else None,
        "kind": learnt.get("kind", "").lower() if learnt else None,
        "applied": learnt["applied"] if learnt else None,
        "status": status,
    }

    def render(r):
        from ..output import console, fmt_quantity

        con = console()
        if not r["had_unconfirmed"]:
            con.print(f"No unconfirmed writes for {r['serial_number']}.")
        else:
            verdict = "[bold]WAS applied[/]" if r["applied"] else "[bold]was NOT applied[/]"
            con.print(f"The unconfirmed {r['kind']} txid {r['txid']} {verdict} by {r['serial_number']}.")
        s = r["status"]
        con.print(f"The pump now delivers {s['mode']}, {fmt_quantity(s['daily_dose'])} (24-hour total); "
                  f"last applied txid {s['last_programming']['txid']}. Writes are allowed again.")

    app.emit(result, render)
