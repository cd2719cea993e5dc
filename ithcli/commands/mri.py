"""`ithcli mri`: the pre-MRI checklist, MRI-safe mode, and the post-MRI check."""
from __future__ import annotations

import click

from ..errors import CheckFailed, SafetyError, UsageError


class _Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        from protocol import Quantity, UnitError

        try:
            seconds = Quantity.parse(value.replace("h", " h").replace("min", " min").replace("  ", " "),
                                     "duration").to_base()
        except UnitError as exc:
            self.fail(f"{value!r}: {exc} (e.g. 4h, 90min)", param, ctx)
        if not 3600 <= seconds <= 86_400:
            self.fail(f"{value!r}: the automatic exit must be 1 to 24 h", param, ctx)
        return seconds


AUTO_EXIT = click.option("--auto-exit", type=_Duration(), default="4h", show_default=True,
                         help="MRI-safe mode ends by itself after this long (1 to 24 h), restoring the program.")


@click.group()
def mri():
    """MRI: checklist before the scan, MRI-safe mode, verification after it."""


def _read(app, *, write: bool):
    """Pump state for MRI work: settles any unconfirmed write first and says what it learnt."""
    from protocol.models import MODELS

    client = app.client(write=write)
    learnt = app.resolve_pending()
    described = app.interrogate(resolve=False)
    raw = app.last_raw_status
    program = client.read_program()["program"]
    entry = app.library().for_code(raw["drug"].name)
    return client, learnt, described, raw, program, entry, MODELS[raw["model"]]


def _field(text: str | None) -> str | None:
    if text is None:
        return None
    value = text.strip().upper().removesuffix("T").strip()
    if value not in ("1.5", "3", "3.0"):
        raise UsageError(f"--field {text!r}: give the scanner's static field, 1.5T or 3T")
    return "3" if value.startswith("3") else "1.5"


@mri.command()
@click.option("--field", "field_text", metavar="TESLA", help="The scanner's static field: 1.5T or 3T.")
@click.option("--gradient", type=float, metavar="T/M", help="The scanner's maximum spatial gradient, T/m.")
@AUTO_EXIT
@click.option("--export", "export_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the checklist for the chart: .html, .svg or .txt.")
@click.pass_obj
def checklist(app, field_text, gradient, auto_exit, export_path):
    """Read-only pre-MRI checklist; saves the snapshot `mri verify` compares with. Exit 12 on any BLOCK."""
    from .. import mri as logic

    if export_path and not export_path.lower().endswith((".html", ".svg", ".txt")):
        raise UsageError(f"--export {export_path!r}: the file must end in .html, .svg or .txt")
    client, learnt, described, raw, program, entry, spec = _read(app, write=False)
    lines = logic.checklist(raw, described, spec, entry, auto_exit_s=auto_exit, field_tesla=_field(field_text),
                            gradient=gradient, learnt=learnt, pending=None)
    snap = logic.save_snapshot(app.state_path(), app.serial, described=described, program=program,
                               event_count=raw["event_count"], lines=lines)
    app.record("mri-checklist", result=_overall(lines), lines=[line.__dict__ for line in lines])
    result = {"serial_number": raw["serial_number"], "model": spec.name, "emulated": app.emulated,
              "result": _overall(lines), "lines": [line.__dict__ for line in lines], "snapshot": str(snap),
              "status": described}
    if export_path:
        _export(result, export_path)
        result["exported_to"] = export_path
    if logic.has_block(lines):
        if not app.json:
            _render_lines(result, "Pre-MRI checklist")
        raise CheckFailed(f"pre-MRI checklist for {raw['serial_number']}: BLOCK: "
                          + "; ".join(f"{l.item}: {l.detail}" for l in lines if l.result == logic.BLOCK),
                          details=result)
    app.emit(result, lambda r: _render_lines(r, "Pre-MRI checklist"))


