"""Quantities people type: strict parsing, exact conversion, no floats, no rounding."""
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ProtocolError, UnitError
from protocol.units import BASE_UNIT, UNITS, Quantity


@pytest.mark.parametrize(
    "text, dimension, base",
    [
        ("450 mcg/day", "dose_rate", 450_000),
        ("450mcg/day", "dose_rate", 450_000),
        ("0.45 mg/day", "dose_rate", 450_000),
        ("  0.45mg/day  ", "dose_rate", 450_000),
        ("0.1 mcg/day", "dose_rate", 100),
        ("450 µg/day", "dose_rate", 450_000),
        ("0.5mL/day", "flow", 500_000),
        ("0.05 uL/day", "flow", 50),
        ("0.048 mL/day", "flow", 48_000),
        ("2000 mcg/mL", "concentration", 2_000_000),
        ("25 mg/mL", "concentration", 25_000_000),
        ("20 mL", "volume", 20_000),
        ("20 ml", "volume", 20_000),
        ("150 uL", "volume", 150),
        ("50 mcg", "dose", 50_000),
        ("0.05 mg", "dose", 50_000),
        ("1 min", "duration", 60),
        ("0.5 min", "duration", 30),
        ("2 h", "duration", 7200),
        ("90 s", "duration", 90),
        ("0 mcg/day", "dose_rate", 0),
    ],
)
def test_accepted(text, dimension, base):
    q = Quantity.parse(text, dimension)
    assert q.dimension == dimension
    assert q.to_base() == base
    assert isinstance(q.to_base(), int)


def test_conversions_are_exact():
    a = Quantity.parse("0.45 mg/day", "dose_rate")
    b = Quantity.parse("450 mcg/day", "dose_rate")
    assert a.to_base() == b.to_base() == 450_000  # ng/day
    assert a.to("mcg/day") == b
    assert b.to("mg/day") == Quantity(Decimal("0.45"), "mg/day")
    assert str(b.to("mg/day")) == "0.45 mg/day"
    assert Quantity.from_base(450_000, "mcg/day") == b
    assert str(Quantity.from_base(450_000, "mcg/day")) == "450 mcg/day"
    # a value that binary floats cannot hold exactly
    assert Quantity.parse("0.1 mg/day", "dose_rate").to_base() == 100_000
    assert Quantity.parse("0.3 mL", "volume").to_base() == 300


def test_conversion_to_another_dimension_is_refused():
    with pytest.raises(UnitError):
        Quantity.parse("450 mcg/day", "dose_rate").to("mL/day")


@pytest.mark.parametrize(
    "text, dimension",
    [
        # per-hour (and per-minute) rates: only 24-hour totals are accepted
        ("60 mcg/h", "dose_rate"),
        ("2.5 mcg/hr", "dose_rate"),
        ("2.5 mcg/hour", "dose_rate"),
        ("0.1 mL/h", "flow"),
        ("1 mcg/min", "dose_rate"),
        # no unit
        ("450", "dose_rate"),
        ("0.45", "dose_rate"),
        ("", "dose_rate"),
        ("mcg/day", "dose_rate"),
        # naked decimals, decimal commas, signs, exponents, odd numerals
        (".5 mg/day", "dose_rate"),
        ("0,5 mg/day", "dose_rate"),
        ("1,000 mcg/day", "dose_rate"),
        ("-5 mcg/day", "dose_rate"),
        ("+5 mcg/day", "dose_rate"),
        ("1e3 mcg/day", "dose_rate"),
        ("1E3 mcg/day", "dose_rate"),
        ("5. mcg/day", "dose_rate"),
        ("inf mcg/day", "dose_rate"),
        ("NaN mcg/day", "dose_rate"),
        ("٤٥٠ mcg/day", "dose_rate"),
        ("0x10 mcg/day", "dose_rate"),
        ("1_000 mcg/day", "dose_rate"),
        ("4 5 mcg/day", "dose_rate"),
        # a unit of the wrong dimension
        ("2 mg/mL", "dose_rate"),
        ("20 mL", "dose_rate"),
        ("450 mcg/day", "flow"),
        ("50 mcg", "dose_rate"),
        ("450 mcg/day", "dose"),
        ("1 min", "volume"),
        # spellings that are refused
        ("450 ug/day", "dose_rate"),
        ("450 ug", "dose"),
        ("450 mcg/d", "dose_rate"),
        ("450 MCG/DAY", "dose_rate"),
        ("450 ng/day", "dose_rate"),
        ("450 mcg/day/day", "dose_rate"),
    ],
)
def test_refused(text, dimension):
    with pytest.raises(UnitError) as info:
        Quantity.parse(text, dimension).to_base()
    assert isinstance(info.value, ProtocolError)
    assert str(info.value)  # a reason people can read


def test_per_hour_refusal_says_why():
    with pytest.raises(UnitError, match="per-hour"):
        Quantity.parse("60 mcg/h", "dose_rate")
    with pytest.raises(UnitError, match="mcg"):
        Quantity.parse("450 ug/day", "dose_rate")


def test_unknown_dimension():
    with pytest.raises(UnitError):
        Quantity.parse("1 mL", "pressure")


