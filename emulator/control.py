"""Test-only control channel: JSON lines over a UNIX socket (--control PATH).

Never part of the telemetry link: it reaches into the pump to do what a test
needs (jump the clock, read internal state, cause a reset, arm faults: see
faults.py for their names; ops "fault", "faults", "clear_faults"; put the pump
in an MRI scanner's static field now, "field", or on a schedule, "scenario"; a patient's press
of the handheld, "activate"). One request per
line, one reply per line: {"op": NAME, ...} -> {"ok": true, ...} or
{"ok": false, "error": "..."}. Add an op by decorating a function with @op(NAME);
it gets the Context and the request dict and returns the reply's fields.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from .clock import PumpClock
from .faults import FAULTS, MAX_COUNT, Faults
from .pump import DEFAULT_GRADIENT_T_PER_M, Pump, check_field

log = logging.getLogger("emulator.control")

MAX_ADVANCE_S = 100 * 365 * 86_400


class ControlError(Exception):
    """A refused control request: its text becomes the reply's "error"."""


@dataclass
class Context:
    pump: Pump
    clock: PumpClock
    faults: Faults = field(default_factory=Faults)


OPS: dict[str, Callable[[Context, dict], dict]] = {}


def op(name: str):
    def register(func):
        OPS[name] = func
        return func

    return register


def _int_arg(request: dict, name: str, minimum: int, maximum: int) -> int:
    value = request.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ControlError(f"{name!r} must be an integer in {minimum}..{maximum}")
    return value


@op("advance")
def _advance(ctx: Context, request: dict) -> dict:
    """Jump the pump clock forward `seconds`, logging every event on the way."""
    seconds = _int_arg(request, "seconds", 0, MAX_ADVANCE_S)
    ctx.pump.tick()
    ctx.clock.advance(seconds)
    ctx.pump.tick()
    return ctx.pump.describe()


@op("state")
def _state(ctx: Context, request: dict) -> dict:
    ctx.pump.tick()
    return ctx.pump.describe()


@op("reset")
def _reset(ctx: Context, request: dict) -> dict:
    ctx.pump.reset()
    return ctx.pump.describe()


def _field_args(request: dict, where: str = "") -> tuple[float, float]:
    if "tesla" not in request:
        raise ControlError(f"{where}'tesla' is required (1.5 or 3 puts the pump in the field, 0 takes it out)")
    gradient = request.get("gradient_t_per_m", DEFAULT_GRADIENT_T_PER_M)
    try:
        return check_field(request["tesla"], gradient)
    except ValueError as exc:
        raise ControlError(f"{where}{exc}") from None


@op("field")
def _field(ctx: Context, request: dict) -> dict:
    """The static field now: {"tesla": 1.5 | 3, "gradient_t_per_m": N (default 10)}; tesla 0 ends it."""
    tesla, gradient = _field_args(request)
    ctx.pump.set_field(tesla, gradient)
    return ctx.pump.describe()


@op("scenario")
def _scenario(ctx: Context, request: dict) -> dict:
    """Schedule field changes at pump time now + after_s, replacing any scheduled before:
    {"events": [{"after_s": N, "op": "field", "tesla": T, "gradient_t_per_m": G}, ...]}."""
    events = request.get("events")
    if not isinstance(events, list):
        raise ControlError("'events' must be a list of {\"after_s\", \"op\": \"field\", \"tesla\"}")
    changes = []
    for i, event in enumerate(events):
        where = f"events[{i}]: "
        if not isinstance(event, dict) or event.get("op") != "field":
            raise ControlError(f"{where}only op 'field' can be scheduled")
        try:
            after_s = _int_arg(event, "after_s", 0, MAX_ADVANCE_S)
        except ControlError as exc:
            raise ControlError(f"{where}{exc}") from None
        changes.append((after_s, *_field_args(event, where)))
    try:
        ctx.pump.schedule_field(changes)
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    return ctx.pump.describe()


@op("activate")
def _activate(ctx: Context, request: dict) -> dict:
    """The patient presses the handheld now: granted (a PATIENT bolus starts) or refused by the
    pump's rules, logged either way. The reply says which, why, and the use in the last 24 hours."""
    outcome = ctx.pump.activate()
    return {
        "outcome": "granted" if outcome.granted else "refused",
        "reason": outcome.refusal.name if outcome.refusal is not None else None,
        "detail": outcome.detail,
        "lockout_left_s": outcome.lockout_left_s,
        "ptm": ctx.pump.ptm.describe(),
        "bolus": ctx.pump.delivery.bolus.to_dict() if ctx.pump.delivery.bolus else None,
    }


@op("fault")
def _fault(ctx: Context, request: dict) -> dict:
    """Arm fault `name` for the next `count` (default 1; 0 disarms) requests it matches."""
    name = request.get("name")
    if name not in FAULTS:
        raise ControlError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    count = _int_arg(request, "count", 0, MAX_COUNT) if "count" in request else 1
    ctx.faults.arm(name, count)
    return {"armed": dict(ctx.faults.armed)}


@op("faults")
def _faults(ctx: Context, request: dict) -> dict:
    return {"armed": dict(ctx.faults.armed), "known": dict(FAULTS)}


@op("clear_faults")
def _clear_faults(ctx: Context, request: dict) -> dict:
    ctx.faults.clear()
    return {"armed": {}}


@op("ops")
def _ops(ctx: Context, request: dict) -> dict:
    return {"ops": sorted(OPS)}


def dispatch(ctx: Context, request: object) -> dict:
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        return {"ok": False, "error": 'expected a JSON object with a string "op"'}
    func = OPS.get(request["op"])
    if func is None:
        return {"ok": False, "error": f"unknown op {request['op']!r}; known: {', '.join(sorted(OPS))}"}
    try:
        return {"ok": True, **func(ctx, request)}
    except ControlError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug in an op: say so to the test, keep the pump running
        log.exception("control op %r failed", request["op"])
        return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}


def handle_line(ctx: Context, line: bytes) -> bytes:
    try:
        request = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        reply = {"ok": False, "error": f"not JSON: {exc}"}
    else:
        reply = dispatch(ctx, request)
    return json.dumps(reply).encode() + b"\n"
