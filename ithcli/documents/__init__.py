"""Documents for a patient's chart, built from the data the commands print with --json.

- html.py: HTML escaped by construction (every value from a pump or a file is text)
- style.py: the stylesheet: a page column on screen, A4 or Letter on paper, the running
  head, the notice and page numbers on every printed page
- pump.py: what every document says about the pump
- report.py, checklist.py, forecast.py: one document each; chart.py: the forecast's SVG
- chromium.py: headless Chromium, for PDF and PNG
- export.py: `--export FILE`: the formats, checked before the pump is read; the file
  written whole or not at all
"""
from __future__ import annotations

from .chart import HEIGHT, WIDTH, forecast_svg
from .checklist import checklist_html
from .export import CHECKLIST, FHIR, FORECAST, REPORT, Export, check
from .forecast import forecast_html
from .report import report_html

__all__ = ["CHECKLIST", "FHIR", "FORECAST", "HEIGHT", "REPORT", "WIDTH", "Export", "check", "checklist_html",
           "forecast_html", "forecast_svg", "report_html"]
