"""Every message, defined once, declaratively.

A message's payload layout is chosen by its *key*: the command code, plus 0x80 for
a response (Flag.RESPONSE). `PAYLOADS` maps each key to its Construct Struct;
`Frame` below is the whole frame as one declarative Construct, with a Switch on
that key. The fast path in framing.py/codec.py checks sync, length and CRC in plain
Python and parses and builds payloads with functions struct_body.py generates from
these same Structs; tests/test_codec.py and tests/test_struct_body.py prove both
paths agree.

Field names carry their unit (`_ul`, `_ng_per_day`...): see units.py for scales.
docs/protocol.md holds the byte tables; tests/test_protocol_docs.py keeps them equal.
"""
from typing import Any

import construct as c

from .constants import (
    AUTH_TRAILER_SIZE,
    KNOWN_ALARMS,
    MAX_PAYLOAD,
    SYNC,
    Alarm,
    BatteryState,
    BolusPurpose,
    CatheterAction,
    CatheterModel,
    Command,
    CommitOutcome,
    Drug,
    ErrorReason,
    EventType,
    Flag,
    InfusionMode,
    MriMode,
    PatientAction,
    Priority,
    PumpModel,
    Role,
    SpasticityOrigin,
    WriteKind,
)
from .crc import crc32c
from .units import Code, Fixed, Flags

# sizes of the handshake fields (protocol/security.py computes them)
NONCE_SIZE = 16
KEY_ID_SIZE = 8
PROOF_SIZE = 32

RESPONSE_BIT = 0x80
SERIAL_LEN = 16

#: volume, flow, dose and time fields: the ranges are the protocol's hard bounds,
#: wider than any pump's limits, so that nothing wraps or clamps silently.
MAX_VOLUME_UL = 100_000  # 100 mL
MAX_FLOW_NL_PER_DAY = 50_000_000  # 50 mL/day
MAX_DOSE_NG_PER_DAY = 1_000_000_000  # 1 g/day
MAX_CONCENTRATION_NG_PER_ML = 100_000_000  # 100 mg/mL
#: a bridge bolus at the lowest flows takes days (0.5 mL of dead space at 0.048 mL/day)
MAX_BRIDGE_S = 14 * 86_400
# 28 events keep the largest log reply under ~650 bytes, where CRC-32C still has Hamming distance 6
MAX_LOG_PAGE = 28


def key(command: int, response: bool) -> int:
    command = int(command)
    if not 0 <= command < RESPONSE_BIT:  # request 0x81 would alias HELLO's response key
        return -1  # no payload has this key: refused as an unknown command
    return command | (RESPONSE_BIT if response else 0)


def Time(name_unit: str = "s") -> Fixed:
    return Fixed(c.Int64ub, name_unit)


Serial = c.PaddedString(SERIAL_LEN, "ascii")

Firmware = c.Struct("major" / c.Int8ub, "minor" / c.Int8ub, "patch" / c.Int8ub)

# --- session: HELLO and AUTH are the only frames sent in clear (security.py) ----

HelloRequest = c.Struct(
    "protocol_version" / c.Int8ub,
    "client_nonce" / c.Bytes(NONCE_SIZE),
    "role" / Code(c.Int8ub, Role),
)

#: deliberately no serial number, model or therapy: those need a session
HelloResponse = c.Struct(
    "protocol_version" / c.Int8ub,
    "pump_nonce" / c.Bytes(NONCE_SIZE),
    # identifies which key of the role the pump holds, without revealing its serial
    "key_id" / c.Bytes(KEY_ID_SIZE),
)

AuthRequest = c.Struct(
    "role" / Code(c.Int8ub, Role),
    "proof" / c.Bytes(PROOF_SIZE),
)

AuthResponse = c.Struct(
    "proof" / c.Bytes(PROOF_SIZE),
)

# --- catheter, clock and patient boluses (version 4) ---------------------------

#: the longest catheter the protocol carries (the common kit is 110 cm before trimming)
MAX_CATHETER_MM = 1_500
#: a clock set moves the pump clock by at most this much either way (100 years)
MAX_CLOCK_STEP_S = 100 * 365 * 86_400

