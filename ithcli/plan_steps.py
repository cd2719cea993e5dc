"""What each plan action takes, and the shape of the steps that need no drug to check.

Split out of plan.py (which re-exports ACTIONS and BOLUS_SECONDS): the table of actions and
their fields, the program's one-way-to-set rule, and the protocol-version-4 write steps
(catheter, priming-bolus, clock-set, ptm-set, a refill's bridge choice) checked offline with
the command line's own parsers, so a plan says what is wrong in the CLI's words. The values
in a drug's unit (a ptm-set dose) are checked in plan_doses.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

ACTIONS = {
    # action: (allowed keys besides "action", required keys)
    "interrogate": (set(), set()),
    "assert": ({"check"}, {"check"}),
    "program": ({"dose", "flow", "mode", "schedule", "stop", "override_soft_limit", "confirm", "from_order"}, set()),
    "refill": ({"volume", "concentration", "drug", "withdrawn", "dose", "bridge", "override_soft_limit", "confirm",
                "from_order"}, {"volume", "concentration"}),
    "bolus": ({"dose", "over", "override_soft_limit", "confirm", "from_order"}, {"dose", "over"}),
    "priming-bolus": ({"over", "override_soft_limit", "confirm"}, set()),
    "catheter": ({"event", "model", "length", "replaced"}, {"event", "length"}),
    "clock-set": ({"to", "confirm"}, set()),
    "ptm-set": ({"dose", "lockout", "max_per_day", "duration", "off", "override_soft_limit"}, set()),
    "mri-checklist": ({"field", "gradient", "auto_exit"}, set()),
    "mri-enter": ({"field", "gradient", "auto_exit", "confirm"}, set()),
    "mri-exit": (set(), set()),
    "mri-verify": (set(), set()),
}
#: the steps that write to the pump (each journalled, two-phase, read back)
WRITE_ACTIONS = ("program", "refill", "bolus", "priming-bolus", "catheter", "clock-set", "ptm-set", "mri-enter",
                 "mri-exit")
#: a bolus runs from 1 min to 24 h (as ithcli bolus / operations.bolus_change refuse otherwise)
BOLUS_SECONDS = (60, 86_400)
#: a catheter step's event, as the CLI's subcommand (implant, revise, correct) or the API's word
CATHETER_EVENTS = {"implant": "implant", "revise": "revision", "revision": "revision", "correct": "correction",
                   "correction": "correction"}
#: what each field of a step must be, and an example for the message
#: field -> (the type(s) it takes, an example)
SHAPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "dose": (str, '"450 mcg/day" (a bolus: "50 mcg")'), "flow": (str, '"0.25 mL/day"'),
    "mode": (str, '"minimum" or "flex"'), "schedule": (str, '"flex-schedule.toml"'),
    "stop": (bool, "true"), "volume": (str, '"18 mL"'), "withdrawn": (str, '"2.5 mL"'),
    "concentration": (str, '"2000 mcg/mL"'), "drug": (str, '"baclofen"'), "over": (str, '"30 min"'),
    "field": (str, '"1.5T" or "3T"'), "auto_exit": (str, '"4h"'), "check": (str, '"reservoir_ml >= 5"'),
    "gradient": ((int, float), "a number of T/m, e.g. 20"), "confirm": (list, '["tenfold"]'),
    "override_soft_limit": (dict, '{ DAILY_MAX = "reason" }'),
    "bridge": (bool, "true (a bridge bolus) or false (none)"),
    "event": (str, '"implant", "revise" or "correct"'), "model": (str, '"STANDARD"'),
    "length": (str, '"80 cm" (or "800 mm")'), "replaced": (str, '"15 cm"'),
    "to": ((str, datetime), '"2030-03-01T08:00:00Z" (with its UTC offset)'),
    "lockout": (str, '"60 min"'), "duration": (str, '"10 min"'), "max_per_day": (int, "a whole number, e.g. 4"),
    "off": (bool, "true"), "from_order": (bool, "true (the values come from each target's order)"),
}
#: the steps a target's order governs (ithcli/orders.py KINDS)
ORDERED_ACTIONS = ("program", "refill", "bolus")

Say = Callable[[str, "str | None"], None]


def program_shape(s: dict, say: Say) -> None:
    """Exactly one way to set the program (counted over the fields given, whatever their values);
    none with from_order = true (each target's order says it)."""
    if s.get("from_order") is True:
        return
    mode = s.get("mode") if isinstance(s.get("mode"), str) else None
    if s.get("stop") is False:
        say("stop", "stop = false does nothing: write stop = true or leave it out")
    ways = [k for k in ("dose", "flow", "stop") if k in s] + (
        [f"mode = {mode!r}" if mode else "mode"] if "mode" in s else [])
    if len(ways) != 1:
        say("action", 'give exactly one of dose, flow, stop = true, mode = "minimum", mode = "flex" with '
            "schedule" + (f" (got {', '.join(ways)})" if ways else ""))
    if mode is not None and mode not in ("flex", "minimum"):
        say("mode", f"mode {mode!r} must be \"flex\" (with schedule) or \"minimum\"; a continuous dose is "
            "dose = \"...\"")
    if mode == "flex" and "schedule" not in s:
        say("mode", 'mode = "flex" needs schedule = "FILE"')
    if "schedule" in s and mode != "flex":
        say("schedule", 'schedule goes with mode = "flex"')


def write_shape(action: str, raw: dict, args: dict, say: Say, attempt: Callable[[tuple, Callable], str | None]) -> None:
    """The protocol-version-4 steps, offline. `attempt(key, parse)` runs a parser once per value
    (the checker's memo) and returns its problem; `raw` is the step as written, `args` its fields
    of the right type (normalised here: a TOML date-time becomes ISO text, an event the API's word)."""
    if action == "catheter":
        _catheter(args, say, attempt)
    elif action == "priming-bolus":
        given, named = raw.get("confirm"), args.get("confirm", [])
        if "confirm" not in raw:
            say("action", _MONITORING)
        elif isinstance(given, list) and len(named) == len(given) and "monitoring" not in named:
            say("confirm", _MONITORING)  # (a misspelt name is reported as such, once)
        _duration("over", args, say, attempt, "a bolus runs from 1 min to 24 h")
    elif action == "clock-set":
        _clock(raw, args, say, attempt)
    elif action == "ptm-set":
        _ptm(raw, args, say, attempt)
    elif action == "bolus" and "priming" in raw:
        say("priming", 'a priming bolus is its own step: action = "priming-bolus" with confirm = ["monitoring"] '
            "(its volume comes from the pump's catheter record)")


_MONITORING = ('a priming bolus needs confirm = ["monitoring"]: the patient will be monitored after it (drug can '
               "reach the patient sooner than priming assumes)")


def _catheter(args: dict, say: Say, attempt) -> None:
    from .catheter_ops import parse_length, parse_model

    event = args.get("event")
    if isinstance(event, str):
        word = CATHETER_EVENTS.get(event.strip().lower())
        if word is None:
            from .plan_checks import _did_you_mean

            say("event", f"event {event!r}{_did_you_mean(event.lower(), CATHETER_EVENTS)} must be \"implant\", "
                "\"revise\" or \"correct\"")
        else:
            args["event"] = word
    word = args.get("event") if args.get("event") in CATHETER_EVENTS.values() else None
    if "model" in args:
        say("model", attempt(("catheter model", args["model"]), lambda: parse_model(args["model"])))
    elif word == "implant":
        say("action", 'an implant needs model = "STANDARD" (the catheter implanted)')
    lengths: dict[str, int] = {}
    for key in ("length", "replaced"):
        if key in args:
            problem = attempt(("catheter length", args[key], key), lambda k=key: parse_length(args[k], k))
            say(key, problem)
            if problem is None:
                lengths[key] = parse_length(args[key], key)
    if word == "revision" and "replaced" not in args:
        say("action", 'a revision needs replaced = "15 cm" (the length of the new segment: only it is primed)')
    if word is not None and word != "revision" and "replaced" in args:
        say("replaced", f"replaced goes with a revision, not an {word}" if word == "implant" else
            f"replaced goes with a revision, not a {word}")
    if {"length", "replaced"} <= set(lengths) and not 1 <= lengths["replaced"] <= lengths["length"]:
        say("replaced", f"the replaced segment {args['replaced']!r} must be more than 0 and at most the catheter's "
            f"{args['length']!r}")


def _clock(raw: dict, args: dict, say: Say, attempt) -> None:
    from .clock import parse_when
    from .limits.clock import CLOCK_EARLIEST, CLOCK_LATEST

    if isinstance(args.get("to"), datetime):  # a TOML date-time: its offset, or none (refused below)
        args["to"] = args["to"].isoformat()
    if "to" not in args:
        return
    problem = attempt(("clock to", args["to"]), lambda: parse_when(args["to"], "to"))
    problem = problem.removesuffix(". Nothing was sent") if problem else None
    if problem is None and not CLOCK_EARLIEST <= parse_when(args["to"], "to") <= CLOCK_LATEST:
        problem = f"to {args['to']!r} is outside the times a pump's clock accepts (2020-01-01 to 2100-01-01)"
    say("to", problem)


def _ptm(raw: dict, args: dict, say: Say, attempt) -> None:
    from .ptm import MAX_PER_DAY

    values = [k for k in ("dose", "lockout", "max_per_day", "duration") if k in raw]
    if raw.get("off") is False:
        say("off", "off = false does nothing: to turn patient boluses on give dose, lockout, max_per_day and "
            "duration")
    elif "off" in raw and values:
        say("off", f"off = true turns patient boluses off: give no {', '.join(values)} with it")
    elif "off" not in raw and len(values) < 4:
        missing = [k for k in ("dose", "lockout", "max_per_day", "duration") if k not in raw]
        say("action", f"give off = true, or all of dose, lockout, max_per_day and duration (missing "
            f"{', '.join(missing)})")
    n = args.get("max_per_day")
    if isinstance(n, int) and not isinstance(n, bool) and not 1 <= n <= MAX_PER_DAY:
        say("max_per_day", f"max_per_day {n}: a whole number of activations from 1 to {MAX_PER_DAY}")
    _duration("lockout", args, say, attempt, None)
    _duration("duration", args, say, attempt, "an activation runs from 1 min to 24 h")


def _duration(key: str, args: dict, say: Say, attempt, bounds: str | None) -> None:
    from .dosing import parse_duration

    if key not in args:
        return
    problem = attempt(("duration", key, args[key]), lambda: parse_duration(args[key], key))
    if problem is None and bounds and not BOLUS_SECONDS[0] <= parse_duration(args[key], key) <= BOLUS_SECONDS[1]:
        problem = f"{key} {args[key]!r}: {bounds}"
    say(key, problem)
