"""The session report for the patient's chart, reconstructed from the audit log.

The audit log (audit.py) holds every exchange with the pump as decoded (enums by
name, plain integers in the wire's units), plus events: commit-sent, verified,
verify-failed, reconciled, soft-limit-override, confirmation-flags, mri-checklist,
mri-verify. A change is found by its PREPARE_* exchange; its "before" is the last
status and program read from that pump before the PREPARE, its "after" the first
ones read after the COMMIT (the read-back), and its outcome the verified /
verify-failed / commit-sent / reconciled records with the same txid.

A session is every audit entry from `since` (this computer's clock, UTC) up to
`until`, for one pump.

Dates: the audit log's own times are this computer's clock. The pump's timestamps
(its status's dates, a write's applied time, its log's alarms) are moved onto this
computer's calendar with one skew for the whole report (calendar.py): the one
measured at the status the report shows (read from the pump now, or the last one in
the audit log).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from protocol.bodies import Program, Status

WRITE_COMMANDS = {"PREPARE_PROGRAM": "program", "PREPARE_REFILL": "refill", "PREPARE_BOLUS": "bolus",
                  "PREPARE_MRI_ENTER": "mri enter", "PREPARE_MRI_EXIT": "mri exit"}
WRITE_COMMANDS["PREPARE_CATHETER"] = "catheter"
WRITE_COMMANDS |= {"PREPARE_CLOCK": "clock", "PREPARE_PTM": "ptm"}
WRITE_COMMANDS["PREPARE_PATIENT"] = "patient"


def entry_time(entry: dict) -> int | None:
    text = entry.get("time")
    return _epoch(text) if isinstance(text, str) else None


@functools.lru_cache(maxsize=4096)  # a report asks each entry's time several times
def _epoch(text: str) -> int | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


def rehydrate_status(body: dict) -> Status:
    """An INTERROGATE response as the audit log stored it (enum names) -> as decoded (enums)."""
    import protocol
    from protocol.bodies import Firmware, Status

    out = dict(body)
    for key, enum in (("model", protocol.PumpModel), ("drug", protocol.Drug), ("mode", protocol.InfusionMode),
                      ("battery_state", protocol.BatteryState), ("mri_mode", protocol.MriMode)):
        out[key] = _code(enum, body[key])
    out["alarms"] = _alarms(body.get("alarms"))
    out["firmware"] = Firmware(**body["firmware"])
    out.update(_v4_groups(body))
    out["patient"] = _patient_group(body)
    return Status(**_fields_of(Status, out))


def _patient_group(body: dict) -> Any:
    """The patient record (protocol version 5); an audit entry written by an older ithcli has none:
    it reads as no patient recorded, which is what that pump could tell."""
    import protocol
    from protocol.bodies import PatientRecord
    from protocol.patient import NO_PATIENT

    patient = body.get("patient")
    if patient is None:
        return NO_PATIENT
    fields = _fields_of(PatientRecord, patient)
    fields["spasticity_origin"] = _code(protocol.SpasticityOrigin, fields["spasticity_origin"])
    return PatientRecord(**fields)


def _v4_groups(body: dict) -> dict:
    """The catheter and patient-bolus groups (protocol version 4). An audit entry written by an
    older ithcli has none: they read as nothing recorded, which is what that pump could tell."""
    import protocol
    from protocol.bodies import CatheterRecord, PtmLimits, PtmUse
    from protocol.catheter import NO_CATHETER
    from protocol.ptm import PTM_OFF, PTM_UNUSED

    catheter = body.get("catheter")
    groups: dict[str, Any]
    if catheter is None:
        groups = {"catheter": NO_CATHETER}
    else:
        fields = _fields_of(CatheterRecord, catheter)
        for key, enum in (("action", protocol.CatheterAction), ("model", protocol.CatheterModel)):
            fields[key] = _code(enum, fields[key])
        groups = {"catheter": CatheterRecord(**fields)}
    ptm, use = body.get("ptm"), body.get("ptm_use")
    groups["ptm"] = PTM_OFF if ptm is None else PtmLimits(**_fields_of(PtmLimits, ptm))
    groups["ptm_use"] = PTM_UNUSED if use is None else PtmUse(**_fields_of(PtmUse, use))
    return groups


def _code(enum: Any, value: Any) -> Any:
    """A code as the audit log stored it (its name; a number in older entries) -> the enum member."""
    return enum[value] if isinstance(value, str) else enum(value)


def _fields_of(cls, data: dict) -> dict:
    """The fields of body class `cls` from an audit record's object (KeyError names a missing one;
    fields a later protocol version added to the record are not this class's)."""
    import dataclasses

    return {f.name: data[f.name] for f in dataclasses.fields(cls)}


