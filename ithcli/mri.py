"""The pre-MRI checklist, the snapshot it leaves, and the post-MRI verification.

Pure logic over what the pump reported: commands/mri.py reads the pump, calls
these, renders and exits. Each checklist line is PASS, WARN or BLOCK with what to
do about it; any BLOCK refuses `mri enter`. Facts from docs/clinical.md (its
MRI section, with the sources): peristaltic pumps stall in the field and must be
checked for stall *and* recovery afterwards; valve-gated pumps must be emptied
first and are MR conditional at 1.5 T only; baclofen must not be interrupted
longer than the managing clinician planned.

The scanner's field strength is a confirmation, not a warning: a model that is
not MR conditional at every field a scanner may have is judged, when no field was
given, as for the strictest one (3 T), so a 1.5 T-only model BLOCKs until the
operator says the scan is at 1.5 T (`--field 1.5`, or the prompt on a terminal,
commands/mri.py). A model conditional at every field needs no field.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from . import limits, write_kinds
from .calendar import past_threshold, to_calendar
from .localtime import fmt_iso, fmt_time
from .status import delivery_state

if TYPE_CHECKING:  # annotations only: the modules are imported where they are used
    from protocol.bodies import Event, Program, Status
    from protocol.models import ModelSpec

    from .app import PumpSession
    from .client import PumpClient
    from .druglib import DrugEntry
    from .writes import WriteRequest

PASS, WARN, BLOCK, FAIL = "PASS", "WARN", "BLOCK", "FAIL"
DEFAULT_AUTO_EXIT_S = 4 * 3600
STALL_RECOVERY_UP_TO_H = 24
#: the static fields a clinical scanner has (tesla, as parse_field spells them), weakest first
FIELDS = ("1.5", "3")
#: what a checklist without a field is judged at: the highest field a scanner may have
STRICTEST_FIELD = FIELDS[-1]


@dataclass(frozen=True)
class Line:
    item: str
    result: str
    detail: str
    action: str = ""


def _hours(seconds: int) -> str:
    h, m = divmod(seconds // 60, 60)
    return f"{h} h" + (f" {m} min" if m else "")


def conditional_at_every_field(spec) -> bool:
    """Whether the model is MR conditional at every field a scanner may have (then no field is needed)."""
    return all(field in spec.mr_field_tesla for field in FIELDS)


def needs_field(spec) -> bool:
    """Whether the scanner's field strength must be confirmed before this model is judged fit to scan."""
    return not conditional_at_every_field(spec)


def fields_text(spec, joiner: str = " and ") -> str:
    return joiner.join(t + " T" for t in spec.mr_field_tesla)


def checklist(raw: Status, described: dict, spec, entry, *, auto_exit_s: int, field_tesla: str | None,
              gradient: float | None, learnt: dict | None, pending: dict | None) -> list[Line]:
    """The checklist lines. `field_tesla` None means no field was given: a model not MR conditional
    at every field is then judged at STRICTEST_FIELD."""
    # the order of the groups is the order the operator reads them in: keep it
    return [*_model_lines(spec, field_tesla, gradient),
            *_drug_lines(raw, described, entry),
            *_time_without_therapy_lines(raw, spec, auto_exit_s),
            *_reservoir_lines(raw, described, spec),
            *_alarm_lines(raw, spec),
            *_unconfirmed_lines(learnt, pending),
            *_clock_lines(described),
            *_battery_lines(raw, described)]


