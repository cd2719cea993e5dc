"""Therapy changes, computed and checked without I/O prompts: shared by the commands
(which render and ask) and by batch plans (which are their own confirmation).

    state = read_state(app)                       # the pump read first, writes settled
    change = program_change(app, state, dose="450 mcg/day", ...)   # checks; raises on refusal
    result = apply_change(app, state, change)     # PREPARE, echo, COMMIT, read back
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import write_kinds
from .errors import UsageError


@dataclass
class PumpState:
    client: Any
    raw: dict  # INTERROGATE, decoded
    described: dict  # interrogate, with units
    program: dict  # READ_PROGRAM's program
    entry: Any  # drug library entry (None only for a refill that replaces the drug)
    spec: Any  # protocol.models.ModelSpec


@dataclass
class Change:
    command: str  # "program", "refill", "bolus", "empty"
    request: Any  # writes.WriteRequest, or None when the pump already delivers this
    describe: dict  # before/requested/warnings...: the --json result and error details
    warnings: list
    rows: list = field(default_factory=list)  # (label, now, after) for the before/after table
    question: str = ""
    overrides: dict = field(default_factory=dict)  # NAME -> REASON, as given
    confirmed: set = field(default_factory=set)
    unit: str = "mcg/day"

    @property
    def unchanged(self) -> bool:
        return self.request is None


def read_state(app, *, allow_unknown_drug: bool = False) -> PumpState:
    """Read the pump for a write: clinician session, unconfirmed writes refused."""
    from protocol.models import MODELS

    from .errors import SafetyError
    from .writes import preflight

    client = app.client(write=True)
    preflight(app, client, app.serial)
    described = app.interrogate(resolve=False)
    raw = app.last_raw_status
    program = client.read_program()["program"]
    entry = app.library().for_code(raw["drug"].name)
    if entry is None and not allow_unknown_drug:
        raise SafetyError(
            f"the pump holds {raw['drug'].name.lower()}, which is not in the drug library "
            f"({app.library().path}): writes are refused"
        )
    return PumpState(client, raw, described, program, entry, MODELS[raw["model"]])


def _q(q: dict) -> str:
    from .output import fmt_quantity

    return fmt_quantity(q)


def _ml_day(value) -> str:
    return f"{format(value, 'f')} mL/day"


def change_percent(new: int, old: int) -> Decimal | None:
    if old == 0:
        return None
    return (Decimal(new - old) * 100 / Decimal(old)).quantize(Decimal("0.1"))


def _steps_text(view: dict) -> str:
    if view["mode"] == "stopped":
        return "-"
    return ", ".join(f"{s['start']} {_q(s['dose'])}" for s in view["steps"])


def _expected_program(state: PumpState, plan, summary, drug=None, conc=None) -> dict:
    import protocol

    from . import dosing

    return {
        "mode": protocol.InfusionMode[plan.mode],
        "drug": drug if drug is not None else state.raw["drug"],
        "concentration_ng_per_ml": conc if conc is not None else state.raw["concentration_ng_per_ml"],
        "daily_dose_ng_per_day": summary["daily_dose_ng_per_day"],
        "daily_volume_nl_per_day": summary["daily_volume_nl_per_day"],
        "steps": dosing.expected_steps(plan, summary),
    }


# --- program -----------------------------------------------------------------

def program_change(app, state: PumpState, *, dose=None, flow=None, mode=None, schedule=None, stop=False,
                   next_visit=None, overrides=None, confirmed=frozenset(), spasticity_origin=None) -> Change:

    from . import dosing, limits
    from .status import program_view
    from .writes import WriteRequest

    chosen = [name for name, given in (("dose", dose), ("flow", flow), ("stop", stop),
                                       ("schedule", schedule), ("mode minimum", mode == "minimum")) if given]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --dose, --flow, --stop, --mode minimum, --mode flex --schedule FILE"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    if schedule and mode not in (None, "flex"):
        raise UsageError("--schedule goes with --mode flex")
    if mode == "flex" and not schedule:
        raise UsageError("--mode flex needs --schedule FILE")
    if (dose or flow) and mode not in (None, "continuous"):
        raise UsageError(f"--dose and --flow set a continuous program, not --mode {mode}")
    visit = parse_date(next_visit, "--next-visit")
    raw, entry, conc = state.raw, state.entry, state.raw["concentration_ng_per_ml"]
    findings: list = []
    if dose:
        plan = dosing.Plan("CONTINUOUS", (0,), (dosing.parse_dose_rate(dose, entry),))
    elif flow:
        from protocol.therapy import dose_for_rate

        rate = dosing.parse_flow(flow)
        plan = dosing.Plan("CONTINUOUS", (0,), (dose_for_rate(rate, conc),))
        reached = dosing.plan_summary(plan, conc)["rates"][0]
        if reached != rate:
            findings.append(limits.Finding(
                "warn", "flow-rounding", f"{flow} is not exactly reachable at this concentration: the pump will "
                f"run {format(Decimal(reached) / 1_000_000, 'f')} mL/day"))
    elif stop:
        plan = dosing.Plan("STOPPED")
    elif mode == "minimum":
        plan = dosing.Plan("MINIMUM")
    else:
        plan = dosing.load_schedule(schedule, entry)

    unit = entry.dose_unit
    summary = dosing.plan_summary(plan, conc)
    current, new = raw["daily_dose_ng_per_day"], summary["daily_dose_ng_per_day"]
    before_view = program_view(state.program, unit)
    if plan == dosing.plan_from_program(state.program):
        return Change("program", None, {"serial_number": raw["serial_number"], "before": before_view,
                                        "after": before_view}, [], unit=unit)
    origin = patient_origin(app, state, spasticity_origin)
    # the log matters for a rise or a restart; a cut or a stop is judged on the program alone
    past = read_history(state.client, raw) if new > current or new > 0 and current == 0 else None
    boluses = past.boluses_since(raw["pump_time"] - DAY, conc) if past is not None else 0
    findings += limits.check_concentration(entry, conc)
    findings += limits.check_flow(state.spec, summary["rates"], plan.mode)
    if plan.mode != "STOPPED":
        findings += limits.check_daily_total(entry, new + boluses, _with_boluses(entry, boluses))
    findings += limits.check_change(entry, current=current, new=new, mode=plan.mode, history=past, origin=origin)
    if visit and summary["daily_volume_nl_per_day"]:
        findings += visit_check(raw, raw["reservoir_ul"], summary["daily_volume_nl_per_day"], visit,
                                state.described["clock_skew_s"])
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    record_origin(app, state, spasticity_origin)
    expected = _expected_program(state, plan, summary)
    after_view = program_view(expected, unit)
    pct = change_percent(new, current)
    describe = {"serial_number": raw["serial_number"], "before": before_view, "requested": after_view,
                "change_percent": pct, "warnings": [w.as_dict() for w in warnings],
                "overrides": dict(overrides or {}), **history_view(past, entry, origin)}
    rows = [
        ("Mode", before_view["mode"], after_view["mode"]),
        ("24-hour total", _q(before_view["daily_dose"]),
         _q(after_view["daily_dose"]) + (f"  ({pct:+} %)" if pct is not None else "")),
        ("Flow (24-hour)", _ml_day(before_view["flow_ml_per_day"]), _ml_day(after_view["flow_ml_per_day"])),
        ("Steps (per-day rates)", _steps_text(before_view), _steps_text(after_view)),
        ("Concentration", _q(before_view["concentration"]), _q(after_view["concentration"])),
    ]
    request = WriteRequest(
        kind=write_kinds.PROGRAM,
        body={"mode": expected["mode"], "drug": raw["drug"], "concentration_ng_per_ml": conc, "steps": plan.steps()},
        expect={"program": expected}, describe=describe,
    )
    rows += history_rows(past, entry, state.described["clock_skew_s"])
    return Change("program", request, describe, warnings, rows,
                  f"Program {raw['serial_number']} to {after_view['mode']}, {_q(after_view['daily_dose'])} a day?",
                  dict(overrides or {}), set(confirmed), unit)


DAY = 86_400


def read_history(client, raw: dict):
    """The pump's log read back from its newest event to the checks' horizon (8 days), as a
    History. Only what the status read counted (event_count) is used, so the history and
    the status describe the same moment."""
    from protocol.messages import MAX_LOG_PAGE

    from .history import HORIZON_S, History

    horizon = raw["pump_time"] - HORIZON_S
    end = raw["event_count"]
    events: list[dict] = []
    oldest = end
    index = end
    while index > 0:
        first = max(0, index - MAX_LOG_PAGE)
        page = client.read_log(first, index - first)
        oldest = page["oldest_index"]
        batch = [e for e in page["events"] if first <= e["index"] < index]
        events[:0] = batch
        if not batch or first <= oldest or batch[0]["time"] < horizon:
            break
        index = first
    complete = oldest == 0 and (not events or events[0]["index"] == 0)
    return History.from_log(events, now=raw["pump_time"], dose_now=raw["daily_dose_ng_per_day"], complete=complete)


def _with_boluses(entry, boluses: int) -> str:
    from .limits import fmt_mass

    if not boluses:
        return "the new 24-hour total"
    return f"the new 24-hour total with the {fmt_mass(boluses, entry)} of boluses given in the last 24 hours"


def patient_origin(app, state: PumpState, given: str | None) -> str | None:
    """Baclofen's spasticity origin: as given now, else as recorded for this pump."""
    if given:
        return given
    if state.entry is None or not state.entry.rise_24h_percent_by_origin:
        return None
    from .state import PumpNotes

    return PumpNotes(app.state_path()).origin(state.raw["serial_number"])