def _alarms(value) -> Any:
    from protocol import Alarm

    if value is None:
        return Alarm(0)
    if isinstance(value, int):
        return Alarm(value)
    flags = Alarm(0)
    for name in str(value).split("|"):
        flags |= Alarm[name]
    return flags


def rehydrate_program(body: dict) -> Program:
    """A READ_PROGRAM response's program as the audit log stored it -> as decoded."""
    import protocol
    from protocol.bodies import DeliveredStep, Program

    out = dict(body)
    out["mode"] = _code(protocol.InfusionMode, body["mode"])
    out["drug"] = _code(protocol.Drug, body["drug"])
    out["steps"] = tuple(DeliveredStep(**_fields_of(DeliveredStep, step)) for step in body["steps"])
    return Program(**_fields_of(Program, out))


def _ok(entry: dict, command: str) -> bool:
    return (entry.get("event") == "exchange" and entry.get("command") == command and entry.get("outcome") == "ok"
            and isinstance(entry.get("response"), dict))


def serials_in(records: list[dict]) -> list[str]:
    return sorted({r["pump_serial"] for r in records if r.get("pump_serial")})


def session_records(records: list[dict], *, since: int, until: int | None, serial: str | None) -> list[dict]:
    out = []
    for r in records:
        t = entry_time(r)
        if t is None or t < since or (until is not None and t >= until):
            continue
        if serial is not None and r.get("pump_serial") != serial:
            continue
        out.append(r)
    return out


def build(records: list[dict], *, serial: str, since: int, until: int | None, library,
          skew_s: int | None = None) -> dict[str, Any]:
    """The report's data (JSON-able) for one pump's session; `records` is the whole audit log.

    skew_s: the pump clock's skew for every pump timestamp in the report (a live read's);
    None: the one measured at the last status in the audit log (none: not moved)."""
    from .calendar import log_note
    from .status import describe

    mine = [(i, r) for i, r in enumerate(records) if r.get("pump_serial") == serial]
    in_session = [(i, r) for i, r in mine if _in(r, since, until)]
    last_status = _last_status(mine, until)
    status = None
    if last_status is not None:
        raw = rehydrate_status(last_status["response"])
        status = describe(raw, library, read_at=entry_time(last_status) or 0, port=last_status.get("port") or "",
                          emulated=last_status.get("port") == "emulator", skew_s=skew_s)
    if skew_s is None and status is not None:
        skew_s = status["clock_skew_s"]
    changes = [_change(mine, pos, library, skew_s) for pos, (i, r) in enumerate(mine)
               if _in(r, since, until) and r.get("event") == "exchange" and r.get("command") in WRITE_COMMANDS]
    session = [r for _, r in in_session]
    first_read = next((r for r in session if _ok(r, "INTERROGATE")), None)
    operators = sorted({op for r in session if (op := r.get("operator"))})
    return {
        "serial_number": serial,
        "session": {"since": _iso(since), "until": _iso(until), "entries": len(in_session), "operators": operators},
        "status": status,
        # the pump's event-log index when it was first read in the session (None: not read)
        "first_event_index": first_read["response"].get("event_count") if first_read else None,
        "status_source": None if last_status is None else {"from": "audit log", "read_at": _time(last_status)},
        "changes": changes,
        "alarms_seen": _alarms_seen(session),
        "checklists": _checklists(session),
        "events": _events(session),
        # the pump's clock at the status shown (null: no status, pump times not moved)
        "pump_clock": status["pump_clock"] if status is not None else None,
        "times_note": log_note(skew_s, what="the pump's times (its status's dates, applied times, its log)",
                               measured="at the status read shown"),
    }


def _last_status(mine: list[tuple[int, dict]], until: int | None) -> dict | None:
    """The last status read from the pump up to the end of the session."""
    last_status = None
    for _, r in mine:
        if _ok(r, "INTERROGATE") and (until is None or (entry_time(r) or 0) < until):
            last_status = r
    return last_status


def _checklists(session: list[dict]) -> list[dict]:
    return [{"time": _time(r), "check": r.get("event"), "result": r.get("result"),
             "operator": r.get("operator"), "lines": r.get("lines") or []}
            for r in session if r.get("event") in ("mri-checklist", "mri-verify")]