def _model_lines(spec, field_tesla: str | None, gradient: float | None) -> list[Line]:
    """1. the model and its MR conditions at the given field and gradient."""
    lines: list[Line] = []
    conditions = (f"MR conditional at {fields_text(spec)}, spatial gradient "
                  f"<= {spec.mr_spatial_gradient_t_per_m} T/m; {spec.mr_behaviour}")
    if field_tesla is None and needs_field(spec):
        # no field given: judged as for the strictest case, the highest field it is not conditional at
        judged = next(f for f in reversed(FIELDS) if f not in spec.mr_field_tesla)
        why = " (the highest field a scanner may have)" if judged == STRICTEST_FIELD else ""
        lines.append(Line("Model and MR conditions", BLOCK,
                          f"no field strength given, so judged at {judged} T{why}, where {spec.name} is not "
                          f"MR conditional: {conditions}",
                          f"if the scan is at {fields_text(spec, ' or ')}, pass --field "
                          f"{' or --field '.join(spec.mr_field_tesla)}; otherwise do not scan"))
    elif field_tesla is not None and field_tesla not in spec.mr_field_tesla:
        lines.append(Line("Model and MR conditions", BLOCK,
                          f"{spec.name} is not MR conditional at {field_tesla} T: {conditions}",
                          "use a scanner within the pump's conditions or do not scan"))
    elif gradient is not None and gradient > spec.mr_spatial_gradient_t_per_m:
        lines.append(Line("Model and MR conditions", BLOCK,
                          f"spatial gradient {gradient:g} T/m exceeds {spec.mr_spatial_gradient_t_per_m} T/m",
                          "use a scanner within the pump's conditions"))
    else:
        at = f"{field_tesla} T" if field_tesla is not None else f"any field ({fields_text(spec, ' or ')})"
        lines.append(Line("Model and MR conditions", PASS, f"{spec.name} at {at}: {conditions}"))
    if spec.design == "valve-gated":
        lines.append(Line("Valve-gated model identity", WARN,
                          "the first generation of valve-gated pumps was relabelled MR unsafe (2019)",
                          "confirm the exact model and generation from the implant record"))
    return lines


def _drug_lines(raw: Status, described: dict, entry) -> list[Line]:
    """2. the drug and its withdrawal risk. The risk is the drug's (the library's), delivered or
    not: a scan interrupts it only while it is delivered, but a pump already stopped (emptied for
    the scan) has its patient without the drug now."""
    drug = described["drug"]
    if entry is None:
        return [Line("Drug and withdrawal risk", PASS, f"{drug}: not in the drug library")]
    if not entry.withdrawal_risk:
        return [Line("Drug and withdrawal risk", PASS, f"{drug}: no withdrawal risk listed")]
    risk = "abrupt withdrawal can be life-threatening" if entry.code == "BACLOFEN" else "withdrawal risk"
    if raw.daily_dose_ng_per_day > 0:
        return [Line("Drug and withdrawal risk", WARN,
                     f"{drug}, {described['daily_dose']['value']} {described['daily_dose']['unit']}: {risk}",
                     "the managing clinician must approve the interruption and arrange an alternative "
                     "(enter needs --confirm-withdrawal-risk)")]
    return [Line("Drug and withdrawal risk", WARN,
                 f"{drug}: {risk}; delivery is already stopped ({described['mode']}, "
                 f"{described['daily_dose']['value']} {described['daily_dose']['unit']}): the scan interrupts "
                 "nothing, but the patient is without the drug now",
                 "watch for withdrawal until delivery resumes; refill and reprogram after the scan")]


def _time_without_therapy_lines(raw: Status, spec, auto_exit_s: int) -> list[Line]:
    """3. how long delivery may stop: the MRI-safe window, and a stall's recovery for peristaltic pumps."""
    without = (f"up to {_hours(auto_exit_s)} (MRI-safe mode, automatic exit)"
               + (f"; a stall outside MRI-safe mode can take up to {STALL_RECOVERY_UP_TO_H} h to recover"
                  if spec.design == "peristaltic" else ""))
    return [Line("Time without therapy", WARN if raw.daily_dose_ng_per_day else PASS, without,
                 "plan the scan inside this window" if raw.daily_dose_ng_per_day else "")]


def _reservoir_lines(raw: Status, described: dict, spec) -> list[Line]:
    """4. the reservoir: a model that must be scanned empty BLOCKs while it holds drug."""
    ml = described["reservoir_ml"]
    if spec.mr_must_be_empty and raw.reservoir_ul > 0:
        return [Line("Reservoir", BLOCK, f"{ml} mL in a valve-gated pump: the field can open the valve "
                     "and dump it", "empty the reservoir first (ithcli empty)")]
    if spec.mr_must_be_empty:
        return [Line("Reservoir", PASS, "empty")]
    return [Line("Reservoir", PASS, f"{ml} mL")]


