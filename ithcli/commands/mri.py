"""`ithcli mri`: the pre-MRI checklist, MRI-safe mode, and the post-MRI check.

The flows live in ithcli/mri.py (shared with batch plans); this module wires
options, asks, renders and exits.

The scanner's field strength is a confirmation: on a model that is not MR
conditional at every field, `checklist` and `enter` without --field ask for it on
an interactive terminal (stdin and stderr both terminals, no --json); anywhere
else the checklist is judged at the strictest field (mri.STRICTEST_FIELD), which
BLOCKs a 1.5 T-only model (exit 12; `enter` then sends nothing).
"""
from __future__ import annotations

import sys

import click

from .. import documents
from ..api import Pump
from ..errors import Cancelled, CheckFailed, UsageError
from ..output import export as terminal_export
from ..output import fmt_date

#: what leaving MRI-safe mode left the pump doing (status.delivery_state of the read-back)
DELIVERY_AFTER_EXIT = {
    "running": "delivery restored",
    "stopped": "[bold yellow]delivery stays STOPPED[/]: the program is stopped (as before the scan, or the "
               "reservoir was emptied for it): refill and program it",
    "suspended": "[bold yellow]delivery SUSPENDED[/]: the program runs at no rate now (see 'ithcli interrogate' "
                 "for its alarms)",
    "bridge bolus": "a bridge bolus runs; the program follows it",
}


class _Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        from ..errors import UsageError as Bad
        from ..mri import parse_auto_exit

        try:
            return parse_auto_exit(value)
        except Bad as exc:
            self.fail(exc.message, param, ctx)


AUTO_EXIT = click.option("--auto-exit", type=_Duration(), default="4h", show_default=True,
                         help="MRI-safe mode ends by itself after this long (1 to 24 h), restoring the program.")
FIELD = click.option("--field", "field_text", metavar="TESLA",
                     help="The scanner's static field: 1.5T or 3T. Without it, a model not MR conditional at "
                          "every field is asked about on a terminal, and judged at 3 T anywhere else.")
GRADIENT = click.option("--gradient", type=float, metavar="T/M", help="The scanner's maximum spatial gradient, T/m.")
YES = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")


@click.group()
def mri():
    """MRI: checklist before the scan, MRI-safe mode, verification after it."""


@mri.command()
@FIELD
@GRADIENT
@AUTO_EXIT
@click.option("--export", "export_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the checklist for the chart: a document (.html, .pdf: needs Chromium) or the "
                   "terminal's rendering (.svg, .txt).")
@click.pass_obj
def checklist(app, field_text, gradient, auto_exit, export_path):
    """Read-only pre-MRI checklist; saves the snapshot `mri verify` compares with. Exit 12 on any BLOCK."""
    from .. import mri as logic

    export = documents.check(export_path, documents.CHECKLIST) if export_path else None  # before the pump is read
    result = Pump(app.session()).mri_checklist(field=field_text, gradient=gradient, auto_exit=auto_exit,
                                     field_for=_field_asker(app)).data
    not_exported = ""
    if export is not None:  # a BLOCK is filed too
        try:
            _export(result, export, app.settings.operator)
            result["exported_to"] = export_path
        except UsageError as exc:  # never hides a finding: a BLOCK still exits 12, naming this
            if result["result"] != logic.BLOCK:
                if not app.json:
                    _render_lines(result, "Pre-MRI checklist")
                raise UsageError(f"{exc.message} (the checklist itself was done and saved: overall "
                                 f"{result['result']})") from None
            not_exported = f" (not exported: {exc.message})"
    _finish(app, result, "Pre-MRI checklist", failed=logic.BLOCK,
            failure=f"pre-MRI checklist for {result['serial_number']}{not_exported}: BLOCK: ")


@mri.command()
@AUTO_EXIT
@FIELD
@GRADIENT
@click.option("--confirm-withdrawal-risk", is_flag=True,
              help="The managing clinician approved interrupting a withdrawal-risk drug for the scan.")
@YES
@click.pass_obj
def enter(app, auto_exit, field_text, gradient, confirm_withdrawal_risk, yes):
    """Put the pump in MRI-safe mode (refused, exit 12, while the checklist has a BLOCK), then read back."""
    from .. import mri as logic
    from ._writing import confirm, show_before_sending

    pump = Pump(app.session())
    # a bad --field is refused before the pump is read; a write is refused while one is unconfirmed
    prepared = pump.check_mri_enter(field=field_text, gradient=gradient, auto_exit=auto_exit,
                                    confirm={"withdrawal-risk"} if confirm_withdrawal_risk else (),
                                    field_for=_field_asker(app))
    checked = prepared.checklist or {}
    if not app.json:
        show_before_sending(lambda: _render_lines(checked, "Pre-MRI checklist"), "the checklist")
    confirm(app, yes, f"Put {checked['serial_number']} in MRI-safe mode (delivery stops; automatic exit after "
                      f"{logic._hours(auto_exit)})?")
    out = pump.apply_mri(prepared).data
    app.emit(out, lambda r: _say(f"[bold green]VERIFIED[/]: {r['serial_number']} is in MRI-safe mode; delivery "
                                 f"suspended; automatic exit at {fmt_date(r['mri_auto_exit_at'])} "
                                 f"(txid {r['txid']})."))