def _events(session: list[dict]) -> list[dict]:
    """Reconciliations, failed verifications and repaired audit lines, as they happened."""
    return [{"time": _time(r), "event": r.get("event"), "operator": r.get("operator"),
             **{k: r[k] for k in ("txid", "kind", "applied", "differences", "time_set", "step_s") if k in r}}
            for r in session if r.get("event") in ("reconciled", "verify-failed", "torn-line-removed", "clock-set")]


def _alarms_seen(session: list[dict]) -> list[dict]:
    """Each alarm active at a status read in the session, when first and last seen; the highest
    priority first."""
    from protocol import ALARM_PRIORITY, Alarm

    from .status import alarm_name

    seen: dict[str, dict] = {}
    for r in session:
        if not _ok(r, "INTERROGATE"):
            continue
        flags = _alarms(r["response"].get("alarms"))
        if not flags:
            continue  # most readings: nothing to look up
        for a in Alarm:
            if flags & a:
                name = alarm_name(a)
                alarm = seen.setdefault(name, {"name": name, "priority": ALARM_PRIORITY[a].name.lower(),
                                               "first_seen": _time(r), "last_seen": _time(r)})
                alarm["last_seen"] = _time(r)
    order = ("high", "medium", "low")
    return sorted(seen.values(), key=lambda a: (order.index(a["priority"]), a["name"]))


def _in(r: dict, since: int, until: int | None) -> bool:
    t = entry_time(r)
    return t is not None and t >= since and (until is None or t < until)


def _iso(ts: int | None) -> str | None:
    from .status import iso

    return iso(ts)


def _time(entry: dict) -> str | None:
    """An audit entry's time as every JSON time is written (older logs wrote "...Z")."""
    return _iso(entry_time(entry))


def _change(mine: list[tuple[int, dict]], pos: int, library, skew_s: int | None) -> dict[str, Any]:
    """One write: what was asked, the pump's state before and after, the outcome (its audit
    time is this computer's clock; its applied time the pump's, moved by skew_s)."""
    from .calendar import to_calendar

    _, prepare = mine[pos]
    request = prepare.get("request") or {}
    txid = request.get("txid") or prepare.get("txid")
    command = WRITE_COMMANDS[prepare["command"]]
    before_status, before_program, notes = _before_write(mine, pos)
    after = _after_write(mine, pos, prepare, txid)
    known = before_status or after.status
    drug = known.drug if known is not None else None
    entry = library.for_code(drug.name) if drug is not None else None
    unit = entry.dose_unit if entry else "mcg/day"
    return {
        "time": _time(prepare),
        "operator": prepare.get("operator"),
        "command": command,
        "txid": txid,
        "outcome": after.outcome,
        "applied_at": _iso(to_calendar((after.commit or {}).get("applied_at"), skew_s or 0)),
        "request": _request_view(command, request, unit),
        "before": _state_view(before_status, before_program, unit),
        "after": _state_view(after.status, after.program, unit),
        "overrides": notes,
        "differences": after.differences,
    }


def _before_write(mine: list[tuple[int, dict]], pos: int) -> tuple[Status | None, Program | None, list[dict]]:
    """The status and program read before the write at pos, and the overrides and
    confirmations given for it (the newest first)."""
    before_status = before_program = None
    notes = []
    for _, r in reversed(mine[:pos]):
        if r.get("event") == "exchange" and r.get("command") in WRITE_COMMANDS:
            break  # the state read for an earlier change is not this one's "before"
        if before_status is None and _ok(r, "INTERROGATE"):
            before_status = rehydrate_status(r["response"])
        if before_program is None and _ok(r, "READ_PROGRAM"):
            before_program = rehydrate_program(r["response"]["program"])
        if r.get("event") == "soft-limit-override":
            notes.append({"event": "soft-limit-override", "reason": r.get("reason"),
                          "findings": r.get("findings")})
        if r.get("event") == "confirmation-flags":
            notes.append({"event": "confirmation-flags", "flags": r.get("flags"), "findings": r.get("findings")})
        if r.get("event") == "order":  # the prescriber's order it was programmed against
            notes.append({"event": "order", "order_id": r.get("order_id"), "prescriber": r.get("prescriber"),
                          "order_sha256": r.get("order_sha256")})
        if r.get("event") == "double-check":  # both clinicians of the independent double check
            notes.append({"event": "double-check", "requested_by": r.get("requested_by"),
                          "verified_by": r.get("verified_by"), "verified_by_name": r.get("verified_by_name"),
                          "verified_at": r.get("verified_at")})
        if before_status is not None and before_program is not None and r.get("command") == "HELLO":
            break
    return before_status, before_program, notes