def _alarm_lines(raw: Status, spec) -> list[Line]:
    """5. active alarms, a running bolus, and MRI mode already on."""
    from protocol import Alarm, MriMode

    from .status import alarm_name

    lines: list[Line] = []
    active = [a for a in Alarm if raw.alarms & a]
    high = [alarm_name(a) for a in active if a in (Alarm.EMPTY_RESERVOIR, Alarm.EOS, Alarm.MOTOR_STALL,
                                                   Alarm.MEMORY_ERROR, Alarm.UNCONTROLLED_BOLUS)]
    others = [alarm_name(a) for a in active if alarm_name(a) not in high]
    if spec.mr_must_be_empty and "empty_reservoir" in high:
        high.remove("empty_reservoir")  # emptied on purpose for the scan
    if high:
        lines.append(Line("Active alarms", BLOCK, ", ".join(high), "resolve high-priority alarms before a scan"))
    elif others:
        lines.append(Line("Active alarms", WARN, ", ".join(others),
                          "an alarming pump may not restart after a stall until interrogated"))
    else:
        lines.append(Line("Active alarms", PASS, "none"))
    if raw.bolus_remaining_ng:
        lines.append(Line("Bolus", BLOCK, "a bolus is running", "wait for it to finish"))
    if raw.mri_mode == MriMode.SAFE:
        lines.append(Line("MRI mode", WARN, "already in MRI-safe mode", "exit and re-enter to restart the timer"))
    return lines


def _unconfirmed_lines(learnt: dict | None, pending: dict | None) -> list[Line]:
    """6. writes not yet confirmed: one still pending BLOCKs, one this read settled WARNs."""
    if pending is not None:
        return [Line("Unconfirmed commands", BLOCK, f"txid {pending['txid']} unconfirmed",
                     "run ithcli reconcile")]
    if learnt is not None:
        verdict = "was applied" if learnt["applied"] else "was not applied"
        return [Line("Unconfirmed commands", WARN, f"an earlier {learnt.get('kind', 'write').lower()} "
                     f"(txid {learnt['txid']}) {verdict}: settled by this read", "check the program")]
    return [Line("Unconfirmed commands", PASS, "none")]


def _clock_lines(described: dict) -> list[Line]:
    """7. the pump clock's skew from this computer's."""
    skew = described["clock_skew_s"]
    off = past_threshold(skew)
    return [Line("Clock skew", WARN if off else PASS, f"{skew:+d} s",
                 "ithcli shows every date on this computer's calendar, but the pump's own display, "
                 "schedules and records run on its clock: set it after the scan" if off else "")]


def _battery_lines(raw: Status, described: dict) -> list[Line]:
    """8. the battery: end of service BLOCKs, the replacement indicator WARNs."""
    from protocol import BatteryState

    state = raw.battery_state
    if state == BatteryState.EOS:
        return [Line("Battery", BLOCK, "end of service: delivery has stopped", "replace the pump")]
    if state == BatteryState.ERI:
        return [Line("Battery", WARN, f"ERI, replace by {described['battery']['replace_by']}",
                     "schedule replacement")]
    return [Line("Battery", PASS, f"{described['battery']['percent']} %")]


def has_block(lines: list[Line]) -> bool:
    return any(line.result == BLOCK for line in lines)


# --- the snapshot the checklist leaves for the post-MRI check -------------------

def snapshot_path(state_dir: Path, serial: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in serial)
    return Path(state_dir) / "mri" / f"{safe}.json"


def save_snapshot(state_dir: Path, serial: str, *, described: dict, program: Program, event_count: int,
                  lines: list[Line]) -> Path:
    from .output import jsonable, to_json
    from .state import atomic_write

    path = snapshot_path(state_dir, serial)
    body = {"serial_number": serial, "taken_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "event_count": event_count, "program": jsonable(program), "status": described,
            "checklist": [asdict(line) for line in lines]}
    atomic_write(path, to_json(body).encode())
    return path


def load_snapshot(state_dir: Path, serial: str) -> dict | None:
    path = snapshot_path(state_dir, serial)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        from .errors import UsageError

        raise UsageError(f"the pre-MRI snapshot {path} is unreadable: {exc}") from None


