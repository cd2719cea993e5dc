"""Fixed-point units: the wire's integers and the people's quantities.

On the wire every physical value is an unsigned integer in a fixed base unit
(no floats, ever):

    volume         uL        (microlitres)
    flow           nL/day    (nanolitres per day: 0.1 mcg/day steps at 2000 mcg/mL
                              need 0.05 uL/day, so whole uL/day is too coarse)
    dose rate      ng/day    (0.1 mcg/day ziconotide steps are 100 ng/day)
    dose           ng        (boluses)
    concentration  ng/mL
    time           s         (seconds since the Unix epoch, or a duration)

`Fixed` is the Construct adapter that carries that unit and refuses any value
outside its range, both when building and when parsing. `Quantity` parses what
people type ("450 mcg/day", "0.45mg/day") strictly, with Decimal, and converts it
exactly to the base integer or refuses.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from enum import IntEnum, IntFlag
from typing import Any

import construct as c

from .errors import UnitError


class RangeError(c.ValidationError):  # type: ignore[misc]  # construct is untyped (Any)
    """Raised inside Construct; the codec turns it into EncodeError/MalformedPayloadError."""


class Fixed(c.Adapter):  # type: ignore[misc]  # construct is untyped (Any)
    """An unsigned fixed-point integer in `unit`, valid in [minimum, maximum]."""

    def __init__(self, subcon: c.Construct, unit: str, minimum: int = 0, maximum: int | None = None) -> None:
        super().__init__(subcon)
        self.unit = unit
        self.minimum = minimum
        self.maximum = maximum if maximum is not None else 2 ** (8 * subcon.sizeof()) - 1

    def _check(self, value: object, path: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise RangeError(f"{value!r} is not an integer number of {self.unit}", path=path)
        if not self.minimum <= value <= self.maximum:
            raise RangeError(
                f"{value} {self.unit} is outside {self.minimum}..{self.maximum} {self.unit}",
                path=path,
            )
        return value

    def _decode(self, obj: object, context: Any, path: str) -> int:
        return self._check(obj, path)

    def _encode(self, obj: object, context: Any, path: str) -> int:
        return self._check(obj, path)

    def _emitparse(self, code: Any) -> str:
        # compiled parsing: one generated range check instead of a linked adapter
        # (several Python calls per field); building keeps the declarative adapter
        name = f"fixed_{id(self)}"
        code.append(f"""
            from protocol.units import RangeError as _RangeError
            def {name}(v):
                if {self.minimum} <= v <= {self.maximum}:
                    return v
                raise _RangeError(str(v) + " {self.unit} is outside {self.minimum}..{self.maximum} {self.unit}")
        """)
        return f"{name}({self.subcon._compileparse(code)})"


class Code(c.Adapter):  # type: ignore[misc]  # construct is untyped (Any)
    """An IntEnum on the wire; an unknown code fails closed instead of passing through."""

    def __init__(self, subcon: c.Construct, enum: type[IntEnum]) -> None:
        super().__init__(subcon)
        self.enum = enum

    def _decode(self, obj: int, context: Any, path: str) -> IntEnum:
        try:
            return self.enum(obj)
        except ValueError:
            raise RangeError(f"unknown {self.enum.__name__} code {obj}", path=path) from None

    def _emitparse(self, code: Any) -> str:
        name = f"code_{id(self)}"
        enum = self.enum
        code.append(f"""
            from protocol.units import RangeError as _RangeError
            from {enum.__module__} import {enum.__qualname__} as _enum_{id(self)}
            _members_{id(self)} = {{m.value: m for m in _enum_{id(self)}}}
            def {name}(v):
                try:
                    return _members_{id(self)}[v]
                except KeyError:
                    raise _RangeError("unknown {enum.__name__} code " + str(v)) from None
        """)
        return f"{name}({self.subcon._compileparse(code)})"

    def _encode(self, obj: object, context: Any, path: str) -> int:
        if isinstance(obj, str):
            try:
                obj = self.enum[obj]
            except KeyError:
                raise RangeError(f"unknown {self.enum.__name__} {obj!r}", path=path) from None
        if not isinstance(obj, int) or isinstance(obj, bool):  # 1.0 == 1 would pass enum lookup
            raise RangeError(f"{obj!r} is not a {self.enum.__name__} code", path=path)
        try:
            return int(self.enum(obj))
        except (ValueError, TypeError):
            raise RangeError(f"unknown {self.enum.__name__} code {obj!r}", path=path) from None


class Flags(c.Adapter):  # type: ignore[misc]  # construct is untyped (Any)
    """An IntFlag bit set; unknown bits fail closed."""

    def __init__(self, subcon: c.Construct, flag_enum: type[IntFlag], known: int) -> None:
        super().__init__(subcon)
        self.enum = flag_enum
        self.known = int(known)

    def _decode(self, obj: int, context: Any, path: str) -> IntFlag:
        if obj & ~self.known:
            raise RangeError(f"unknown {self.enum.__name__} bits 0x{obj & ~self.known:x}", path=path)
        return self.enum(obj)

    def _emitparse(self, code: Any) -> str:
        name = f"flags_{id(self)}"
        enum = self.enum
        code.append(f"""
            from protocol.units import RangeError as _RangeError
            from {enum.__module__} import {enum.__qualname__} as _flags_{id(self)}
            def {name}(v):
                if v & ~{self.known}:
                    raise _RangeError("unknown {enum.__name__} bits " + hex(v & ~{self.known}))
                return _flags_{id(self)}(v)
        """)
        return f"{name}({self.subcon._compileparse(code)})"

    def _encode(self, obj: object, context: Any, path: str) -> int:
        if not isinstance(obj, int) or isinstance(obj, bool):  # int(1.5) would truncate
            raise RangeError(f"{obj!r} is not a set of {self.enum.__name__} bits", path=path)
        value = int(obj)
        if value & ~self.known or value < 0:
            raise RangeError(f"unknown {self.enum.__name__} bits in {obj!r}", path=path)
        return value


# --- quantities people type -------------------------------------------------

#: dimension -> {unit text: factor to the wire's base unit}
UNITS: dict[str, dict[str, int]] = {
    "volume": {"uL": 1, "mL": 1000},
    "flow": {"uL/day": 1000, "mL/day": 1_000_000},
    "dose_rate": {"mcg/day": 1000, "mg/day": 1_000_000},
    "dose": {"mcg": 1000, "mg": 1_000_000},
    "concentration": {"mcg/mL": 1000, "mg/mL": 1_000_000},
    "duration": {"s": 1, "min": 60, "h": 3600},
}
BASE_UNIT = {
    "volume": "uL",
    "flow": "nL/day",
    "dose_rate": "ng/day",
    "dose": "ng",
    "concentration": "ng/mL",
    "duration": "s",
}
# spellings that mean the same unit; anything else is refused
_ALIASES = {"µg": "mcg", "μg": "mcg", "ml": "mL", "ul": "uL", "µL": "uL", "μL": "uL"}
_NUMBER = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[^\s0-9.,+-]\S*)\s*$")


def _normalise_unit(text: str) -> str:
    for alias, canon in _ALIASES.items():
        text = text.replace(alias, canon)
    return text


def _explain_bad_unit(unit: str, dimension: str) -> str:
    wanted = ", ".join(UNITS[dimension])
    if re.search(r"/(h|hr|hour|min)$", unit):
        return f"per-hour/per-minute rates are refused ({unit!r}): give the 24-hour total in {wanted}"
    if unit.startswith("ug"):
        return f"write 'mcg' rather than 'ug' ({unit!r}); expected one of {wanted}"
    for other, units in UNITS.items():
        if other != dimension and unit in units:
            return f"{unit!r} is a {other.replace('_', ' ')} unit; expected one of {wanted}"
    return f"unknown unit {unit!r}; expected one of {wanted}"


@dataclass(frozen=True)
class Quantity:
    """A decimal value with an explicit unit, e.g. Quantity(Decimal('450'), 'mcg/day')."""

    value: Decimal
    unit: str

    @classmethod
    def parse(cls, text: str, dimension: str) -> Quantity:
        """Parse '450 mcg/day' strictly: a plain non-negative decimal and a known unit."""
        if dimension not in UNITS:
            raise UnitError(f"unknown dimension {dimension!r}")
        raw = str(text).strip()
        if re.match(r"^\.\d", raw):
            raise UnitError(f"{raw!r}: write a leading zero (0.5, not .5)")
        match = _NUMBER.match(raw)
        if not match:
            if re.match(r"^\s*[0-9.,]+\s*$", raw):
                raise UnitError(f"{raw!r} has no unit; expected one of {', '.join(UNITS[dimension])}")
            if "," in raw:
                raise UnitError(f"{raw!r}: use a decimal point, not a comma")
            if raw.startswith("-"):
                raise UnitError(f"{raw!r}: negative values are not allowed")
            raise UnitError(f"{raw!r} is not a number followed by a unit (e.g. 450 mcg/day)")
        unit = _normalise_unit(match["unit"])
        if unit not in UNITS[dimension]:
            raise UnitError(_explain_bad_unit(unit, dimension))
        return cls(Decimal(match["num"]), unit)

    @classmethod
    def from_base(cls, base: int, unit: str) -> Quantity:
        """Express a wire integer in `unit` exactly (e.g. 450000 ng/day -> 450 mcg/day).

        Refuses (UnitError) a value that has no finite decimal form in `unit`
        (e.g. 61 s in min) rather than showing a rounded one.
        """
        factor = _factor(unit)
        if base % factor == 0:  # a whole number of `unit` (most readings): what the division below gives
            return cls(Decimal(base // factor), unit)
        rest = factor // math.gcd(base, factor)
        for prime in (2, 5):
            while rest % prime == 0:
                rest //= prime
        if rest != 1:
            raise UnitError(f"{base} {BASE_UNIT[_dimension(unit)]} is not an exact number of {unit}")
        with localcontext() as ctx:  # enough digits that neither division nor tidying rounds
            ctx.prec = max(ctx.prec, len(str(base)) + len(str(factor)))
            return cls(_tidy(Decimal(base) / Decimal(factor)), unit)

    @property
    def dimension(self) -> str:
        return _dimension(self.unit)

    def to_base(self) -> int:
        """The wire integer; refuses a value finer than the wire's resolution."""
        factor = _factor(self.unit)
        with localcontext() as ctx:  # exact: the default 28 digits would round silently
            ctx.prec = max(ctx.prec, len(self.value.as_tuple().digits) + len(str(factor)))
            scaled = self.value * factor
        if scaled != scaled.to_integral_value():
            raise UnitError(
                f"{self} is finer than the resolution of 1 {BASE_UNIT[self.dimension]}"
            )
        return int(scaled)

    def to(self, unit: str) -> Quantity:
        if _dimension(unit) != self.dimension:
            raise UnitError(f"cannot express {self} in {unit}")
        return Quantity.from_base(self.to_base(), unit)

    def __str__(self) -> str:
        return f"{self.value:f} {self.unit}"


def _dimension(unit: str) -> str:
    for dimension, units in UNITS.items():
        if unit in units:
            return dimension
    raise UnitError(f"unknown unit {unit!r}")


def _factor(unit: str) -> int:
    return UNITS[_dimension(unit)][unit]


def _tidy(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (1E+3 -> 1000)."""
    try:
        normal = value.normalize()
    except InvalidOperation:  # pragma: no cover - Decimal from ints cannot fail
        return value
    return normal.quantize(Decimal(1)) if normal == normal.to_integral() else normal
