"""docs/clinical.md must keep up with the drug library and the code that points at it.

Every drug in ithcli/drug_library.toml has a row in the doc's drug table, with the
library's unit and daily maxima; every source key the library cites is defined in
the doc's Sources table; every docs/clinical.md#anchor the code names exists.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "clinical.md"
LIBRARY = ROOT / "ithcli" / "drug_library.toml"

SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def first_table(text: str, heading: str) -> list[list[str]]:
    """The body rows (cells) of the first table under the `## heading` section."""
    rows: list[list[str]] | None = None
    inside = False
    for line in text.splitlines():
        if line.startswith("## "):
            if inside:
                break
            inside = line[3:].strip() == heading
            continue
        if not inside:
            continue
        stripped = line.strip()
        if stripped.startswith("|"):
            if rows is None:
                rows = []  # the column names
            elif not SEPARATOR.match(stripped):
                rows.append([cell.strip() for cell in stripped.strip("|").split("|")])
        elif rows is not None:
            break
    assert rows, f"docs/clinical.md: no table under '## {heading}'"
    return rows


def plain(cell: str) -> str:
    return cell.strip().strip("`*[]").strip()


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf8")


@pytest.fixture(scope="module")
def drugs() -> dict:
    return tomllib.loads(LIBRARY.read_text(encoding="utf8"))["drugs"]


def test_every_library_drug_is_in_the_drug_table(doc, drugs):
    rows = {plain(row[0]): row for row in first_table(doc, "Drug limits")}
    missing = sorted(set(drugs) - set(rows))
    assert not missing, f"drugs in drug_library.toml without a row in docs/clinical.md#drug-limits: {missing}"
    for name, entry in drugs.items():
        unit, soft, hard = rows[name][1], rows[name][4], rows[name][5]
        assert entry["dose_unit"] in unit, f"{name}: the doc's unit {unit!r} is not {entry['dose_unit']}"
        assert entry["soft_max_daily"] in soft, f"{name}: the doc's soft max {soft!r} is not {entry['soft_max_daily']}"
        assert entry["hard_max_daily"] in hard, f"{name}: the doc's hard max {hard!r} is not {entry['hard_max_daily']}"


def test_every_library_drug_has_its_patient_bolus_row(doc, drugs):
    """The patient-bolus table says what the library allows, drug by drug."""
    rows = {plain(row[0]): row for row in first_table(doc, "Patient boluses")}
    assert set(rows) == set(drugs), "docs/clinical.md#patient-boluses and drug_library.toml list other drugs"
    for name, entry in drugs.items():
        allowed, dose, lockout, most = (plain(cell) for cell in rows[name][1:5])
        limits = entry.get("patient_bolus", False)
        if limits is False:
            assert (allowed, dose, lockout, most) == ("not allowed", "", "", ""), f"{name}: {rows[name]}"
            continue
        assert allowed == "allowed", f"{name}: the library allows patient boluses, the doc says {allowed!r}"
        assert (dose, lockout, most) == (limits["max_dose"], f"{limits['min_lockout_minutes']} min",
                                         str(limits["max_per_day"])), f"{name}: {rows[name]} against {limits}"


def test_every_cited_source_key_is_defined(doc, drugs):
    defined = {plain(row[0]) for row in first_table(doc, "Sources")}
    cited = {key for entry in drugs.values() for key in entry.get("sources", [])}
    undefined = sorted(cited - defined)
    assert not undefined, f"source keys in drug_library.toml not defined in docs/clinical.md#sources: {undefined}"


def _anchors(text: str) -> set[str]:
    """GitHub-style heading slugs plus explicit <a id="..."> anchors."""
    out = set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    for line in text.splitlines():
        match = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def test_every_anchor_the_code_names_exists(doc):
    anchors = _anchors(doc)
    named: dict[str, set[str]] = {}
    for folder in ("ithcli", "protocol", "emulator", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".toml", ".md") or not path.is_file():
                continue
            text = path.read_text(encoding="utf8", errors="replace")
            for anchor in re.findall(r"clinical\.md#([\w\-]+)", text):
                named.setdefault(anchor, set()).add(str(path.relative_to(ROOT)))
    for anchor in re.findall(r"\]\(#([\w\-]+)\)", doc):  # the doc's own links
        named.setdefault(anchor, set()).add("docs/clinical.md")
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    for anchor in re.findall(r"clinical\.md#([\w\-]+)", readme):
        named.setdefault(anchor, set()).add("README.md")
    broken = {anchor: sorted(where) for anchor, where in named.items() if anchor not in anchors}
    assert not broken, f"links to docs/clinical.md sections that do not exist: {broken}"