def record_origin(app, state: PumpState, given: str | None) -> None:
    """Keep a newly given spasticity origin for this pump's later changes (audited)."""
    if not given:
        return
    from .state import PumpNotes

    notes = PumpNotes(app.state_path())
    serial = state.raw["serial_number"]
    if notes.origin(serial) != given:
        notes.set_origin(serial, given)
        app.record("spasticity-origin", origin=given)


def history_view(past, entry, origin: str | None = None) -> dict:
    """What the history showed the checks: for --json."""
    if past is None:
        return {}
    out: dict = {"history": {"log_complete": past.complete, "oldest_event_time": past.oldest_time,
                             "interruptions": [i.as_dict(past.now) for i in past.interruptions]}}
    if entry is not None and entry.rise_24h_percent_by_origin:
        out["spasticity_origin"] = origin
    return out


def history_rows(past, entry, skew_s: int = 0) -> list[tuple[str, str, str]]:
    """An interruption in the last 8 days, shown in the before/after table: from when, how long, why
    (its times from the pump's log, shown on this computer's calendar)."""
    from .calendar import iso, to_calendar

    def when(ts):
        return iso(to_calendar(ts, skew_s))

    if past is None:
        return []
    gap = past.last_interruption_since(past.now - 7 * DAY)
    if gap is None:
        return []
    begun = f"before {when(gap.began_before)}" if gap.start is None and gap.began_before else \
        "unknown" if gap.start is None else when(gap.start)
    length = gap.at_least(past.now)
    how_long = f"{'at least ' if gap.start is None else ''}{length // 3600} h {length % 3600 // 60} min"
    until = "still interrupted" if gap.ongoing else f"resumed {when(gap.end)}"
    return [("Interruption", f"from {begun}, {how_long} ({', '.join(gap.causes)})", until)]


