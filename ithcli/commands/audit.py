"""`ithcli audit`: check the hash-chained audit log."""
from __future__ import annotations

import click


@click.group()
def audit():
    """The local audit log of every command sent and every response."""


@audit.command()
@click.pass_obj
def verify(app):
    """Check the chain: any edited, removed or reordered entry is named and exits 10."""
    from ..audit import AuditError  # hashlib, fcntl, output: not on every command's start-up path

    log = app.records.audit
    if not log.path.exists():
        raise AuditError(f"no audit log at {log.path}")
    count, problems = log.verify()
    result = {"path": str(log.path), "entries": count, "ok": not problems, "problems": problems}
    if problems:
        raise AuditError(f"audit log {log.path} fails verification: " + "; ".join(problems), details=result)

    def render(r):
        from ..output import console

        console().print(f"Audit log {r['path']}: {r['entries']} entries, chain intact.")

    app.emit(result, render)
