"""docs/protocol.md must describe exactly the protocol the code speaks.

The doc's tables are parsed and compared with the Construct definitions in
protocol.messages and the code tables in protocol.constants: names, order,
offsets, sizes, types, units and ranges of every field, and the members and
values of every enum. Editing either side alone makes this fail.
"""
from __future__ import annotations

import enum
import re
from pathlib import Path

import construct as c
import pytest

from protocol import constants, messages
from protocol.units import BASE_UNIT, Code, Fixed, Flags

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

HEADING = re.compile(r"^#{2,4} (?P<title>.+?)\s*$")
SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
MESSAGE_TITLE = re.compile(r"^(?P<name>[A-Z_]+) (?P<dir>request|response) \(key 0x(?P<key>[0-9A-Fa-f]{2})\)$")
ENTRY_TITLE = re.compile(r"^(?P<name>\w+) entry\b")
CODE_TITLE = re.compile(r"^Code table: (?P<name>\w+)$")
RANGE_CELL = re.compile(r"^(?P<unit>[^,\s]+)(?:, (?P<min>-?[0-9_]+)\.\.(?P<max>[0-9_]+))?$")
INT_TYPES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}


# --- parsing the doc ---------------------------------------------------------


def parse_tables(text: str) -> dict[str, list[list[str]]]:
    """Heading title -> rows (cells) of the first table under it (column-name row dropped)."""
    tables: dict[str, list[list[str]]] = {}
    title: str | None = None
    rows: list[list[str]] | None = None
    for line in text.splitlines():
        heading = HEADING.match(line)
        stripped = line.strip()
        if heading:
            title, rows = heading["title"], None
        elif title is not None and stripped.startswith("|"):
            if rows is None:  # the column names
                rows = tables[title] = []
            elif not SEPARATOR.match(stripped):
                rows.append([cell.strip() for cell in stripped.strip("|").split("|")])
        elif rows is not None:
            title, rows = None, None  # only the first table under a heading counts
    return tables


@pytest.fixture(scope="module")
def tables() -> dict[str, list[list[str]]]:
    return parse_tables(DOC.read_text(encoding="utf8"))


# --- what the code says -------------------------------------------------------


def _inner(sc):
    return sc.subcon if isinstance(sc, c.Renamed) else sc


def _int_type(con) -> str:
    # a signed field (Construct's format letter in lower case, e.g. ">q") is s8..s64
    signed = isinstance(con, c.FormatField) and con.fmtstr[-1].islower()
    return INT_TYPES[con.sizeof()].replace("u", "s") if signed else INT_TYPES[con.sizeof()]


def _named(obj) -> str:
    for name, value in vars(messages).items():
        if value is obj and not name.startswith("_"):
            return name
    raise AssertionError(f"{obj!r} has no name in protocol.messages")


def describe(con) -> tuple[int | None, str, tuple | None]:
    """A field's (size or None if variable, type text, (unit, min, max) if Fixed)."""
    if isinstance(con, Fixed):
        return con.sizeof(), _int_type(con.subcon), (con.unit, con.minimum, con.maximum)
    if isinstance(con, Code):
        return con.sizeof(), f"{_int_type(con.subcon)} {con.enum.__name__}", None
    if isinstance(con, Flags):
        return con.sizeof(), f"{_int_type(con.subcon)} {con.enum.__name__}", None
    if isinstance(con, c.FormatField):
        return con.sizeof(), _int_type(con), None
    if isinstance(con, c.StringEncoded):
        if isinstance(con.subcon, c.Prefixed):
            return None, f"{_int_type(con.subcon.lengthfield)} n + {con.encoding}[n]", None
        return con.sizeof(), f"{con.encoding}[{con.sizeof()}]", None
    if isinstance(con, c.Bytes):  # raw bytes of a fixed size (nonces, key ids, proofs)
        return con.sizeof(), f"bytes[{con.sizeof()}]", None
    if isinstance(con, c.FocusedSeq):  # PrefixedArray(lengthfield, element)
        count, items = (_inner(sc) for sc in con.subcons)
        count = count.subcon if isinstance(count, c.Rebuild) else count
        assert isinstance(items, c.Array), f"unexpected FocusedSeq {con!r}"
        return None, f"{_int_type(count)} n + {_named(items.subcon)}[n]", None
    raise AssertionError(f"no doc rule for {type(con).__name__}: extend describe()")


