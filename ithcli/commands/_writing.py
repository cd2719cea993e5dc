"""What program, refill and bolus share: reading the pump first, the before/after
table, the confirmation prompt, and reporting the verified result."""
from __future__ import annotations

import sys
from decimal import Decimal

import click

from ..errors import Cancelled, SafetyError

SAFETY_OPTIONS = [
    click.option("--override-soft-limit", "override_reason", metavar="REASON",
                 help="Proceed past a soft limit; REASON is recorded in the audit log."),
    click.option("--confirm-tenfold", is_flag=True,
                 help="Accept a new dose 10x or more away from the current one."),
    click.option("--confirm-withdrawal-risk", is_flag=True,
                 help="Accept stopping (or cutting by half or more) a drug with a withdrawal risk."),
    click.option("--confirm-restart", is_flag=True,
                 help="Accept restarting a stopped pump above the drug's usual starting dose."),
    click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation."),
]


def safety_options(fn):
    for option in reversed(SAFETY_OPTIONS):
        fn = option(fn)
    return fn


def confirmed_flags(confirm_tenfold: bool, confirm_withdrawal_risk: bool, confirm_restart: bool) -> set[str]:
    flags = set()
    if confirm_tenfold:
        flags.add("--confirm-tenfold")
    if confirm_withdrawal_risk:
        flags.add("--confirm-withdrawal-risk")
    if confirm_restart:
        flags.add("--confirm-restart")
    return flags


def read_pump(app, *, allow_unknown_drug: bool = False):
    """Status (raw and described), program and library entry, after the pending-write check.

    A drug missing from the library refuses the write, unless the caller replaces
    the drug (a refill with --drug), when the entry comes back as None.
    """
    from ..writes import preflight

    client = app.client(write=True)
    preflight(app, client, app.serial)
    described = app.interrogate(resolve=False)
    raw = app.last_raw_status
    program = client.read_program()["program"]
    entry = app.library().for_code(raw["drug"].name)
    if entry is None and not allow_unknown_drug:
        raise SafetyError(
            f"the pump holds {raw['drug'].name.lower()}, which is not in the drug library "
            f"({app.library().path}): writes are refused"
        )
    return client, raw, described, program, entry


def change_percent(new: int, old: int) -> Decimal | None:
    if old == 0:
        return None
    return (Decimal(new - old) * 100 / Decimal(old)).quantize(Decimal("0.1"))


def render_change(title: str, rows: list[tuple[str, str, str]], warnings, emulated: bool) -> None:
    from rich.table import Table

    from ..output import console

    con = console()
    table = Table(title=title + ("  EMULATED" if emulated else ""), title_justify="left")
    table.add_column("")
    table.add_column("Now")
    table.add_column("After")
    for label, before, after in rows:
        style = "bold" if before != after else ""
        table.add_row(label, before, f"[{style}]{after}[/]" if style else after)
    con.print(table)
    for w in warnings:
        colour = "red" if w.level in ("soft", "confirm") else "yellow"
        con.print(f"[{colour}]{w.level.upper()}[/]: {w.message}")


def confirm(app, yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty() and app.json:
        raise Cancelled("confirmation needed and --json gives no prompt: pass --yes. Nothing was sent")
    try:
        ok = click.confirm(question, default=False, err=True)
    except click.Abort:
        ok = False
    if not ok:
        raise Cancelled("not confirmed. Nothing was sent")


def record_overrides(app, override_reason, warnings, confirmed) -> None:
    soft = [w.as_dict() for w in warnings if w.level == "soft"]
    if soft:
        app.record("soft-limit-override", reason=override_reason, findings=soft)
    accepted = [w.as_dict() for w in warnings if w.level == "confirm"]
    if accepted:
        app.record("confirmation-flags", flags=sorted(confirmed), findings=accepted)
