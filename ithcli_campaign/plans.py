"""The faults a session arms: drawn at random (choose_fault) or the cut sweep's (cut_sweep_plans).

A plan is {"layer": "none" | "emulator" | "proxy", details}, optionally with a second fault
under "also", and optionally "write": the kind of write the session must make.
"""
from __future__ import annotations

import random

from .proxy import KINDS, TO_CLI, TO_PUMP, Fault

EMULATOR_FAULTS = ("drop_commit_reply", "mismatch_on_commit", "reset_on_commit", "reset_after_commit",
                   "drop_prepare_reply", "reset_after_prepare", "drop_reply")
DOUBLE_FAULT_SHARE = 0.15  # of faulty sessions: a second fault on top (another layer or frame)


def choose_fault(rng: random.Random, timeout: float) -> dict:
    """A seeded fault plan: {"layer": "none" | "emulator" | "proxy", details}, and for
    DOUBLE_FAULT_SHARE of the faulty ones a second fault under "also" (e.g. a reset on
    COMMIT and a bit flip in the PREPARE reply, or two frames damaged)."""
    r = rng.random()
    if r < 0.08:
        return {"layer": "none"}
    plan = _one_fault(rng, timeout, "emulator" if r < 0.38 else "proxy")
    if rng.random() < DOUBLE_FAULT_SHARE:
        plan["also"] = _one_fault(rng, timeout, rng.choice(("emulator", "proxy")))
    return plan


def _one_fault(rng: random.Random, timeout: float, layer: str) -> dict:
    if layer == "emulator":
        name = rng.choice(EMULATOR_FAULTS)
        count = rng.randint(1, 3) if name == "drop_reply" else 1
        return {"layer": "emulator", "name": name, "count": count}
    kind = rng.choice(KINDS)
    direction = rng.choice((TO_PUMP, TO_CLI))
    target = rng.choices(("commit", "prepare", "any"), weights=(5, 2, 3))[0]
    index = 0 if target != "any" else rng.randint(0, 12)
    fault = Fault(kind=kind, direction=direction, target=target, index=index,
                  offset=rng.randint(0, 60), length=rng.randint(1, 4), bit=rng.randint(0, 7),
                  delay=round(timeout * rng.uniform(1.1, 3.0), 3))
    return {"layer": "proxy", "fault": fault.as_dict()}


def fault_name(part: dict) -> str:
    if part["layer"] == "none":
        return "none"
    if part["layer"] == "emulator":
        return f"emulator:{part['name']}"
    return f"proxy:{part['fault']['kind']}:{part['fault']['direction']}"


def cut_sweep_plans(direction: str, offsets, write: str = "program") -> list[dict]:
    return [{"layer": "proxy", "write": write,
             "fault": Fault(kind="cut", direction=direction, target="commit", offset=o).as_dict()}
            for o in offsets]


def proxy_faults(parts: list[dict]) -> list[Fault]:
    """The plan's proxy faults, fresh (what a finished run added, fired and the frame, left out)."""
    return [Fault(**{k: v for k, v in p["fault"].items() if k not in ("fired", "frame_len", "frame_command")})
            for p in parts if p["layer"] == "proxy"]


def as_ran(parts: list[dict], armed: list[Fault], left: dict) -> dict:
    """The plan as it ran: each proxy fault with whether it fired, each emulator fault whether
    it was used (`left`: the emulator's faults still armed after the run)."""
    proxy_ran = iter(armed)
    ran = []
    for part in parts:
        part = {k: v for k, v in part.items() if k != "also"}
        if part["layer"] == "proxy":
            part["fault"] = next(proxy_ran).as_dict()
        elif part["layer"] == "emulator":
            part["used"] = part["name"] not in left
        ran.append(part)
    return dict(ran[0], also=ran[1]) if len(ran) > 1 else ran[0]