@dataclass
class _AfterWrite:
    """What the audit log holds after a write's PREPARE, up to the next write."""
    outcome: str
    commit: dict | None = None  # the COMMIT reply, when it was accepted
    status: Status | None = None  # the read-back
    program: Program | None = None
    differences: list | None = None  # a failed verification's


def _after_write(mine: list[tuple[int, dict]], pos: int, prepare: dict, txid) -> _AfterWrite:
    after = _AfterWrite("not committed" if prepare.get("outcome") == "ok" else f"refused ({prepare.get('outcome')})")
    committed_seen = False
    for _, r in mine[pos + 1:]:
        if r.get("event") == "exchange" and r.get("command") in WRITE_COMMANDS:
            break
        if r.get("event") == "commit-sent" and r.get("txid") == txid:
            after.outcome = "unconfirmed"
        elif r.get("event") == "exchange" and r.get("command") == "COMMIT" and (r.get("request") or {}).get(
                "txid") == txid:
            committed_seen = True
            if r.get("outcome") == "ok":
                after.commit = r.get("response")
                after.outcome = "applied, not verified"
            elif r.get("outcome") == "rejected":
                after.outcome = "rejected"
        elif committed_seen and after.status is None and _ok(r, "INTERROGATE"):
            after.status = rehydrate_status(r["response"])
        elif committed_seen and after.program is None and _ok(r, "READ_PROGRAM"):
            after.program = rehydrate_program(r["response"]["program"])
        elif r.get("event") == "verified" and r.get("txid") == txid:
            after.outcome = "verified"
            break
        elif r.get("event") == "verify-failed" and r.get("txid") == txid:
            after.outcome = "verify FAILED"
            after.differences = r.get("differences")
            break
    if after.outcome == "unconfirmed":
        after.outcome = _settled(mine, pos, txid)
    return after


def _settled(mine: list[tuple[int, dict]], pos: int, txid) -> str:
    """An unconfirmed write's outcome, settled later by a read when it was."""
    for _, r in mine[pos + 1:]:
        if r.get("event") == "reconciled" and r.get("txid") == txid:
            return "unconfirmed, then found " + ("APPLIED" if r.get("applied") else "NOT applied")
    return "unconfirmed"


def _request_view(command: str, request: dict, unit: str) -> dict:
    from .status import quantity

    mass = unit.split("/")[0]
    out: dict[str, Any] = {}
    if command == "bolus":
        out["dose"] = quantity(request.get("dose_ng", 0), mass)
        out["duration"] = quantity(request.get("duration_s", 0), "s")
    if command == "refill":
        out["volume"] = quantity(request.get("volume_ul", 0), "mL")
        out["withdrawn"] = quantity(request.get("withdrawn_ul", 0), "mL")
    if command == "mri enter":
        out["automatic_exit"] = quantity(request.get("auto_exit_s", 0), "s")
    out |= _catheter_request_view(command, request, mass)
    out |= _clock_ptm_request_view(command, request, mass)
    if command == "patient":  # protocol version 5: what was asked to be recorded
        from .patient import patient_text, patient_view

        out |= {"action": str(request.get("action", "")).lower(),
                "patient": patient_text(patient_view(rehydrate_patient_request(request)))}
    return out


def rehydrate_patient_request(request: dict) -> Any:
    """A PREPARE_PATIENT request as the audit log stored it -> the record it asked for."""
    import protocol
    from protocol.bodies import PatientRecord

    return PatientRecord(patient_id=str(request.get("patient_id") or ""), initials=str(request.get("initials") or ""),
                         birth_date=int(request.get("birth_date") or 0),
                         spasticity_origin=_code(protocol.SpasticityOrigin, request.get("spasticity_origin", 0)),
                         recorded_at=0)


def _clock_ptm_request_view(command: str, request: dict, mass: str) -> dict:
    """A clock set's time, or patient-bolus limits (protocol version 4)."""
    from .calendar import iso
    from .status import quantity

    if command == "clock":
        return {"time_set": iso(request.get("new_time"))}
    if command == "ptm":
        limits = request.get("limits") or {}
        if not limits.get("enabled"):
            return {"patient_boluses": "off"}
        return {"patient_boluses": "on", "dose": quantity(limits.get("dose_ng", 0), mass),
                "duration": quantity(limits.get("duration_s", 0), "s"),
                "lockout": quantity(limits.get("lockout_s", 0), "s"), "max_per_day": limits.get("max_per_day")}
    return {}


