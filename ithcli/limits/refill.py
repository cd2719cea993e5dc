"""The checks of a refill: capacity, and the withdrawn volume against what the pump expected
(docs/clinical.md#refill-checks)."""
from __future__ import annotations

from .findings import Finding, ml

#: refill reconciliation: withdrawn vs expected gap that suggests a pocket fill
POCKET_FILL_GAP_UL = {20_000: 1_000, 40_000: 2_000}


def fill_gap(spec, *, withdrawn_ul: int | None, expected_ul: int) -> tuple[int, int] | None:
    """(gap, limit) when the withdrawn volume is further from the expected one than the model's
    pocket-fill limit (1 mL for a 20 mL pump, 2 mL for a 40 mL one), else None."""
    if withdrawn_ul is None:
        return None
    gap = abs(withdrawn_ul - expected_ul)
    limit = POCKET_FILL_GAP_UL.get(spec.capacity_ul, 1_000)
    return (gap, limit) if gap > limit else None


def dry_run_suspected(spec, *, withdrawn_ul: int | None, expected_ul: int) -> bool:
    """Far less withdrawn than the pump believed it held: it may have run dry without knowing."""
    found = fill_gap(spec, withdrawn_ul=withdrawn_ul, expected_ul=expected_ul)
    return found is not None and withdrawn_ul is not None and withdrawn_ul < expected_ul


def check_refill(spec, *, volume_ul: int, withdrawn_ul: int | None, expected_ul: int) -> list[Finding]:
    out: list[Finding] = []
    if volume_ul > spec.capacity_ul:
        out.append(Finding("refuse", "capacity",
                           f"a fill of {ml(volume_ul)} exceeds the {spec.name}'s capacity of {ml(spec.capacity_ul)}"))
    if volume_ul == 0:
        out.append(Finding("refuse", "empty-fill", "a refill volume of 0 mL"))
    if withdrawn_ul is not None and withdrawn_ul > spec.capacity_ul:
        out.append(Finding("refuse", "withdrawn-capacity",
                           f"withdrawn {ml(withdrawn_ul)} is more than the {spec.name}'s capacity of "
                           f"{ml(spec.capacity_ul)}: check the entry"))
    out += check_fill_gap(spec, withdrawn_ul=withdrawn_ul, expected_ul=expected_ul)
    return out


def check_fill_gap(spec, *, withdrawn_ul: int | None, expected_ul: int) -> list[Finding]:
    found = fill_gap(spec, withdrawn_ul=withdrawn_ul, expected_ul=expected_ul)
    if found is None or withdrawn_ul is None:  # fill_gap finds none without a withdrawn volume
        return []
    gap, limit = found
    return [Finding("confirm", "withdrawn-gap",
                    f"withdrew {ml(withdrawn_ul)} but the pump expected {ml(expected_ul)} (a gap of {ml(gap)}, "
                    f"over {ml(limit)}): a possible pocket fill at the last refill, a wrong recorded volume, or a "
                    f"delivery fault; investigate before filling", "--confirm-fill-gap")]
