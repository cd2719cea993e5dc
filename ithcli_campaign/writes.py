"""The writes a campaign session asks ithcli to make, and what each must leave on the pump.

A session draws one write (choose_write) from the pump's truth before it, all within the
drug library's limits for morphine (docs/reliability.md has the table):

    program    `program --dose D`
    refill     `refill --volume V --concentration C`, with --bridge or --no-bridge at random
               when C changes (a bridge bolus: the catheter's dead space at the old rate)
    bolus      `bolus --dose B --over 10 min`
    catheter   `catheter implant | revise | correct`
    priming    `bolus --priming --confirm-monitoring` (drawn mostly while priming is due)
    clock      `clock set --to T` (a step over 24 h with --confirm-clock-step)
    ptm        `ptm set --dose --lockout --max-per-day --duration` or `ptm set --off`

Each Write carries what "new" means for it: the fields oracle.expected() needs, worked out
here from the truth before with the protocol's own arithmetic (protocol/catheter.py).
"""
from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from protocol import bodies
from protocol.catheter import dead_space_nl, dose_in_volume_ng, implant_priming_nl, revision_priming_nl
from protocol.constants import CatheterAction, CatheterModel
from protocol.ptm import PTM_OFF

NG_PER_MG = 1_000_000
#: every kind a session can draw; the cut sweep covers the first three (a COMMIT frame is the same
#: for every kind: the random sessions cut the others)
WRITE_KINDS = ("program", "refill", "bolus", "catheter", "priming", "clock", "ptm")
SWEEP_KINDS = ("program", "refill", "bolus")
#: the draw's weights (priming is drawn apart: PRIMING_SHARE of the sessions while priming is due)
WRITE_WEIGHTS = {"program": 4.5, "refill": 2.0, "bolus": 1.2, "catheter": 0.8, "clock": 0.8, "ptm": 0.7}
PRIMING_SHARE = 0.7
REFILL_CONCENTRATIONS_MG_PER_ML = (10, 20)  # both in the drug library for morphine
BOLUS_SECONDS = 600
LOW_RESERVOIR_UL = 10_000  # below this a session refills (bolus sessions drain the reservoir)
DAY_S = 86_400
#: a pump clock this far from the computer's is stepped back towards it
CLOCK_DRIFT_S = 3 * DAY_S


@dataclass(frozen=True)
class Write:
    """One write a session asks ithcli to make, and what the pump shows once it is applied."""
    kind: str
    args: tuple[str, ...]
    dose_ng: int = 0  # program: the new daily dose; bolus, priming: the bolus
    reservoir_ul: int = 0  # refill: the volume after the fill
    concentration_ng_per_ml: int = 0  # refill: the concentration filled
    variant: str = ""  # catheter: implant/revise/correct; refill: bridge/no-bridge; clock: step size...
    bridge_ng: int = 0  # refill with a bridge: the old drug's dose in the dead space
    catheter: bodies.CatheterRecord | None = None  # catheter, priming: the record once applied
    ptm: bodies.PtmLimits | None = None  # ptm: the limits once applied
    clock_to: int = 0  # clock: the pump's time once applied

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.variant}" if self.variant else self.kind

    def as_dict(self) -> dict:
        return {"kind": self.kind, "variant": self.variant, "args": list(self.args)}


#: the doses a program session draws from, mg/day: the highest is less than +45 % on the lowest, so
#: no draw breaks the drug library's step rule (+50 %) or its escalation budgets (+50 % in 24 hours,
#: +100 % in 7 days) whatever the log holds: the pump's clock moves by days (a bridge bolus is run
#: to its end, the clock is set), so the log always has a dose "24 hours ago" to rise from
DOSES_MG_PER_DAY = tuple(Decimal(n) / 10 for n in range(15, 22))


def choose_dose(rng: random.Random, current_ng: int) -> Decimal:
    """A new morphine dose from DOSES_MG_PER_DAY (1.5-2.1 mg/day in 0.1 steps), never the current one,
    within the drug library's step rules (at most +50 %; a cut of less than half needs no flag)."""
    current = Decimal(current_ng) / NG_PER_MG
    fits = [d for d in DOSES_MG_PER_DAY if d != current and current * Decimal("0.6") < d <= current * Decimal("1.45")]
    return rng.choice(fits or [Decimal("2.0") if current != 2 else Decimal("1.8")])