@mri.command()
@AUTO_EXIT
@click.option("--field", "field_text", metavar="TESLA", help="The scanner's static field: 1.5T or 3T.")
@click.option("--gradient", type=float, metavar="T/M", help="The scanner's maximum spatial gradient, T/m.")
@click.option("--confirm-withdrawal-risk", is_flag=True,
              help="The managing clinician approved interrupting a withdrawal-risk drug for the scan.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def enter(app, auto_exit, field_text, gradient, confirm_withdrawal_risk, yes):
    """Put the pump in MRI-safe mode (refused while the checklist has a BLOCK), then read back."""
    import protocol

    from .. import mri as logic
    from ..writes import WriteRequest, execute, preflight
    from ._writing import confirm

    client, learnt, described, raw, program, entry, spec = _read(app, write=True)
    preflight(app, client, app.serial)
    lines = logic.checklist(raw, described, spec, entry, auto_exit_s=auto_exit, field_tesla=_field(field_text),
                            gradient=gradient, learnt=learnt, pending=None)
    if logic.has_block(lines):
        raise CheckFailed("MRI-safe mode refused: the checklist has a BLOCK: "
                          + "; ".join(f"{l.item}: {l.detail} ({l.action})" for l in lines if l.result == logic.BLOCK)
                          + ". Nothing was sent", details={"lines": [l.__dict__ for l in lines]})
    if entry is not None and entry.withdrawal_risk and raw["daily_dose_ng_per_day"] and not confirm_withdrawal_risk:
        raise SafetyError(f"{entry.name} carries a withdrawal risk and delivery stops for up to "
                          f"{logic._hours(auto_exit)}: the managing clinician must approve "
                          "(pass --confirm-withdrawal-risk). Nothing was sent")
    if not app.json:
        _render_lines({"serial_number": raw["serial_number"], "model": spec.name, "emulated": app.emulated,
                       "result": _overall(lines), "lines": [l.__dict__ for l in lines]}, "Pre-MRI checklist")
    confirm(app, yes, f"Put {raw['serial_number']} in MRI-safe mode (delivery stops; automatic exit after "
                      f"{logic._hours(auto_exit)})?")
    logic.save_snapshot(app.state_path(), app.serial, described=described, program=program,
                        event_count=raw["event_count"], lines=lines)
    request = WriteRequest(
        kind="MRI_ENTER", command=protocol.Command.PREPARE_MRI_ENTER, body={"auto_exit_s": auto_exit},
        expect={"kind": protocol.WriteKind.MRI_ENTER, "program": program, "mri_auto_exit_s": auto_exit},
        describe={"serial_number": raw["serial_number"], "auto_exit_s": auto_exit},
    )
    result = execute(app, client, request, log_index=raw["event_count"])
    after = app.interrogate(resolve=False)
    out = {"command": "mri enter", "serial_number": raw["serial_number"], "txid": result["txid"],
           "mri_mode": after["mri_mode"], "mri_auto_exit_at": after["mri_auto_exit_at"],
           "current_rate_ml_per_day": after["current_rate_ml_per_day"], "verified": True, "outcome": "verified"}
    app.emit(out, lambda r: _say(f"[bold green]VERIFIED[/]: {r['serial_number']} is in MRI-safe mode; delivery "
                                 f"suspended; automatic exit at {r['mri_auto_exit_at']} (txid {r['txid']})."))


@mri.command(name="exit")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def exit_(app, yes):
    """Leave MRI-safe mode; read back and confirm the program equals the pre-MRI snapshot."""
    import protocol

    from .. import mri as logic
    from ..errors import VerifyFailed
    from ..writes import WriteRequest, execute, preflight
    from ._writing import confirm

    client, learnt, described, raw, program, entry, spec = _read(app, write=True)
    preflight(app, client, app.serial)
    snapshot = logic.load_snapshot(app.state_path(), app.serial)
    confirm(app, yes, f"Take {raw['serial_number']} out of MRI-safe mode and restore delivery?")
    request = WriteRequest(
        kind="MRI_EXIT", command=protocol.Command.PREPARE_MRI_EXIT, body={},
        expect={"kind": protocol.WriteKind.MRI_EXIT, "program": program},
        describe={"serial_number": raw["serial_number"]},
    )
    result = execute(app, client, request, log_index=raw["event_count"])
    after_program = result["readback"]["program"]["program"]
    diffs = logic.program_differences(snapshot["program"], after_program) if snapshot else []
    out = {"command": "mri exit", "serial_number": raw["serial_number"], "txid": result["txid"],
           "snapshot_compared": snapshot is not None, "differences": diffs}
    if diffs:
        raise VerifyFailed("MRI-safe mode is off but the program differs from the pre-MRI snapshot: "
                           + "; ".join(diffs) + ". Reprogram it now", details={**out, "verified": False})
    out |= {"verified": True, "outcome": "verified"}

    def render(r):
        note = "equals the pre-MRI snapshot" if r["snapshot_compared"] else "(no pre-MRI snapshot to compare)"
        _say(f"[bold green]VERIFIED[/]: {r['serial_number']} left MRI-safe mode; delivery restored; the program "
             f"{note} (txid {r['txid']}).")

    app.emit(out, render)


@mri.command(name="verify")
@click.pass_obj
def verify_(app):
    """After the scan: compare with the snapshot and read the log since it. Exit 12 on FAIL."""
    from .. import mri as logic

    client, learnt, described, raw, program, entry, spec = _read(app, write=False)
    snapshot = logic.load_snapshot(app.state_path(), app.serial)
    if snapshot is None:
        raise UsageError(f"no pre-MRI snapshot for {app.serial} in {app.state_path()}: "
                         "run 'ithcli mri checklist' before the scan")
    _, events = client.read_whole_log(snapshot["event_count"])
    lines = logic.verify(snapshot, raw, program, events, spec)
    failed = any(l.result == logic.FAIL for l in lines)
    result = {"serial_number": raw["serial_number"], "model": spec.name, "emulated": app.emulated,
              "result": "FAIL" if failed else "PASS", "lines": [l.__dict__ for l in lines],
              "snapshot_taken_at": snapshot["taken_at"], "status": described}
    app.record("mri-verify", result=result["result"], lines=result["lines"])
    if failed:
        if not app.json:
            _render_lines(result, "Post-MRI verification")
        raise CheckFailed(f"post-MRI verification of {raw['serial_number']}: FAIL: "
                          + "; ".join(f"{l.item}: {l.detail}" for l in lines if l.result == logic.FAIL),
                          details=result)
    app.emit(result, lambda r: _render_lines(r, "Post-MRI verification"))


def _overall(lines) -> str:
    results = {line.result for line in lines}
    return "BLOCK" if "BLOCK" in results else "WARN" if "WARN" in results else "PASS"


def _table(result: dict, title: str):
    from rich.table import Table

    colour = {"PASS": "green", "WARN": "yellow", "BLOCK": "bold red", "FAIL": "bold red"}
    heading = f"{title}: {result['serial_number']} ({result['model']})" + ("  EMULATED" if result["emulated"] else "")
    table = Table(title=heading, title_justify="left", show_lines=False)
    table.add_column("Result")
    table.add_column("Item")
    table.add_column("Finding")
    table.add_column("What to do")
    for line in result["lines"]:
        table.add_row(f"[{colour[line['result']]}]{line['result']}[/]", line["item"], line["detail"], line["action"])
    return table


def _render_lines(result: dict, title: str) -> None:
    from ..output import console

    con = console()
    con.print(_table(result, title))
    con.print(f"Overall: [bold]{result['result']}[/]")


def _export(result: dict, path: str) -> None:
    import io

    from rich.console import Console

    con = Console(record=True, width=120, file=io.StringIO())
    con.print(_table(result, "Pre-MRI checklist"))
    con.print(f"Overall: {result['result']}  (snapshot {result.get('snapshot', '')})")
    lower = path.lower()
    try:
        if lower.endswith(".html"):
            con.save_html(path)
        elif lower.endswith(".svg"):
            con.save_svg(path, title=f"Pre-MRI checklist {result['serial_number']}")
        else:
            con.save_text(path)
    except OSError as exc:
        raise UsageError(f"--export {path}: cannot write: {exc.strerror or exc}") from None


def _say(text: str) -> None:
    from ..output import console

    console().print(text)
