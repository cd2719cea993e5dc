"""The pre-MRI checklist as a document, from the data `mri checklist --json` prints."""
from __future__ import annotations

from typing import Any

from ..output import fmt_date
from .html import badge, key_values, page, table, tag
from .pump import identity_rows, notice, running_head, when

#: what the overall result means for the scan, said on the document
_MEANING = {"PASS": "every line passed.",
            "WARN": "no line blocks the scan; do what each WARN line says first.",
            "BLOCK": "do not scan: ithcli mri enter is refused while a line is BLOCK."}


def checklist_html(r: dict, *, operator: str | None = None, paper: str | None = None) -> str:
    """The checklist for the chart: which pump and patient, every line with what to do, the overall
    result, and lines to sign."""
    serial, status = r["serial_number"], r.get("status")
    status = status if isinstance(status, dict) else None
    read_at = status.get("read_at") if status else None
    rows: list[tuple[Any, Any]] = identity_rows(serial, status)
    rows += [("Read", [when(read_at), f" from {status['port']}" if status and status.get("port") else "",
                       " (this computer's clock)"]),
             ("Operator", operator or "unknown"),
             ("Snapshot", r.get("snapshot") or "none saved")]
    lines = [[badge(line["result"]), line["item"], line["detail"], line["action"] or "-"] for line in r["lines"]]
    body = [notice(bool(r.get("emulated"))),
            tag("h1", f"Pre-MRI checklist: {serial} ({r['model']})"),
            key_values(rows),
            table(["Result", "Item", "Finding", "What to do"], lines, widths=["11%", "19%", "37%", "33%"]),
            tag("p", "Overall: ", badge(r["result"]), " ", _MEANING.get(r["result"], ""), cls="overall"),
            tag("section", tag("h2", "Checked"), key_values([
                ("Checked by (name)", ""), ("Signature", ""), ("Date and time", ""),
                ("Scanner field and gradient", "")]), cls="signoff")]
    return page(title=f"Pre-MRI checklist {serial}", running_head=running_head("Pre-MRI checklist", serial, status),
                running_foot=f"Read {fmt_date(read_at)} \u00b7 overall {r['result']}", body=body, paper=paper)
