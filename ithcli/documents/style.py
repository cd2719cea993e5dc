"""The documents' stylesheet: a page-wide column on screen, A4 or Letter on paper.

Printed, every page carries a running head (the document, the pump, its drug), the
notice NOT A CLEARED MEDICAL DEVICE, a running foot (the session) and 'Page N of M',
in @page margin boxes: Chromium prints them from version 131 (the PDF export checks
its version); other browsers print their own header and page numbers instead. The
margins fit A4 (210 mm) and Letter (216 mm): the text column is at most 180 mm
(680 CSS px) wide, and tables wrap inside it.
"""
from __future__ import annotations

#: the notice on every page of every document
NOTICE = "NOT A CLEARED MEDICAL DEVICE"

#: the CSS class of a result word's badge
BADGE = {"PASS": "pass", "VERIFIED": "pass", "WARN": "warn", "STALE": "warn", "BLOCK": "bad", "FAIL": "bad",
         "DAMAGED": "bad", "MISMATCH": "bad", "HIGH": "bad", "MEDIUM": "warn", "LOW": "low"}

#: page sizes a PDF can be printed on (CSS names), and their widths and heights in mm
PAPER_MM = {"A5": (148, 210), "A4": (210, 297), "A3": (297, 420), "B5": (176, 250), "B4": (250, 353),
            "letter": (215.9, 279.4), "legal": (215.9, 355.6), "ledger": (279.4, 431.8)}
#: the printed page's margins, mm: top, right, bottom, left
MARGIN_MM = (20, 15, 18, 15)

_FONT = '"Liberation Sans", "DejaVu Sans", Arial, Helvetica, sans-serif'

CSS = f"""
:root {{ color-scheme: light; }}
* {{ box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }}
html {{ font: 10.5pt/1.4 {_FONT}; color: #111; background: #fff; }}
body {{ max-width: 180mm; margin: 0 auto; padding: 16px 12px 32px; }}
@media print {{ body {{ max-width: none; padding: 0; }} }}
h1 {{ font-size: 16pt; margin: 6pt 0 4pt; line-height: 1.2; }}
h2 {{ font-size: 12pt; margin: 14pt 0 4pt; padding-bottom: 1pt; border-bottom: 1px solid #888;
      break-after: avoid; page-break-after: avoid; }}
p {{ margin: 3pt 0; }}
ul {{ margin: 3pt 0; padding-left: 16pt; }}
.notice {{ margin: 0 0 6pt; padding: 3pt 6pt; border: 2px solid #a00; color: #a00; font-weight: bold;
           letter-spacing: 0.04em; }}
.emulated {{ color: #a00; font-weight: bold; }}
table {{ width: 100%; border-collapse: collapse; margin: 4pt 0 8pt; break-inside: avoid; }}  /* whole if it fits */
caption {{ text-align: left; font-weight: bold; padding: 2pt 0; }}
th, td {{ text-align: left; vertical-align: top; padding: 2.5pt 5pt; border: 1px solid #aaa;
          overflow-wrap: anywhere; word-break: normal; }}
thead th {{ background: #e8e8e8; }}
thead {{ display: table-header-group; }}
tr {{ break-inside: avoid; page-break-inside: avoid; }}
table.kv th {{ width: 26%; font-weight: bold; background: none; }}
.change {{ break-inside: avoid; page-break-inside: avoid; }}
.nw {{ white-space: nowrap; }}
code {{ font-family: "Liberation Mono", "DejaVu Sans Mono", monospace; font-size: 0.92em; }}
.badge {{ display: inline-block; padding: 0 4pt; border-radius: 3pt; font-weight: bold; white-space: nowrap; }}
.badge.pass {{ color: #05621e; background: #dff2e3; }}
.badge.warn {{ color: #5c4300; background: #ffefb8; }}
.badge.bad {{ color: #fff; background: #b00000; }}
.badge.low {{ color: #063f5c; background: #dcedf7; }}
.badge.other {{ color: #111; background: #e8e8e8; }}
.overall {{ font-size: 13pt; margin: 8pt 0; }}
.alert {{ margin: 4pt 0; padding: 3pt 6pt; border-left: 4pt solid #b00000; background: #fdecec; }}
.changed {{ font-weight: bold; }}
.muted {{ color: #555; }}
figure {{ margin: 6pt 0; }}
figure svg {{ display: block; width: 100%; height: auto; }}
figcaption {{ font-size: 9pt; color: #333; }}
.signoff {{ margin-top: 18pt; break-inside: avoid; page-break-inside: avoid; }}
.signoff td {{ height: 24pt; border: none; border-bottom: 1px solid #444; }}
.signoff th {{ border: none; width: 26%; vertical-align: bottom; }}
"""


def css_string(value: str) -> str:
    """`value` as a quoted CSS string: every character but letters, digits and plain punctuation
    as an escape, so a value from a pump can neither end the string nor the style sheet."""
    out = []
    for ch in value:
        if ch.isascii() and (ch.isalnum() or ch in " .,:;()_+=@#/-"):
            out.append(ch)
        else:
            out.append(f"\\{ord(ch):x} ")  # the space ends the escape (and is not part of the text)
    return '"' + "".join(out) + '"'


def page_rules(running_head: str, running_foot: str, paper: str | None) -> str:
    """The @page rule: margins, the page size for a PDF, and the running head and foot."""
    size = f"size: {paper};" if paper else ""
    top, right, bottom, left = MARGIN_MM
    box = f"font: 7.5pt/1.25 {_FONT}; color: #333;"
    return f"""
@page {{
  {size} margin: {top}mm {right}mm {bottom}mm {left}mm;
  @top-left {{ content: {css_string(running_head)}; {box} vertical-align: bottom; padding-bottom: 3mm; }}
  @top-right {{ content: {css_string(NOTICE)}; {box} color: #a00; font-weight: bold; vertical-align: bottom;
               padding-bottom: 3mm; width: 50mm; text-align: right; }}
  @bottom-left {{ content: {css_string(running_foot)}; {box} vertical-align: top; padding-top: 3mm; }}
  @bottom-right {{ content: "Page " counter(page) " of " counter(pages); {box} vertical-align: top;
                  padding-top: 3mm; width: 30mm; text-align: right; }}
}}
"""