def expected_rows(struct_: c.Struct, prefix: str = "", offset: int | None = 0):
    """(offset, size, name, type, fixed) per field; nested Structs flattened with dots."""
    out = []
    for sc in struct_.subcons:
        con = _inner(sc)
        if isinstance(con, c.Struct):
            nested = expected_rows(con, f"{prefix}{sc.name}.", offset)
            out += nested
            offset = None if offset is None or any(r[1] is None for r in nested) else offset + con.sizeof()
            continue
        size, type_, fixed = describe(con)
        out.append((offset, size, prefix + sc.name, type_, fixed))
        offset = None if offset is None or size is None else offset + size
    return out


def element_structs() -> dict[str, c.Struct]:
    """Entry Structs carried in arrays (e.g. Event), by their name in messages, found at any
    depth (Program.steps inside the Prepared and READ_PROGRAM payloads) and inside entries."""
    found: dict[str, c.Struct] = {}

    def walk(struct_: c.Struct) -> None:
        for sc in struct_.subcons:
            con = _inner(sc)
            if isinstance(con, c.Struct):
                walk(con)
            elif isinstance(con, c.FocusedSeq):
                element = _inner(con.subcons[1]).subcon
                if isinstance(element, c.Struct) and _named(element) not in found:
                    found[_named(element)] = element
                    walk(element)

    for struct_ in messages.PAYLOADS.values():
        walk(struct_)
    return found


def code_enums() -> dict[str, type[enum.IntEnum] | type[enum.IntFlag]]:
    return {
        name: value
        for name, value in vars(constants).items()
        if isinstance(value, type)
        and issubclass(value, (enum.IntEnum, enum.IntFlag))
        and value not in (enum.IntEnum, enum.IntFlag)
    }


# --- comparing -----------------------------------------------------------------


def check_struct_table(rows: list[list[str]], struct_: c.Struct, where: str) -> None:
    expected = expected_rows(struct_)
    names = [r[2] if len(r) > 2 else "?" for r in rows]
    assert names == [e[2] for e in expected], f"{where}: field names/order differ from the code"
    for row, (offset, size, name, type_, fixed) in zip(rows, expected, strict=True):
        assert len(row) == 6, f"{where}.{name}: expected 6 columns, got {row}"
        doc_offset, doc_size, _, doc_type, doc_unit, meaning = row
        assert doc_offset == ("var" if offset is None else str(offset)), f"{where}.{name}: offset"
        assert doc_size == ("var" if size is None else str(size)), f"{where}.{name}: size"
        assert doc_type == type_, f"{where}.{name}: type {doc_type!r}, code says {type_!r}"
        assert meaning, f"{where}.{name}: no meaning given"
        match = RANGE_CELL.match(doc_unit)
        if fixed is None:
            assert doc_unit == "", f"{where}.{name}: unit/range {doc_unit!r} but the field is not Fixed"
            continue
        unit, minimum, maximum = fixed
        assert match, f"{where}.{name}: unit/range {doc_unit!r} is not 'unit' or 'unit, min..max'"
        assert match["unit"] == unit, f"{where}.{name}: unit {match['unit']!r}, code says {unit!r}"
        if match["min"] is None:  # full width of the integer
            full = 2 ** (8 * size) - 1
            assert (minimum, maximum) == (0, full), f"{where}.{name}: range {minimum}..{maximum} not documented"
        else:
            doc_range = (int(match["min"]), int(match["max"]))
            assert doc_range == (minimum, maximum), f"{where}.{name}: range {doc_range}, code says {(minimum, maximum)}"


def test_every_payload_has_a_matching_table(tables):
    seen = set()
    for title, rows in tables.items():
        m = MESSAGE_TITLE.match(title)
        if not m:
            continue
        k = int(m["key"], 16)
        response = m["dir"] == "response"
        assert k in messages.PAYLOADS, f"doc table {title!r} has no message in the code"
        assert bool(k & messages.RESPONSE_BIT) == response, f"{title!r}: key and direction disagree"
        assert constants.Command[m["name"]] == k & ~messages.RESPONSE_BIT, f"{title!r}: key and name disagree"
        assert k not in seen, f"two tables for key 0x{k:02X}"
        seen.add(k)
        check_struct_table(rows, messages.PAYLOADS[k], title)
    missing = {f"0x{k:02X}" for k in messages.PAYLOADS} - {f"0x{k:02X}" for k in seen}
    assert not missing, f"no doc table for payload key(s) {sorted(missing)}"