#: the catheter as the pump records it. dead_space_nl is what it works out from the
#: record (its tubing plus the catheter); priming_due_nl is what a priming bolus must
#: move (0: primed, or nothing recorded): the pump accepts no other priming volume.
CatheterRecord = c.Struct(
    "action" / Code(c.Int8ub, CatheterAction),  # the last IMPLANT or REVISION (NONE: no record)
    "model" / Code(c.Int8ub, CatheterModel),
    "length_mm" / Fixed(c.Int16ub, "mm", 0, MAX_CATHETER_MM),  # implanted length
    "replaced_mm" / Fixed(c.Int16ub, "mm", 0, MAX_CATHETER_MM),  # the segment of the last revision
    "recorded_at" / Time(),
    "dead_space_nl" / Fixed(c.Int32ub, "nL", 0, MAX_VOLUME_UL * 1000),
    "priming_due_nl" / Fixed(c.Int32ub, "nL", 0, MAX_VOLUME_UL * 1000),
)

#: the limits of patient-activated boluses the clinician set
PtmLimits = c.Struct(
    "enabled" / Fixed(c.Int8ub, "flag", 0, 1),
    "dose_ng" / Fixed(c.Int32ub, "ng", 0, MAX_DOSE_NG_PER_DAY),
    "duration_s" / Fixed(c.Int32ub, "s", 0, 86_400),  # each activation's dose is given over this
    "lockout_s" / Fixed(c.Int32ub, "s", 0, 86_400),  # at least this long between granted ones
    "max_per_day" / Fixed(c.Int8ub, "activations", 0, 24),  # granted, in any rolling 24 hours
)

#: patient activations in the rolling 24 hours before the status was read
PtmUse = c.Struct(
    "granted_24h" / c.Int8ub,
    "refused_24h" / c.Int16ub,
    "last_granted_at" / Time(),  # 0: never
)

# --- the patient on the pump (version 5): sent and answered only sealed -----------

#: the patient ID: an opaque identifier the clinic chooses (its record number, say), 1..24
#: characters of A-Z a-z 0-9 . _ : / - (protocol/patient.py); never the name
PATIENT_ID_LEN = 24
#: the patient's initials for a bedside check: 0..4 letters A-Z
INITIALS_LEN = 4
#: a birth date as the decimal digits yyyymmdd (19700102: 1970-01-02); 0: not recorded
MAX_BIRTH_DATE = 99_991_231

#: the patient as the pump records it (an empty patient_id: none recorded, every field empty or 0)
PatientRecord = c.Struct(
    "patient_id" / c.PaddedString(PATIENT_ID_LEN, "ascii"),  # empty: no patient recorded
    "initials" / c.PaddedString(INITIALS_LEN, "ascii"),  # empty: not recorded
    "birth_date" / Fixed(c.Int32ub, "yyyymmdd", 0, MAX_BIRTH_DATE),  # 0: not recorded
    "spasticity_origin" / Code(c.Int8ub, SpasticityOrigin),  # baclofen's budget follows it
    "recorded_at" / Time(),  # the last RECORD or CORRECT; 0 = never
)

InterrogateRequest = c.Struct()

Status = c.Struct(
    "serial_number" / Serial,
    "model" / Code(c.Int8ub, PumpModel),
    "firmware" / Firmware,
    "pump_time" / Time(),
    "drug" / Code(c.Int8ub, Drug),
    "concentration_ng_per_ml" / Fixed(c.Int32ub, "ng/mL", 0, MAX_CONCENTRATION_NG_PER_ML),
    "mode" / Code(c.Int8ub, InfusionMode),
    # 24-hour totals: what the patient receives a day (flex schedules vary within it)
    "daily_dose_ng_per_day" / Fixed(c.Int32ub, "ng/day", 0, MAX_DOSE_NG_PER_DAY),
    "daily_volume_nl_per_day" / Fixed(c.Int32ub, "nL/day", 0, MAX_FLOW_NL_PER_DAY),
    # the rate at this moment (the active flex step; 0 when stopped or suspended)
    "current_rate_nl_per_day" / Fixed(c.Int32ub, "nL/day", 0, MAX_FLOW_NL_PER_DAY),
    "reservoir_ul" / Fixed(c.Int32ub, "uL", 0, MAX_VOLUME_UL),
    "capacity_ul" / Fixed(c.Int32ub, "uL", 1, MAX_VOLUME_UL),
    "low_reservoir_alarm_ul" / Fixed(c.Int32ub, "uL", 0, MAX_VOLUME_UL),
    "battery_state" / Code(c.Int8ub, BatteryState),
    "battery_percent" / Fixed(c.Int8ub, "%", 0, 100),
    # projected (or, once reached, actual) ERI time and the pump's replace-by date; 0 = unknown
    "eri_at" / Time(),
    "replace_by" / Time(),
    "alarms" / Flags(c.Int16ub, Alarm, KNOWN_ALARMS),
    "mri_mode" / Code(c.Int8ub, MriMode),
    "mri_auto_exit_at" / Time(),
    # the id of the last programming transaction applied (0: none since manufacture)
    "last_txid" / c.Int32ub,
    "last_programmed_at" / Time(),
    "bolus_remaining_ng" / Fixed(c.Int32ub, "ng", 0, MAX_DOSE_NG_PER_DAY),
    # index the next log event will get: the log holds events [0, event_count)
    "event_count" / c.Int32ub,
    # frames or handshakes refused for authentication since manufacture (security.md)
    "auth_failures" / c.Int32ub,
    "catheter" / CatheterRecord,
    "ptm" / PtmLimits,
    "ptm_use" / PtmUse,
    "patient" / PatientRecord,
)

