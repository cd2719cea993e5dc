"""`--export FILE`: which formats a command writes, checked before anything is read or sent,
and the file written whole or not at all.

A file is written to a temporary name beside it, then renamed over it (a failed
export never leaves half a file, nor replaces a good one with it), owner-only
(a document may name the patient), and read back. A PDF is printed on the paper
PAPERSIZE names (else /etc/papersize, else A4), as other Unix tools print.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from . import chromium
from .style import PAPER_MM

#: report and mri checklist: documents (.html, .pdf) and the terminal's rendering (.svg, .txt)
CHECKLIST = (".html", ".pdf", ".svg", ".txt")
#: the report also as a FHIR R4 Bundle (ithcli/fhir.py; needs the `fhir` extra)
FHIR = ".fhir.json"
REPORT = (*CHECKLIST, FHIR)
#: forecast: the chart (.svg, .png) and documents holding it (.html, .pdf)
FORECAST = (".svg", ".png", ".html", ".pdf")
#: what is drawn by Chromium
_CHROMIUM = (".pdf", ".png")
_PAPER = {name.lower(): name for name in PAPER_MM}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Export:
    path: str
    suffix: str
    chromium: str | None  # the program, for .pdf and .png
    paper: str | None  # the CSS page size, for .pdf

    @property
    def why(self) -> str:
        return f"--export {self.path}"

    def is_document(self) -> bool:
        """Written by this package (.html, .pdf); else by the terminal's renderer (report, checklist: .svg, .txt)."""
        return self.suffix in (".html", ".pdf")

    def write_document(self, make: Callable[[str | None], str]) -> None:
        """make(paper) -> the HTML page; written as it is (.html) or printed (.pdf)."""
        if self.suffix == ".pdf":
            assert self.chromium is not None
            pdf = chromium.print_pdf(self.chromium, make(self.paper), self.why)
            if not pdf.startswith(b"%PDF-") or b"%%EOF" not in pdf[-2048:]:
                raise UsageError(f"{self.why}: Chromium's output is not a whole PDF")
            self._write(pdf)
        else:
            self._write(make(None).encode("utf-8"))

    def write_json(self, text: str) -> None:
        """A JSON file (.fhir.json) as it is."""
        self._write(text.encode("utf-8"))

    def write_chart(self, svg: str, width: int, height: int) -> None:
        """The chart as it is (.svg) or drawn (.png)."""
        if self.suffix == ".png":
            assert self.chromium is not None
            png = chromium.screenshot(self.chromium, svg, width, height, self.why)
            if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                raise UsageError(f"{self.why}: Chromium's output is not a PNG")
            self._write(png)
        else:
            self._write(svg.encode("utf-8"))

    def _write(self, data: bytes) -> None:
        target = Path(self.path)
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise UsageError(f"{self.why}: cannot write: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            written = target.read_bytes()
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise UsageError(f"{self.why}: cannot write: {exc.strerror or exc}") from None
        if written != data:
            raise UsageError(f"{self.why}: the file read back is not what was written")
        log.info("%s: wrote %d bytes%s", self.why, len(data), f" on {self.paper} paper" if self.paper else "")  # -v


def check(path: str, suffixes: tuple[str, ...]) -> Export:
    """The export `path` asks for, refused (usage, exit 2) before the pump is read: a format
    the command does not write, a directory missing or not writable, a PDF or PNG without
    Chromium (naming the package), an unknown PAPERSIZE."""
    suffix = FHIR if path.lower().endswith(FHIR) else Path(path).suffix.lower()  # the one two-part suffix
    if suffix not in suffixes:
        names = ", ".join(suffixes[:-1]) + " or " + suffixes[-1]
        raise UsageError(f"--export {path!r}: the file must end in {names}")
    directory = Path(path).parent
    if not directory.is_dir():
        raise UsageError(f"--export {path}: cannot write: no directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--export {path}: cannot write in {directory}: permission denied")
    why = f"--export {path}"
    program = paper = None
    if suffix in _CHROMIUM:
        program = chromium.find(why)
    if suffix == ".pdf":
        paper = paper_size()
        chromium.check_version(program or "", why)
    return Export(path, suffix, program, paper)


def paper_size() -> str:
    """The CSS page size from PAPERSIZE, else /etc/papersize (libpaper's), else A4."""
    named = os.environ.get("PAPERSIZE", "").strip()
    source = "PAPERSIZE"
    if not named:
        try:
            lines = Path("/etc/papersize").read_text().splitlines()
        except OSError:
            lines = []
        named = next((line.strip() for line in lines if line.strip() and not line.startswith("#")), "")
        source = "/etc/papersize"
    if not named:
        return "A4"
    paper = _PAPER.get(named.lower())
    if paper is None:
        raise UsageError(f"{source} says {named!r}: a PDF is printed on {', '.join(PAPER_MM)}")
    return paper
