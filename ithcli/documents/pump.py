"""What every document says about the pump: the notice, who it is, what it holds, whose it is."""
from __future__ import annotations

from typing import Any

from ..output import fmt_date
from .html import Markup, nowrap, quantity, tag, text
from .style import NOTICE


def notice(emulated: bool) -> Markup:
    """The notice at the top of every document (the running head repeats it on every page)."""
    return tag("p", f"{NOTICE}. ithcli has no regulatory clearance of any kind: this document is for "
                    "development, testing and training, never for a patient's care.",
               tag("span", " EMULATED pump.", cls="emulated") if emulated else None, cls="notice")


def pump_text(serial: str, status: dict | None) -> str:
    """'BAC-0001, peristaltic-20 (peristaltic), firmware 1.0.0'; the serial alone without a status."""
    if not status:
        return f"{serial} (model unknown: no status read)"
    return f"{serial}, {status['model']} ({status['design']}), firmware {status['firmware']}"


def drug_text(status: dict | None) -> str:
    """'baclofen 2000 mcg/mL'."""
    if not status:
        return "unknown (no status read)"
    conc = status.get("concentration") or {}
    return f"{status['drug']} {text(conc.get('value'))} {conc.get('unit', '')}".strip()


def patient_text(status: dict | None) -> str | None:
    """The patient line of the terminal's views, as plain text (None: no patient field in the status)."""
    from rich.text import Text

    from ..patient import patient_text as markup_text

    if not status or "patient" not in status:  # a status from before protocol version 5 has none
        return None
    return Text.from_markup(markup_text(status["patient"])).plain  # the terminal escapes markup; a page escapes HTML


def running_head(document: str, serial: str, status: dict | None) -> str:
    """The top of every printed page: the document, the pump and its drug."""
    model = f" ({status['model']})" if status else ""
    return f"{document} \u00b7 pump {serial}{model} \u00b7 {drug_text(status)}"


def identity_rows(serial: str, status: dict | None) -> list[tuple[Any, Any]]:
    """Pump, drug, daily dose, patient: the rows that say which pump and patient this is about."""
    rows: list[tuple[Any, Any]] = [("Pump", pump_text(serial, status)), ("Drug", drug_text(status))]
    if status:
        rows.append(("Daily dose", [quantity(status["daily_dose"]), f" (24-hour total), {status['mode']}"]))
    patient = patient_text(status)
    if patient is not None:
        rows.append(("Patient", patient))
    return rows


def when(iso: str | None, *, with_time: bool = True) -> Markup:
    """A date as the terminal shows it, on one line."""
    return nowrap(fmt_date(iso, with_time=with_time))