def choose_write(rng: random.Random, status: bodies.Status, program: bodies.Program,
                 kind: str | None = None) -> Write:
    """A seeded write of `kind` (default: drawn by WRITE_WEIGHTS, priming mostly while it is due)
    that the drug library and the pump accept when nothing goes wrong. `kind` may name its
    variant too ("catheter:revise", "refill:bridge", "clock:days", "ptm:off")."""
    variant = ""
    if kind is not None:
        kind, _, variant = kind.partition(":")
    else:
        kind = rng.choices(list(WRITE_WEIGHTS), weights=list(WRITE_WEIGHTS.values()))[0]
        if status.catheter.priming_due_nl and rng.random() < PRIMING_SHARE:
            kind = "priming"
        if status.reservoir_ul < LOW_RESERVOIR_UL:
            kind = "refill"
    chooser = _CHOOSERS.get(kind)
    if chooser is None:
        raise ValueError(f"unknown write kind {kind!r}")
    return chooser(rng, status, program, variant)


def _program(rng: random.Random, status: bodies.Status, program: bodies.Program, variant: str = "") -> Write:
    dose = choose_dose(rng, program.daily_dose_ng_per_day)
    return Write("program", ("program", "--dose", f"{dose} mg/day", "--yes"), dose_ng=int(dose * NG_PER_MG))


