"""Patient-activated boluses: the arithmetic both ends agree on (pure, integers).

The clinician sets a dose per activation, the time it is given over, a lockout between
granted activations and the most granted in any rolling 24 hours. The worst case a day
is every allowed activation on top of the program: that is what the limits check
(docs/clinical.md#patient-boluses).
"""
from __future__ import annotations

from .bodies import PtmLimits, PtmUse

#: patient boluses off (and never set)
PTM_OFF = PtmLimits(enabled=0, dose_ng=0, duration_s=0, lockout_s=0, max_per_day=0)
#: no activation in the last 24 hours
PTM_UNUSED = PtmUse(granted_24h=0, refused_24h=0, last_granted_at=0)


def worst_case_daily_ng(daily_dose_ng_per_day: int, limits: PtmLimits) -> int:
    """The most the patient can receive in 24 hours: the program plus every allowed activation."""
    if not limits.enabled:
        return daily_dose_ng_per_day
    return daily_dose_ng_per_day + limits.max_per_day * limits.dose_ng
