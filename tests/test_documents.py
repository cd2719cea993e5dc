"""The documents people file (report, mri checklist, forecast --export), looked at as people see them.

Each export is made by the real ithcli against a real ith-emulator, then rendered by
headless Chromium (Debian's `chromium`), as a browser shows it and as it prints:
a screenshot that is not blank and has nothing right of the page's column, a layout
no wider than the window at 1100 px nor than an A4 page's text (680 CSS px), the
printed PDF's paper, its running head and page numbers on every page, every word
inside the margins, and the key figures on it (pdftotext, Debian's poppler-utils).
Without Chromium (or poppler-utils) those tests skip, saying what to install; what
needs neither (the chart's SVG, the refusals, the escaping) always runs.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from cli_harness import assert_one_line_error

from ithcli.documents import chromium as chromium_mod
from ithcli.documents import style
from ithcli.documents.chart import date_ticks, ml_step
from ithcli.documents.checklist import checklist_html
from ithcli.documents.export import paper_size
from ithcli.documents.html import Markup, esc, tag

BACLOFEN = ("--model", "peristaltic-20", "--serial", "DOC-BAC7", "--drug", "baclofen", "--concentration",
            "2000 mcg/mL", "--volume", "18 mL", "--flow", "0.25 mL/day")  # 500 mcg/day
PATIENT = ("patient", "set", "--id", "MRN-0042117", "--initials", "ab", "--born", "1970-01-02",
           "--spasticity-origin", "spinal", "--yes")
NOTICE = "NOT A CLEARED MEDICAL DEVICE"
#: an A4 page's text column in CSS px (210 mm less 2 x 15 mm margins; Letter's is wider)
PAGE_TEXT_PX = 680
MM_PT = 72 / 25.4
A4_PT, LETTER_PT = (595.3, 841.9), (612.0, 792.0)


# --- what renders them ------------------------------------------------------------------

@pytest.fixture
def chromium() -> str:
    for name in chromium_mod.NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium not installed: apt-get install chromium")


@pytest.fixture
def poppler(chromium) -> None:
    if not (shutil.which("pdftotext") and shutil.which("pdfinfo")):
        pytest.skip("pdftotext/pdfinfo not installed: apt-get install poppler-utils")


def _chromium_run(program: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")
    done = subprocess.run([program, *flags, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


#: run in a copy of a document: how wide it lays out, and its text as shown
_PROBE = """<script>
(() => {
  const root = document.documentElement;
  let widest = 0;
  for (const el of document.body.querySelectorAll("*")) widest = Math.max(widest, el.getBoundingClientRect().right);
  // a value with its unit, a date, an option: each on one line box, never split
  const lines = e => new Set([...e.getClientRects()].map(r => Math.round(r.bottom))).size;
  const split = [...document.querySelectorAll(".nw")].filter(e => lines(e) > 1).map(e => e.textContent);
  root.setAttribute("data-probe", JSON.stringify({inner: window.innerWidth, scroll: root.scrollWidth,
                                                  widest: Math.ceil(widest), split: split,
                                                  unbroken: document.querySelectorAll(".nw").length,
                                                  text: document.body.innerText}));
})();
</script>"""
_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


def layout(program: str, page: Path, width: int, tmp_path: Path, *, keep_csp: bool = False) -> dict | None:
    """The document laid out in a window `width` px wide: {inner, scroll, widest, split, unbroken,
    text}; None when
    the probe could not run (the document's own policy forbids scripts: the probe's copy drops it)."""
    source = page.read_text()
    if not keep_csp:
        source = _CSP.sub("", source, count=1)
    copy = tmp_path / f"probe-{width}-{page.name}"
    copy.write_text(source.replace("</body>", _PROBE + "</body>"))
    dom = _chromium_run(program, f"--window-size={width},1400", "--dump-dom", copy.as_uri()).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    return json.loads(html.unescape(found.group(1))) if found else None


def assert_fits(program: str, page: Path, tmp_path: Path) -> str:
    """Nothing wider than a 1100 px window nor than an A4 page's text column, no value split from
    its unit; the text as shown."""
    shown = ""
    for width in (1100, PAGE_TEXT_PX):
        probe = layout(program, page, width, tmp_path)
        assert probe is not None
        assert probe["inner"] == width
        assert probe["scroll"] <= width and probe["widest"] <= width, (width, probe["scroll"], probe["widest"])
        assert probe["unbroken"] > 5 and probe["split"] == [], (width, probe["split"])
        shown = probe["text"]
    return shown


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit RGB or RGBA PNG, unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    low7, high1 = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")
    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        if kind == 2:  # Up: bytewise sums, all at once (no carry from one byte into the next)
            a, b = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            line = (((a & low7) + (b & low7)) ^ ((a ^ b) & high1)).to_bytes(stride, "big")
        elif kind in (1, 3, 4):
            out = bytearray(line)
            for i in range(stride):
                left = out[i - bpp] if i >= bpp else 0
                up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
                if kind == 1:
                    out[i] = (out[i] + left) & 0xFF
                elif kind == 3:
                    out[i] = (out[i] + (left + up) // 2) & 0xFF
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    out[i] = (out[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
            line = bytes(out)
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def _mask(test) -> bytes:
    """A bytes.translate table: 1 where test(value), else 0."""
    return bytes(1 if test(v) else 0 for v in range(256))


_DARK, _REDDISH, _DIM = _mask(lambda v: v < 200), _mask(lambda v: v > 140), _mask(lambda v: v < 60)
_BLUISH, _NOT_BRIGHT, _LOW = _mask(lambda v: v > 120), _mask(lambda v: v < 120), _mask(lambda v: v < 80)


def ink(pixels: tuple[int, int, int, list[bytes]], *, x_from: int = 0) -> tuple[float, int, int]:
    """(the share of pixels from column x_from on that are not white (a channel below 200); how
    many are strongly red; how many strongly blue) in a screenshot. Counted a row at a time:
    each channel's plane mapped to 0/1 bytes, the planes combined as integers, the 1s counted."""

    def n(plane: bytes, table: bytes) -> int:
        return int.from_bytes(plane.translate(table), "big")

    width, height, bpp, rows = pixels
    inked = red = blue = 0
    for row in rows:
        r, g, b = (row[x_from * bpp + c::bpp] for c in range(3))
        inked += (n(r, _DARK) | n(g, _DARK) | n(b, _DARK)).bit_count()
        red += (n(r, _REDDISH) & n(g, _DIM) & n(b, _DIM)).bit_count()
        blue += (n(b, _BLUISH) & n(r, _LOW) & n(g, _NOT_BRIGHT)).bit_count()
    return inked / ((width - x_from) * height), red, blue