def _refill(rng: random.Random, status: bodies.Status, program: bodies.Program, variant: str = "") -> Write:
    volume = rng.choice([v for v in range(20, 41) if v * 1000 != status.reservoir_ul])
    concentrations = [c for c in REFILL_CONCENTRATIONS_MG_PER_ML
                      if variant in ("", "same") or c * NG_PER_MG != status.concentration_ng_per_ml]
    if variant == "same":
        concentrations = [status.concentration_ng_per_ml // NG_PER_MG]
    conc = rng.choice(concentrations)
    changes = conc * NG_PER_MG != status.concentration_ng_per_ml
    # a new concentration needs the choice said; the same one takes --no-bridge too
    bridge = (changes and status.catheter.action is not CatheterAction.NONE
              and (variant == "bridge" or (not variant and rng.random() < 0.5)))
    bridge_ng = dose_in_volume_ng(status.catheter.dead_space_nl, status.concentration_ng_per_ml) if bridge else 0
    return Write("refill", ("refill", "--volume", f"{volume} mL", "--concentration", f"{conc} mg/mL",
                            "--bridge" if bridge else "--no-bridge", "--yes"),
                 reservoir_ul=volume * 1000, concentration_ng_per_ml=conc * NG_PER_MG,
                 variant="bridge" if bridge else "no-bridge" if changes else "same", bridge_ng=bridge_ng)


def _bolus(rng: random.Random, status: bodies.Status, program: bodies.Program, variant: str = "") -> Write:
    dose = Decimal(rng.randint(1, 5)) / 10  # 0.1-0.5 mg
    return Write("bolus", ("bolus", "--dose", f"{dose} mg", "--over", f"{BOLUS_SECONDS // 60} min", "--yes"),
                 dose_ng=int(dose * NG_PER_MG))


def _priming(rng: random.Random, status: bodies.Status, program: bodies.Program, variant: str = "") -> Write:
    """The priming the pump has due (none due: ithcli must refuse it, and nothing changes)."""
    record = status.catheter
    return Write("priming", ("bolus", "--priming", "--confirm-monitoring", "--yes"),
                 dose_ng=dose_in_volume_ng(record.priming_due_nl, status.concentration_ng_per_ml),
                 catheter=dataclasses.replace(record, priming_due_nl=0))


def _catheter(rng: random.Random, status: bodies.Status, program: bodies.Program, variant: str = "") -> Write:
    """An implant (priming due: tubing + catheter), a revision (due: the new segment) or a
    correction (nothing re-armed; a due priming worked out again), recorded at the pump's time."""
    current = status.catheter
    action = variant or rng.choices(("implant", "revise", "correct"), weights=(2, 5, 3))[0]
    if current.action is CatheterAction.NONE:
        action = "implant"
    for _ in range(10):  # a record different from the one the pump holds (ithcli sends no no-op)
        record, args = _catheter_record(rng, status, action)
        if dataclasses.replace(record, recorded_at=0) != dataclasses.replace(current, recorded_at=0):
            break
    return Write("catheter", ("catheter", action, *args, "--yes"), variant=action, catheter=record)


def _catheter_record(rng: random.Random, status: bodies.Status, action: str) -> tuple[bodies.CatheterRecord,
                                                                                      tuple[str, ...]]:
    current, now, pump = status.catheter, status.pump_time, status.model
    if action == "implant":
        model, length = CatheterModel.STANDARD, rng.randint(30, 100) * 10
        due = implant_priming_nl(pump, model, length)
        return (bodies.CatheterRecord(CatheterAction.IMPLANT, model, length, 0, now, dead_space_nl(pump, model, length),
                                      due), ("--model", model.name, "--length", f"{length // 10} cm"))
    model = current.model
    if action == "revise":
        length = rng.randint(30, 100) * 10
        replaced = rng.randint(5, 30) * 10
        return (bodies.CatheterRecord(CatheterAction.REVISION, model, length, replaced, now,
                                      dead_space_nl(pump, model, length), revision_priming_nl(model, replaced)),
                ("--length", f"{length // 10} cm", "--replaced", f"{replaced // 10} cm"))
    length = rng.choice([cm * 10 for cm in range(max(30, -(-current.replaced_mm // 10)), 101)
                         if cm * 10 != current.length_mm])
    due = current.priming_due_nl
    if due:  # still owed: worked out again from the corrected record, never re-armed when primed
        due = (implant_priming_nl(pump, model, length) if current.action is CatheterAction.IMPLANT
               else revision_priming_nl(model, current.replaced_mm))
    return (bodies.CatheterRecord(current.action, model, length, current.replaced_mm, now,
                                  dead_space_nl(pump, model, length), due), ("--length", f"{length // 10} cm"))


def _clock(rng: random.Random, status: bodies.Status, program: bodies.Program, variant: str = "") -> Write:
    """A step of seconds to days; over a day it needs --confirm-clock-step. A pump clock that has
    drifted far from this computer's (boluses and bridges are run to their end by advancing it)
    is stepped back towards it."""
    size = variant or rng.choices(("minutes", "hours", "days"), weights=(2, 1, 1))[0]
    low, high = {"minutes": (1, 3600), "hours": (3601, DAY_S), "days": (DAY_S + 1, 4 * DAY_S)}[size]
    drift = status.pump_time - int(time.time())
    sign = -1 if drift > CLOCK_DRIFT_S else 1 if drift < -CLOCK_DRIFT_S else rng.choice((-1, 1))
    target = status.pump_time + sign * rng.randint(low, high)
    iso = datetime.fromtimestamp(target, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    confirm = ("--confirm-clock-step",) if size == "days" else ()
    return Write("clock", ("clock", "set", "--to", iso, *confirm, "--yes"), variant=size, clock_to=target)


def _ptm(rng: random.Random, status: bodies.Status, program: bodies.Program, variant: str = "") -> Write:
    """Patient-bolus limits within morphine's library entry (at most 0.5 mg, a lockout of at least
    60 min, at most 6 a day: the worst case stays under the soft maximum), or off."""
    if variant == "off" or (not variant and status.ptm.enabled and rng.random() < 0.3):
        return Write("ptm", ("ptm", "set", "--off", "--yes"), variant="off", ptm=PTM_OFF)
    for _ in range(5):
        dose = rng.randint(1, 5) * NG_PER_MG // 10
        duration, lockout = rng.choice((5, 10, 15, 30)) * 60, rng.choice((60, 90, 120, 240)) * 60
        limits = bodies.PtmLimits(enabled=1, dose_ng=dose, duration_s=duration, lockout_s=lockout,
                                  max_per_day=rng.randint(1, 6))
        if limits != status.ptm:
            break
    args = ("ptm", "set", "--dose", f"{Decimal(limits.dose_ng) / NG_PER_MG} mg", "--lockout",
            f"{limits.lockout_s // 60}min", "--max-per-day", str(limits.max_per_day), "--duration",
            f"{limits.duration_s // 60}min", "--yes")
    return Write("ptm", args, variant="set", ptm=limits)


_CHOOSERS = {"program": _program, "refill": _refill, "bolus": _bolus, "priming": _priming, "catheter": _catheter,
             "clock": _clock, "ptm": _ptm}