def test_every_array_element_has_a_matching_table(tables):
    elements = element_structs()
    assert elements, "expected at least the Event entry"
    documented = {}
    for title, rows in tables.items():
        m = ENTRY_TITLE.match(title)
        if m:
            assert m["name"] in elements, f"doc table {title!r} has no element in the code"
            documented[m["name"]] = rows
    assert set(documented) == set(elements), "entry tables and code disagree"
    for name, rows in documented.items():
        check_struct_table(rows, elements[name], f"{name} entry")


def test_every_enum_has_exactly_its_code_table(tables):
    enums = code_enums()
    documented = {}
    for title, rows in tables.items():
        m = CODE_TITLE.match(title)
        if m:
            assert m["name"] in enums, f"doc code table {title!r} has no enum in protocol.constants"
            documented[m["name"]] = rows
    assert set(documented) == set(enums), f"code tables missing: {set(enums) - set(documented)}"
    for name, rows in documented.items():
        members = [(int(r[0], 0), r[1]) for r in rows]
        code = [(int(member), member.name) for member in enums[name]]
        assert members == code, f"Code table {name}: doc {members} != code {code}"
        for row in rows:
            assert len(row) >= 3 and row[-1], f"Code table {name}: {row} has no meaning"


def test_alarm_priorities(tables):
    rows = tables["Code table: Alarm"]
    for row in rows:
        alarm = constants.Alarm(int(row[0], 0))
        assert row[2] == constants.ALARM_PRIORITY[alarm].name, f"priority of {alarm.name}"
    assert set(constants.ALARM_PRIORITY) == set(constants.Alarm)


def test_enums_used_by_messages_are_in_constants():
    enums = set(code_enums().values())
    for struct_ in list(messages.PAYLOADS.values()) + list(element_structs().values()):
        for _, _, name, type_, _ in expected_rows(struct_):
            words = type_.split()
            if len(words) == 2:
                assert getattr(constants, words[1]) in enums, name


def test_frame_table_matches_header_and_constants(tables):
    rows = tables["Frame layout"]
    header = [(sc.name, sc.sizeof(), _int_type(sc)) for sc in messages.Header.subcons]
    assert sum(size for _, size, _ in header) == constants.HEADER_SIZE
    names = [r[2] for r in rows]
    assert names == ["sync"] + [n for n, _, _ in header] + ["payload", "auth", "crc"]
    sync = rows[0]
    assert (sync[0], sync[1]) == ("0", str(len(constants.SYNC)))
    assert sync[4] == " ".join(f"0x{b:02X}" for b in constants.SYNC)
    offset = len(constants.SYNC)
    for row, (name, size, type_) in zip(rows[1:], header, strict=False):  # rows go on past the header
        assert (row[0], row[1], row[3]) == (str(offset), str(size), type_), f"header field {name}"
        offset += size
    by_name = {r[2]: r for r in rows}
    assert by_name["version"][4] == str(constants.PROTOCOL_VERSION)
    assert by_name["length"][4] == f"0..{constants.MAX_PAYLOAD}"
    assert by_name["seq"][4] == "0..65535"
    assert by_name["flags"][4] == constants.Flag.__name__
    assert by_name["command"][4] == constants.Command.__name__
    assert (by_name["payload"][0], by_name["payload"][1]) == (str(offset), "var")
    assert by_name["auth"][1] == str(constants.AUTH_TRAILER_SIZE)
    assert by_name["crc"][1] == str(constants.CRC_SIZE)
    assert by_name["crc"][3] == "u32"


def test_auth_trailer_table(tables):
    rows = tables["Authentication trailer"]
    assert [r[2] for r in rows] == ["counter", "mac"]
    assert sum(int(r[1]) for r in rows) == constants.AUTH_TRAILER_SIZE
    assert [int(r[1]) for r in rows] == [8, 16]  # 64-bit counter, 128-bit MAC


def test_constants_table(tables):
    rows = tables["Constants"]
    names = [r[0] for r in rows]
    assert set(names) >= {"SYNC", "PROTOCOL_VERSION", "HEADER_SIZE", "CRC_SIZE", "MAX_PAYLOAD",
                          "AUTH_TRAILER_SIZE", "MAX_FRAME"}
    for name, value, _ in rows:
        actual = getattr(constants, name)
        if isinstance(actual, bytes):
            assert bytes(int(b, 0) for b in value.split()) == actual, name
        else:
            assert int(value, 0) == actual, name


