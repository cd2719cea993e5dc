"""What the catheter's dead space does to the dose the patient receives (pure, no I/O).

After a refill that changes the concentration or the drug, the catheter still holds
the old contents, and the pump pushes them at the NEW program's rate: for as long as
the dead space takes to clear (days at low flows) the patient receives the old drug at
the wrong dose. A bridge bolus moves the old contents out at the OLD program's rate
instead, so the patient keeps the old dose until the new drug reaches the tip.
`refill` shows both projections before asking (docs/clinical.md#catheter).
"""
from __future__ import annotations

from dataclasses import dataclass

from protocol import Alarm, Drug, InfusionMode, MriMode
from protocol.bodies import Status
from protocol.catheter import DAY_S, bridge_duration_s, dose_in_volume_ng
from protocol.therapy import dose_for_rate


@dataclass(frozen=True)
class Phase:
    """From the refill on, for `seconds` (None: from then on), the patient receives `drug`
    at dose_ng_per_day."""

    seconds: int | None
    drug: Drug
    dose_ng_per_day: int


@dataclass(frozen=True)
class Contents:
    """What a reservoir holds and the program running it (24-hour figures)."""

    drug: Drug
    concentration_ng_per_ml: int
    daily_volume_nl_per_day: int
    daily_dose_ng_per_day: int


def without_bridge(dead_space_nl: int, old: Contents, new: Contents) -> list[Phase]:
    """The new program pushes the old contents: the old drug at the new rate until cleared."""
    if new.daily_volume_nl_per_day <= 0:
        return [Phase(None, new.drug, 0)]
    clear_s = dead_space_nl * DAY_S // new.daily_volume_nl_per_day
    old_dose_at_new_rate = dose_for_rate(new.daily_volume_nl_per_day, old.concentration_ng_per_ml)
    return [Phase(clear_s, old.drug, old_dose_at_new_rate), Phase(None, new.drug, new.daily_dose_ng_per_day)]


def with_bridge(dead_space_nl: int, old: Contents, new: Contents) -> list[Phase]:
    """The bridge bolus moves the old contents at the old rate; then the new program."""
    seconds = bridge_duration_s(dead_space_nl, old.daily_volume_nl_per_day)
    return [Phase(seconds, old.drug, old.daily_dose_ng_per_day), Phase(None, new.drug, new.daily_dose_ng_per_day)]


def bridge_dose_ng(dead_space_nl: int, old: Contents) -> int:
    """What the patient receives from a bridge bolus: the old contents of the dead space.
    Counted in the 24-hour total as the old drug's (docs/clinical.md#catheter)."""
    return dose_in_volume_ng(dead_space_nl, old.concentration_ng_per_ml)


def daily_totals(phases: list[Phase], days: int) -> list[dict[Drug, int]]:
    """ng the patient receives in each of the next `days` 24-hour periods, per drug (floor of
    the exact day's sum, so a day split between two phases of the same dose is that dose)."""
    sums: list[dict[Drug, int]] = [{} for _ in range(days)]  # ng/day x s
    start = 0
    for phase in phases:
        end = days * DAY_S if phase.seconds is None else start + phase.seconds
        for day in range(days):
            lo, hi = max(start, day * DAY_S), min(end, (day + 1) * DAY_S)
            if hi > lo:
                day_sum = sums[day]
                day_sum[phase.drug] = day_sum.get(phase.drug, 0) + phase.dose_ng_per_day * (hi - lo)
        start = end
    return [{drug: total // DAY_S for drug, total in day.items()} for day in sums]


def days_to_show(phases: list[Phase]) -> int:
    """Enough days to see the dead space clear, and one day of the new program after."""
    first = phases[0].seconds or 0
    return max(2, -(-first // DAY_S) + 1)


#: the alarms that stop delivery (bolus and program alike)
_STOPPING = Alarm.EMPTY_RESERVOIR | Alarm.MOTOR_STALL | Alarm.EOS


def bridge_running(raw: Status) -> bool:
    """Whether a bridge bolus runs in place of the program now. The status does not name a running
    bolus's purpose, but only a bridge pauses the program while delivery runs: a program at rate 0
    with a bolus under way and nothing stopping delivery is one (docs/protocol.md)."""
    return (raw.current_rate_nl_per_day == 0 and raw.bolus_remaining_ng > 0 and raw.mode != InfusionMode.STOPPED
            and raw.mri_mode == MriMode.OFF and not raw.alarms & _STOPPING)
