"""What program, refill, bolus and empty share: safety options, the before/after
table, the confirmation prompt, and running a checked change end to end."""
from __future__ import annotations

import sys
from collections.abc import Callable

import click

from .. import doublecheck
from ..errors import Cancelled, UsageError
from ..limits import COMMAND_CONFIRMS, COMMAND_OVERRIDES, CONFIRM_FLAGS, parse_overrides
from ..output import fmt_date


def safety_option_list(command: str) -> list:
    """The overrides and confirmations `command` can meet (limits.COMMAND_OVERRIDES and
    COMMAND_CONFIRMS), and --yes: a command offers no flag that can never apply to it."""
    names = COMMAND_OVERRIDES.get(command, ())
    overrides = [click.option("--override-soft-limit", "overrides", metavar="NAME=REASON", multiple=True,
                              help="Proceed past the soft limit NAME (repeat for each: " + ", ".join(names)
                                   + "); each REASON is recorded in the audit log.")] if names else []
    return [*overrides,
            *[click.option(flag, flag.lstrip("-").replace("-", "_"), is_flag=True,
                           help=f"Accept {CONFIRM_FLAGS[flag]}.") for flag in COMMAND_CONFIRMS.get(command, ())],
            click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")]

#: the independent double check (ithcli/doublecheck.py): every write command takes these
DOUBLE_CHECK_OPTIONS = [
    click.option("--check-request", type=click.Path(dir_okay=False), metavar="FILE",
                 help="Check the change and write a request for a second clinician to verify (`ithcli verify "
                      "FILE`), signed with your --credential. Nothing is sent to the pump."),
    click.option("--verified-by", type=click.Path(dir_okay=False), metavar="FILE",
                 help="The request a second clinician verified: the change is sent only if it is exactly "
                      "the one they verified, on an unchanged pump."),
]

ORDER_OPTION = click.option(
    "--order", type=click.Path(dir_okay=False), metavar="FILE",
    help="The prescriber's order (TOML, docs/clinical.md#orders-and-the-double-check): the pump is checked "
         "against it first (serial, patient, drug, concentration) and the change is the order's.")


def safety_options(command: str):
    """The decorator adding `command`'s safety options and the double-check options."""
    def add(fn):
        for option in reversed(safety_option_list(command) + DOUBLE_CHECK_OPTIONS):
            fn = option(fn)
        return fn
    return add


def double_check_options(fn):
    for option in reversed(DOUBLE_CHECK_OPTIONS):
        fn = option(fn)
    return fn


def double_check_choice(options: dict) -> tuple[str | None, str | None]:
    """(--check-request FILE, --verified-by FILE) from a command's keyword arguments."""
    request, verified = options.pop("check_request", None), options.pop("verified_by", None)
    if request and verified:
        raise UsageError("--check-request asks for a double check, --verified-by uses one: give one of them")
    return request, verified


def safety_choices(options: dict) -> tuple[dict[str, str], set[str]]:
    """The named overrides and the confirmation flags given, from a command's keyword arguments."""
    overrides = parse_overrides(options.pop("overrides", ()))
    confirmed = {flag for flag in CONFIRM_FLAGS if options.pop(flag.lstrip("-").replace("-", "_"), False)}
    return overrides, confirmed


def render_change(title: str, rows: list[tuple[str, str, str]], warnings, emulated: bool) -> None:
    """The change about to be sent: its table on stdout (the report), its warnings on stderr
    (said while the command works, as every note is). A stdout whose reader has gone cancels
    the change: it is not sent unseen (exit 9, said on stderr)."""
    from ..output import console

    show_before_sending(lambda: render_table(title + ("  EMULATED" if emulated else ""), rows), "the change")
    con = console(stderr_=True)
    for w in warnings:
        colour = "red" if w.level in ("soft", "confirm") else "yellow"
        con.print(f"[{colour}]{w.level.upper()}[/]: {w.message}")


def show_before_sending(render: Callable[[], None], what: str) -> None:
    """Show (on stdout) what is about to be sent. A stdout whose reader has gone cancels it:
    nothing is sent unseen (exit 9, said on stderr)."""
    try:
        render()
    except BrokenPipeError:
        raise Cancelled(f"standard output was closed before {what} could be shown: cancelled. "
                        "Nothing was sent") from None


def render_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    """The before/after table of a change (also what a second verifier is shown)."""
    from rich.table import Table

    from ..output import console

    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("Now")
    table.add_column("After")
    for label, before, after in rows:
        table.add_row(label, before, f"[bold]{after}[/]" if before != after else after)
    console().print(table)


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


def run_change(app, pump, prepared, *, title: str, yes: bool, on_echo=None, render_done=None,
               render_unchanged=None, double_check: tuple[str | None, str | None] = (None, None)) -> None:
    """Show a change the API checked, ask, apply it through the API, emit: the common tail of
    every write command (the checks and the write itself live in ithcli/api.py). With
    double_check's request path: write the request for a second clinician instead of sending;
    with its verified path: send only the change that was verified."""
    change = prepared.change
    request_path, verified_path = double_check
    if change.unchanged:
        if request_path or verified_path:
            raise UsageError("the pump already delivers this: there is nothing to double-check. Nothing was sent")
        result = pump.apply(prepared).data
        app.emit(result, render_unchanged or (lambda r: _say(
            f"No change: {r['serial_number']} already delivers this. Nothing was sent.")))
        return
    if request_path:
        _write_request(app, pump, prepared, title, request_path)
        return
    verified = doublecheck.load(verified_path) if verified_path else None
    accepted = pump.accept_double_check(prepared, verified) if verified is not None else None
    reason = pump.double_check_needed(prepared)
    if accepted is None and reason:
        raise doublecheck.missing(reason, doublecheck.write_kind(change))
    if not app.json:
        render_change(title, change.rows, change.warnings, app.session().emulated)
        _say_order_and_check(prepared.order, accepted)
    confirm(app, yes, change.question)
    app.emit(pump.apply(prepared, on_echo=None if app.json else on_echo, second_verifier=verified).data,
             render_done)


def _write_request(app, pump, prepared, title: str, path: str) -> None:
    doc = pump.request_double_check(prepared)
    doublecheck.save(path, doc)
    request = doc["request"]
    item = request["writes"][0]
    out = {"command": prepared.change.command, "outcome": "double-check-requested", "request_file": path,
           "requested_by": request["requested_by"], "expires_at": request["expires_at"], "reason": item["reason"],
           **prepared.change.describe}
    if not app.json:
        render_change(title, prepared.change.rows, prepared.change.warnings, app.session().emulated)
        _say_order_and_check(prepared.order, None)

    def render(r: dict) -> None:
        _say(f"Double-check request written to {r['request_file']} by {request['requested_by_name']}: another "
             f"clinician runs `ithcli verify {r['request_file']}` with their own credential before "
             f"{fmt_date(r['expires_at'])}; then run this again with --verified-by FILE. Nothing was sent to "
             "the pump.")
    app.emit(out, render)


def _say_order_and_check(order, accepted) -> None:
    """Notes said while the command works: on stderr, with the progress."""
    if order is not None:
        _note(f"Order {order.id} by {order.prescriber} ({order.written} to {order.valid_until}): the pump "
              "matches it and this is the ordered change.")
    if accepted is not None:
        _note(f"Double-checked by {accepted.verified_by.label} at {fmt_date(accepted.verified_at)} "
              f"(asked for by {accepted.requested_by.label}).")


def _say(text: str) -> None:
    from ..output import console

    console().print(text)


def _note(text: str) -> None:
    from ..output import console

    console(stderr_=True).print(text)