def test_units_table_covers_every_wire_unit(tables):
    documented = {r[0] for r in tables["Units"]}
    used = set(BASE_UNIT.values())
    for struct_ in list(messages.PAYLOADS.values()) + list(element_structs().values()):
        used |= {fixed[0] for *_, fixed in expected_rows(struct_) if fixed}
    assert used <= documented, f"units not in the Units table: {used - documented}"


def test_crc_section_states_the_parameters():
    text = DOC.read_text(encoding="utf8")
    from protocol.crc import _POLY, CHECK_VALUE

    for needle in (f"0x{CHECK_VALUE:08X}", f"0x{_POLY:08X}", "0x1EDC6F41", "0xFFFFFFFF", "123456789"):
        assert needle in text, needle


# --- the checker itself must bite ---------------------------------------------


def _doc_with(old: str, new: str) -> dict[str, list[list[str]]]:
    text = DOC.read_text(encoding="utf8")
    assert text.count(old) == 1, f"fixture text {old!r} not unique in the doc"
    return parse_tables(text.replace(old, new))


@pytest.mark.parametrize(
    "old, new, check",
    [
        # a field renamed
        ("| 59 | 1 | battery_percent |", "| 59 | 1 | battery_pct |", test_every_payload_has_a_matching_table),
        # a size changed
        ("| 29 | 4 | concentration_ng_per_ml |", "| 29 | 2 | concentration_ng_per_ml |",
         test_every_payload_has_a_matching_table),
        # a wrong unit
        ("| u32 | nL/day, 0..50_000_000 | programmed 24-hour volume",
         "| u32 | uL/day, 0..50_000_000 | programmed 24-hour volume", test_every_payload_has_a_matching_table),
        # a wrong range
        ("| uL, 1..100_000 | reservoir capacity", "| uL, 0..100_000 | reservoir capacity",
         test_every_payload_has_a_matching_table),
        # an offset off by one
        ("| 87 | 4 | last_txid |", "| 88 | 4 | last_txid |", test_every_payload_has_a_matching_table),
        # a wrong key in a heading
        ("### READ_LOG response (key 0x83)", "### READ_LOG response (key 0x84)",
         test_every_payload_has_a_matching_table),
        # a missing table
        ("### HELLO request (key 0x01)", "### HELLO request", test_every_payload_has_a_matching_table),
        # an Event field moved
        ("| 14 | 4 | arg1 |", "| 14 | 4 | arg3 |", test_every_array_element_has_a_matching_table),
        # nested arrays of entries: a field of an entry carried inside a nested group,
        # the nested array itself, and a missing entry table
        ("| 6 | 4 | rate_nl_per_day |", "| 6 | 4 | rate_nl_day |", test_every_array_element_has_a_matching_table),
        ("| 18 | var | program.steps | u8 n + DeliveredStep[n] |",
         "| 18 | var | program.steps | u8 n + ProgramStep[n] |",
         test_every_payload_has_a_matching_table),
        ("### DeliveredStep entry", "### DeliveredStep", test_every_array_element_has_a_matching_table),
        ("| 14 | var | steps | u8 n + ProgramStep[n] |", "| 14 | 6 | steps | u8 n + ProgramStep[n] |",
         test_every_payload_has_a_matching_table),
        # an enum value changed, and a member dropped
        ("| 6 | ZICONOTIDE |", "| 9 | ZICONOTIDE |", test_every_enum_has_exactly_its_code_table),
        ("| 7 | BUSY | the pump is busy; retry later |\n", "", test_every_enum_has_exactly_its_code_table),
        ("| 0x0040 | RESET | LOW |", "| 0x0040 | RESET | HIGH |", test_alarm_priorities),
        # the frame header
        ("| 7 | 2 | length | u16 | 0..1024 |", "| 7 | 2 | length | u16 | 0..2048 |",
         test_frame_table_matches_header_and_constants),
        ("| 4 | 2 | seq | u16 |", "| 4 | 1 | seq | u8 |", test_frame_table_matches_header_and_constants),
        ("| 9+length | 24 | auth |", "| 9+length | 16 | auth |", test_frame_table_matches_header_and_constants),
        ("| MAX_PAYLOAD | 1024 |", "| MAX_PAYLOAD | 1000 |", test_constants_table),
    ],
)
def test_an_edited_doc_fails(old, new, check):
    edited = _doc_with(old, new)
    with pytest.raises((AssertionError, KeyError, ValueError)):
        check(edited)