@mri.command(name="exit")
@YES
@click.pass_obj
def exit_(app, yes):
    """Leave MRI-safe mode; read back and confirm the program equals the pre-MRI snapshot."""
    from ._writing import confirm

    pump = Pump(app.session())
    prepared = pump.check_mri_exit()  # refused while a write is unconfirmed
    confirm(app, yes, f"Take {prepared.state.raw.serial_number} out of MRI-safe mode and restore delivery?")
    out = pump.apply_mri(prepared).data

    def render(r):
        note = "equals the pre-MRI snapshot" if r["snapshot_compared"] else "(no pre-MRI snapshot to compare)"
        _say(f"[bold green]VERIFIED[/]: {r['serial_number']} left MRI-safe mode; {DELIVERY_AFTER_EXIT[r['delivery']]}; "
             f"the program {note} (txid {r['txid']}).")

    app.emit(out, render)


@mri.command(name="verify")
@click.pass_obj
def verify_(app):
    """After the scan: compare with the snapshot and read the log since it. Exit 12 on FAIL."""
    from .. import mri as logic

    result = Pump(app.session()).mri_verify().data
    _finish(app, result, "Post-MRI verification", failed=logic.FAIL,
            failure=f"post-MRI verification of {result['serial_number']}: FAIL: ")


def _interactive(app) -> bool:
    """Someone at a terminal who can see a prompt on stderr and answer it; never with --json."""
    return not app.json and sys.stdin.isatty() and sys.stderr.isatty()


def _field_asker(app):
    """Asks for the field on a terminal when the model is not MR conditional at every field;
    otherwise none (the checklist then judges at the strictest field)."""
    return (lambda spec: _ask_field(app, spec)) if _interactive(app) else None


def _ask_field(app, spec) -> str | None:
    from .. import mri as logic

    def valid(text: str) -> str | None:
        try:
            return logic.parse_field(text)
        except UsageError as exc:
            raise click.BadParameter(exc.message) from None  # click.prompt says it and asks again

    click.echo(f"{spec.name} is MR conditional at {logic.fields_text(spec, ' or ')} only: the scanner's field "
               "strength decides whether it may be scanned (--field skips this question).", err=True)
    try:
        field = click.prompt("Scanner's static field (1.5T or 3T)", err=True, value_proc=valid)
    except click.Abort:
        raise Cancelled("no field strength given: cancelled. Nothing was changed on the pump") from None
    app.record("mri-field", field_tesla=field, source="prompt")  # who said which field, as for a flag
    return field


def _finish(app, result: dict, title: str, *, failed: str, failure: str) -> None:
    """Show a checklist or verification; exit 12 (CheckFailed) when its result is `failed`."""
    from .. import mri as logic

    if result["result"] == failed:
        if not app.json:
            _render_lines(result, title)
        raise CheckFailed(failure + "; ".join(logic.blocks(result)), details=result)
    app.emit(result, lambda r: _render_lines(r, title))


def _table(result: dict, title: str):
    from rich.table import Table

    colour = {"PASS": "green", "WARN": "yellow", "BLOCK": "bold red", "FAIL": "bold red"}
    heading = f"{title}: {result['serial_number']} ({result['model']})" + ("  EMULATED" if result["emulated"] else "")
    table = Table(title=heading, title_justify="left")
    status = result.get("status")
    if isinstance(status, dict) and "patient" in status:  # for the bedside check: whose pump this is
        from ..patient import patient_text

        table.caption, table.caption_justify = f"Patient: {patient_text(status['patient'])}", "left"
    for column in ("Result", "Item", "Finding", "What to do"):
        table.add_column(column)
    for line in result["lines"]:
        table.add_row(f"[{colour[line['result']]}]{line['result']}[/]", line["item"], line["detail"], line["action"])
    return table


def _render_lines(result: dict, title: str) -> None:
    from ..output import console

    con = console()
    con.print(_table(result, title))
    con.print(f"Overall: [bold]{result['result']}[/]")


def _export(result: dict, export: documents.Export, operator: str | None) -> None:
    """A document from the checklist's data (.html, .pdf), else the terminal's rendering (.svg, .txt)."""
    if export.is_document():
        export.write_document(lambda paper: documents.checklist_html(result, operator=operator, paper=paper))
    else:
        terminal_export([_table(result, "Pre-MRI checklist"),
                         f"Overall: {result['result']}  (snapshot {result.get('snapshot', '')})"],
                        export.path, f"Pre-MRI checklist {result['serial_number']}")


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
