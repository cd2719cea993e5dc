"""Integer helpers. The pump counts in whole nL, ng and seconds so nothing drifts."""
from __future__ import annotations


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def check_uint(value, bits: int) -> int:
    """`value` when it is an unsigned `bits`-bit int (a bool is not), else ValueError."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise ValueError(f"{value!r} is not an unsigned {bits}-bit integer")
    return value
