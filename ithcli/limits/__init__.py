"""Every safety limit a write is checked against, in one package: `ithcli.limits`.

The checks are pure: they take the drug library entry, the pump model, what the
pump holds now, its history (ithcli/history.py, from the pump's own log) and what
is about to be sent, and return findings:

    refuse   never sent, whatever the flags (hard limits, wrong concentration...)
    soft     sent only with --override-soft-limit NAME=REASON naming this limit
             (OVERRIDE_NAMES; each reason is audited with the limit it overrides)
    confirm  sent only with the named confirmation flag (CONFIRM_FLAGS)
    warn     shown, and recorded in the audit log

`settle()` turns findings into one refusal that lists everything still needed at
once, or the list of findings to show. Where each figure comes from: docs/clinical.md.

    limits/findings.py  Finding, the named overrides and confirmations, settle()
    limits/dose.py      a daily dose: concentration, flow, 24-hour total, change, escalation, restart
    limits/bolus.py     a clinician bolus
    limits/refill.py    a refill: capacity, withdrawn against expected
    limits/clock.py     what depends on the pump's clock
    limits/state.py     what the pump's state refuses whatever the values (MRI-safe mode, end of service)
    limits/catheter.py  the catheter record, the priming bolus, a refill's bridge bolus
    limits/ptm.py       patient-activated boluses: the library's limits and the worst case a day
"""
from __future__ import annotations

from .bolus import (
    check_bolus,
    check_bolus_rate,
    check_no_bolus_running,
    volume_text,
)
from .catheter import (
    BRIDGE_CHOICE,
    MONITORING_FLAG,
    bridge_problem,
    check_bridge,
    check_catheter,
    check_no_bridge_needed,
    check_priming,
    shortest_bolus_s,
)
from .clock import (
    CLOCK_STEP_CONFIRM_S,
    check_clock_set,
    check_flex_clock,
)
from .dose import (
    check_change,
    check_concentration,
    check_daily_total,
    check_escalation,
    check_flow,
    check_restart,
    history_unknown,
)
from .findings import (
    COMMAND_CONFIRMS,
    COMMAND_OVERRIDES,
    CONFIRM_FLAGS,
    OVERRIDE_NAMES,
    SECONDS_PER_DAY,
    TENFOLD,
    WITHDRAWAL_CUT_PERCENT,
    Finding,
    duration,
    fmt,
    fmt_mass,
    normalise_override,
    parse_overrides,
    settle,
)
from .ptm import (
    check_ptm_limits,
    check_ptm_with_program,
)
from .refill import (
    POCKET_FILL_GAP_UL,
    check_fill_gap,
    check_refill,
    dry_run_suspected,
    fill_gap,
)
from .state import (
    check_mri_enter,
    check_mri_exit,
    check_writable,
)

__all__ = [
    "SECONDS_PER_DAY",
    "TENFOLD",
    "WITHDRAWAL_CUT_PERCENT",
    "OVERRIDE_NAMES",
    "CONFIRM_FLAGS",
    "COMMAND_CONFIRMS",
    "COMMAND_OVERRIDES",
    "Finding",
    "parse_overrides",
    "normalise_override",
    "fmt",
    "duration",
    "fmt_mass",
    "settle",
    "check_concentration",
    "check_flow",
    "check_daily_total",
    "check_change",
    "history_unknown",
    "check_escalation",
    "check_restart",
    "check_bolus",
    "check_bolus_rate",
    "volume_text",
    "POCKET_FILL_GAP_UL",
    "fill_gap",
    "dry_run_suspected",
    "check_no_bolus_running",
    "check_refill",
    "check_fill_gap",
    "check_flex_clock",
    "CLOCK_STEP_CONFIRM_S",
    "check_clock_set",
    "check_ptm_limits",
    "check_ptm_with_program",
    "BRIDGE_CHOICE",
    "MONITORING_FLAG",
    "bridge_problem",
    "check_bridge",
    "check_catheter",
    "check_no_bridge_needed",
    "check_priming",
    "shortest_bolus_s",
    "check_writable",
    "check_mri_enter",
    "check_mri_exit",
]
