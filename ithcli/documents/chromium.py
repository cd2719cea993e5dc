"""Headless Chromium: prints a document to PDF, draws an SVG to PNG.

Chromium, not a Python HTML-to-PDF library: it lays a page out as the browsers that
open the HTML export do (one layout to check, and the tests render with it), it prints
CSS paged media (the running head and 'Page N of M' in @page margin boxes, from
version 131), and it costs ithcli no Python dependency: only what exports a PDF or a
PNG needs the system package. Each run has its own throw-away profile (never the
user's browser), no network to reach (a document loads nothing) and a time limit.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import UsageError

#: the programs tried, in order, when ITHCLI_CHROMIUM does not name one
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: @page margin boxes (the running head and page numbers) print from this version on
MARGIN_BOXES_FROM = 131
#: what to install where Chromium is missing
INSTALL = "apt-get install chromium"
TIMEOUT_S = 90


def find(why: str) -> str:
    """The Chromium program (ITHCLI_CHROMIUM, else the first of NAMES on PATH); refused in one
    line naming the package to install when there is none. `why`: what needs it."""
    named = os.environ.get("ITHCLI_CHROMIUM")
    if named:
        found = shutil.which(named)
        if found is None:
            raise UsageError(f"{why} needs Chromium, and ITHCLI_CHROMIUM={named} is not a program that can be run")
        return found
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise UsageError(f"{why} needs Chromium, which is not installed: {INSTALL} (or set ITHCLI_CHROMIUM to its "
                     "program), or export .html")


def check_version(program: str, why: str) -> None:
    """Refuse a Chromium too old to print the running head and page numbers."""
    out = _run([program, "--version"], why, timeout=30).stdout
    found = re.search(r"(\d+)\.\d+\.\d+", out)
    if found is None:
        raise UsageError(f"{why}: cannot tell which version {program} is (it says {out.strip()[:60]!r})")
    if int(found.group(1)) < MARGIN_BOXES_FROM:
        raise UsageError(f"{why}: Chromium {found.group(1)} cannot print page headers and numbers (needs "
                         f"{MARGIN_BOXES_FROM} or later): upgrade it ({INSTALL}) or export .html")


def print_pdf(program: str, page_html: str, why: str) -> bytes:
    """The document printed to PDF (the page size is the document's @page size)."""
    with tempfile.TemporaryDirectory(prefix="ithcli-print-") as tmp:
        source, target = Path(tmp, "document.html"), Path(tmp, "document.pdf")
        source.write_text(page_html, encoding="utf-8")
        _run([program, *_flags(tmp), "--no-pdf-header-footer", "--print-to-pdf-no-header",
              f"--print-to-pdf={target}", source.as_uri()], why)
        return _output(target, why)


def screenshot(program: str, svg: str, width: int, height: int, why: str, scale: int = 2) -> bytes:
    """An SVG drawn to PNG at `scale` pixels per CSS pixel."""
    with tempfile.TemporaryDirectory(prefix="ithcli-draw-") as tmp:
        source, target = Path(tmp, "chart.svg"), Path(tmp, "chart.png")
        source.write_text(svg, encoding="utf-8")
        _run([program, *_flags(tmp), "--hide-scrollbars", f"--force-device-scale-factor={scale}",
              f"--window-size={width},{height}", f"--screenshot={target}", source.as_uri()], why)
        return _output(target, why)


def _flags(profile: str) -> list[str]:
    flags = ["--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-sync", "--disable-background-networking", "--disable-dev-shm-usage", "--mute-audio",
             f"--user-data-dir={profile}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium's sandbox refuses root; it renders only our own escaped document
    return flags


def _run(argv: list[str], why: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UsageError(f"{why}: Chromium did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise UsageError(f"{why}: cannot run {argv[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise UsageError(f"{why}: Chromium failed (exit {done.returncode}): {_last_words(done.stderr)}")
    return done


def _output(target: Path, why: str) -> bytes:
    try:
        return target.read_bytes()
    except OSError:
        raise UsageError(f"{why}: Chromium wrote nothing") from None


def _last_words(stderr: str) -> str:
    """Chromium's last line of complaint, without its [pid:tid:time:LEVEL:file] prefix."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no message"
    return re.sub(r"^\[[^\]]*\]\s*", "", lines[-1])[:200]
