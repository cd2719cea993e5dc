"""The checks that depend on the pump's clock."""
from __future__ import annotations

from ..calendar import duration_text, past_threshold, skew_text
from .findings import SECONDS_PER_DAY, Finding


def check_flex_clock(plan, skew_s: int) -> list[Finding]:
    """A flex schedule's steps start by the pump's clock: on a pump whose clock is off, each
    starts that much earlier or later by the calendar (a night step by day): say it, and that
    `ithcli clock set` puts the pump's clock right."""

    if plan.mode != "FLEX" or not past_threshold(skew_s):
        return []
    when = "earlier" if skew_s > 0 else "later"
    return [Finding("warn", "flex-on-skewed-clock",
                    f"the schedule's step times run on the pump's clock, which is {skew_text(skew_s)}: each step "
                    f"starts {duration_text(skew_s)} {when} by this computer's clock; check the times, or set "
                    "the pump's clock (ithcli clock set)")]


#: a clock step larger than this needs --confirm-clock-step: a mistyped day, month or year
#: (or a pump whose clock was set a time zone or more wrong on purpose) rather than a drift.
#: A quartz clock drifting at 20 ppm takes over a century to drift a day; a daylight-saving
#: hour or a time zone (at most 14 h) fits within it, a wrong date does not.
CLOCK_STEP_CONFIRM_S = SECONDS_PER_DAY
#: the times PREPARE_CLOCK accepts (docs/protocol.md#setting-the-clock): 2020-01-01T00:00:00Z up to
#: 2100-01-01T00:00:00Z; ithcli refuses others before asking the pump
CLOCK_EARLIEST, CLOCK_LATEST = 1_577_836_800, 4_102_444_800


def check_clock_set(*, new_time: int, step_s: int, target_skew_s: int, flex: bool) -> list[Finding]:
    """Setting the pump's clock to new_time, a step of step_s from its time now; target_skew_s: how
    far new_time is from this computer's clock (0 when set to it). flex: the pump runs a flex
    schedule, whose steps start by the pump's clock."""
    from ..calendar import iso

    if not CLOCK_EARLIEST <= new_time <= CLOCK_LATEST:
        return [Finding("refuse", "clock-range",
                        f"{iso(new_time)} is outside the times a pump's clock accepts (2020-01-01 to 2100-01-01)")]
    out: list[Finding] = []
    if abs(step_s) > CLOCK_STEP_CONFIRM_S:
        way = "forward" if step_s > 0 else "back"
        out.append(Finding("confirm", "clock-step",
                           f"the pump's clock would move {way} by {duration_text(step_s)} ({step_s:+d} s): "
                           "more than a day, check the date for a slip", "--confirm-clock-step"))
    if past_threshold(target_skew_s):
        out.append(Finding("warn", "clock-off-calendar",
                           f"{iso(new_time)} is not this computer's time: the pump's clock will be "
                           f"{skew_text(target_skew_s)}, and its dates will be moved by that much"))
    if flex and step_s:
        out.append(Finding("warn", "flex-moves-with-clock",
                           f"the flex schedule's steps start by the pump's clock: each will start "
                           f"{duration_text(step_s)} {'earlier' if step_s > 0 else 'later'} by the calendar "
                           "than it does now"))
    return out