def parse_date(text, option: str):
    if not text:
        return None
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO date (e.g. 2027-01-15)") from None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


def low_alarm_at(raw: dict, volume_ul: int, per_day_nl: int) -> int | None:
    """When the low-reservoir alarm comes if the reservoir holds volume_ul at per_day_nl."""
    from .status import reaches

    return reaches(raw["pump_time"], volume_ul, raw["low_reservoir_alarm_ul"], per_day_nl)


def visit_check(raw: dict, volume_ul: int, per_day_nl: int, visit: int, skew_s: int) -> list:
    """The reservoir running empty before the next visit needs a confirmation; the low-reservoir
    alarm coming first is a warning. Both are compared on the calendar (the pump's dates moved
    by its measured clock skew), since the visit is a calendar date."""
    from .calendar import iso_known, to_calendar
    from .limits import Finding
    from .status import reaches

    empty_at = to_calendar(reaches(raw["pump_time"], volume_ul, 0, per_day_nl), skew_s)
    if empty_at is not None and empty_at < visit:
        return [Finding("confirm", "empty-before-visit",
                        f"the reservoir runs empty {iso_known(empty_at)[:10]}, before the next visit "
                        f"{iso_known(visit)[:10]}: delivery would stop; bring the refill forward",
                        "--confirm-empty-before-visit")]
    alarm_at = to_calendar(low_alarm_at(raw, volume_ul, per_day_nl), skew_s)
    if alarm_at is not None and alarm_at < visit:
        return [Finding("warn", "alarm-before-visit",
                        f"the low-reservoir alarm comes {iso_known(alarm_at)[:10]}, before the next visit "
                        f"{iso_known(visit)[:10]}: bring the refill forward")]
    return []