def screenshot(program: str, page: Path, tmp_path: Path) -> bytes:
    shot = tmp_path / f"shot-{page.stem}.png"
    _chromium_run(program, "--window-size=1100,1400", f"--screenshot={shot}", page.as_uri())
    return shot.read_bytes()


def assert_page_is_drawn(png: bytes) -> None:
    """Not blank, the red notice on it, and nothing right of the page's column (centred: 680 px of 1100)."""
    pixels = png_pixels(png)
    assert pixels[:2] == (1100, 1400)
    share, red, _ = ink(pixels)
    assert share > 0.02, share
    assert red > 200, red
    right_of_column, _, _ = ink(pixels, x_from=(1100 + PAGE_TEXT_PX) // 2 + 10)
    assert right_of_column == 0, right_of_column


def pdf_pages(pdf: Path) -> tuple[tuple[float, float], list[str], list[tuple[float, float]]]:
    """The PDF's page size (pt), each page's text, and every word's left and right edges (pt)."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    found = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info)
    assert found, info
    size = (float(found.group(1)), float(found.group(2)))
    # in reading order: a table cell's lines one after the other (-layout would interleave the cells)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    words = [(float(a), float(b)) for a, b in re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)"',
                                                          boxes)]
    return size, [page for page in text.split("\f") if page.strip()], words


def assert_printed(pdf: Path, paper: tuple[float, float], *figures: str) -> str:
    """On `paper`, every page with the notice and 'Page N of M', every word inside the side margins,
    and the figures on it; the whole text, its words joined by single spaces."""
    size, pages, words = pdf_pages(pdf)
    assert abs(size[0] - paper[0]) < 1.5 and abs(size[1] - paper[1]) < 1.5, size
    for n, page in enumerate(pages, start=1):
        assert NOTICE in page, n
        assert f"Page {n} of {len(pages)}" in page, (n, page[-300:])
    left, right = style.MARGIN_MM[3] * MM_PT, paper[0] - style.MARGIN_MM[1] * MM_PT  # Chromium rounds the page
    assert words and all(x0 >= left - 1 and x1 <= right + 1 for x0, x1 in words), (left, right)
    text = " ".join(" ".join(pages).split())
    for figure in figures:
        assert figure in text, figure
    return text


# --- the documents, from a real pump ---------------------------------------------------------

def test_report_is_a_document_on_screen_and_on_paper(pump, chromium, poppler, tmp_path):
    emu, cli = pump(*BACLOFEN)
    assert cli(*PATIENT).code == 0
    assert cli("program", "--dose", "550 mcg/day", "--yes").code == 0
    page, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    made = cli("--json", "report", "--export", str(page))
    assert made.code == 0, made.stderr
    assert made.json()["exported_to"] == str(page)
    assert cli("report", "--export", str(pdf)).code == 0

    shown = " ".join(assert_fits(chromium, page, tmp_path).split())
    for figure in ("Session report: pump DOC-BAC7", NOTICE, "500 mcg/day", "550 mcg/day", "0.275 mL/day",
                   "VERIFIED", "MRN-0042117 (AB, born 1970-01-02), spinal spasticity", "hash chain intact"):
        assert figure in shown, figure
    assert_page_is_drawn(screenshot(chromium, page, tmp_path))

    printed = assert_printed(pdf, A4_PT, "Session report · pump DOC-BAC7 (peristaltic-20) · baclofen 2000 mcg/mL",
                             "550 mcg/day", "Change 1: patient", "Change 2: program", "VERIFIED")
    assert "Reviewed by (name)" in printed  # a line to sign


def test_checklist_prints_on_letter_with_every_line_and_its_action_whole(pump, chromium, poppler, tmp_path):
    emu, cli = pump(*BACLOFEN)
    page, pdf = tmp_path / "checklist.html", tmp_path / "checklist.pdf"
    assert cli("mri", "checklist", "--export", str(page)).code == 0
    made = cli("--json", "mri", "checklist", "--export", str(pdf), env={"PAPERSIZE": "letter"})
    assert made.code == 0, made.stderr
    lines = made.json()["lines"]

    shown = " ".join(assert_fits(chromium, page, tmp_path).split())  # the option to type: on one line (.nw)
    assert "(enter needs --confirm-withdrawal-risk)" in shown and "Pre-MRI checklist: DOC-BAC7" in shown
    assert_page_is_drawn(screenshot(chromium, page, tmp_path))
    # a document runs nothing: its own policy stops the probe that ran in its copy above
    assert layout(chromium, page, 1100, tmp_path, keep_csp=True) is None

    printed = assert_printed(pdf, LETTER_PT, "Pre-MRI checklist: DOC-BAC7 (peristaltic-20)", "500 mcg/day",
                             "--confirm-withdrawal-risk", "Overall: WARN", "Checked by (name)")
    for line in lines:
        assert line["item"] in printed and " ".join(line["detail"].split()) in printed, line["item"]


def _visit() -> str:
    """A next visit after the reservoir of a pump made with SHORT runs empty (6 mL at 0.25 mL/day: the
    alarm at 2 mL in 16 days, empty in 24)."""
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(days=30)).date().isoformat()


SHORT = (*BACLOFEN, "--volume", "6 mL")


def test_forecast_chart_as_svg_png_and_documents(pump, chromium, poppler, tmp_path):
    emu, cli = pump(*SHORT)
    visit = _visit()
    svg, png, page, pdf = (tmp_path / f"forecast.{s}" for s in ("svg", "png", "html", "pdf"))
    for path in (svg, png, page, pdf):
        made = cli("--json", "--tz", "UTC", "forecast", "--next-visit", visit, "--export", str(path))
        assert made.code == 0, made.stderr
    r = made.json()
    assert r["exported_to"] == str(pdf) and r["empty_before_next_visit"] is True

    pixels = png_pixels(png.read_bytes())
    assert pixels[:2] == (2 * 960, 2 * 560)  # drawn at twice its CSS size: sharp in print
    share, red, blue = ink(pixels)
    assert share > 0.02 and red > 500 and blue > 500, (share, red, blue)  # the curve, the empty mark

    shown = " ".join(assert_fits(chromium, page, tmp_path).split())
    for figure in ("Refill forecast: pump DOC-BAC7", NOTICE, "500 mcg/day", "WARNING: the reservoir runs EMPTY"):
        assert figure in shown, figure
    assert_page_is_drawn(screenshot(chromium, page, tmp_path))
    assert_printed(pdf, A4_PT, "Refill forecast: pump DOC-BAC7", "500 mcg/day", f"Next visit {visit}",
                   "low-reservoir alarm at 2 mL", f"next visit {visit}", "Reservoir (mL)")


def test_forecast_svg_draws_the_reservoir_down_to_empty_with_its_marks(pump, tmp_path):
    emu, cli = pump(*SHORT)
    visit = _visit()
    svg = tmp_path / "forecast.svg"
    made = cli("--json", "--tz", "UTC", "forecast", "--next-visit", visit, "--export", str(svg))
    assert made.code == 0, made.stderr
    r = made.json()
    root = ET.parse(svg).getroot()  # well-formed XML
    ns = {"s": "http://www.w3.org/2000/svg"}
    texts = [" ".join("".join(t.itertext()).split()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert root.get("width") == "960" and root.get("height") == "560"
    for words in (NOTICE, "Reservoir forecast: pump DOC-BAC7, baclofen, 500 mcg/day (0.25 mL/day)",
                  "Reservoir (mL)", "Date (midnights, UTC)", "low-reservoir alarm at 2 mL", f"next visit {visit}",
                  "no therapy"):
        assert any(words in t for t in texts), (words, texts)
    when = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC"
    assert any(re.fullmatch(f"EMPTY {when}", t) for t in texts) and any(re.fullmatch(f"alarm {when}", t) for t in texts)
    # the curve: the forecast's samples, the reservoir only going down, ending at the empty mark
    curve = root.find("s:polyline", ns)
    assert curve is not None
    points = [tuple(map(float, p.split(","))) for p in curve.get("points", "").split()]
    assert len(points) == len(r["series"]) > 10
    assert all(b[0] > a[0] and b[1] >= a[1] for a, b in zip(points, points[1:], strict=False))  # y grows downwards
    marks = [(float(c.get("cx", 0)), float(c.get("cy", 0))) for c in root.findall("s:circle", ns)]
    assert points[-1] in marks  # the empty point
    # the date axis: midnights, one label each, in order
    days = [t for t in texts if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t)]
    assert days == sorted(days) and len(days) >= 3 and days[0] < visit


def test_a_pdf_without_chromium_is_refused_before_the_pump_is_read(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    nowhere = tmp_path / "empty-path"
    nowhere.mkdir()
    no_chromium = {"PATH": str(nowhere)}
    for args in (("mri", "checklist"), ("report",), ("forecast",)):
        refused = cli(*args, "--export", str(tmp_path / "out.pdf"), env=no_chromium)
        assert_one_line_error(refused, 2, "needs Chromium", "apt-get install chromium")
    as_json = cli("--json", "forecast", "--export", str(tmp_path / "chart.png"), env=no_chromium)
    assert as_json.code == 2 and as_json.json()["error"]["exit_code"] == 2
    assert "apt-get install chromium" in as_json.json()["error"]["message"]
    # nothing was read: no checklist snapshot, no exchange with the pump in the audit log
    assert not (Path(cli.state_dir) / "mri" / "DOC-BAC7.json").exists()
    audit = Path(cli.audit_path)
    assert not audit.exists() or "INTERROGATE" not in audit.read_text()
    assert not (tmp_path / "out.pdf").exists()
    # .html needs no Chromium
    assert cli("mri", "checklist", "--export", str(tmp_path / "checklist.html"), env=no_chromium).code == 0


def test_an_old_or_failing_chromium_is_one_line_and_leaves_the_old_file(pump, tmp_path):
    emu, cli = pump(*BACLOFEN)
    old = tmp_path / "old-chromium"
    old.write_text("#!/bin/sh\necho 'Chromium 120.0.6099.224 built on Debian GNU/Linux 12 (bookworm)'\n")
    failing = tmp_path / "failing-chromium"
    failing.write_text("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --version ] && { echo 'Chromium 156.0.1.2'; "
                       "exit 0; }; done\necho '[1:2:1202/1:ERROR:ozone.cc(9)] cannot open the display' >&2\n"
                       "exit 21\n")
    for script in (old, failing):
        script.chmod(0o755)
    kept = tmp_path / "filed.pdf"
    kept.write_bytes(b"%PDF-1.4 the one filed yesterday\n%%EOF\n")

    too_old = cli("mri", "checklist", "--export", str(kept), env={"ITHCLI_CHROMIUM": str(old)})
    assert_one_line_error(too_old, 2, "Chromium 120", "131 or later")
    broken = cli("report", "--export", str(kept), env={"ITHCLI_CHROMIUM": str(failing)})
    assert_one_line_error(broken, 2, "Chromium failed (exit 21): cannot open the display")
    missing = cli("report", "--export", str(kept), env={"ITHCLI_CHROMIUM": str(tmp_path / "nope")})
    assert_one_line_error(missing, 2, "ITHCLI_CHROMIUM=")
    assert kept.read_bytes() == b"%PDF-1.4 the one filed yesterday\n%%EOF\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".filed.pdf")] == []  # no half file left

    # a failed export hides no finding: the checklist and the forecast are shown before the error
    shown = cli("mri", "checklist", "--export", str(kept), env={"ITHCLI_CHROMIUM": str(failing)})
    assert_one_line_error(shown, 2, "Chromium failed", "the checklist itself was done and saved: overall WARN")
    assert "Drug and withdrawal risk" in shown.stdout and "Overall: WARN" in shown.stdout
    forecast = cli("forecast", "--export", str(tmp_path / "chart.png"), env={"ITHCLI_CHROMIUM": str(failing)})
    assert_one_line_error(forecast, 2, "Chromium failed")
    assert "Refill forecast: DOC-BAC7" in forecast.stdout


def test_a_failed_export_never_hides_a_block(start_emulator, tmp_path):
    from cli_harness import Cli

    # valve-gated, MR conditional at 1.5 T only and only when empty: judged at 3 T, it BLOCKs
    emu = start_emulator("--time-scale", "1e-9", "--model", "valve-gated-20", "--serial", "DOC-V20",
                         "--drug", "bupivacaine", "--concentration", "10 mg/mL", "--volume", "12 mL")
    cli = Cli(tmp_path / "state", port=emu.url)
    failing = tmp_path / "failing-chromium"
    failing.write_text("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --version ] && { echo 'Chromium 156.0.1.2'; "
                       "exit 0; }; done\necho 'crashed' >&2\nexit 9\n")
    failing.chmod(0o755)
    blocked = cli("--json", "mri", "checklist", "--export", str(tmp_path / "c.pdf"),
                  env={"ITHCLI_CHROMIUM": str(failing)})
    assert blocked.code == 12, blocked.stderr
    error = blocked.json()["error"]
    assert error["exit_code"] == 12 and "BLOCK" in error["message"]
    assert "not exported: --export" in error["message"] and "Chromium failed (exit 9): crashed" in error["message"]


# --- pure: escaping, the chart's scales, the paper ---------------------------------------------

HOSTILE = '<script>alert(1)</script>"\'&</style>\\'


def test_every_value_is_escaped_in_a_document():
    result = {"serial_number": HOSTILE, "model": HOSTILE, "emulated": True, "result": "WARN", "snapshot": HOSTILE,
              "lines": [{"item": HOSTILE, "result": "WARN", "detail": HOSTILE, "action": HOSTILE}],
              "status": None}
    page = checklist_html(result, operator=HOSTILE)
    assert "<script" not in page.lower() and page.count("</style>") == 1
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;&lt;/style&gt;\\") >= 5
    # in the running head (a CSS string): nothing that ends the string, the rule or the sheet
    head = re.search(r"@top-left \{ content: (\"[^\"]*\");", page)
    assert head and not re.search(r"[<>'\"{}]", head.group(1)[1:-1]) and "\\3c " in head.group(1)
    assert style.css_string('a"b\\c<') == '"a\\22 b\\5c c\\3c "'


def test_text_keeps_values_with_units_and_options_whole_and_markup_only_when_built():
    assert esc("0.275 mL/day and 2 mL") == ('<span class="nw">0.275 mL/day</span> and '
                                            '<span class="nw">2 mL</span>')
    option = esc("enter needs --confirm-withdrawal-risk")
    assert option == 'enter needs <code class="nw">--confirm-withdrawal-risk</code>'
    assert esc(Markup("<b>built</b>")) == "<b>built</b>" and esc("<b>") == "&lt;b&gt;"
    assert tag("td", "<i>", tag("b", "x"), cls="a\"b") == '<td class="a&quot;b">&lt;i&gt;<b>x</b></td>'
    with pytest.raises(ValueError):
        tag("td onclick=x")


def test_chart_scales():
    from datetime import UTC, datetime

    assert [ml_step(v) for v in (20, 40, 2, 0.5)] == [5, 5, 0.5, 0.1]
    start = datetime(2030, 3, 1, 8, tzinfo=UTC).timestamp()
    week = date_ticks(start, start + 6 * 86_400, UTC)
    assert [t.day for t in week] == [2, 3, 4, 5, 6, 7]  # midnights after the start, every day
    year = date_ticks(start, start + 400 * 86_400, UTC)
    assert len(year) <= 9 and all(t.day == 1 and t.hour == 0 for t in year)


def test_paper_size_follows_papersize(monkeypatch):
    from ithcli.errors import UsageError

    monkeypatch.setenv("PAPERSIZE", "Letter")
    assert paper_size() == "letter"
    monkeypatch.setenv("PAPERSIZE", "a4")
    assert paper_size() == "A4"
    monkeypatch.setenv("PAPERSIZE", "tabloid")
    with pytest.raises(UsageError, match="PAPERSIZE says 'tabloid'"):
        paper_size()
