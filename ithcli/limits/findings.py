"""Findings and how they settle: the levels, the named overrides and confirmations, and the
formatting every check shares."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..errors import SafetyError

SECONDS_PER_DAY = 86_400


TENFOLD = 10


WITHDRAWAL_CUT_PERCENT = 50  # cuts this large of a withdrawal-risk drug need confirmation


#: every soft limit, by the name an override gives it: --override-soft-limit NAME=REASON
#: (one per limit; a reason overrides only the limit it names)
OVERRIDE_NAMES = {
    "DAILY_MAX": "the 24-hour total above the drug's soft maximum",
    "STEP": "one increase larger than the drug's largest step",
    "STEP_PERCENT": "one increase larger than the drug's largest step in percent",
    "FREQUENCY": "more increases in the drug's window than it allows",
    "RISE_24H": "the rise over the last 24 hours past the drug's soft budget",
    "RISE_7D": "the rise over the last 7 days past the drug's soft budget",
    "HISTORY": "the pump's log does not reach back over a window the checks need",
    "RESTART": "resuming above the usual starting dose after an interruption longer than the drug's threshold",
}


#: every confirmation, by its flag (a batch plan names them without the "--confirm-")
CONFIRM_FLAGS = {
    "--confirm-tenfold": "a new dose 10x or more away from the current one",
    "--confirm-withdrawal-risk": "stopping (or cutting by half or more) a drug with a withdrawal risk",
    "--confirm-restart": "restarting a stopped pump above the drug's usual starting dose",
    "--confirm-empty-before-visit": "the reservoir running empty before the next visit",
    "--confirm-fill-gap": "withdrawn volume far from what the pump expected (possible pocket fill)",
    "--confirm-monitoring": "a priming bolus: the patient will be monitored after it (drug can reach the patient "
                            "sooner than priming assumes)",
    "--confirm-clock-step": "setting the pump's clock by more than a day (a mistyped date?)",
}


#: the confirmations and soft limits each write command can meet, and so offers (its --help lists
#: only these): which checks its change runs (operations.py, refill_ops.py, catheter_ops.py, ptm.py,
#: clock.py, mri.py). A bolus never stops a drug or changes the program; a patient-bolus limit
#: changes neither the program nor the history windows.
COMMAND_CONFIRMS: dict[str, tuple[str, ...]] = {
    "program": ("--confirm-tenfold", "--confirm-withdrawal-risk", "--confirm-restart",
                "--confirm-empty-before-visit"),
    "refill": ("--confirm-tenfold", "--confirm-withdrawal-risk", "--confirm-restart",
               "--confirm-empty-before-visit", "--confirm-fill-gap"),
    "bolus": ("--confirm-monitoring",),  # a priming bolus
    "ptm": (),
    "empty": ("--confirm-withdrawal-risk", "--confirm-fill-gap"),
    "mri enter": ("--confirm-withdrawal-risk",),
    "clock set": ("--confirm-clock-step",),
}
COMMAND_OVERRIDES: dict[str, tuple[str, ...]] = {
    "program": tuple(OVERRIDE_NAMES),
    "refill": tuple(OVERRIDE_NAMES),
    "bolus": ("DAILY_MAX", "HISTORY"),
    "ptm": ("DAILY_MAX",),
}


@dataclass(frozen=True)
class Finding:
    level: str
    rule: str
    message: str
    flag: str | None = None  # for "confirm": the flag that accepts it
    override: str | None = None  # for "soft": its name in OVERRIDE_NAMES
    reason: str | None = None  # for "soft", once overridden: the reason given for it

    def __post_init__(self):
        if self.level == "soft" and self.override not in OVERRIDE_NAMES:
            raise ValueError(f"soft finding {self.rule!r} has no override name")

    @property
    def needs(self) -> str:
        """What accepts it on the command line."""
        return f"--override-soft-limit {self.override}=REASON" if self.level == "soft" else str(self.flag)

    def as_dict(self) -> dict:
        out = {"level": self.level, "rule": self.rule, "message": self.message, "flag": self.flag}
        if self.level == "soft":
            out |= {"override": self.override, "reason": self.reason}
        return out


def parse_overrides(given) -> dict[str, str]:
    """--override-soft-limit NAME=REASON (repeatable) -> {NAME: REASON}; UsageError when one is bare,
    unnamed, unknown or given twice."""
    from ..errors import UsageError

    names = ", ".join(OVERRIDE_NAMES)
    out: dict[str, str] = {}
    for text in given or ():
        name, sep, reason = str(text).partition("=")
        key = normalise_override(name)
        if not sep or not reason.strip():
            raise UsageError(f"--override-soft-limit {text!r}: name the limit and give a reason, "
                             f"NAME=REASON (names: {names}). Nothing was sent")
        if key not in OVERRIDE_NAMES:
            raise UsageError(f"--override-soft-limit {text!r}: {name.strip()!r} is not a soft limit "
                             f"(names: {names}). Nothing was sent")
        if key in out:
            raise UsageError(f"--override-soft-limit {key} is given twice. Nothing was sent")
        out[key] = reason.strip()
    return out


def normalise_override(name: str) -> str:
    return name.strip().upper().replace("-", "_")


def fmt(ng: int, unit: str) -> str:
    from protocol import Quantity

    return str(Quantity.from_base(ng, unit))


def pct_change(new: int, old: int) -> Decimal:
    return (Decimal(new - old) * 100 / Decimal(old)).quantize(Decimal("0.1"))


def span(seconds: int) -> str:
    """A duration as the options take it back: '90 s', '10 min', '76 min', '120 min', '3 h'."""
    if seconds % 60:
        return f"{seconds} s"
    if seconds > 2 * 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def duration(seconds: int) -> str:
    """How long an interruption lasted, as the refusals and the before/after table say it."""
    if seconds >= 2 * SECONDS_PER_DAY:
        return f"{Decimal(seconds) / SECONDS_PER_DAY:.1f} days"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def fmt_mass(ng: int, entry) -> str:
    return fmt(ng, entry.mass_unit)


def ml(ul: int) -> str:
    return f"{format((Decimal(ul) / 1000).normalize(), 'f')} mL"


def ml_day(nl: int) -> str:
    return f"{format((Decimal(nl) / 1_000_000).normalize(), 'f')} mL/day"


def ml_nl(nl: int) -> str:
    return f"{format((Decimal(nl) / 1_000_000).normalize(), 'f')} mL"


def settle(findings: list[Finding], *, overrides: dict[str, str] | None = None,
           confirmed: set[str] | frozenset[str] = frozenset()) -> list[Finding]:
    """Raise SafetyError for anything not allowed; return what to show (soft findings carry
    the reason given for them).

    Refusals are listed together; otherwise every override and confirmation still missing
    is listed at once, each with its flag, so one more attempt is enough."""
    from dataclasses import replace

    refusals = [f for f in findings if f.level == "refuse"]
    if refusals:
        raise SafetyError("refused: " + "; ".join(f.message for f in refusals) + ". Nothing was sent",
                          details={"refused": [f.as_dict() for f in refusals]})
    overrides = overrides or {}
    missing = [f for f in findings if (f.level == "soft" and f.override not in overrides)
               or (f.level == "confirm" and f.flag not in confirmed)]
    if missing:
        needs = list(dict.fromkeys(f.needs for f in missing))
        raise SafetyError(
            f"needs {len(needs)} more: " + "; ".join(f"{f.message} (pass {f.needs})" for f in missing)
            + ". Nothing was sent",
            details={"needed": needs, "findings": [f.as_dict() for f in missing]})
    # a soft finding's override is one of overrides here: any other was refused as missing above
    shown = [replace(f, reason=overrides[f.override]) if f.level == "soft" and f.override is not None else f
             for f in findings if f.level in ("warn", "soft", "confirm")]
    used = {f.override for f in findings if f.level == "soft"}
    for name in overrides:
        if name not in used:
            shown.append(Finding("warn", "unused-override",
                                 f"--override-soft-limit {name} was given but that limit was not reached"))
    return shown