# --- refill ------------------------------------------------------------------

def refill_change(app, state: PumpState, *, volume, concentration, drug=None, withdrawn=None, dose=None,
                  next_visit=None, overrides=None, confirmed=frozenset(), spasticity_origin=None) -> Change:
    import protocol

    from . import dosing, limits
    from .calendar import iso, to_calendar
    from .status import program_view
    from .writes import WriteRequest

    raw = state.raw
    library = app.library()
    if drug:
        new_entry = next((e for e in library.drugs.values() if e.name == drug.lower()), None)
        if new_entry is None:
            raise UsageError(f"--drug {drug!r} is not in the drug library "
                             f"({', '.join(e.name for e in library.drugs.values())})")
    else:
        new_entry = state.entry
    changing_drug = new_entry.code != raw["drug"].name
    if changing_drug and not dose:
        raise UsageError(f"changing the drug to {new_entry.name} needs --dose in {new_entry.dose_unit}")
    conc = dosing.parse_concentration(concentration, new_entry)
    volume_ul = dosing.parse_volume(volume, "--volume")
    withdrawn_ul = dosing.parse_volume(withdrawn, "--withdrawn") if withdrawn else None
    visit = parse_date(next_visit, "--next-visit")
    plan = (dosing.Plan("CONTINUOUS", (0,), (dosing.parse_dose_rate(dose, new_entry),)) if dose
            else dosing.plan_from_program(state.program))  # the dose stays; the flow follows
    summary = dosing.plan_summary(plan, conc)
    current = 0 if changing_drug else raw["daily_dose_ng_per_day"]
    new = summary["daily_dose_ng_per_day"]
    findings = limits.check_refill(state.spec, volume_ul=volume_ul, withdrawn_ul=withdrawn_ul,
                                   expected_ul=raw["reservoir_ul"])
    dry = limits.dry_run_suspected(state.spec, withdrawn_ul=withdrawn_ul, expected_ul=raw["reservoir_ul"])
    # a refill resumes delivery after an empty reservoir: the log says for how long it was stopped
    past = read_history(state.client, raw)
    # a new drug's budgets start afresh: its history is not this drug's
    origin = patient_origin(app, state, spasticity_origin)
    boluses = 0 if changing_drug else past.boluses_since(raw["pump_time"] - DAY, conc)
    findings += limits.check_concentration(new_entry, conc)
    findings += limits.check_flow(state.spec, summary["rates"], plan.mode)
    if plan.mode != "STOPPED":
        findings += limits.check_daily_total(new_entry, new + boluses, _with_boluses(new_entry, boluses))
    findings += limits.check_change(new_entry, current=current, new=new, mode=plan.mode,
                                    history=None if changing_drug and not dry else past, origin=origin,
                                    dry_run_suspected=dry)
    if visit:
        findings += visit_check(raw, volume_ul, summary["daily_volume_nl_per_day"], visit,
                                state.described["clock_skew_s"])
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    record_origin(app, state, spasticity_origin)
    expected = _expected_program(state, plan, summary, protocol.Drug[new_entry.code], conc)
    unit = new_entry.dose_unit
    # a drug outside the library is shown in mcg/day, as interrogate shows it
    before_view = program_view(state.program, state.entry.dose_unit if state.entry else "mcg/day")
    after_view = program_view(expected, unit)
    low_after = iso(to_calendar(low_alarm_at(raw, volume_ul, summary["daily_volume_nl_per_day"]),
                                state.described["clock_skew_s"]))
    before = state.described
    describe = {"serial_number": raw["serial_number"],
                "before": {**before_view, "reservoir_ml": before["reservoir_ml"]},
                "requested": {**after_view, "reservoir_ml": Decimal(volume_ul) / 1000,
                              "projected_low_reservoir_date": low_after},
                "withdrawn_ml": Decimal(withdrawn_ul) / 1000 if withdrawn_ul is not None else None,
                "expected_remaining_ml": before["reservoir_ml"], "possible_dry_run": dry,
                "warnings": [w.as_dict() for w in warnings], "overrides": dict(overrides or {}),
                **history_view(past, new_entry, origin)}
    from .output import fmt_date

    rows = [
        ("Drug", before_view["drug"], after_view["drug"]),
        ("Concentration", _q(before_view["concentration"]), _q(after_view["concentration"])),
        ("Reservoir", f"{format(before['reservoir_ml'], 'f')} mL", f"{format(Decimal(volume_ul) / 1000, 'f')} mL"),
        ("24-hour total", _q(before_view["daily_dose"]), _q(after_view["daily_dose"])),
        ("Flow (24-hour)", _ml_day(before_view["flow_ml_per_day"]), _ml_day(after_view["flow_ml_per_day"])),
        ("Low-reservoir alarm", fmt_date(before["projected_low_reservoir_date"]), fmt_date(low_after)),
    ]
    if withdrawn_ul is not None:
        rows.append(("Withdrawn / expected", f"{format(Decimal(withdrawn_ul) / 1000, 'f')} mL",
                     f"{format(before['reservoir_ml'], 'f')} mL expected"))
    rows += history_rows(past, new_entry, state.described["clock_skew_s"])
    request = WriteRequest(
        kind=write_kinds.REFILL,
        body={"drug": protocol.Drug[new_entry.code], "concentration_ng_per_ml": conc, "volume_ul": volume_ul,
              "withdrawn_ul": withdrawn_ul or 0, "mode": expected["mode"], "steps": plan.steps()},
        expect={"program": expected, "reservoir_ul": volume_ul},
        describe=describe,
    )
    question = (f"Record a refill of {raw['serial_number']} with {format(Decimal(volume_ul) / 1000, 'f')} mL of "
                f"{new_entry.name} {_q(after_view['concentration'])}?")
    return Change("refill", request, describe, warnings, rows, question, dict(overrides or {}), set(confirmed), unit)