@pytest.mark.parametrize(
    "text, dimension",
    [
        ("0.0001 mcg/day", "dose_rate"),  # 0.1 ng/day
        ("0.0000001 mg/day", "dose_rate"),
        ("0.5 uL", "volume"),
        ("0.0001 mL", "volume"),
        ("0.0005 uL/day", "flow"),  # 0.5 nL/day
        ("0.0001 mcg/mL", "concentration"),
        ("0.5 s", "duration"),
        ("0.01 min", "duration"),  # 0.6 s
    ],
)
def test_finer_than_wire_resolution_is_refused(text, dimension):
    q = Quantity.parse(text, dimension)  # the text is fine...
    with pytest.raises(UnitError, match="resolution"):
        q.to_base()  # ...but it cannot be sent exactly, and it is not rounded


def test_trailing_zeros_beyond_resolution_are_exact():
    assert Quantity.parse("0.500000 mcg/day", "dose_rate").to_base() == 500
    assert Quantity.parse("20.000 mL", "volume").to_base() == 20_000


ALL_UNITS = [(dim, unit) for dim, units in UNITS.items() for unit in units]


def _decimal_factor(unit: str) -> bool:
    """True when every wire integer has a finite decimal form in unit (factor = 10^k)."""
    factor = UNITS[next(d for d, units in UNITS.items() if unit in units)][unit]
    return set(str(factor)[1:]) <= {"0"} and str(factor)[0] == "1"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), st.sampled_from(ALL_UNITS))
def test_from_base_round_trips_and_prints_plainly(base, dim_unit):
    dimension, unit = dim_unit
    factor = UNITS[dimension][unit]
    try:
        q = Quantity.from_base(base, unit)
    except UnitError:
        # only where no finite decimal exists (e.g. 61 s in min), never a rounded value
        assert not _decimal_factor(unit) and base % factor
        return
    assert q.to_base() == base
    text = str(q)
    assert "e" not in text.lower().replace(unit.lower(), "")
    assert text.endswith(" " + unit)
    number = text[: -len(unit) - 1]
    assert number[0].isdigit() and not number.startswith(".")
    assert "." not in number or not number.endswith("0")  # no trailing zeros
    # what is printed parses back to the same wire value
    assert Quantity.parse(text, dimension).to_base() == base


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), st.sampled_from([u for u in ALL_UNITS if _decimal_factor(u[1])]))
def test_from_base_is_total_for_decimal_units(base, dim_unit):
    assert Quantity.from_base(base, dim_unit[1]).to_base() == base


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**12), st.integers(0, 12), st.sampled_from(ALL_UNITS))
def test_round_numbers_print_without_exponent(mantissa, zeros, dim_unit):
    # 1000, 1000000... are where Decimal.normalize() would switch to 1E+3
    dimension, unit = dim_unit
    base = mantissa * 10**zeros * UNITS[dimension][unit]
    q = Quantity.from_base(base, unit)
    assert "E" not in str(q) and "e" not in str(q).split()[0]
    assert q.to_base() == base


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**40), st.sampled_from(ALL_UNITS))
def test_a_whole_number_of_the_unit_is_the_same_decimal_as_the_exact_division_gives(whole, dim_unit):
    # from_base takes a short way for whole numbers: the same value, the same text, exponent 0
    from decimal import Decimal, localcontext

    from protocol.units import _tidy

    dimension, unit = dim_unit
    base = whole * UNITS[dimension][unit]
    with localcontext() as ctx:
        ctx.prec = 60
        exact = _tidy(Decimal(base) / Decimal(UNITS[dimension][unit]))
    q = Quantity.from_base(base, unit)
    assert (q.value, str(q.value), q.value.as_tuple().exponent) == (exact, str(exact), exact.as_tuple().exponent)


@pytest.mark.parametrize("base, unit", [(61, "min"), (6000, "h"), (1, "h"), (59, "min")])
def test_from_base_refuses_non_terminating_decimals(base, unit):
    with pytest.raises(UnitError):
        Quantity.from_base(base, unit)


@pytest.mark.parametrize("base, unit, text", [(90, "min", "1.5 min"), (5400, "h", "1.5 h"), (60, "min", "1 min")])
def test_from_base_exact_minutes_and_hours(base, unit, text):
    assert str(Quantity.from_base(base, unit)) == text


def test_no_silent_rounding_beyond_28_digits():
    # Decimal's default context keeps 28 digits: this must not round to 1000000 ng/day
    with pytest.raises(UnitError, match="resolution"):
        Quantity.parse("1.0000000000000000000000000000001 mg/day", "dose_rate").to_base()
    big = 10**30 + 1
    assert Quantity.from_base(big, "mg/day").to_base() == big
    assert Quantity.parse("123456789012345678901234567890.123456 mg/day", "dose_rate").to_base() == (
        123456789012345678901234567890123456
    )


def test_base_units_are_the_wire_units():
    assert BASE_UNIT == {
        "volume": "uL",
        "flow": "nL/day",
        "dose_rate": "ng/day",
        "dose": "ng",
        "concentration": "ng/mL",
        "duration": "s",
    }
