"""What a closed stdout (`ithcli ... | head -1`) must not lose: a change made to a pump.

A report nobody reads any more is no loss: the run ends quietly with exit 141, as git
and gh do. A run that sent a change (a COMMIT) is different: whatever stdout did, what
happened to the pump is said on stderr. A write that failed or is unconfirmed raises
its own error, which cli.main() says on stderr with its own exit code whether stdout is
open or not; what is left is told here:

- the pipe closed while the final report was being written (every command writes its
  report last, once its writes are verified): one line naming the outcome, exit 141;
- it closed anywhere else after a COMMIT was sent: the outcome was not reported, so
  exit 8 (unconfirmed), as for any write whose outcome the operator does not know.

ReportingApp is the App the command line runs: it counts the COMMITs its audit log
records (every exchange with every pump goes there) and keeps the report being emitted.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from .app import App, Records
from .audit import AuditLog
from .errors import ExitCode


class _WatchedAudit(AuditLog):
    """The audit log, counting the COMMITs it records for this run."""

    def __init__(self, path: str | os.PathLike, records: _WatchedRecords):
        super().__init__(path)
        self._records = records

    def append(self, record: dict[str, Any], *, durable: bool = True, plain: bool = False) -> dict[str, Any]:
        if record.get("event") == "exchange" and record.get("command") == "COMMIT":
            self._records.commits_sent += 1  # counted first: a failing append still sent it
        return super().append(record, durable=durable, plain=plain)


class _WatchedRecords(Records):
    commits_sent = 0

    @property
    def audit(self) -> AuditLog:
        if self._audit is None:
            self._audit = _WatchedAudit(self.audit_path, self)
        return self._audit


class ReportingApp(App):
    """The App of one command-line run: what it sent and what it was reporting when stdout closed."""

    #: the report whose writing stdout's closing cut short (None: it closed elsewhere, or never)
    cut_report: dict[str, Any] | None = None

    @property
    def records(self) -> Records:
        if self._records is None:
            self._records = _WatchedRecords.from_settings(self.settings)
        return self._records

    @property
    def commits_sent(self) -> int:
        records = self._records
        return records.commits_sent if isinstance(records, _WatchedRecords) else 0

    def emit(self, obj: dict[str, Any], render: Callable[[dict[str, Any]], None]) -> None:
        try:
            super().emit(obj, render)
        except BrokenPipeError:
            self.cut_report = obj
            raise


def stdout_to_devnull() -> None:
    """Point stdout at /dev/null: the interpreter's last flush cannot fail again (exit 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def output_closed(app: App | None, command: list[str]) -> NoReturn:
    """Exit for a closed stdout: quietly (141) unless this run changed a pump (see above).
    `command` names the command that ran (["mri", "enter"])."""
    stdout_to_devnull()
    sent = app.commits_sent if isinstance(app, ReportingApp) else 0
    if not sent:
        sys.exit(ExitCode.OUTPUT_CLOSED)
    assert isinstance(app, ReportingApp)
    what = " ".join(command) or "ithcli"
    if app.cut_report is not None:
        _say(f"ithcli: {what}: {_outcome(app.cut_report)}; standard output was closed before its report "
             "(the audit log has it)")
        sys.exit(ExitCode.OUTPUT_CLOSED)
    _say(f"ithcli: error: {what}: standard output was closed after a change was sent and before its outcome "
         "was reported: read the pump (ithcli reconcile) before writing again; the audit log has every exchange")
    sys.exit(ExitCode.UNCONFIRMED)


def _outcome(report: dict[str, Any]) -> str:
    """'verified on EMU00001 (txid 7)': what a write's report says happened."""
    text = str(report.get("outcome") or "succeeded")
    if report.get("serial_number"):
        text += f" on {report['serial_number']}"
    if report.get("txid") is not None:
        text += f" (txid {report['txid']})"
    return text


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:  # stderr gone too: the exit code still says it
        pass