# --- bolus -------------------------------------------------------------------

def bolus_change(app, state: PumpState, *, dose, duration, overrides=None, confirmed=frozenset()) -> Change:

    from . import dosing, limits
    from .status import quantity
    from .writes import WriteRequest

    raw, entry = state.raw, state.entry
    dose_ng = dosing.parse_dose(dose, entry)
    seconds = dosing.parse_duration(duration, "--over")
    if not 60 <= seconds <= 86_400:
        raise UsageError(f"--over {duration!r}: a bolus runs from 1 min to 24 h")
    conc = raw["concentration_ng_per_ml"]
    volume_nl = -(-dose_ng * 1_000_000 // conc)  # rounded up: never under-state the volume
    # the boluses of the last 24 hours count in the total the hard limit applies to
    past = read_history(state.client, raw)
    findings = limits.check_concentration(entry, conc)
    if past.covers(raw["pump_time"] - DAY):
        boluses = past.boluses_since(raw["pump_time"] - DAY, conc)
    else:
        boluses = 0
        findings.append(limits.Finding(
            "soft", "history-unknown", "the pump's log does not reach back 24 hours (older events were "
            "overwritten), so the boluses given in that time are unknown", override="HISTORY"))
    findings += limits.check_bolus(entry, dose=dose_ng, daily_total=raw["daily_dose_ng_per_day"],
                                   volume_nl=volume_nl, reservoir_ul=raw["reservoir_ul"], boluses_24h=boluses)
    top_rate = max((s["rate_nl_per_day"] for s in state.program["steps"]), default=0)
    findings += limits.check_bolus_rate(state.spec, volume_nl=volume_nl, seconds=seconds,
                                        program_max_rate_nl_per_day=top_rate)
    if raw["bolus_remaining_ng"]:
        findings.append(limits.Finding("refuse", "bolus-running", "a bolus is already running"))
    warnings = limits.settle(findings, overrides=overrides, confirmed=set(confirmed))
    dose_q = quantity(dose_ng, entry.mass_unit)
    volume_ml = Decimal(volume_nl) / 1_000_000
    describe = {"serial_number": raw["serial_number"], "dose": dose_q, "duration_s": seconds, "volume_ml": volume_ml,
                "daily_dose": state.described["daily_dose"], "boluses_last_24h": quantity(boluses, entry.mass_unit),
                "warnings": [w.as_dict() for w in warnings], "overrides": dict(overrides or {})}
    rows = [("Bolus", "-", f"{_q(dose_q)} over {duration}"),
            ("Bolus volume", "-", f"{format(volume_ml, 'f')} mL"),
            ("24-hour total", _q(state.described["daily_dose"]), f"{_q(state.described['daily_dose'])} + bolus")]
    if boluses:
        rows.append(("Boluses, last 24 h", _q(quantity(boluses, entry.mass_unit)), "counted in the total"))
    request = WriteRequest(
        kind=write_kinds.BOLUS, body={"dose_ng": dose_ng, "duration_s": seconds},
        expect={"program": state.program, "bolus_dose_ng": dose_ng,
                "bolus_duration_s": seconds, "bolus_volume_nl": volume_nl},
        describe=describe,
    )
    question = f"Deliver {dose_q['value']} {dose_q['unit']} over {duration} to {raw['serial_number']}?"
    return Change("bolus", request, describe, warnings, rows, question, dict(overrides or {}), set(confirmed),
                  entry.dose_unit)


# --- empty ---------------------------------------------------------------------

def empty_change(app, state: PumpState, *, withdrawn=None, confirmed=frozenset()) -> Change:
    """Record an emptied reservoir (a valve-gated pump before an MRI): volume 0 and
    delivery stopped, as a refill of nothing. Stopping is checked like any stop (a drug
    with a withdrawal risk needs --confirm-withdrawal-risk)."""
    import protocol

    from . import dosing, limits
    from .writes import WriteRequest

    raw, before = state.raw, state.described
    withdrawn_ul = dosing.parse_volume(withdrawn, "--withdrawn") if withdrawn else None
    findings = limits.check_change(state.entry, current=raw["daily_dose_ng_per_day"], new=0, mode="STOPPED")
    # only the withdrawn-versus-expected check of a refill applies
    findings += limits.check_fill_gap(state.spec, withdrawn_ul=withdrawn_ul, expected_ul=raw["reservoir_ul"])
    warnings = limits.settle(findings, confirmed=set(confirmed))
    stopped = {"mode": protocol.InfusionMode.STOPPED, "drug": raw["drug"],
               "concentration_ng_per_ml": raw["concentration_ng_per_ml"], "daily_dose_ng_per_day": 0,
               "daily_volume_nl_per_day": 0, "steps": []}
    describe = {"serial_number": raw["serial_number"],
                "before": {"reservoir_ml": before["reservoir_ml"], "mode": before["mode"]},
                "withdrawn_ml": Decimal(withdrawn_ul) / 1000 if withdrawn_ul is not None else None,
                "expected_remaining_ml": before["reservoir_ml"], "warnings": [w.as_dict() for w in warnings]}
    rows = [("Reservoir", f"{format(before['reservoir_ml'], 'f')} mL", "0 mL"),
            ("Delivery", before["mode"], "stopped")]
    if withdrawn_ul is not None:
        rows.append(("Withdrawn / expected", f"{format(Decimal(withdrawn_ul) / 1000, 'f')} mL",
                     f"{format(before['reservoir_ml'], 'f')} mL expected"))
    request = WriteRequest(
        kind=write_kinds.EMPTY,
        body={"drug": raw["drug"], "concentration_ng_per_ml": raw["concentration_ng_per_ml"], "volume_ul": 0,
              "withdrawn_ul": withdrawn_ul or 0, "mode": protocol.InfusionMode.STOPPED, "steps": []},
        expect={"program": stopped, "reservoir_ul": 0},
        describe=describe,
    )
    question = (f"Record {raw['serial_number']} as emptied ({format(before['reservoir_ml'], 'f')} mL expected) "
                "and stop delivery?")
    return Change("empty", request, describe, warnings, rows, question, {}, set(confirmed),
                  state.entry.dose_unit if state.entry else "mcg/day")


# --- applying ------------------------------------------------------------------

def record_overrides(app, change: Change) -> None:
    """Each overridden limit is audited on its own, with its name and the reason given for it."""
    for w in change.warnings:
        if w.level == "soft":
            app.record("soft-limit-override", limit=w.override, reason=w.reason, finding=w.as_dict())
    accepted = [w.as_dict() for w in change.warnings if w.level == "confirm"]
    if accepted:
        app.record("confirmation-flags", flags=sorted(change.confirmed), findings=accepted)


def apply_change(app, state: PumpState, change: Change, on_echo=None, on_commit_sent=None) -> dict:
    """Send a checked change; the verified result for --json (raises on any other outcome)."""
    from .writes import execute

    record_overrides(app, change)
    result = execute(app, state.client, change.request, log_index=state.raw["event_count"],
                     based_on_txid=state.raw["last_txid"], read_program=state.program,
                     dose_unit=change.unit, on_echo=on_echo, on_commit_sent=on_commit_sent)
    out = {"command": change.command, **change.describe, "txid": result["txid"], "commit": result["commit"],
           "verified": True, "outcome": "verified"}
    return out | change.request.kind.after(app, state, change, result["readback"])