def program_differences(snapshot_program: dict, program: Program) -> list[str]:
    """The snapshot's program (as saved, plain JSON) against the pump's, field by field."""
    from .output import jsonable

    now = jsonable(program)
    out = []
    for key in ("mode", "drug", "concentration_ng_per_ml", "daily_dose_ng_per_day", "daily_volume_nl_per_day",
                "steps"):
        if snapshot_program.get(key) != now.get(key):
            out.append(f"{key}: before the scan {snapshot_program.get(key)!r}, now {now.get(key)!r}")
    return out


def verify(snapshot: dict, raw: Status, program: Program, events: list[Event], spec, skew_s: int = 0) -> list[Line]:
    """After the scan: compare with the snapshot and read the log since it."""
    from protocol import Alarm, EventType, MriMode

    from .status import alarm_name

    lines: list[Line] = []
    if raw.mri_mode == MriMode.SAFE:
        lines.append(Line("MRI mode", FAIL, "MRI-safe mode is still on: nothing is delivered",
                          "run ithcli mri exit"))
    else:
        lines.append(Line("MRI mode", PASS, "off"))
    diffs = program_differences(snapshot["program"], program)
    if diffs:
        lines.append(Line("Program", FAIL, "differs from the pre-MRI snapshot: " + "; ".join(diffs),
                          "reprogram to the intended prescription and find out why it changed"))
    else:
        lines.append(Line("Program", PASS, "equals the pre-MRI snapshot"))
    stalls = [e for e in events if e.type == EventType.MOTOR_STALL]
    recoveries = [e for e in events if e.type == EventType.STALL_RECOVERY]
    if stalls:
        last_stall = stalls[-1].index
        recovered = [e for e in recoveries if e.index > last_stall]
        if not recovered:
            lines.append(Line("Motor", FAIL, f"motor stall logged {_when(stalls[-1], skew_s)} with no stall recovery: "
                              "delivery has stopped", "interrogate again later (recovery can take up to 24 h); "
                              "watch for underdose or withdrawal; arrange an alternative"))
        else:
            lines.append(Line("Motor", WARN, f"motor stalled {_when(stalls[-1], skew_s)} and recovered "
                              f"{_when(recovered[0], skew_s)}: no drug between", "watch for underdose or withdrawal"))
    else:
        lines.append(Line("Motor", PASS, "no stall logged since the snapshot"))
    dumps = [e for e in events if e.type == EventType.UNCONTROLLED_BOLUS]
    if dumps:
        total = sum(e.arg1 for e in dumps)
        lines.append(Line("Uncontrolled bolus", FAIL, f"{total / 1000:g} mL delivered uncontrolled "
                          f"{_when(dumps[0], skew_s)}", "overdose risk: assess the patient now"))
    auto = [e for e in events if e.type == EventType.MRI_SAFE_EXITED and e.arg1 == 1]
    if auto:
        lines.append(Line("Exit", WARN, f"MRI-safe mode was left by the automatic timer {_when(auto[-1], skew_s)}",
                          "document the forgotten exit"))
    high = [alarm_name(a) for a in Alarm if raw.alarms & a and a in (
        Alarm.EOS, Alarm.MOTOR_STALL, Alarm.MEMORY_ERROR, Alarm.UNCONTROLLED_BOLUS)]
    if high:
        lines.append(Line("Alarms", FAIL, ", ".join(high), "resolve before the patient leaves"))
    if spec.mr_must_be_empty:
        lines.append(Line("Valve-gated follow-up", WARN, "the reservoir was emptied for the scan",
                          "reset the flow-activated valve, refill, reprogram and consider re-titration"))
    return lines


def _when(event: Event, skew_s: int = 0) -> str:
    """A log event's time on this computer's calendar, for people (in the --tz zone)."""
    return f"at {fmt_time(to_calendar(event.time, skew_s))}"


# --- the flows, shared by `ithcli mri ...` and batch plans ----------------------

@dataclass
class MriState:
    client: PumpClient
    learnt: dict | None  # an unconfirmed write this read settled, if any
    described: dict
    raw: Status
    program: Program
    entry: DrugEntry | None
    spec: ModelSpec