ReadLogRequest = c.Struct(
    "first_index" / c.Int32ub,
    "max_count" / Fixed(c.Int8ub, "events", 1, MAX_LOG_PAGE),
)

Event = c.Struct(
    "index" / c.Int32ub,
    "time" / Time(),
    "type" / Code(c.Int8ub, EventType),
    "priority" / Code(c.Int8ub, Priority),
    "arg1" / c.Int32ub,
    "arg2" / c.Int32ub,
)

ReadLogResponse = c.Struct(
    # events older than oldest_index have been overwritten in the pump's ring buffer
    "oldest_index" / c.Int32ub,
    "event_count" / c.Int32ub,
    "events" / c.PrefixedArray(c.Int8ub, Event),
)

ErrorResponse = c.Struct(
    "request_command" / c.Int8ub,  # raw: it may be a code this side does not know
    "reason" / Code(c.Int8ub, ErrorReason),
    "detail" / c.PascalString(c.Int8ub, "utf8"),
)

# --- programming (two-phase) ------------------------------------------------

MAX_STEPS = 13  # flex schedules: up to 13 steps a day

#: a step of a requested program: from start_minute until the next step's start
#: (or midnight), deliver at dose_ng_per_day, a rate expressed per DAY
ProgramStep = c.Struct(
    "start_minute" / Fixed(c.Int16ub, "min", 0, 1439),
    "dose_ng_per_day" / Fixed(c.Int32ub, "ng/day", 0, MAX_DOSE_NG_PER_DAY),
)

#: a step as the pump will run it: the dose and the flow it computed for it
DeliveredStep = c.Struct(
    "start_minute" / Fixed(c.Int16ub, "min", 0, 1439),
    "dose_ng_per_day" / Fixed(c.Int32ub, "ng/day", 0, MAX_DOSE_NG_PER_DAY),
    "rate_nl_per_day" / Fixed(c.Int32ub, "nL/day", 0, MAX_FLOW_NL_PER_DAY),
)

#: a program as the pump holds it (READ_PROGRAM) or will hold it (PREPARE echo).
#: STOPPED has no steps; MINIMUM one step at the minimum rate; CONTINUOUS one step
#: at 00:00; FLEX 1..13 steps starting at 00:00.
Program = c.Struct(
    "mode" / Code(c.Int8ub, InfusionMode),
    "drug" / Code(c.Int8ub, Drug),
    "concentration_ng_per_ml" / Fixed(c.Int32ub, "ng/mL", 0, MAX_CONCENTRATION_NG_PER_ML),
    "daily_dose_ng_per_day" / Fixed(c.Int32ub, "ng/day", 0, MAX_DOSE_NG_PER_DAY),
    "daily_volume_nl_per_day" / Fixed(c.Int32ub, "nL/day", 0, MAX_FLOW_NL_PER_DAY),
    "steps" / c.PrefixedArray(c.Int8ub, DeliveredStep),
)

ReadProgramRequest = c.Struct()

ReadProgramResponse = c.Struct(
    "last_txid" / c.Int32ub,
    "program" / Program,
)

#: Every PREPARE_* carries based_on_txid, the last_txid of the status the programmer
#: checked its change against (0: the pump never applied a write). The pump refuses
#: it CHANGED_SINCE_READ when another write was applied since: no lost updates.
PrepareProgramRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
    "mode" / Code(c.Int8ub, InfusionMode),
    # what the programmer believes the reservoir holds: the pump refuses a mismatch
    "drug" / Code(c.Int8ub, Drug),
    "concentration_ng_per_ml" / Fixed(c.Int32ub, "ng/mL", 1, MAX_CONCENTRATION_NG_PER_ML),
    "steps" / c.PrefixedArray(c.Int8ub, ProgramStep),
)

PrepareRefillRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
    "drug" / Code(c.Int8ub, Drug),
    "concentration_ng_per_ml" / Fixed(c.Int32ub, "ng/mL", 1, MAX_CONCENTRATION_NG_PER_ML),
    # the reservoir's volume after the fill (never above capacity) and what was withdrawn
    "volume_ul" / Fixed(c.Int32ub, "uL", 0, MAX_VOLUME_UL),
    "withdrawn_ul" / Fixed(c.Int32ub, "uL", 0, MAX_VOLUME_UL),
    # the program to run with the new contents (doses; the pump computes the flows)
    "mode" / Code(c.Int8ub, InfusionMode),
    "steps" / c.PrefixedArray(c.Int8ub, ProgramStep),
    # a bridge bolus (0, 0: none): the dead space moved at the old program's rate while the
    # new program waits; only when the drug or concentration changes (protocol/catheter.py)
    "bridge_volume_nl" / Fixed(c.Int32ub, "nL", 0, MAX_VOLUME_UL * 1000),
    "bridge_duration_s" / Fixed(c.Int32ub, "s", 0, MAX_BRIDGE_S),
)

PrepareBolusRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
    "dose_ng" / Fixed(c.Int32ub, "ng", 1, MAX_DOSE_NG_PER_DAY),
    "duration_s" / Fixed(c.Int32ub, "s", 60, 86_400),
    # CLINICIAN, or PRIMING: then the dose must be what the catheter record's priming_due_nl
    # carries (protocol/catheter.py); BRIDGE and PATIENT boluses are not started this way
    "purpose" / Code(c.Int8ub, BolusPurpose),
)

#: MRI-safe mode: the pump records its program, brings delivery to the model's safe
#: state and arms a timer that restores the program on its own (a forgotten exit
#: must not leave a patient without drug)
PrepareMriEnterRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
    "auto_exit_s" / Fixed(c.Int32ub, "s", 3600, 86_400),
)

PrepareMriExitRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
)

#: record an implant or a revision (arms a priming bolus of what it implanted), or correct
#: a mistyped record (does not re-arm priming)
PrepareCatheterRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
    "action" / Code(c.Int8ub, CatheterAction),
    "model" / Code(c.Int8ub, CatheterModel),
    "length_mm" / Fixed(c.Int16ub, "mm", 1, MAX_CATHETER_MM),  # implanted length, after the change
    "replaced_mm" / Fixed(c.Int16ub, "mm", 0, MAX_CATHETER_MM),  # REVISION: the new segment (else 0)
)

#: set the pump's clock. The pump takes new_time - its own time at PREPARE as the step and
#: moves its clock by that step at COMMIT, so the seconds between the two do not count
#: against it; it logs CLOCK_SET with the old and the new time
PrepareClockRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
    "new_time" / Time(),
)

#: the limits of patient-activated boluses
PreparePtmRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
    "limits" / PtmLimits,
)

#: record the patient on a pump that holds none, or correct the record it holds; CORRECT replaces
#: every field with the request's (fields not changing are sent as recorded)
PreparePatientRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "based_on_txid" / Fixed(c.Int32ub, "txid", 0),  # compare-and-set: the last_txid the programmer read
    "action" / Code(c.Int8ub, PatientAction),
    "patient_id" / c.PaddedString(PATIENT_ID_LEN, "ascii"),
    "initials" / c.PaddedString(INITIALS_LEN, "ascii"),
    "birth_date" / Fixed(c.Int32ub, "yyyymmdd", 0, MAX_BIRTH_DATE),
    "spasticity_origin" / Code(c.Int8ub, SpasticityOrigin),
)

