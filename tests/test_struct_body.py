"""The generated body parsers and builders (protocol/struct_body.py) against the declarative
Structs they are made from: the same fields, the same refusals, for every message, valid
or damaged. tests/test_codec.py checks the codec around them (round trips, the whole
declarative Frame, fail-closed decoding, fuzzing)."""
from __future__ import annotations

from typing import Any

import construct as c
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_codec import BODIES, KEYS, SAMPLES, SETTINGS, strategy_for

from protocol import codec, messages, struct_body
from protocol.constants import MAX_PAYLOAD
from protocol.units import Code, Fixed, Flags


def plain(value: Any) -> Any:
    """A declarative parse's Containers as the dicts and lists the generated parser gives."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def reference_parse(k: int, payload: bytes) -> tuple[str, Any]:
    """("ok", fields) or ("refused", None): the declarative Struct, and nothing may trail it."""
    try:
        fields = c.Sequence(messages.PAYLOADS[k], c.Terminated).parse(payload)[0]
    except Exception:
        return "refused", None
    return "ok", plain(fields)


def generated_parse(k: int, payload: bytes) -> tuple[str, Any]:
    parse, _ = codec._decoder(k & 0x7F, bool(k & 0x80))
    try:
        fields, used = parse(payload)
    except Exception:
        return "refused", None
    return ("ok", fields) if used == len(payload) else ("refused", None)


@pytest.mark.parametrize("k", KEYS, ids=lambda k: f"{k:02x}")
def test_every_message_has_a_generated_parser_and_builder(k):
    struct_ = messages.PAYLOADS[k]
    assert callable(struct_body.parser(struct_)) and callable(struct_body.builder(struct_))


def test_a_shape_it_does_not_know_is_refused_when_made_not_parsed_wrong():
    odd = c.Struct("x" / c.Int32ul, "y" / c.VarInt)
    with pytest.raises(struct_body.Unsupported):
        struct_body.parser(odd)
    with pytest.raises(struct_body.Unsupported):
        struct_body.builder(odd)


@SETTINGS
@given(st.sampled_from(KEYS), st.data())
def test_valid_bodies_build_to_the_declarative_bytes_and_parse_back_equal(k, data):
    fields = data.draw(BODIES[k])
    reference = messages.PAYLOADS[k].build(fields)
    assert codec.build_fields(k & 0x7F, fields, response=bool(k & 0x80)) == reference
    assert generated_parse(k, reference) == reference_parse(k, reference)


def _damaged(sample: bytes, edits: list[tuple[int, int]], cut: int | None, extra: bytes) -> bytes:
    payload = bytearray(sample)
    for at, value in edits:
        if payload:
            payload[at % len(payload)] = value
    payload = payload[:cut] if cut is not None else payload
    return bytes(payload + extra)[:MAX_PAYLOAD]


@SETTINGS
@given(st.sampled_from(KEYS), st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), max_size=4),
       st.none() | st.integers(0, 700), st.binary(max_size=3))
def test_damaged_payloads_are_refused_or_accepted_exactly_as_the_declarative_struct_does(k, edits, cut, extra):
    # a real payload with bytes changed, cut short or extended: codes out of range, counts
    # past the end, truncated strings, bad UTF-8, trailing bytes
    sample = codec.build_fields(k & 0x7F, SAMPLES[k], response=bool(k & 0x80))
    payload = _damaged(sample, edits, cut, extra)
    assert generated_parse(k, payload) == reference_parse(k, payload)


@SETTINGS
@given(st.sampled_from(KEYS), st.binary(max_size=300))
def test_any_bytes_are_refused_or_accepted_exactly_as_the_declarative_struct_does(k, payload):
    assert generated_parse(k, payload) == reference_parse(k, payload)


@pytest.mark.parametrize("k", KEYS, ids=lambda k: f"{k:02x}")
def test_every_truncation_of_a_sample_is_refused_like_the_declarative_struct(k):
    sample = codec.build_fields(k & 0x7F, SAMPLES[k], response=bool(k & 0x80))
    for n in range(len(sample)):
        assert generated_parse(k, sample[:n]) == ("refused", None) == reference_parse(k, sample[:n])


def _declarative_build(k: int, fields: dict[str, Any]) -> bytes | None:
    try:
        return bytes(messages.PAYLOADS[k].build(fields))
    except Exception:
        return None


def _generated_build(k: int, fields: dict[str, Any]) -> bytes | None:
    try:
        return codec._builder(k & 0x7F, bool(k & 0x80))(fields)
    except Exception:
        return None


WRONG_VALUES = st.one_of(
    st.integers(-2, 2**33), st.booleans(), st.floats(allow_nan=False), st.text(max_size=30),
    st.binary(max_size=40), st.sampled_from(["MORPHINE", "CLINICIAN", "REFILL", "nope"]), st.none(),
)


def _leaf_paths(fields: dict[str, Any], prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    for name, value in fields.items():
        if isinstance(value, dict):
            out += _leaf_paths(value, prefix + (name,))
        elif isinstance(value, list):
            for i, entry in enumerate(value):
                out += _leaf_paths(entry, prefix + (name, i)) if isinstance(entry, dict) else [prefix + (name, i)]
        else:
            out.append(prefix + (name,))
    return out


def _with(fields: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(fields, list):
        return [_with(v, rest, value) if i == head else v for i, v in enumerate(fields)]
    return {k: _with(v, rest, value) if k == head else v for k, v in fields.items()}


@SETTINGS
@given(st.sampled_from(KEYS), st.data(), WRONG_VALUES)
def test_a_wrong_value_in_any_field_is_built_or_refused_as_the_declarative_struct_does(k, data, wrong):
    # ranges, codes by name or number, booleans, floats, text too long, bytes of the wrong size
    fields = data.draw(BODIES[k])
    paths = _leaf_paths(fields)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    changed = _with(fields, path, wrong)
    expected = _declarative_build(k, changed)
    if isinstance(_at(fields, path), bytes) and not isinstance(wrong, (bytes, bytearray)):
        expected = None  # Construct would take an int for a Bytes field (integer2bytes); ours refuses it
    assert _generated_build(k, changed) == expected


def _at(fields: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        fields = fields[step]
    return fields


def _raw(con: c.Construct) -> c.Construct:
    """The same layout with the unit adapters taken off: any integer can be put on the wire."""
    if isinstance(con, c.Renamed):
        return con.name / _raw(con.subcon)
    if isinstance(con, c.Struct):
        return c.Struct(*(_raw(sc) for sc in con.subcons))
    if isinstance(con, (Fixed, Code, Flags)):
        return con.subcon
    if isinstance(con, c.FocusedSeq):  # PrefixedArray
        count, items = con.subcons
        return c.PrefixedArray(count.subcon.subcon, _raw(items.subcon.subcon))
    return con


def _edges(con: c.Construct) -> st.SearchStrategy:
    """Values at and just past each Fixed field's bounds; any code or bit set; valid elsewhere."""
    con = con.subcon if isinstance(con, c.Renamed) else con
    if isinstance(con, c.Struct):
        return st.fixed_dictionaries({sc.name: _edges(sc) for sc in con.subcons})
    if isinstance(con, Fixed):
        top = 2 ** (8 * con.subcon.sizeof()) - 1
        edges = (con.minimum - 1, con.minimum, con.maximum, con.maximum + 1)
        return st.sampled_from([v for v in edges if 0 <= v <= top])
    if isinstance(con, (Code, Flags)):
        return st.integers(0, 2 ** (8 * con.subcon.sizeof()) - 1)
    if isinstance(con, c.FocusedSeq):
        return st.lists(_edges(con.subcons[1].subcon.subcon), max_size=3)
    return strategy_for(con)


RAW = {k: _raw(struct_) for k, struct_ in messages.PAYLOADS.items()}


@SETTINGS
@given(st.sampled_from(KEYS), st.data())
def test_values_at_and_past_every_bound_and_unknown_codes_parse_as_the_declarative_struct_does(k, data):
    payload = RAW[k].build(data.draw(_edges(messages.PAYLOADS[k])))
    assert generated_parse(k, payload) == reference_parse(k, payload)