def read_state(session: PumpSession, *, write: bool) -> MriState:
    """Pump state for MRI work. A read settles any unconfirmed write first and says what it
    learnt; a write (enter, exit) is refused while one is unconfirmed, as every write is."""
    from protocol.models import MODELS

    from .writes import preflight

    client = session.client(write=write)
    if write:
        preflight(session, client, session.serial_number)  # settles it and refuses: Unconfirmed
    learnt = session.resolve_pending()
    raw, described = session.read(settle=False)
    program = client.read_program().program
    entry = session.library.for_code(raw.drug.name)
    return MriState(client, learnt, described, raw, program, entry, MODELS[raw.model])


def parse_field(text: str | None) -> str | None:
    from .errors import UsageError

    if text is None:
        return None
    value = str(text).strip().upper().removesuffix("T").strip()
    if value not in ("1.5", "3", "3.0"):
        raise UsageError(f"field {text!r}: give the scanner's static field, 1.5T or 3T")
    return "3" if value.startswith("3") else "1.5"


def parse_auto_exit(text) -> int:
    """'4h', '90min', '4 h' -> seconds, 1 to 24 h."""
    from protocol import Quantity, UnitError

    from .errors import UsageError

    if isinstance(text, int):
        seconds = text
    else:
        spaced = re.sub(r"^\s*([0-9.]+)\s*", r"\1 ", str(text))
        try:
            seconds = Quantity.parse(spaced, "duration").to_base()
        except UnitError as exc:
            raise UsageError(f"automatic exit {text!r}: {exc} (e.g. 4h, 90min)") from None
    if not 3600 <= seconds <= 86_400:
        raise UsageError(f"automatic exit {text!r}: must be 1 to 24 h")
    return seconds


def run_checklist(session: PumpSession, st: MriState, *, auto_exit_s: int, field=None, gradient=None,
                  save: bool = True) -> dict:
    """The checklist result (for --json and the chart); saves the snapshot unless told not to."""
    lines = checklist(st.raw, st.described, st.spec, st.entry, auto_exit_s=auto_exit_s,
                      field_tesla=parse_field(field), gradient=gradient, learnt=st.learnt, pending=None)
    result = {"serial_number": st.raw.serial_number, "model": st.spec.name, "emulated": session.emulated,
              "result": overall(lines), "lines": [asdict(line) for line in lines], "status": st.described}
    if save:
        path = save_snapshot(session.records.state_dir, session.serial_number, described=st.described,
                             program=st.program, event_count=st.raw.event_count, lines=lines)
        result["snapshot"] = str(path)
        session.record("mri-checklist", result=result["result"], lines=result["lines"])
    return result


def overall(lines: list[Line]) -> str:
    results = {line.result for line in lines}
    for worst in (FAIL, BLOCK, WARN):
        if worst in results:
            return worst
    return PASS


def blocks(result: dict) -> list[str]:
    return [f"{line['item']}: {line['detail']} ({line['action']})" for line in result["lines"]
            if line["result"] in (BLOCK, FAIL)]


def enter_request(session: PumpSession, st: MriState, *, auto_exit_s: int, field=None, gradient=None,
                  confirm_withdrawal_risk: bool = False):
    """Checklist again (refuse on BLOCK), the withdrawal-risk approval, the snapshot, the write."""

    from protocol import bodies

    from .errors import CheckFailed, SafetyError
    from .writes import Expect, WriteRequest

    result = run_checklist(session, st, auto_exit_s=auto_exit_s, field=field, gradient=gradient, save=False)
    if result["result"] == BLOCK:
        raise CheckFailed("MRI-safe mode refused: the checklist has a BLOCK: " + "; ".join(blocks(result))
                          + ". Nothing was sent", details=result)
    entry, raw = st.entry, st.raw
    limits.settle(limits.check_mri_enter(raw, auto_exit_at=fmt_iso(st.described["mri_auto_exit_at"])))
    if entry is not None and entry.withdrawal_risk and raw.daily_dose_ng_per_day and not confirm_withdrawal_risk:
        raise SafetyError(f"{entry.name} carries a withdrawal risk and delivery stops for up to "
                          f"{_hours(auto_exit_s)}: the managing clinician must approve "
                          "(pass --confirm-withdrawal-risk). Nothing was sent")
    save_snapshot(session.records.state_dir, session.serial_number, described=st.described, program=st.program,
                  event_count=raw.event_count, lines=[Line(**line) for line in result["lines"]])
    request = WriteRequest(
        kind=write_kinds.MRI_ENTER, prepare=partial(bodies.PrepareMriEnterRequest, auto_exit_s=auto_exit_s),
        expect=Expect(program=st.program, mri_auto_exit_s=auto_exit_s),
        describe={"serial_number": raw.serial_number, "auto_exit_s": auto_exit_s},
    )
    return request, result