Prepared = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "kind" / Code(c.Int8ub, WriteKind),
    # the program that will run once committed (for a bolus: the current one)
    "program" / Program,
    # the reservoir volume once committed (for a refill: the new volume)
    "reservoir_ul" / Fixed(c.Int32ub, "uL", 0, MAX_VOLUME_UL),
    "bolus_dose_ng" / Fixed(c.Int32ub, "ng", 0, MAX_DOSE_NG_PER_DAY),
    "bolus_duration_s" / Fixed(c.Int32ub, "s", 0, MAX_BRIDGE_S),  # a bridge bolus can take days
    "bolus_volume_nl" / Fixed(c.Int32ub, "nL", 0, MAX_VOLUME_UL * 1000),
    # MRI_ENTER: the automatic-exit delay that will be armed (0 for other kinds)
    "mri_auto_exit_s" / Fixed(c.Int32ub, "s", 0, 86_400),
    # BOLUS and REFILL: why the bolus runs (a refill's bridge bolus: BRIDGE; none: CLINICIAN)
    "bolus_purpose" / Code(c.Int8ub, BolusPurpose),
    # the catheter record once committed (a CATHETER write: the new one)
    "catheter" / CatheterRecord,
    # CLOCK: the step the clock will move by at COMMIT (0 for other kinds)
    "clock_step_s" / Fixed(c.Int64sb, "s", -MAX_CLOCK_STEP_S, MAX_CLOCK_STEP_S),
    # the patient-bolus limits once committed (a PTM write: the new ones)
    "ptm" / PtmLimits,
    # the patient record once committed (a PATIENT write: the new one)
    "patient" / PatientRecord,
)

CommitRequest = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
)

Committed = c.Struct(
    "txid" / Fixed(c.Int32ub, "txid", 1),
    "outcome" / Code(c.Int8ub, CommitOutcome),
    "kind" / Code(c.Int8ub, WriteKind),
    "applied_at" / Time(),
)

PAYLOADS = {
    key(Command.HELLO, False): HelloRequest,
    key(Command.HELLO, True): HelloResponse,
    key(Command.AUTH, False): AuthRequest,
    key(Command.AUTH, True): AuthResponse,
    key(Command.INTERROGATE, False): InterrogateRequest,
    key(Command.INTERROGATE, True): Status,
    key(Command.READ_LOG, False): ReadLogRequest,
    key(Command.READ_LOG, True): ReadLogResponse,
    key(Command.READ_PROGRAM, False): ReadProgramRequest,
    key(Command.READ_PROGRAM, True): ReadProgramResponse,
    key(Command.PREPARE_PROGRAM, False): PrepareProgramRequest,
    key(Command.PREPARE_PROGRAM, True): Prepared,
    key(Command.PREPARE_REFILL, False): PrepareRefillRequest,
    key(Command.PREPARE_REFILL, True): Prepared,
    key(Command.PREPARE_BOLUS, False): PrepareBolusRequest,
    key(Command.PREPARE_BOLUS, True): Prepared,
    key(Command.PREPARE_MRI_ENTER, False): PrepareMriEnterRequest,
    key(Command.PREPARE_MRI_ENTER, True): Prepared,
    key(Command.PREPARE_MRI_EXIT, False): PrepareMriExitRequest,
    key(Command.PREPARE_MRI_EXIT, True): Prepared,
    key(Command.PREPARE_CATHETER, False): PrepareCatheterRequest,
    key(Command.PREPARE_CATHETER, True): Prepared,
    key(Command.PREPARE_CLOCK, False): PrepareClockRequest,
    key(Command.PREPARE_CLOCK, True): Prepared,
    key(Command.PREPARE_PTM, False): PreparePtmRequest,
    key(Command.PREPARE_PTM, True): Prepared,
    key(Command.PREPARE_PATIENT, False): PreparePatientRequest,
    key(Command.PREPARE_PATIENT, True): Prepared,
    key(Command.COMMIT, False): CommitRequest,
    key(Command.COMMIT, True): Committed,
    key(Command.ERROR, True): ErrorResponse,
}

# --- the whole frame, declaratively (the reference the fast path is tested against)

Header = c.Struct(
    "version" / c.Int8ub,
    "flags" / c.Int8ub,
    "seq" / c.Int16ub,
    "command" / c.Int8ub,
    "length" / c.Int16ub,
)


def _payload_key(this: Any) -> int:
    return key(this.command, bool(this.flags & Flag.RESPONSE))


Frame = c.Struct(
    "sync" / c.Const(SYNC),
    "checked"
    / c.RawCopy(
        c.Struct(
            *Header.subcons,
            c.Check(c.this.length <= MAX_PAYLOAD),
            "payload"
            / c.FixedSized(
                c.this.length,
                # Terminated: trailing payload bytes are an error, as on the fast path
                c.FocusedSeq(
                    "body",
                    "body" / c.Switch(lambda this: _payload_key(this._), PAYLOADS, default=c.Error),
                    c.Terminated,
                ),
            ),
            "auth" / c.If(c.this.flags & Flag.AUTH, c.Bytes(AUTH_TRAILER_SIZE)),
        )
    ),
    "crc" / c.Checksum(c.Int32ub, crc32c, c.this.checked.data),
)