def _catheter_request_view(command: str, request: dict, mass: str) -> dict:
    """A catheter write's record, a priming bolus's purpose, a refill's bridge (protocol version 4)."""
    from decimal import Decimal

    if command == "catheter":
        out = {"action": str(request.get("action", "")).lower(), "model": request.get("model"),
               "length": {"value": Decimal(request.get("length_mm") or 0) / 10, "unit": "cm"}}
        if request.get("replaced_mm"):
            out["replaced"] = {"value": Decimal(request["replaced_mm"]) / 10, "unit": "cm"}
        return out
    if command == "bolus" and str(request.get("purpose", "CLINICIAN")) == "PRIMING":
        return {"purpose": "priming"}
    if command == "refill" and request.get("bridge_volume_nl"):
        return {"bridge_volume": {"value": Decimal(request["bridge_volume_nl"]) / 1_000_000, "unit": "mL"},
                "bridge_duration": {"value": request.get("bridge_duration_s", 0), "unit": "s"}}
    return {}


def _state_view(status: Status | None, program: Program | None, unit: str) -> dict | None:
    from .status import program_view, quantity

    if status is None and program is None:
        return None
    out: dict[str, Any] = {}
    if program is not None:
        view = program_view(program, unit)
        out |= {"mode": view["mode"], "drug": view["drug"], "concentration": view["concentration"],
                "daily_dose": view["daily_dose"], "flow_ml_per_day": view["flow_ml_per_day"],
                "steps": view["steps"]}
    if status is not None:
        out |= {"reservoir_ml": Decimal(status.reservoir_ul) / 1000,
                "bolus_remaining": quantity(status.bolus_remaining_ng, unit.split("/")[0]),
                "mri_mode": status.mri_mode.name.lower(),
                "last_txid": status.last_txid,
                **_clock_ptm_state(status, unit), "catheter": _catheter_state(status),
                "patient": _patient_state(status)}
        if program is None:
            out |= {"mode": status.mode.name.lower(), "drug": status.drug.name.lower(),
                    "daily_dose": quantity(status.daily_dose_ng_per_day, unit),
                    "flow_ml_per_day": Decimal(status.daily_volume_nl_per_day) / 1_000_000}
    return out


def _patient_state(status: Status) -> str:
    """The patient record in one line (ithcli/patient.py)."""
    from .patient import patient_text, patient_view

    return patient_text(patient_view(status.patient))


def _catheter_state(status: Status) -> str:
    """The catheter record in one line (ithcli/catheter_ops.py)."""
    from .catheter_ops import catheter_text, catheter_view

    return catheter_text(catheter_view(status.catheter))


def _clock_ptm_state(status: Status, unit: str) -> dict:
    """The pump's clock (as it read it) and the patient-bolus limits, with the state before and after."""
    from .calendar import iso
    from .ptm import ptm_text, ptm_view

    return {"pump_time": iso(status.pump_time),
            "patient_boluses": ptm_text(ptm_view(status.ptm, status.ptm_use, unit, 0, status.daily_dose_ng_per_day))}


def choose_serial(records: list[dict], pump: str | None, port_serial: str | None,
                  log_serials: list[str] | None = None, log_path: str = "the audit log") -> str:
    """The pump the report is about: --pump, else the pump on --port, else the one pump of the
    session's `records`. log_serials: every pump the whole audit log holds; a --pump it does not
    hold is a usage error naming them (a mistyped serial, not an empty report)."""
    if pump:
        if log_serials is not None and pump not in log_serials:
            held = f"it holds {', '.join(log_serials)}" if log_serials else "it holds no pump yet"
            raise UsageError(f"--pump {pump}: no entry for that pump in {log_path}: {held}")
        return pump
    if port_serial:
        return port_serial
    serials = serials_in(records)
    if not serials:
        raise UsageError("no pump in the audit log for this session: widen --since, or give --pump SERIAL or --port")
    if len(serials) > 1:
        raise UsageError(f"the audit log holds several pumps in this session ({', '.join(serials)}): "
                         "pick one with --pump SERIAL")
    return serials[0]