def exit_request(st: MriState):
    from protocol import bodies

    from .writes import Expect, WriteRequest

    return WriteRequest(
        kind=write_kinds.MRI_EXIT, prepare=bodies.PrepareMriExitRequest,
        expect=Expect(program=st.program),
        describe={"serial_number": st.raw.serial_number},
    )


def apply_enter(session: PumpSession, st: MriState, request: WriteRequest, on_commit_sent=None) -> dict:
    from .writes import execute

    result = execute(session, st.client, request, log_index=st.raw.event_count, based_on_txid=st.raw.last_txid,
                     read_program=st.program, dose_unit=st.entry.dose_unit if st.entry else "mg/day",
                     on_commit_sent=on_commit_sent)
    after = session.interrogate(resolve=False)
    return {"command": "mri enter", "serial_number": st.raw.serial_number, "txid": result.txid,
            "mri_mode": after["mri_mode"], "mri_auto_exit_at": after["mri_auto_exit_at"],
            "current_rate_ml_per_day": after["current_rate_ml_per_day"], "verified": True, "outcome": "verified"}


def apply_exit(session: PumpSession, st: MriState, on_commit_sent=None) -> dict:
    """Exit, read back, and compare the program with the pre-MRI snapshot."""
    from .errors import VerifyFailed
    from .writes import execute

    snapshot = load_snapshot(session.records.state_dir, session.serial_number)
    result = execute(session, st.client, exit_request(st), log_index=st.raw.event_count,
                     based_on_txid=st.raw.last_txid, read_program=st.program,
                     dose_unit=st.entry.dose_unit if st.entry else "mg/day", on_commit_sent=on_commit_sent)
    diffs = program_differences(snapshot["program"], result.program.program) if snapshot else []
    out = {"command": "mri exit", "serial_number": st.raw.serial_number, "txid": result.txid,
           "snapshot_compared": snapshot is not None, "differences": diffs,
           # what the read-back shows it delivers: leaving MRI-safe mode restores the program, which
           # may be stopped (a reservoir emptied for the scan)
           "mode": result.status.mode.name.lower(), "delivery": delivery_state(result.status)}
    if diffs:
        raise VerifyFailed("MRI-safe mode is off but the program differs from the pre-MRI snapshot: "
                           + "; ".join(diffs) + ". Reprogram it now", details={**out, "verified": False})
    return out | {"verified": True, "outcome": "verified"}


def run_verify(session: PumpSession, st: MriState) -> dict:
    from .errors import UsageError

    snapshot = load_snapshot(session.records.state_dir, session.serial_number)
    if snapshot is None:
        raise UsageError(f"no pre-MRI snapshot for {session.serial} in {session.records.state_dir}: "
                         "run 'ithcli mri checklist' before the scan")
    _, events = st.client.read_whole_log(snapshot["event_count"])
    lines = verify(snapshot, st.raw, st.program, events, st.spec, st.described["clock_skew_s"])
    result = {"serial_number": st.raw.serial_number, "model": st.spec.name, "emulated": session.emulated,
              "result": overall(lines),  # as the checklist's: any WARN line makes it WARN
              "lines": [asdict(line) for line in lines], "snapshot_taken_at": snapshot["taken_at"],
              "status": st.described}
    session.record("mri-verify", result=result["result"], lines=result["lines"])
    return result
