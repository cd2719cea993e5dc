"""HTML for documents, escaped by construction.

Every value from a pump, the audit log or a file is text: `esc` turns it into HTML, and
`tag` escapes every child and attribute that is not `Markup` (HTML built here). A
document is assembled only from `tag`s, so a serial number, a patient ID or a drug
name can never become markup, a script or a style. Text that is escaped also keeps a
number with its unit and an option name (`--confirm-...`) on one line: a page may wrap
between words, never inside those.
"""
from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

from . import style


class Markup(str):
    """HTML built by this module: put in a page as it is."""

    __slots__ = ()


def text(value: Any) -> str:
    """A value as people read it: decimals as written (never 0.275000 nor 1e-05), None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        value = Decimal(repr(value))  # the shortest text that is this float
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


#: a number and its unit ('550 mcg/day', '<= 19 T/m', '15:37:25 UTC'), kept on one line
_QUANTITY = re.compile(r"(?<![\w.])(-?\d[\d.,:]*) ((?:mcg|mg|ng|ug|µg|g|mL|uL|nL|L|T/m|T|cm|mm|min|h|s|days?"
                       r"|%|UTC)(?:/(?:mL|day|h|min|m))?)(?![\w/])")
#: an option a reader may have to type ('--confirm-withdrawal-risk'), kept whole
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def esc(value: Any) -> Markup:
    """`value` as HTML text: escaped (quotes too), its quantities and option names unbroken."""
    if isinstance(value, Markup):
        return value
    escaped = html.escape(text(value), quote=True)
    escaped = _QUANTITY.sub(r'<span class="nw">\1 \2</span>', escaped)
    return Markup(_OPTION.sub(r'<code class="nw">\1</code>', escaped))


_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")


def tag(element: str, /, *children: Any, cls: str | None = None, **attrs: Any) -> Markup:
    """<element attrs>children</element>; children that are lists are flattened, None left out.
    Element and attribute names are this package's own, never data: checked all the same."""
    if not _NAME.match(element) or not all(_NAME.match(a.replace("_", "-")) for a in attrs):
        raise ValueError(f"not an element or attribute name: {element!r} {sorted(attrs)!r}")
    if cls:
        attrs = {"class": cls, **attrs}
    opening = "".join(f' {a.rstrip("_").replace("_", "-")}="{html.escape(text(v), quote=True)}"'
                      for a, v in attrs.items() if v is not None)
    if element in _VOID:
        return Markup(f"<{element}{opening}>")
    return Markup(f"<{element}{opening}>{join(children)}</{element}>")


_VOID = frozenset({"meta", "br", "col", "hr", "img"})


def join(children: Any, sep: str = "") -> Markup:
    """Children (values, Markup, nested lists; None left out) as HTML, each escaped unless Markup."""
    parts: list[str] = []

    def add(child: Any) -> None:
        if child is None:
            return
        if isinstance(child, (list, tuple)):
            for c in child:
                add(c)
            return
        parts.append(esc(child))

    add(children)
    return Markup(html.escape(sep).join(parts))


def nowrap(value: Any) -> Markup:
    """A value kept on one line (a date, a serial): escaped, whole."""
    return tag("span", Markup(html.escape(text(value), quote=True)), cls="nw")


def quantity(q: dict | None) -> Markup:
    """{'value': 550, 'unit': 'mcg/day'} as '550 mcg/day', on one line."""
    if not q:
        return Markup("-")
    return nowrap(f"{text(q['value'])} {q['unit']}")


def ml(value: Any) -> Markup:
    return nowrap("-" if value is None else f"{text(value)} mL")


def badge(result: Any, kind: str | None = None) -> Markup:
    """PASS, WARN, BLOCK, FAIL, VERIFIED...: a word in its colour (the word is what counts in grey
    print); `kind`: the colour's class when the word alone does not say it (style.BADGE's values)."""
    word = text(result).upper()
    return tag("span", word, cls=f"badge {kind or style.BADGE.get(word, 'other')}")


def key_values(rows: list[tuple[Any, Any]], *, caption: Any = None) -> Markup:
    """A two-column table of labels and values."""
    return tag("table", tag("caption", caption) if caption is not None else None,
               tag("tbody", [tag("tr", tag("th", label, scope="row"), tag("td", value)) for label, value in rows]),
               cls="kv")


def table(headings: list[str], rows: list[list[Any]], *, caption: Any = None,
          widths: list[str] | None = None) -> Markup:
    """A table whose headings repeat on every printed page it spans; `widths`: CSS widths of the columns."""
    cols = tag("colgroup", [tag("col", style=f"width: {w}") for w in widths]) if widths else None
    return tag("table", tag("caption", caption) if caption is not None else None, cols,
               tag("thead", tag("tr", [tag("th", h, scope="col") for h in headings])),
               tag("tbody", [tag("tr", [tag("td", cell) for cell in row]) for row in rows]))


def alert(*children: Any) -> Markup:
    """Something the reader must not miss: a red-edged paragraph."""
    return tag("p", *children, cls="alert")


def page(*, title: str, running_head: str, running_foot: str, body: list[Any], paper: str | None = None) -> str:
    """A whole document: its stylesheet, and on every printed page `running_head` and the
    notice at the top, `running_foot` and 'Page N of M' at the bottom (@page margin boxes).

    paper: a CSS page size ('A4', 'letter') for printing a PDF; None: the printer's paper
    (the layout fits A4 and Letter both)."""
    css = style.CSS + style.page_rules(running_head, running_foot, paper)
    head = tag("head",
               tag("meta", charset="utf-8"),
               # nothing in a document runs or loads: a browser that opens one enforces it too
               tag("meta", http_equiv="Content-Security-Policy",
                   content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
               tag("meta", name="viewport", content="width=device-width, initial-scale=1"),
               tag("title", title),
               tag("style", Markup(css)))
    return "<!DOCTYPE html>\n" + tag("html", head, tag("body", body), lang="en") + "\n"
